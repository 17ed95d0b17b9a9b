//! TPM attestation, verifier side: pure Rust, no TPM and no TSS library needed.
//!
//! The protocol is the one go-attestation, Keylime and Teleport use:
//!
//! 1. The device sends an [`EnrollmentRequest`]: its EK public key (and EK certificate from
//!    NV where present) and the public part of an attestation key (AK), a restricted
//!    signing key.
//! 2. The verifier checks the EK certificate against its configured CAs and answers with
//!    an [`EnrollmentChallenge`] ([`begin_enrollment`]): a random secret wrapped by
//!    MakeCredential to the EK *and* the AK's Name, plus a fresh nonce. It keeps a
//!    [`PendingEnrollment`].
//! 3. The device recovers the secret with TPM2_ActivateCredential (possible only if the AK
//!    lives in the TPM that holds the EK), has the AK certify its device key
//!    (TPM2_Certify, qualifying data = the nonce) and returns an [`EnrollmentResponse`].
//! 4. The verifier ([`finish_enrollment`]) compares the secret in constant time, checks
//!    the certification and the device key's attributes (`fixedTPM`, `fixedParent`,
//!    `sensitiveDataOrigin`) and records an [`EnrolledDevice`].
//!
//! Afterwards every piece of evidence can carry a [`Quote`] whose qualifying data is
//! [`qualifying_data`]`(nonce, report)`, checked with [`verify_quote`].
//!
//! Raw TPM structures (`TPMS_ATTEST`, `TPMT_SIGNATURE`, `TPMT_PUBLIC`) travel unchanged,
//! base64 in JSON, so standard TPM tools can check them too.

pub mod aikca;
mod credential;
mod ekcert;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
mod tools;
pub mod tpm2;
mod verify;
mod wire;

pub use aikca::{tpm_identity, AttestationCa, CaKey, TpmIdentity};
pub use credential::{kdfa_sha256, kdfe_sha256, make_credential, MadeCredential};
pub use ekcert::{
    decode_fetched_certificates, ek_cert_service_url, ek_certificate_der, parse_roots,
    split_certificate_chain, verify_ek, verify_ek_certificate, CertificateFetcher,
    EkCertificateInfo, EkPolicy, FetchError, MAX_EK_CHAIN_CERTIFICATES, MAX_FETCHED_BYTES,
};
pub use tools::{p256_public_key_pem, tpm2_tools_pcrs, write_tpm2_tools_files};
pub use verify::{
    begin_enrollment, check_pcr_values, finish_enrollment, qualifying_data, verify_certify,
    verify_quote, EkTrust, VerifiedQuote, DEFAULT_PCRS,
};
pub use wire::{
    EnrolledDevice, EnrollmentChallenge, EnrollmentRequest, EnrollmentResponse, PcrValues,
    PendingEnrollment, Quote, SignedAttest, EK_TRUST_CA, EK_TRUST_UNVERIFIED, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
};

/// Why attestation data was rejected.
#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    /// A TPM structure or message could not be parsed.
    #[error("malformed {what}: {message}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A signature by a TPM key does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The attestation is well-formed and signed but says the wrong thing (magic, type,
    /// qualifying data, PCRs, key attributes, secret).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The EK certificate is missing, invalid or does not chain to a configured CA.
    #[error("EK certificate: {0}")]
    EkCertificate(String),
    /// An algorithm or structure this verifier does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Lowercase hex (see [`crate::hex`]).
pub fn to_hex(bytes: &[u8]) -> String {
    crate::hex::encode(bytes)
}

/// Parses hex (either case, no separators, surrounding whitespace ignored).
pub fn from_hex(text: &str) -> Result<Vec<u8>, AttestationError> {
    crate::hex::decode(text.trim()).ok_or_else(|| AttestationError::Malformed {
        what: "hex",
        message: "not an even-length hex string".into(),
    })
}
