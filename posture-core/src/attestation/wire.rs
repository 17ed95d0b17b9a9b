//! The JSON messages of enrollment and attestation. Binary fields are standard base64
//! (with padding) of the raw TPM structures; nonces and PCR values are lowercase hex.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tpm2::TpmPublic;
use super::AttestationError;

/// The version of these messages; a verifier rejects others.
pub const PROTOCOL_VERSION: u32 = 1;

/// Inputs larger than this are refused before parsing (the biggest legitimate message, a
/// quote with a UEFI event log, stays well below it).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            let text: Option<String> = Option::deserialize(d)?;
            text.map(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t.as_bytes())
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        }
    }

    pub mod vec {
        use super::*;

        pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for item in v {
                seq.serialize_element(&base64::engine::general_purpose::STANDARD.encode(item))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            let texts: Vec<String> = Vec::deserialize(d)?;
            texts
                .iter()
                .map(|t| {
                    base64::engine::general_purpose::STANDARD
                        .decode(t.as_bytes())
                        .map_err(serde::de::Error::custom)
                })
                .collect()
        }
    }
}

/// Parses a message after checking its size.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, AttestationError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(AttestationError::Malformed {
            what,
            message: format!("{} bytes, more than {MAX_MESSAGE_BYTES}", bytes.len()),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| AttestationError::Malformed {
        what,
        message: e.to_string(),
    })
}

fn check_version(version: u32, what: &'static str) -> Result<(), AttestationError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(AttestationError::Unsupported(format!(
            "{what} version {version} (this verifier speaks {PROTOCOL_VERSION})"
        )))
    }
}

macro_rules! json_message {
    ($t:ty, $what:literal) => {
        impl $t {
            /// Parses the JSON form, refusing oversized input and other protocol versions.
            pub fn from_json(bytes: &[u8]) -> Result<Self, AttestationError> {
                let m: Self = from_json(bytes, $what)?;
                check_version(m.version, $what)?;
                Ok(m)
            }

            /// The JSON form.
            pub fn to_json(&self) -> Result<String, AttestationError> {
                serde_json::to_string_pretty(self).map_err(|e| AttestationError::Malformed {
                    what: $what,
                    message: e.to_string(),
                })
            }
        }
    };
}

/// A `TPMS_ATTEST` and the `TPMT_SIGNATURE` over it, as the TPM produced them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedAttest {
    /// Marshalled `TPMS_ATTEST`, base64.
    #[serde(with = "b64")]
    #[schemars(with = "String")]
    pub attest: Vec<u8>,
    /// Marshalled `TPMT_SIGNATURE`, base64.
    #[serde(with = "b64")]
    #[schemars(with = "String")]
    pub signature: Vec<u8>,
}

/// Step 1, device to verifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The EK (TCG default template: RSA 2048, or ECC NIST P-256/P-384), marshalled
    /// `TPMT_PUBLIC`.
    #[serde(with = "b64")]
    pub ek_public: Vec<u8>,
    /// The EK certificate (DER, or the raw NV contents) from NV index 0x01c00002 (RSA
    /// 2048), 0x01c0000a (P-256) or 0x01c00016 (P-384), where present.
    #[serde(with = "b64::option", default, skip_serializing_if = "Option::is_none")]
    pub ek_certificate: Option<Vec<u8>>,
    /// Intermediate CA certificates (DER) from the TPM's EK certificate chain NV indices
    /// 0x01c00100-0x01c001ff, where present. Untrusted: they only help build a path to a
    /// configured CA. At most [`super::MAX_EK_CHAIN_CERTIFICATES`].
    #[serde(with = "b64::vec", default, skip_serializing_if = "Vec::is_empty")]
    pub ek_chain: Vec<Vec<u8>>,
    /// The AK, marshalled `TPMT_PUBLIC`.
    #[serde(with = "b64")]
    pub ak_public: Vec<u8>,
    /// `TPM_PT_MANUFACTURER` as 8 hex digits (e.g. `49424D00`), as the device reads it.
    /// The attestation CA uses it only where the EK certificate does not name the
    /// manufacturer in the TCG vendor id form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_manufacturer: Option<String>,
    /// `TPM_PT_VENDOR_STRING_1..4` (the TPM model), as the device reads it; used by the
    /// attestation CA only where the EK certificate names no model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_model: Option<String>,
}
json_message!(EnrollmentRequest, "enrollment request");

