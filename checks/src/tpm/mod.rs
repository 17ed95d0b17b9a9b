//! `tpm`: whether the machine has a TPM 2.0, and whether this user can use it.
//!
//! Sources: `/sys/class/tpm/tpmN/tpm_version_major` (kernel 5.6+); on older kernels the
//! TPM 1.2 `caps` file (`TCG version: 1.2`) or a `/sys/class/tpmrm/tpmrmN` resource
//! manager (which the kernel creates only for TPM 2.0); and opening `/dev/tpmrmN` for
//! reading and writing, which is the access check that matters (opening the resource
//! manager sends nothing to the TPM).
//!
//! No TPM, or only a TPM 1.2, fails. A TPM 2.0 that this user cannot open still passes:
//! the device has the hardware, and access is a configuration of the agent's user, not a
//! weakness of the device. The finding then says `accessible: false` and how to fix it.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod tbs;

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
pub const ID: &str = "tpm";

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
