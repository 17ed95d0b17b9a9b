//! WebAuthn from a TPM key: the `tpm` attestation statement (WebAuthn Level 3, §8.3) and
//! assertions, built from the raw TPM structures so that any relying party's WebAuthn
//! library verifies them as it verifies Windows Hello.
//!
//! Pure encoding, no TPM access: the device side (posture-agent) creates the credential
//! key, has the attestation key certify it (TPM2_Certify with
//! `extraData = SHA-256(authenticatorData ‖ clientDataHash)`, see [`att_to_be_signed_hash`])
//! and hands the TPM's bytes to [`attestation_object`].
//!
//! What relying-party libraries require of a `tpm` statement (checked with py_webauthn and
//! SimpleWebAuthn): the credential key has no signing scheme and no symmetric algorithm
//! (`TPM_ALG_NULL`), a SHA-256 name algorithm, and the `x5c` chain ends below the root the
//! relying party trusts (the root itself is not sent).
//!
//! The CBOR here is the small deterministic subset WebAuthn needs (unsigned and negative
//! integers, byte and text strings, arrays, maps with keys in the order given), written by
//! [`cbor`]: encoding only, so no CBOR library is needed.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::attestation::tpm2::{alg, PublicKey, TpmPublic, TpmSignature, ECC_NIST_P256};
use crate::attestation::AttestationError;
use crate::jose::b64url_encode;

/// posture's AAGUID (`507a2aad-ab4f-4bb5-8769-f93fee3d9c20`): in every credential's
/// authenticator data and in the AIK certificate's `id-fido-gen-ce-aaguid` extension.
pub const POSTURE_AAGUID: [u8; 16] = [
    0x50, 0x7a, 0x2a, 0xad, 0xab, 0x4f, 0x4b, 0xb5, 0x87, 0x69, 0xf9, 0x3f, 0xee, 0x3d, 0x9c, 0x20,
];

/// The AAGUID in its usual text form.
pub const POSTURE_AAGUID_TEXT: &str = "507a2aad-ab4f-4bb5-8769-f93fee3d9c20";

/// Authenticator data flag: user present.
pub const FLAG_UP: u8 = 0x01;
/// Authenticator data flag: attested credential data included.
pub const FLAG_AT: u8 = 0x40;

/// COSE algorithm ES256 (ECDSA P-256 SHA-256).
pub const COSE_ES256: i64 = -7;
/// COSE algorithm RS256 (RSASSA-PKCS1-v1_5 SHA-256).
pub const COSE_RS256: i64 = -257;

/// Credential ids are at most this long (WebAuthn §5.1: 1023 bytes).
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// Minimal deterministic CBOR encoding (RFC 8949 §4.2.1 for integers and lengths).
pub mod cbor {
    /// A CBOR data item.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Value<'a> {
        /// An integer (major type 0 or 1).
        Int(i64),
        /// A byte string.
        Bytes(&'a [u8]),
        /// A text string.
        Text(&'a str),
        /// An array.
        Array(Vec<Value<'a>>),
        /// A map, keys in the order given.
        Map(Vec<(Value<'a>, Value<'a>)>),
    }

    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    impl Value<'_> {
        /// Appends the encoding of this item to `out`.
        pub fn encode_into(&self, out: &mut Vec<u8>) {
            match self {
                Value::Int(i) if *i >= 0 => head(out, 0, i.unsigned_abs()),
                // -1 - n is encoded as n.
                Value::Int(i) => head(out, 1, i.unsigned_abs() - 1),
                Value::Bytes(b) => {
                    head(out, 2, b.len() as u64);
                    out.extend_from_slice(b);
                }
                Value::Text(t) => {
                    head(out, 3, t.len() as u64);
                    out.extend_from_slice(t.as_bytes());
                }
                Value::Array(items) => {
                    head(out, 4, items.len() as u64);
                    items.iter().for_each(|i| i.encode_into(out));
                }
                Value::Map(entries) => {
                    head(out, 5, entries.len() as u64);
                    for (k, v) in entries {
                        k.encode_into(out);
                        v.encode_into(out);
                    }
                }
            }
        }

        /// The encoding of this item.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.encode_into(&mut out);
            out
        }
    }
}

use cbor::Value;

