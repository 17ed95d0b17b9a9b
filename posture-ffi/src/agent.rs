//! Agent side: the device key and evidence creation.

use std::path::PathBuf;
use std::time::Duration;

use posture_agent::key::{Backend, DeviceKey, KeyConfig};
use posture_agent::sign::{sign_evidence, SignError};
use posture_agent::{Agent, Config};
use posture_core::evidence::{EvidenceError, EvidenceOptions};
use posture_core::jose::Jwk;
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
    key: DeviceKey,
    /// The sha256 PCRs quoted into evidence signed with a nonce (TPM keys).
    quote_pcrs: Vec<u32>,
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
        let software = KeyConfig {
            backend: Backend::Software,
            ..KeyConfig::default()
        };
        let Ok(key) = posture_agent::key::open(&software, &path, false) else {
            return posture_status::KeyError;
        };
        let handle = posture_key {
            key,
            quote_pcrs: Vec::new(),
        };
        // SAFETY: non-NULL; the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(handle)) };
        posture_status::Ok
    })
}

/// Opens the device key as posture's configuration says, exactly as `posture report` and
/// the daemon do: the TPM key when the TPM is usable (its evidence carries a PCR quote
/// when signed with a nonce), else the software key when `[key]` allows the fallback.
///
/// `config` is the text of a posture config file (the same TOML as
/// `/etc/posture/config.toml`; empty text means the defaults); the key lives in the
/// state directory's `keys/` (`[daemon] state_dir`, `POSTURE_STATE_DIR`, else
/// `/var/lib/posture` as root and `~/.local/share/posture` otherwise).
///
/// Errors: `POSTURE_STATUS_INVALID_CONFIG` for a config with a mistake,
/// `POSTURE_STATUS_KEY_ERROR` when the configured key cannot be used.
///
/// # Safety
/// `config` must be valid for reads of `config_len` bytes; `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn posture_key_open(
    config: *const u8,
    config_len: usize,
    out: *mut *mut posture_key,
) -> posture_status {
    ffi_status(|| {
        if config.is_null() || out.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises `config_len` readable bytes.
        let text = try_ffi!(unsafe {
            input_text(config, config_len, crate::collect::POSTURE_MAX_CONFIG_BYTES)
        });
        let Ok(config) = Config::parse(text, std::path::Path::new("<posture_key_open>")) else {
            return posture_status::InvalidConfig;
        };
        let Ok(agent) = Agent::new(config, None) else {
            return posture_status::InvalidConfig;
        };
        let Ok(key) = agent.open_key(true) else {
            return posture_status::KeyError;
        };
        let handle = posture_key {
            key,
            quote_pcrs: agent.config.key.quote_pcrs.clone(),
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
        let public = key.key.signer.public_key();
        let Ok(json) = serde_json::to_vec(&Jwk::from_public_key(&public)) else {
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
        let token = match sign_evidence(&key.key, &report, &options, &key.quote_pcrs, None) {
            Ok(signed) => signed.token,
            Err(SignError::Evidence(EvidenceError::InvalidReport(_))) => {
                return posture_status::InvalidReport
            }
            Err(SignError::Evidence(EvidenceError::NonceLength(_) | EvidenceError::Ttl(_))) => {
                return posture_status::InvalidParameter
            }
            Err(SignError::Evidence(EvidenceError::Key(_))) => return posture_status::KeyError,
            Err(_) => return posture_status::EvidenceSignFailed,
        };
        // SAFETY: non-NULL; the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(posture_buf::new(token))) };
        posture_status::Ok
    })
}
