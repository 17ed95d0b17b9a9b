//! `os`: the operating system, its version and kernel, and whether it is still supported.
//!
//! Sources: `/etc/os-release` (falling back to `/usr/lib/os-release`, as os-release(5)
//! says), `/proc/sys/kernel/osrelease`, the build's target architecture.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod sw_vers;
pub mod windows_version;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "windows")]
mod windows;

#[cfg(target_os = "linux")]
pub use linux::*;
#[cfg(target_os = "windows")]
pub(crate) use windows::read as read_windows_version;

use posture_core::Finding;
#[cfg(not(target_os = "linux"))]
use posture_core::OsFacts;

use crate::Context;

/// Check id.
pub const ID: &str = "os";

/// Runs the check for the OS this was built for.
pub fn check(ctx: &Context) -> Finding {
    #[cfg(target_os = "linux")]
    return linux::check(ctx);
    #[cfg(target_os = "macos")]
    return macos::check(ctx);
    #[cfg(target_os = "windows")]
    return windows::check(ctx);
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    return crate::unsupported_os(ID, ctx);
}

/// The OS facts for the report.
#[cfg(not(target_os = "linux"))]
pub fn os_facts(ctx: &Context) -> OsFacts {
    #[cfg(target_os = "macos")]
    return macos::os_facts(ctx);
    #[cfg(target_os = "windows")]
    return windows::os_facts(ctx);
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    let _ = ctx;
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    return OsFacts {
        family: std::env::consts::OS.to_owned(),
        id: std::env::consts::OS.to_owned(),
        name: std::env::consts::OS.to_owned(),
        version_id: None,
        kernel: String::new(),
        arch: std::env::consts::ARCH.to_owned(),
    };
}