/// The credential public key as a COSE_Key (RFC 9053) and its COSE algorithm: RSA keys
/// as RS256, P-256 keys as ES256. Keys are in CTAP2 canonical order.
pub fn cose_key(key: &TpmPublic) -> Result<(Vec<u8>, i64), AttestationError> {
    match &key.key {
        PublicKey::Rsa {
            exponent, modulus, ..
        } => {
            let e = exponent.to_be_bytes();
            let first = e.iter().position(|b| *b != 0).unwrap_or(e.len() - 1);
            let map = Value::Map(vec![
                (Value::Int(1), Value::Int(3)),
                (Value::Int(3), Value::Int(COSE_RS256)),
                (Value::Int(-1), Value::Bytes(modulus)),
                (Value::Int(-2), Value::Bytes(&e[first..])),
            ]);
            Ok((map.encode(), COSE_RS256))
        }
        PublicKey::Ecc { curve, x, y } if *curve == ECC_NIST_P256 => {
            let x = crate::attestation::tpm2::left_pad::<32>(x)?;
            let y = crate::attestation::tpm2::left_pad::<32>(y)?;
            let map = Value::Map(vec![
                (Value::Int(1), Value::Int(2)),
                (Value::Int(3), Value::Int(COSE_ES256)),
                (Value::Int(-1), Value::Int(1)),
                (Value::Int(-2), Value::Bytes(&x)),
                (Value::Int(-3), Value::Bytes(&y)),
            ]);
            Ok((map.encode(), COSE_ES256))
        }
        PublicKey::Ecc { curve, .. } => Err(AttestationError::Unsupported(format!(
            "credential key on ECC curve 0x{curve:04x} (only P-256)"
        ))),
    }
}

/// Checks that `key` is what relying parties accept as a `tpm` credential key: SHA-256
/// name, no signing scheme, no symmetric algorithm, an unrestricted signing-only key bound
/// to the TPM, RSA 2048 or ECC P-256.
pub fn check_credential_key(key: &TpmPublic) -> Result<(), AttestationError> {
    use crate::attestation::tpm2::attr;
    if key.name_alg != alg::SHA256 {
        return Err(AttestationError::Rejected(
            "credential key name algorithm is not SHA-256".into(),
        ));
    }
    if key.scheme.0 != alg::NULL || key.symmetric.0 != alg::NULL {
        return Err(AttestationError::Rejected(
            "credential key has a signing scheme or symmetric algorithm (relying parties \
             require TPM_ALG_NULL for both)"
                .into(),
        ));
    }
    let bound = attr::FIXED_TPM | attr::FIXED_PARENT | attr::SENSITIVE_DATA_ORIGIN | attr::SIGN;
    if !key.has(bound) || key.has(attr::RESTRICTED) || key.has(attr::DECRYPT) {
        return Err(AttestationError::Rejected(format!(
            "credential key attributes 0x{:08x}: need an unrestricted signing-only key \
             with fixedTPM, fixedParent and sensitiveDataOrigin",
            key.attributes
        )));
    }
    match &key.key {
        PublicKey::Rsa { key_bits: 2048, .. } => Ok(()),
        PublicKey::Ecc { curve, .. } if *curve == ECC_NIST_P256 => Ok(()),
        _ => Err(AttestationError::Unsupported(
            "credential key must be RSA 2048 or ECC P-256".into(),
        )),
    }
}

/// SHA-256 of the relying party id.
pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

/// Authenticator data of a registration: rpIdHash, flags (UP, AT), a zero signature
/// counter (this authenticator keeps none), then the attested credential data (posture's
/// AAGUID, the credential id, the COSE key).
pub fn registration_authenticator_data(
    rp_id: &str,
    credential_id: &[u8],
    cose_key: &[u8],
) -> Result<Vec<u8>, AttestationError> {
    let id_len = u16::try_from(credential_id.len())
        .ok()
        .filter(|n| usize::from(*n) <= MAX_CREDENTIAL_ID && *n > 0)
        .ok_or_else(|| AttestationError::Malformed {
            what: "credential id",
            message: format!("{} bytes (1 to {MAX_CREDENTIAL_ID})", credential_id.len()),
        })?;
    let mut out = Vec::with_capacity(37 + 18 + credential_id.len() + cose_key.len());
    out.extend_from_slice(&rp_id_hash(rp_id));
    out.push(FLAG_UP | FLAG_AT);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&POSTURE_AAGUID);
    out.extend_from_slice(&id_len.to_be_bytes());
    out.extend_from_slice(credential_id);
    out.extend_from_slice(cose_key);
    Ok(out)
}

/// Authenticator data of an assertion: rpIdHash, flags (UP), a zero signature counter.
pub fn assertion_authenticator_data(rp_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(37);
    out.extend_from_slice(&rp_id_hash(rp_id));
    out.push(FLAG_UP);
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

#[derive(Serialize)]
struct ClientData<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    challenge: &'a str,
    origin: &'a str,
    #[serde(rename = "crossOrigin")]
    cross_origin: bool,
}

