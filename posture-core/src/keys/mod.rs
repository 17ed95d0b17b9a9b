//! The device key: a P-256 key that signs evidence with ES256.
//!
//! [`Signer`] is the seam between evidence and where the key lives: a software key file
//! or a TPM (non-exportable). Evidence records which, as [`KeyAssurance`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod software;

pub use crate::jose::{key_id, Jwk};

/// How well the device key is protected; carried in evidence as `key_assurance`.
///
/// Ordered by strength: `Software < TpmUnverified < Tpm`. A device only ever *claims*
/// `software` or `tpm`; what a verifier relies on is what it proved: `tpm` only for a key
/// certified by an attestation key whose EK certificate chains to a configured CA,
/// `tpm-unverified` when enrollment ran without EK CAs (trust on first use: a TPM
/// emulated in software enrolls just as well), `software` for any bare public key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyAssurance {
    /// A key file on disk (owner-only permissions); copyable by anyone who can read it.
    Software,
    /// A key certified by a TPM attestation key whose EK was never checked against a TPM
    /// vendor CA: it may be a real TPM, or software pretending to be one.
    #[serde(rename = "tpm-unverified")]
    TpmUnverified,
    /// A key created inside a TPM 2.0 whose EK certificate chains to a configured CA; it
    /// never leaves the chip.
    Tpm,
}

impl KeyAssurance {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyAssurance::Software => "software",
            KeyAssurance::TpmUnverified => "tpm-unverified",
            KeyAssurance::Tpm => "tpm",
        }
    }
}

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file or its directory is readable by others or owned by someone else.
    #[error("refusing {path}: {problem}")]
    InsecurePermissions {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What is wrong, e.g. "mode 0644, expected 0600".
        problem: String,
    },
    /// A key file that is not a valid key.
    #[error("{path} is not a valid P-256 key: {message}")]
    InvalidKey {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// The TPM could not be reached, or refused or failed a command.
    #[error("TPM: {0}")]
    Tpm(TpmError),
    /// A signature could not be made.
    #[error("signing failed: {0}")]
    Signing(String),
    /// Not available on this platform or build.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// A TPM failure: what was being done, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {kind}")]
pub struct TpmError {
    /// What posture was doing, e.g. "loading the device key".
    pub operation: String,
    /// What went wrong.
    pub kind: TpmFailure,
}

impl TpmError {
    /// A failure of `operation`.
    pub fn new(operation: impl Into<String>, kind: TpmFailure) -> Self {
        Self {
            operation: operation.into(),
            kind,
        }
    }
}

/// What went wrong with the TPM; remediation is chosen by variant.
#[derive(Debug, thiserror::Error)]
pub enum TpmFailure {
    /// The TPM device node exists but this user may not open it.
    #[error("no permission to use {0}")]
    PermissionDenied(std::path::PathBuf),
    /// The TCTI could not be loaded or connected (a simulator that is not running, a
    /// misspelt TCTI).
    #[error("cannot connect: {0}")]
    Connection(String),
    /// The TPM answered a command with an error response code (TPM2_RC / TSS2_RC).
    #[error("response code {code:#x}: {message}")]
    Response {
        /// The response code.
        code: u32,
        /// The TSS's description of it.
        message: String,
    },
    /// The TPM's answer was not what the protocol requires (e.g. a quote over other PCRs).
    #[error("{0}")]
    Protocol(String),
}

/// A P-256 device key that signs with ES256 (ECDSA over SHA-256).
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The public key.
    fn public_key(&self) -> p256::PublicKey;
    /// Signs `message` (hashing it with SHA-256 first, as ES256 does).
    fn sign(&self, message: &[u8]) -> Result<p256::ecdsa::Signature, KeyError>;
    /// Where the private key lives.
    fn assurance(&self) -> KeyAssurance;
}
