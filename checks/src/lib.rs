//! # posture-checks
//!
//! One module per posture check, and the [`collect`] runner that turns them into a
//! [`posture_core::Report`].
//!
//! Every check reads its sources below a filesystem root ([`Context::root`], `/` in
//! production) so tests can run the real check code over real directory trees built in a
//! temp dir. Reading (files, sysfs, commands) is kept apart from understanding: parsers
//! are pure functions tested on fixtures captured from real machines.
//!
//! A check that cannot tell answers [`Status::Unknown`](posture_core::Status) with a
//! reason; it never passes silently.
//!
//! ## Threading
//! [`collect`] runs every check on its own thread with a timeout; a check that hangs
//! becomes `unknown` with reason `timeout` and does not delay the others. What a timed-out
//! check can cost is bounded: its [`Context`] is cancelled (commands are killed, long loops
//! stop), and while it still runs the same check is not started again (the next
//! collection reports it `unknown` at once), so at most one thread per check is ever left
//! behind, however often a daemon collects. [`wait_for_stragglers`] lets a process that
//! is about to exit wait for them.
//!
//! ## Example
//! ```no_run
//! use posture_checks::{collect, ChecksConfig, CollectOptions};
//!
//! let report = collect(&CollectOptions::new(ChecksConfig::default()))?;
//! for finding in &report.findings {
//!     println!("{} {}", finding.id, finding.status.as_str());
//! }
//! # Ok::<(), posture_checks::Error>(())
//! ```

mod config;
mod context;
mod device;
mod error;
#[cfg(target_os = "macos")]
mod macos_source;
#[cfg(windows)]
mod powershell;
pub mod ps_json;
mod runner;
pub mod source;

pub mod auto_updates;
pub mod disk_encryption;
pub mod edr;
pub mod firewall;
pub mod os;
pub mod patch_level;
pub mod plist;
pub mod screen_lock;
pub mod secure_boot;
pub mod tpm;
mod xml;

pub use config::{ChecksConfig, EdrConfig, PatchLevelConfig, ScreenLockConfig};
pub use context::{Cancel, Context};
pub use device::{device_id_from_machine_id, device_identity};
pub use error::Error;
pub use runner::{collect, collect_checks, stragglers, wait_for_stragglers, CollectOptions};

use posture_core::Finding;

/// A check: a stable id, a title for people, and the function that runs it.
#[derive(Debug, Clone, Copy)]
pub struct CheckDef {
    /// Stable id, used in reports, config and policy.
    pub id: &'static str,
    /// Short title for people.
    pub title: &'static str,
    /// Runs the check against a context.
    pub run: fn(&Context) -> Finding,
}

/// Every check, in report order.
pub const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: os::ID,
        title: "Operating system",
        run: os::check,
    },
    CheckDef {
        id: patch_level::ID,
        title: "Patch level",
        run: patch_level::check,
    },
    CheckDef {
        id: auto_updates::ID,
        title: "Automatic updates",
        run: auto_updates::check,
    },
    CheckDef {
        id: disk_encryption::ID,
        title: "Disk encryption",
        run: disk_encryption::check,
    },
    CheckDef {
        id: edr::ID,
        title: "EDR / antivirus",
        run: edr::check,
    },
    CheckDef {
        id: firewall::ID,
        title: "Firewall",
        run: firewall::check,
    },
    CheckDef {
        id: secure_boot::ID,
        title: "Secure Boot",
        run: secure_boot::check,
    },
    CheckDef {
        id: tpm::ID,
        title: "TPM",
        run: tpm::check,
    },
    CheckDef {
        id: screen_lock::ID,
        title: "Screen lock",
        run: screen_lock::check,
    },
];

/// The finding of a check on an OS posture has no implementation for.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
pub(crate) fn unsupported_os(id: &str, _ctx: &Context) -> Finding {
    Finding::unknown(id, "not supported on this OS")
}

/// The check with this id.
pub fn check_by_id(id: &str) -> Option<&'static CheckDef> {
    CHECKS.iter().find(|c| c.id == id)
}