/// `clientDataJSON` for `kind` (`webauthn.create` or `webauthn.get`), as a browser writes
/// it: the challenge as given (base64url), the origin, `crossOrigin: false`.
pub fn client_data_json(kind: &str, challenge_b64url: &str, origin: &str) -> String {
    // Serialising plain strings and a bool cannot fail.
    serde_json::to_string(&ClientData {
        kind,
        challenge: challenge_b64url,
        origin,
        cross_origin: false,
    })
    .unwrap_or_default()
}

/// `SHA-256(authenticatorData ‖ SHA-256(clientDataJSON))`: the TPM2_Certify qualifying
/// data of a registration (attToBeSigned hashed with the AK's SHA-256, WebAuthn §8.3.1)
/// and the digest an assertion signature covers.
pub fn att_to_be_signed_hash(authenticator_data: &[u8], client_data_json: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(authenticator_data);
    h.update(Sha256::digest(client_data_json));
    h.finalize().into()
}

/// A signature by a TPM key as WebAuthn carries it, and its COSE algorithm: ECDSA as DER,
/// RSASSA as the raw PKCS#1 v1.5 signature. Only SHA-256.
pub fn webauthn_signature(tpmt_signature: &[u8]) -> Result<(Vec<u8>, i64), AttestationError> {
    match TpmSignature::parse(tpmt_signature)? {
        TpmSignature::Ecdsa { hash, r, s } if hash == alg::SHA256 => {
            let pad = crate::attestation::tpm2::left_pad::<32>;
            let sig = p256::ecdsa::Signature::from_scalars(pad(&r)?, pad(&s)?)
                .map_err(|_| AttestationError::BadSignature("ECDSA r or s out of range".into()))?;
            Ok((sig.to_der().as_bytes().to_vec(), COSE_ES256))
        }
        TpmSignature::RsaSsa { hash, sig } if hash == alg::SHA256 => Ok((sig, COSE_RS256)),
        _ => Err(AttestationError::Unsupported(
            "only ECDSA-SHA256 and RSASSA-SHA256 signatures".into(),
        )),
    }
}

/// The `tpm` attestation statement's parts, from the TPM and the attestation CA.
#[derive(Clone, Debug)]
pub struct TpmStatement<'a> {
    /// The AK's `TPMT_SIGNATURE` over `cert_info`.
    pub signature: &'a [u8],
    /// The `TPMS_ATTEST` of TPM2_Certify.
    pub cert_info: &'a [u8],
    /// The credential key's `TPMT_PUBLIC`.
    pub pub_area: &'a [u8],
    /// The AIK certificate, then its issuers up to (not including) the root, DER.
    pub x5c: &'a [Vec<u8>],
}

/// The CBOR `attestationObject`: `{fmt: "tpm", attStmt: {ver, alg, x5c, sig, certInfo,
/// pubArea}, authData}`.
pub fn attestation_object(
    authenticator_data: &[u8],
    statement: &TpmStatement<'_>,
) -> Result<Vec<u8>, AttestationError> {
    if statement.x5c.is_empty() {
        return Err(AttestationError::Rejected(
            "no AIK certificate: a `tpm` attestation needs x5c".into(),
        ));
    }
    let (sig, alg) = webauthn_signature(statement.signature)?;
    let x5c = Value::Array(statement.x5c.iter().map(|c| Value::Bytes(c)).collect());
    let att_stmt = Value::Map(vec![
        (Value::Text("ver"), Value::Text("2.0")),
        (Value::Text("alg"), Value::Int(alg)),
        (Value::Text("x5c"), x5c),
        (Value::Text("sig"), Value::Bytes(&sig)),
        (Value::Text("certInfo"), Value::Bytes(statement.cert_info)),
        (Value::Text("pubArea"), Value::Bytes(statement.pub_area)),
    ]);
    Ok(Value::Map(vec![
        (Value::Text("fmt"), Value::Text("tpm")),
        (Value::Text("attStmt"), att_stmt),
        (Value::Text("authData"), Value::Bytes(authenticator_data)),
    ])
    .encode())
}

