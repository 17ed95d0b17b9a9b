//! `auto_updates`: whether the system installs updates by itself.
//!
//! # Sources
//!
//! **apt (Debian, Ubuntu)**: unattended-upgrades must be installed (`/var/lib/dpkg/status`),
//! `APT::Periodic::Update-Package-Lists` and `APT::Periodic::Unattended-Upgrade` must be
//! on (a positive number of days or `always`; `APT::Periodic::Enable` not `0`) in
//! `/etc/apt/apt.conf.d/*` (in apt's order, later files override) and `/etc/apt/apt.conf`,
//! and apt's `apt-daily.timer` and `apt-daily-upgrade.timer` must be enabled and not masked
//! (unit directories, see [`systemd`]). On a system not booted with systemd
//! (`/run/systemd/system` absent) the cron job `/etc/cron.daily/apt-compat` runs the same
//! jobs instead of the timers. `#include` directives are not followed.
//!
//! **dnf (Fedora, RHEL)**: dnf-automatic installed (its timer unit exists:
//! `dnf-automatic.timer`, or dnf5's `dnf5-automatic.timer`); either
//! `dnf-automatic-install.timer` enabled, or the plain timer enabled with
//! `apply_updates = yes` in `[commands]` of `/etc/dnf/automatic.conf` (dnf5:
//! `/etc/dnf/dnf5-plugins/automatic.conf`). `upgrade_type` is reported.
//!
//! **pacman, zypper**: no standard automatic-update mechanism to check: `unknown`.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod aptconf;
pub mod softwareupdate_prefs;
pub mod systemd;
pub mod windows_update_policy;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "windows")]
mod windows;

#[cfg(target_os = "linux")]
pub use linux::*;

use posture_core::Finding;

use crate::Context;

/// Check id.
pub const ID: &str = "auto_updates";

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
