//! The one status enum every fallible entry point returns, and its messages.

use std::ffi::c_char;

use crate::boundary::{ffi_status, write_out};

/// Longest message [`posture_error_message`] writes, in bytes, excluding the NUL.
/// A buffer of `POSTURE_ERROR_MESSAGE_MAX + 1` bytes always suffices.
pub const POSTURE_ERROR_MESSAGE_MAX: usize = 127;

/// The result of every fallible entry point.
///
/// Codes are explicit and stable: a code is never reused for another meaning. Out-params
/// are written only when `POSTURE_STATUS_OK` is returned. Codes are grouped by hundreds:
/// 0-99 call errors, 100-199 configuration, 200-299 evidence refused by the verifier,
/// 300-399 agent side. Code that receives a number it does not know should treat it as
/// an error.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum posture_status {
    /// Success.
    Ok = 0,
    /// A pointer argument was NULL.
    NullParameter = 1,
    /// A bug inside the library was caught at the boundary; nothing was written.
    Panic = 2,
    /// The caller's buffer is too small; nothing was written.
    InsufficientSize = 3,
    /// A text argument is not valid UTF-8.
    InvalidUtf8 = 4,
    /// An input is larger than the library accepts.
    InputTooLarge = 5,
    /// An argument has a value out of range (for example a lifetime of zero).
    InvalidParameter = 6,

    /// The trusted keys are not a P-256 JWK, JWK Set or PEM public key.
    InvalidKey = 100,
    /// The policy text is not a valid policy.
    InvalidPolicy = 101,
    /// The checks configuration is not valid.
    InvalidConfig = 102,

    /// The evidence is larger than verifiers accept; it was not parsed.
    EvidenceTooLarge = 200,
    /// The evidence is not a well-formed posture JWS (structure, JSON, headers).
    EvidenceMalformed = 201,
    /// The evidence uses an algorithm other than ES256.
    EvidenceAlgorithm = 202,
    /// The evidence's `typ` is not posture evidence.
    EvidenceType = 203,
    /// The evidence was signed by a key this verifier does not trust.
    EvidenceUnknownKey = 204,
    /// The signature does not verify (tampered evidence, or bound to another key).
    EvidenceBadSignature = 205,
    /// The evidence has expired.
    EvidenceExpired = 206,
    /// The evidence is not valid yet (issued in the future beyond the allowed skew).
    EvidenceNotYetValid = 207,
    /// The evidence was issued longer ago than the verifier's maximum age.
    EvidenceTooOld = 208,
    /// The evidence does not carry the expected nonce.
    EvidenceNonceMismatch = 209,
    /// The evidence is not addressed to this verifier's audience.
    EvidenceAudienceMismatch = 210,
    /// The signed claims or the report inside them are invalid.
    EvidenceInvalidClaims = 211,
    /// The TPM quote in the evidence does not verify (wrong AK, nonce/report binding,
    /// PCR digest or selection).
    EvidenceQuote = 212,

    /// Collecting posture failed.
    CollectFailed = 300,
    /// The device key could not be loaded, created or used.
    KeyError = 301,
    /// The report given to sign is not a valid posture report.
    InvalidReport = 302,
    /// Evidence could not be produced (for example it would be too large).
    EvidenceSignFailed = 303,
}

impl posture_status {
    /// Every status, for tests and documentation.
    pub const ALL: &'static [posture_status] = &[
        Self::Ok,
        Self::NullParameter,
        Self::Panic,
        Self::InsufficientSize,
        Self::InvalidUtf8,
        Self::InputTooLarge,
        Self::InvalidParameter,
        Self::InvalidKey,
        Self::InvalidPolicy,
        Self::InvalidConfig,
        Self::EvidenceTooLarge,
        Self::EvidenceMalformed,
        Self::EvidenceAlgorithm,
        Self::EvidenceType,
        Self::EvidenceUnknownKey,
        Self::EvidenceBadSignature,
        Self::EvidenceExpired,
        Self::EvidenceNotYetValid,
        Self::EvidenceTooOld,
        Self::EvidenceNonceMismatch,
        Self::EvidenceAudienceMismatch,
        Self::EvidenceInvalidClaims,
        Self::EvidenceQuote,
        Self::CollectFailed,
        Self::KeyError,
        Self::InvalidReport,
        Self::EvidenceSignFailed,
    ];

    /// The status with this code, if any. Codes from C arrive as `u32` and go through here;
    /// they are never transmuted into the enum.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u32 == code)
    }

    /// A short message for people, at most [`POSTURE_ERROR_MESSAGE_MAX`] bytes.
    pub fn message(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NullParameter => "a pointer argument was NULL",
            Self::Panic => "internal error in libposture (please report this)",
            Self::InsufficientSize => "the buffer is too small",
            Self::InvalidUtf8 => "a text argument is not valid UTF-8",
            Self::InputTooLarge => "an input is larger than libposture accepts",
            Self::InvalidParameter => "an argument is out of range",
            Self::InvalidKey => "the trusted keys are not a P-256 JWK, JWK Set or PEM public key",
            Self::InvalidPolicy => "the policy is not valid",
            Self::InvalidConfig => "the checks configuration is not valid",
            Self::EvidenceTooLarge => "the evidence is larger than verifiers accept",
            Self::EvidenceMalformed => "the evidence is not a well-formed posture JWS",
            Self::EvidenceAlgorithm => "the evidence uses an algorithm other than ES256",
            Self::EvidenceType => "the evidence typ is not posture evidence",
            Self::EvidenceUnknownKey => "the evidence was signed by a key that is not trusted",
            Self::EvidenceBadSignature => "the evidence signature does not verify",
            Self::EvidenceExpired => "the evidence has expired",
            Self::EvidenceNotYetValid => "the evidence is not valid yet",
            Self::EvidenceTooOld => "the evidence is older than the maximum age",
            Self::EvidenceNonceMismatch => "the evidence nonce does not match",
            Self::EvidenceAudienceMismatch => "the evidence audience does not match",
            Self::EvidenceInvalidClaims => "the evidence claims or report are invalid",
            Self::EvidenceQuote => "the TPM quote in the evidence does not verify",
            Self::CollectFailed => "collecting posture failed",
            Self::KeyError => "the device key could not be loaded, created or used",
            Self::InvalidReport => "the report is not a valid posture report",
            Self::EvidenceSignFailed => "evidence could not be produced",
        }
    }
}

