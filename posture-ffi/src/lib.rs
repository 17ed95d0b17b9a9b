//! # posture-ffi
//!
//! The C ABI of posture (`libposture.so` / `libposture.a`, header `include/posture.h`):
//! identity providers, proxies and VPN clients verify posture evidence and decide with a
//! policy inside their request path; agents collect posture and create evidence.
//!
//! ## Conventions (rustls-ffi's)
//! - Every fallible function returns a [`posture_status`] with stable explicit codes;
//!   [`posture_error_message`] turns a code into text.
//! - Results go to out-params, written only on success. Every buffer is followed by its
//!   length. Integers from C are taken as `u32`/`size_t` and converted.
//! - Opaque handles come in `_new`/`_free` pairs; every `_free` accepts NULL. Memory the
//!   library allocated is released with its `_free` function, never `free()`.
//! - Every entry point checks its pointers for NULL first and runs inside a panic
//!   boundary: a bug in the library returns `POSTURE_STATUS_PANIC`, it never unwinds into C.
//!
//! ## Features
//! `agent` (default): collecting posture, the device key (TPM when usable, feature `tpm`)
//! and signing evidence, through posture's agent layer. A verifier-only build
//! (`--no-default-features`) has only the verifier and policy: no tss, no OS probing.
//!
//! ## Threading
//! A `posture_verifier` is immutable once built: one handle may be used by any number of
//! threads concurrently. Other handles (`posture_result`, `posture_buf`, `posture_key`)
//! belong to one thread at a time.

#[cfg(feature = "agent")]
pub mod agent;
mod boundary;
pub mod buf;
#[cfg(feature = "agent")]
pub mod collect;
pub mod status;
pub mod verifier;

#[cfg(feature = "agent")]
pub use agent::posture_key;
pub use buf::posture_buf;
pub use status::{posture_error_message, posture_status};
pub use verifier::{posture_decision, posture_result, posture_verifier};

use std::ffi::c_char;

/// The library version (`"MAJOR.MINOR.PATCH"`) as a NUL-terminated static string. Never
/// free it. Compare with the header's `POSTURE_VERSION_STRING` to detect a mismatch
/// between the header compiled against and the library loaded.
#[no_mangle]
pub extern "C" fn posture_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