/// A registration as `navigator.credentials.create()` returns it, in the JSON form every
/// WebAuthn server library reads (`RegistrationResponseJSON`, binary as base64url).
pub fn registration_response_json(
    credential_id: &[u8],
    client_data_json: &str,
    attestation_object: &[u8],
    cose_alg: i64,
    authenticator_data: &[u8],
) -> serde_json::Value {
    let id = b64url_encode(credential_id);
    serde_json::json!({
        "id": id,
        "rawId": id,
        "type": "public-key",
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "response": {
            "clientDataJSON": b64url_encode(client_data_json.as_bytes()),
            "attestationObject": b64url_encode(attestation_object),
            "authenticatorData": b64url_encode(authenticator_data),
            "publicKeyAlgorithm": cose_alg,
            "transports": ["internal"],
        },
    })
}

/// An assertion as `navigator.credentials.get()` returns it (`AuthenticationResponseJSON`).
pub fn assertion_response_json(
    credential_id: &[u8],
    client_data_json: &str,
    authenticator_data: &[u8],
    signature: &[u8],
    user_handle: Option<&[u8]>,
) -> serde_json::Value {
    let id = b64url_encode(credential_id);
    let mut response = serde_json::json!({
        "clientDataJSON": b64url_encode(client_data_json.as_bytes()),
        "authenticatorData": b64url_encode(authenticator_data),
        "signature": b64url_encode(signature),
    });
    if let (Some(handle), Some(map)) = (user_handle, response.as_object_mut()) {
        map.insert(
            "userHandle".into(),
            serde_json::Value::String(b64url_encode(handle)),
        );
    }
    serde_json::json!({
        "id": id,
        "rawId": id,
        "type": "public-key",
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "response": response,
    })
}

/// Checks a relying party id as WebAuthn allows it: a non-empty lowercase DNS name
/// (letters, digits, `-` and `.`), at most 253 characters.
pub fn check_rp_id(rp_id: &str) -> Result<(), AttestationError> {
    let ok = !rp_id.is_empty()
        && rp_id.len() <= 253
        && !rp_id.starts_with('.')
        && !rp_id.ends_with('.')
        && rp_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(AttestationError::Malformed {
            what: "relying party id",
            message: format!("{rp_id:?} is not a lowercase DNS name"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_integers_and_lengths_are_minimal() {
        assert_eq!(Value::Int(0).encode(), [0x00]);
        assert_eq!(Value::Int(23).encode(), [0x17]);
        assert_eq!(Value::Int(24).encode(), [0x18, 24]);
        assert_eq!(Value::Int(-1).encode(), [0x20]);
        assert_eq!(Value::Int(-7).encode(), [0x26]);
        assert_eq!(Value::Int(-257).encode(), [0x39, 0x01, 0x00]);
        assert_eq!(Value::Int(-65535).encode(), [0x39, 0xff, 0xfe]);
        assert_eq!(Value::Int(65536).encode(), [0x1a, 0, 1, 0, 0]);
        assert_eq!(Value::Text("tpm").encode(), [0x63, b't', b'p', b'm']);
        assert_eq!(Value::Bytes(&[0u8; 256]).encode()[..3], [0x59, 0x01, 0x00]);
        // RFC 8949 Appendix A: {"a": 1, "b": [2, 3]}.
        let map = Value::Map(vec![
            (Value::Text("a"), Value::Int(1)),
            (
                Value::Text("b"),
                Value::Array(vec![Value::Int(2), Value::Int(3)]),
            ),
        ]);
        assert_eq!(
            map.encode(),
            [0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x82, 0x02, 0x03]
        );
    }

    #[test]
    fn authenticator_data_layout() {
        let ad = registration_authenticator_data("example.com", &[7; 32], &[0xa0]).unwrap();
        assert_eq!(&ad[..32], &rp_id_hash("example.com"));
        assert_eq!(ad[32], FLAG_UP | FLAG_AT);
        assert_eq!(&ad[33..37], &[0, 0, 0, 0]);
        assert_eq!(&ad[37..53], &POSTURE_AAGUID);
        assert_eq!(&ad[53..55], &[0, 32]);
        assert_eq!(ad.len(), 55 + 32 + 1);
        assert!(registration_authenticator_data("example.com", &[], &[0xa0]).is_err());
        assert_eq!(assertion_authenticator_data("example.com").len(), 37);
    }

    #[test]
    fn rp_ids_are_dns_names() {
        assert!(check_rp_id("login.example.com").is_ok());
        for bad in ["", "Example.com", "a b", "https://x", ".x", "x."] {
            assert!(check_rp_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_data_is_json_with_escaped_fields() {
        let json = client_data_json("webauthn.create", "abc", "https://x\"y");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "webauthn.create");
        assert_eq!(v["origin"], "https://x\"y");
        assert_eq!(v["crossOrigin"], false);
    }
}
