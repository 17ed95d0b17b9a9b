//! The TPM 2.0 device side: the device key, the attestation key, credential activation,
//! certification and PCR quotes (Linux, cargo feature `tpm`, on by default).
//!
//! ## Contract
//! - One [`Tpm`] (one TSS context) per process: [`Tpm::shared`] opens it from the `TCTI`
//!   environment variable, else `device:/dev/tpmrm0` (the kernel resource manager; never
//!   `/dev/tpm0` first). Calls are serialised by a mutex inside [`Tpm`], so it is
//!   `Send + Sync` and can be shared with `Arc`.
//! - Every transient object this module loads is flushed again (on drop of its guard), so
//!   it works on a TPM without a resource manager too.
//! - Keys are created under a storage root key (SRK) that is re-derived with
//!   TPM2_CreatePrimary from a fixed template on every load; only the TPM-wrapped blobs
//!   are saved (0600, owner-only directory). A blob is useless off the TPM that made it.
//! - Only password sessions with empty auth are used: no extra TPM commands per call.
//!
//! ## Example
//! ```no_run
//! use posture_core::keys::Signer;
//! let key = posture_agent::tpm::open_device_key(std::path::Path::new("/var/lib/posture"))?;
//! let signature = key.sign(b"evidence")?;
//! # Ok::<(), posture_core::keys::KeyError>(())
//! ```

mod attest;
mod blob;
mod context;
// The TSS libraries are loaded on first use (x86_64: trampolines + dlopen, see lazy.rs);
// elsewhere they are linked the ordinary way and are always there.
#[cfg(target_arch = "x86_64")]
mod lazy;
#[cfg(not(target_arch = "x86_64"))]
mod lazy {
    //! The TSS libraries are linked the ordinary way on this architecture.

    /// Always loaded (by the dynamic loader at start).
    pub fn ensure_loaded() -> Result<(), String> {
        Ok(())
    }
}
mod signer;
mod templates;
mod tss2key;
pub mod webauthn;

pub use attest::{
    AttestationKey, EkCertificate, EkKind, EK_CERT_CHAIN_NV_INDICES, EK_CERT_NV_INDICES,
};
pub use context::{Tpm, TpmInfo, DEFAULT_TCTI};
pub use signer::{open_device_key, Srk, TpmSigner};
pub use tss2key::tss2_private_key_pem;

/// File name of the device key blob in the state directory.
pub const DEVICE_KEY_FILE: &str = "tpm-device-key.json";
/// File name of the attestation key blob in the state directory.
pub const AK_FILE: &str = "tpm-ak.json";

/// Turns a TSS error into a [`KeyError`] that says what was being done, with the TPM's
/// response code when the TPM answered with one.
pub(crate) fn tss_err(doing: &str) -> impl FnOnce(tss_esapi::Error) -> KeyError + '_ {
    move |e| KeyError::Tpm(TpmError::new(doing, failure_of(e)))
}

/// The typed failure behind a TSS error.
pub(crate) fn failure_of(error: tss_esapi::Error) -> TpmFailure {
    match error {
        tss_esapi::Error::Tss2Error(rc) => TpmFailure::Response {
            code: response_code(rc),
            message: rc.to_string(),
        },
        tss_esapi::Error::WrapperError(kind) => TpmFailure::Protocol(kind.to_string()),
    }
}

fn response_code(rc: tss_esapi::constants::response_code::Tss2ResponseCode) -> u32 {
    use bitfield::BitRange as _;
    use tss_esapi::constants::response_code::Tss2ResponseCode;
    match rc {
        Tss2ResponseCode::Success => 0,
        Tss2ResponseCode::FormatZero(code) => code.bit_range(31, 0),
        Tss2ResponseCode::FormatOne(code) => code.bit_range(31, 0),
    }
}

/// A TPM answer that breaks the protocol posture relies on.
pub(crate) fn protocol_err(doing: &str, message: impl Into<String>) -> KeyError {
    KeyError::Tpm(TpmError::new(doing, TpmFailure::Protocol(message.into())))
}

use posture_core::keys::{KeyError, TpmError, TpmFailure};
