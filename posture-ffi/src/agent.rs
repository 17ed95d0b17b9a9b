//! Agent side: the device key and evidence creation.

use std::path::PathBuf;
use std::time::Duration;

use posture_core::evidence::{sign_evidence, EvidenceError, EvidenceOptions};
use posture_core::jose::Jwk;
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::Signer;
use posture_core::Report;

use crate::boundary::{
    borrow_handle, ffi_status, ffi_value, free_handle, input_bytes, input_text, into_handle,
    try_ffi, write_out,
};
use crate::buf::posture_buf;
use crate::status::posture_status;
use crate::verifier::POSTURE_MAX_NAME_BYTES;

/// Largest report JSON accepted for signing, in bytes.
pub const POSTURE_MAX_REPORT_BYTES: usize = 1024 * 1024;
/// Largest key directory path accepted, in bytes.
pub const POSTURE_MAX_PATH_BYTES: usize = 4096;

/// A device key that signs evidence. Belongs to one thread at a time. Free it with
/// `posture_key_free`.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct posture_key {
    signer: Box<dyn Signer>,
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> Result<PathBuf, posture_status> {
    use std::os::unix::ffi::OsStrExt;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> Result<PathBuf, posture_status> {
    std::str::from_utf8(bytes)
        .map(PathBuf::from)
        .map_err(|_| posture_status::InvalidUtf8)
}

/// Loads the software device key from directory `dir`, creating the directory (mode
/// 0700) and the key (0600) on first use. A directory or key file readable by others is
/// refused (`POSTURE_STATUS_KEY_ERROR`).
///
/// # Safety
/// `dir` must be valid for reads of `dir_len` bytes; `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn posture_key_software_load_or_create(
    dir: *const u8,
    dir_len: usize,
    out: *mut *mut posture_key,
) -> posture_status {
    ffi_status(|| {
        if dir.is_null() || out.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises `dir_len` readable bytes.
        let bytes = try_ffi!(unsafe { input_bytes(dir, dir_len, POSTURE_MAX_PATH_BYTES) });
        if bytes.is_empty() || bytes.contains(&0) {
            return posture_status::InvalidParameter;
        }
        let path = try_ffi!(path_from_bytes(bytes));
        let Ok(key) = SoftwareKey::load_or_create(&path) else {
            return posture_status::KeyError;
        };
        let handle = posture_key {
            signer: Box::new(key),
        };
        // SAFETY: non-NULL; the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(handle)) };
        posture_status::Ok
    })
}

/// Frees a key handle (the key file stays). NULL is accepted and ignored.
///
/// # Safety
/// `key` must be NULL or a key from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn posture_key_free(key: *mut posture_key) {
    // SAFETY: the caller promises NULL or a live key freed once.
    ffi_value((), || unsafe { free_handle(key) })
}

/// The key's public half as a JWK (with `kid`, its RFC 7638 thumbprint) in a new buffer
/// at `*out`: what a verifier is given to trust this device. Free it with
/// `posture_buf_free`.
///
/// # Safety
/// `key` must be a live key; `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn posture_key_public_jwk(
    key: *const posture_key,
    out: *mut *mut posture_buf,
) -> posture_status {
    ffi_status(|| {
        if key.is_null() || out.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises a live key.
        let key = try_ffi!(unsafe { borrow_handle(key) });
        let Ok(json) = serde_json::to_vec(&Jwk::from_public_key(&key.signer.public_key())) else {
            return posture_status::Panic;
        };
        // SAFETY: non-NULL; the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(posture_buf::new(json))) };
        posture_status::Ok
    })
}

/// Signs a posture report (the JSON from `posture_collect_json`) as compact-JWS evidence
/// in a new buffer at `*out`.
///
/// - `nonce`: the verifier's challenge (8 to 64 bytes); length 0 for none.
/// - `audience`: the verifier the evidence is for; length 0 for none.
/// - `ttl_secs`: how long the evidence is valid, 1 to 86400 seconds.
///
/// # Safety
/// `key` must be a live key; each buffer valid for reads of its length; `out` valid for
/// one pointer.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn posture_evidence_sign(
    key: *const posture_key,
    report_json: *const u8,
    report_len: usize,
    nonce: *const u8,
    nonce_len: usize,
    audience: *const u8,
    audience_len: usize,
    ttl_secs: u32,
    out: *mut *mut posture_buf,
) -> posture_status {
    ffi_status(|| {
        if key.is_null()
            || report_json.is_null()
            || nonce.is_null()
            || audience.is_null()
            || out.is_null()
        {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises a live key and readable buffers.
        let (key, report, nonce, audience) = unsafe {
            (
                try_ffi!(borrow_handle(key)),
                try_ffi!(input_bytes(
                    report_json,
                    report_len,
                    POSTURE_MAX_REPORT_BYTES
                )),
                try_ffi!(input_text(nonce, nonce_len, POSTURE_MAX_NAME_BYTES)),
                try_ffi!(input_text(audience, audience_len, POSTURE_MAX_NAME_BYTES)),
            )
        };
        let Ok(report) = serde_json::from_slice::<Report>(report) else {
            return posture_status::InvalidReport;
        };
        let options = EvidenceOptions {
            nonce: (!nonce.is_empty()).then(|| nonce.to_owned()),
            audience: (!audience.is_empty()).then(|| audience.to_owned()),
            ttl: Duration::from_secs(u64::from(ttl_secs)),
        };
        let token = match sign_evidence(&report, key.signer.as_ref(), &options) {
            Ok(token) => token,
            Err(EvidenceError::InvalidReport(_)) => return posture_status::InvalidReport,
            Err(EvidenceError::NonceLength(_) | EvidenceError::Ttl(_)) => {
                return posture_status::InvalidParameter
            }
            Err(EvidenceError::Key(_)) => return posture_status::KeyError,
            Err(_) => return posture_status::EvidenceSignFailed,
        };
        // SAFETY: non-NULL; the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(posture_buf::new(token))) };
        posture_status::Ok
    })
}
