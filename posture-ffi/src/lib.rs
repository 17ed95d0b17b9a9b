//! # posture-ffi
//!
//! The C ABI of posture. The verifier, policy and agent entry points land with the
//! C-library issue; for now it exposes only the library version.

use std::ffi::c_char;

/// The library version as a NUL-terminated static string. Never free it.
#[no_mangle]
pub extern "C" fn posture_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
