//! `patch_level`: how up to date the installed packages are, and whether a reboot is needed.
//!
//! It reports the package manager, pending updates and pending *security* updates, how
//! long the oldest security update has been pending, the last successful whole-system
//! upgrade, and whether a newer kernel than the running one is installed. It fails when a
//! security update has been pending longer than `max_security_pending_days`, when there
//! has been no upgrade for `max_days_since_upgrade` days (unless nothing is pending against
//! package lists no older than that), and, with `fail_on_pending_reboot`, when a reboot is
//! pending. A threshold that cannot be evaluated makes the finding `unknown`, never `pass`.
//!
//! # Sources
//!
//! **apt (Debian, Ubuntu)** — files only, no commands:
//! - `/var/lib/dpkg/status`: installed packages (every state with files on disk).
//! - `/var/lib/apt/lists/*_Packages` (plain, `.lz4` or `.gz`): versions on offer. A list in
//!   another compression (`.xz`, `.zst`) makes the counts `unknown`, never lower.
//! - `/var/lib/apt/lists/*_InRelease` / `*_Release` of each list: `Suite`/`Codename`
//!   ending in `-security`, `Label`/`Origin` naming security, or a security archive host
//!   (`security.debian.org`, `security.ubuntu.com`, `.../debian-security`) mark security
//!   lists; `NotAutomatic`/`ButAutomaticUpgrades` give apt's default pin priorities
//!   (1/100/500) so backports and experimental count only as apt would upgrade to them;
//!   `Date` says how fresh the lists are and is a lower bound on how long an update has
//!   been available. Pins in `/etc/apt/preferences*` are not read.
//! - `/var/log/apt/history.log`, `history.log.1`, `history.log.N.gz`: the newest entry
//!   whose `Commandline` is an `upgrade`/`full-upgrade`/`dist-upgrade`, unattended-upgrades
//!   or a PackageKit update, with an `End-Date` and no `Error`.
//! - `/var/lib/apt/periodic/upgrade-stamp` (mtime): the last successful unattended-upgrades run.
//!
//! **dnf (Fedora, RHEL)**: `/var/log/dnf.rpm.log` (the last package upgrade; dnf logs no
//! "whole upgrade finished" marker). dnf5's `/var/log/dnf5.log` is not read yet (a note
//! says so and the last upgrade stays unknown). Pending counts have no simple file source (repodata
//! is solv/sqlite), so in a live context only: `dnf -q -C check-update` and
//! `dnf -q -C check-update --security` (cache only, no network).
//!
//! **pacman (Arch)**: `/var/log/pacman.log` (`starting full system upgrade` followed by a
//! completed transaction or by nothing to do). Live only: `pacman -Qu` against the
//! local sync databases. Arch publishes no security metadata in its repositories, so
//! security updates are counted only when nothing at all is pending (then zero).
//!
//! **zypper (openSUSE, SLE)**: `/var/log/zypp/history` (`command` records running
//! `zypper up|dup|patch`, dated by their last install). Live only:
//! `zypper -q -n --no-refresh lu` and `zypper -q -n --no-refresh lp -g security` (needed
//! security *patches*).
//!
//! **Kernel**: `/proc/sys/kernel/osrelease` (running) against `/lib/modules/*` and
//! `/usr/lib/modules/*` (with `modules.dep` or `kernel/`, so leftover directories do not
//! count) and `/boot/vmlinuz-*`, of the same flavour, in dpkg's version order;
//! `/run/reboot-required` (Debian, Ubuntu) also means a reboot is pending.
//!
//! # How long security updates have been pending
//!
//! Package lists carry no dates. With a state directory in the [`Context`], the check
//! remembers when it first saw each pending security update (see [`state`]); an update
//! that appeared between two runs has a known age, one already pending at the first run
//! only a lower bound (also raised by the security suite's Release `Date`). The threshold
//! fails on a lower bound above it, passes only on upper bounds within it, and is
//! `unknown` otherwise. `oldest_security_pending_days` is `null` unless every age is
//! bounded; `oldest_security_pending_days_at_least` is always given.
//!
//! Log times are local wall-clock times without a zone; they are read as UTC (at most
//! 14 hours off, immaterial for thresholds in days).
//!
//! # Observed fields (a contract with the policy engine)
//! `package_manager`, `pending_updates` (int, `null` if unknown), `pending_security_updates`
//! (int or `null`), `oldest_security_pending_days` (int or `null`),
//! `oldest_security_pending_days_at_least` (int or `null`), `days_since_last_upgrade`
//! (int or `null`), `last_upgrade` (RFC 3339 or `null`), `reboot_pending` (bool, `null` when
//! no installed kernel could be found), `running_kernel`, `newest_kernel` (or `null`),
//! `security_updates` (up to 50 `name:arch` entries), `lists_date` (apt).
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod apt;
pub mod cumulative_updates;
pub mod debversion;
#[cfg(target_os = "linux")]
mod gather;
pub mod kernel;
#[cfg(target_os = "linux")]
pub mod list_cache;
pub mod others;
pub mod softwareupdate;
pub mod state;
pub mod time;
pub mod windows_update;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "windows")]
mod windows;

#[cfg(target_os = "linux")]
pub use gather::{detect, gather, Facts, Manager, SecurityPending};

use posture_core::Finding;

use crate::Context;

/// Check id.
pub const ID: &str = "patch_level";

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
