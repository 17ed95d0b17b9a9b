//! `secure_boot`: whether UEFI Secure Boot is enforcing, and the kernel lockdown mode.
//!
//! Sources: `/sys/firmware/efi` (present only when the kernel was booted by UEFI),
//! the efivarfs variables `SecureBoot-8be4df61-…` and `SetupMode-8be4df61-…` (each is
//! 4 bytes of little-endian attributes followed by the variable's data, one byte here),
//! the legacy sysfs-efivars `…/vars/<name>-<guid>/data` (data only) on old kernels, and
//! `/sys/kernel/security/lockdown` (`none [integrity] confidentiality`).
//!
//! Beyond the flag, the boot chain as evidence:
//! - [`siglist`]: `PK`, `KEK`, `db`, `dbx` and shim's `MokListRT`/`MokListXRT` parsed from efivarfs:
//!   the certificates trusted (subject, issuer, expiry), whether Microsoft's 2023 UEFI CAs
//!   are present and the 2011 ones revoked, and `dbx` compared with Microsoft's current
//!   revocation list. An outdated `dbx` fails even with Secure Boot on.
//! - [`eventlog`]: the TCG event log (`/sys/kernel/security/tpm0/binary_bios_measurements`,
//!   root only) parsed and replayed; the replayed PCRs and the boot facts (Secure Boot
//!   state as measured, boot applications, `db` authorities, grub's kernel and command
//!   line) are observed, so a verifier that has a quote can check the replay and then
//!   write policy on events. (The replay-versus-quote comparison itself is verifier work.)
//! - `/sys/module/module/parameters/sig_enforce`: module signature enforcement.
//! - `fwupd`: fwupd's Host Security ID (`HostSecurityId` over D-Bus) when fwupd runs.
//!
//! Pass: `SecureBoot` is 1 and `SetupMode` is 0 (platform keys enrolled, so the firmware
//! really verifies what it boots). A machine booted by legacy BIOS is `unknown`: Secure
//! Boot does not apply there, and a policy decides what that means. A variable that is
//! truncated or holds anything but 0 or 1 is `unknown`, never a pass.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod apple;
pub mod eventlog;
#[cfg(target_os = "linux")]
pub mod fwupd;
pub mod siglist;
pub mod windows_state;

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
pub const ID: &str = "secure_boot";

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