/// Step 2, verifier to device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentChallenge {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Contents of the `TPM2B_ID_OBJECT` from MakeCredential.
    #[serde(with = "b64")]
    pub credential_blob: Vec<u8>,
    /// Contents of the `TPM2B_ENCRYPTED_SECRET` from MakeCredential.
    #[serde(with = "b64")]
    pub encrypted_secret: Vec<u8>,
    /// A fresh random nonce (hex), the qualifying data of the device key's certification.
    pub nonce: String,
}
json_message!(EnrollmentChallenge, "enrollment challenge");

/// Step 3, device to verifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentResponse {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The secret ActivateCredential recovered.
    #[serde(with = "b64")]
    pub secret: Vec<u8>,
    /// The device key, marshalled `TPMT_PUBLIC`.
    #[serde(with = "b64")]
    pub device_key_public: Vec<u8>,
    /// TPM2_Certify of the device key by the AK, qualifying data = the challenge nonce.
    pub certify: SignedAttest,
}
json_message!(EnrollmentResponse, "enrollment response");

// The activated secret proves the AK's TPM holds the EK: wipe it when done with it.
impl Drop for EnrollmentResponse {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// The verifier's state between challenge and response. It holds the expected secret:
/// store it owner-only and delete it when the enrollment completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingEnrollment {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The request being answered.
    pub request: EnrollmentRequest,
    /// The secret wrapped in the challenge.
    #[serde(with = "b64")]
    pub secret: Vec<u8>,
    /// The nonce sent in the challenge (hex).
    pub nonce: String,
    /// How the EK was trusted (`ca` or `unverified`).
    pub ek_trust: String,
}
json_message!(PendingEnrollment, "pending enrollment");

// The expected secret is what the device must prove it can recover: wipe it when done.
impl Drop for PendingEnrollment {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// `ek_trust` of an EK whose certificate chained to a configured CA.
pub const EK_TRUST_CA: &str = "ca";
/// `ek_trust` of an EK accepted without any check (trust on first use).
pub const EK_TRUST_UNVERIFIED: &str = "unverified";

/// What a verifier keeps about an enrolled device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolledDevice {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The EK, marshalled `TPMT_PUBLIC`.
    #[serde(with = "b64")]
    pub ek_public: Vec<u8>,
    /// `ca` when the EK certificate chained to a configured CA, `unverified` when the
    /// verifier ran without CAs (trust on first use).
    pub ek_trust: String,
    /// The AK, marshalled `TPMT_PUBLIC`; quotes must be signed by it.
    #[serde(with = "b64")]
    pub ak_public: Vec<u8>,
    /// The certified device key, marshalled `TPMT_PUBLIC`; evidence must be signed by it.
    #[serde(with = "b64")]
    pub device_key_public: Vec<u8>,
}
json_message!(EnrolledDevice, "enrolled device");

impl EnrolledDevice {
    /// The device key that signs evidence (pin it: only evidence signed by this key has
    /// `key_assurance = tpm` for this device).
    pub fn device_key(&self) -> Result<p256::PublicKey, AttestationError> {
        TpmPublic::parse(&self.device_key_public)?.p256()
    }

    /// What this enrollment proves about the device key: [`KeyAssurance::Tpm`](crate::keys::KeyAssurance::Tpm) when the
    /// EK certificate chained to a configured CA (`ek_trust = "ca"`),
    /// [`KeyAssurance::TpmUnverified`](crate::keys::KeyAssurance::TpmUnverified) when it was never checked (`"unverified"`). Any
    /// other value is an error, never a guess.
    pub fn key_assurance(&self) -> Result<crate::keys::KeyAssurance, AttestationError> {
        match self.ek_trust.as_str() {
            EK_TRUST_CA => Ok(crate::keys::KeyAssurance::Tpm),
            EK_TRUST_UNVERIFIED => Ok(crate::keys::KeyAssurance::TpmUnverified),
            other => Err(AttestationError::Malformed {
                what: "enrolled device",
                message: format!("unknown ek_trust {other:?} (expected \"ca\" or \"unverified\")"),
            }),
        }
    }

    /// The enrolled AK.
    pub fn ak(&self) -> Result<TpmPublic, AttestationError> {
        TpmPublic::parse(&self.ak_public)
    }
}

/// PCR values as read from the TPM, by bank.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PcrValues {
    /// The `sha256` bank: PCR index to value (hex).
    pub sha256: BTreeMap<u32, String>,
}

/// A PCR quote as carried in evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// TPM2_Quote output, signed by the AK.
    pub quote: SignedAttest,
    /// The PCR values the quote covers.
    pub pcrs: PcrValues,
    /// The TCG event log (binary_bios_measurements), base64, where readable.
    #[serde(with = "b64::option", default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub event_log: Option<Vec<u8>>,
}
json_message!(Quote, "quote");