/// Writes the message of status `code` into `buf` as a NUL-terminated string, and its
/// length (without the NUL) into `*written`.
///
/// `len` is the size of `buf` in bytes; `POSTURE_ERROR_MESSAGE_MAX + 1` always suffices.
/// An unknown code gets a message saying so. Returns `POSTURE_STATUS_INSUFFICIENT_SIZE`
/// (writing nothing) when the message and its NUL do not fit.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes and `written` valid for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn posture_error_message(
    code: u32,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> posture_status {
    ffi_status(|| {
        if buf.is_null() || written.is_null() {
            return posture_status::NullParameter;
        }
        let unknown;
        let message = match posture_status::from_code(code) {
            Some(status) => status.message(),
            None => {
                unknown = format!("unknown posture status code {code}");
                unknown.as_str()
            }
        };
        let Some(needed) = message.len().checked_add(1) else {
            return posture_status::InsufficientSize;
        };
        if needed > len {
            return posture_status::InsufficientSize;
        }
        // SAFETY: `buf` is non-NULL and the caller promises `len` writable bytes; we write
        // `needed <= len` bytes. The source is a Rust string that cannot overlap C's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), message.len());
            *buf.add(message.len()) = 0;
        }
        // SAFETY: `written` is non-NULL and the caller promises it is valid for writes.
        unsafe { write_out(written, message.len()) };
        posture_status::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_messages_fit() {
        let mut codes: Vec<u32> = posture_status::ALL.iter().map(|s| *s as u32).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), posture_status::ALL.len());
        for status in posture_status::ALL {
            assert!(
                status.message().len() <= POSTURE_ERROR_MESSAGE_MAX,
                "{status:?}"
            );
            assert_eq!(posture_status::from_code(*status as u32), Some(*status));
        }
        assert!(
            format!("unknown posture status code {}", u32::MAX).len() <= POSTURE_ERROR_MESSAGE_MAX
        );
    }

    #[test]
    fn codes_are_stable() {
        // These numbers are ABI: changing one breaks every compiled consumer.
        assert_eq!(posture_status::Ok as u32, 0);
        assert_eq!(posture_status::NullParameter as u32, 1);
        assert_eq!(posture_status::Panic as u32, 2);
        assert_eq!(posture_status::InvalidKey as u32, 100);
        assert_eq!(posture_status::EvidenceTooLarge as u32, 200);
        assert_eq!(posture_status::EvidenceInvalidClaims as u32, 211);
        assert_eq!(posture_status::CollectFailed as u32, 300);
        assert_eq!(posture_status::EvidenceSignFailed as u32, 303);
    }

    #[test]
    fn error_message_writes_only_when_it_fits() {
        let mut buf = [0x55 as c_char; 8];
        let mut written = 99usize;
        // SAFETY: buf and written are valid locals.
        let status = unsafe {
            posture_error_message(
                posture_status::EvidenceExpired as u32,
                buf.as_mut_ptr(),
                buf.len(),
                &mut written,
            )
        };
        assert_eq!(status, posture_status::InsufficientSize);
        assert_eq!(written, 99);
        assert!(buf.iter().all(|b| *b == 0x55));

        let mut buf = [0 as c_char; POSTURE_ERROR_MESSAGE_MAX + 1];
        // SAFETY: as above.
        let status = unsafe {
            posture_error_message(
                posture_status::EvidenceExpired as u32,
                buf.as_mut_ptr(),
                buf.len(),
                &mut written,
            )
        };
        assert_eq!(status, posture_status::Ok);
        let text: Vec<u8> = buf[..written].iter().map(|b| *b as u8).collect();
        assert_eq!(text, b"the evidence has expired");
        assert_eq!(buf[written], 0);
    }
}
