//! The small part of JOSE that posture needs: base64url, P-256 JWKs and their RFC 7638
//! thumbprints, compact ES256 JWS, and a strict JSON pre-check (no duplicate keys, bounded
//! nesting) for untrusted input.
//!
//! Nothing here chooses a key or an algorithm from the token: callers pin both.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::{EncodedPoint, FromEncodedPoint, ToEncodedPoint};
use p256::{NistP256, PublicKey};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KeyError, Signer};

/// The only signature algorithm posture produces or accepts.
pub const ALG_ES256: &str = "ES256";

/// Deepest JSON nesting accepted in untrusted input. A report is about six levels deep;
/// this leaves room for nested `observed` facts while keeping recursion bounded.
pub const MAX_JSON_DEPTH: usize = 32;

/// Encodes bytes as unpadded base64url (RFC 7515 §2).
pub fn b64url_encode(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// Decodes unpadded base64url, rejecting padding, other alphabets and non-canonical
/// trailing bits.
pub fn b64url_decode(text: &str) -> Result<Vec<u8>, base64ct::Error> {
    Base64UrlUnpadded::decode_vec(text)
}

/// Errors of JWK handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// Not JSON or not a JWK object.
    #[error("not a JWK: {0}")]
    Malformed(String),
    /// A JWK of another key type or curve.
    #[error("unsupported key: kty {kty:?}, crv {crv:?} (only EC P-256 is accepted)")]
    Unsupported {
        /// The `kty` found.
        kty: String,
        /// The `crv` found.
        crv: Option<String>,
    },
    /// Coordinates that are not a point on P-256.
    #[error("the JWK coordinates are not a valid P-256 point")]
    InvalidPoint,
}

/// A public P-256 key as a JWK (RFC 7517/7518), the members RFC 7638 hashes plus `kid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Jwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// The x coordinate, base64url (32 bytes).
    pub x: String,
    /// The y coordinate, base64url (32 bytes).
    pub y: String,
    /// The key id: the RFC 7638 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

impl Jwk {
    /// The JWK of a public key, with `kid` set to its thumbprint.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let point = key.to_encoded_point(false);
        // An uncompressed point of a valid public key always has both coordinates.
        let x = point.x().map(|x| b64url_encode(x)).unwrap_or_default();
        let y = point.y().map(|y| b64url_encode(y)).unwrap_or_default();
        let mut jwk = Self {
            kty: "EC".into(),
            crv: "P-256".into(),
            x,
            y,
            kid: None,
        };
        jwk.kid = Some(jwk.thumbprint());
        jwk
    }

    /// Parses a JWK and checks it is an EC P-256 key.
    pub fn from_json(text: &str) -> Result<Self, JwkError> {
        check_json(text.as_bytes(), MAX_JSON_DEPTH)
            .map_err(|e| JwkError::Malformed(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| JwkError::Malformed(e.to_string()))?;
        let kty = value
            .get("kty")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let crv = value.get("crv").and_then(|v| v.as_str());
        if kty != "EC" || crv != Some("P-256") {
            return Err(JwkError::Unsupported {
                kty: kty.to_owned(),
                crv: crv.map(str::to_owned),
            });
        }
        serde_json::from_value(value).map_err(|e| JwkError::Malformed(e.to_string()))
    }

    /// The public key; fails unless this is an EC P-256 point.
    pub fn to_public_key(&self) -> Result<PublicKey, JwkError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(JwkError::Unsupported {
                kty: self.kty.clone(),
                crv: Some(self.crv.clone()),
            });
        }
        let x = b64url_decode(&self.x).map_err(|_| JwkError::InvalidPoint)?;
        let y = b64url_decode(&self.y).map_err(|_| JwkError::InvalidPoint)?;
        if x.len() != 32 || y.len() != 32 {
            return Err(JwkError::InvalidPoint);
        }
        let point = EncodedPoint::<NistP256>::from_affine_coordinates(
            x.as_slice().into(),
            y.as_slice().into(),
            false,
        );
        Option::from(PublicKey::from_encoded_point(&point)).ok_or(JwkError::InvalidPoint)
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members in
    /// lexicographic order with no whitespace.
    pub fn thumbprint(&self) -> String {
        // The members are base64url or fixed ASCII, so no JSON escaping can occur; still,
        // serialize through serde_json to be exact about string encoding.
        let canonical = format!(
            r#"{{"crv":{},"kty":{},"x":{},"y":{}}}"#,
            json_string(&self.crv),
            json_string(&self.kty),
            json_string(&self.x),
            json_string(&self.y)
        );
        b64url_encode(&Sha256::digest(canonical.as_bytes()))
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The key id of a public key: its RFC 7638 JWK thumbprint.
pub fn key_id(key: &PublicKey) -> String {
    Jwk::from_public_key(key).thumbprint()
}

/// A JWS protected header as posture writes it.
#[derive(Debug, Serialize)]
pub(crate) struct Header<'a> {
    pub alg: &'a str,
    pub typ: &'a str,
    pub kid: &'a str,
}

/// Signs `claims` as a compact JWS with ES256 under `typ`, with the signer's key id.
pub(crate) fn sign_compact<T: Serialize>(
    typ: &str,
    claims: &T,
    signer: &dyn Signer,
) -> Result<String, SignError> {
    let kid = key_id(&signer.public_key());
    let header = Header {
        alg: ALG_ES256,
        typ,
        kid: &kid,
    };
    let header = serde_json::to_vec(&header).map_err(SignError::Json)?;
    let payload = serde_json::to_vec(claims).map_err(SignError::Json)?;
    let mut token = b64url_encode(&header);
    token.push('.');
    token.push_str(&b64url_encode(&payload));
    let signature = signer.sign(token.as_bytes()).map_err(SignError::Key)?;
    // Verifiers accept only low-S signatures (see `verify_es256`): normalize whatever
    // the signer returned.
    let signature = signature.normalize_s().unwrap_or(signature);
    token.push('.');
    token.push_str(&b64url_encode(&signature.to_bytes()));
    Ok(token)
}

/// Errors while signing a JWS.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The claims could not be serialized.
    #[error("cannot serialize claims: {0}")]
    Json(serde_json::Error),
    /// The device key failed.
    #[error(transparent)]
    Key(KeyError),
}

/// The three parts of a compact JWS, decoded but not yet verified.
#[derive(Debug)]
pub(crate) struct CompactParts<'a> {
    /// `BASE64URL(header) . BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a [u8],
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Which part of a compact JWS was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The protected header.
    Header,
    /// The claims.
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Payload => "payload",
            Part::Signature => "signature",
        })
    }
}

/// Splits and base64url-decodes a compact JWS. Surrounding ASCII whitespace (a trailing
/// newline from a file) is tolerated; anything else is not.
pub(crate) fn split_compact(token: &[u8]) -> Result<CompactParts<'_>, CompactError> {
    let token = token.trim_ascii();
    let mut parts = token.split(|b| *b == b'.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CompactError::NotThreeParts);
    };
    let decode = |bytes: &[u8], part: Part| {
        let text = std::str::from_utf8(bytes).map_err(|_| CompactError::Base64(part))?;
        b64url_decode(text).map_err(|_| CompactError::Base64(part))
    };
    Ok(CompactParts {
        signing_input: &token[..h.len() + 1 + p.len()],
        header: decode(h, Part::Header)?,
        payload: decode(p, Part::Payload)?,
        signature: decode(s, Part::Signature)?,
    })
}

/// A compact JWS that is not three base64url parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// Not `header.payload.signature`.
    #[error("not a compact JWS (expected three dot-separated parts)")]
    NotThreeParts,
    /// A part that is not unpadded base64url.
    #[error("the {0} is not valid base64url")]
    Base64(Part),
}

/// Verifies an ES256 signature (raw `r || s`, 64 bytes) over `input` with a pinned key.
///
/// Only the low-S form is accepted: for every valid `(r, s)` the pair `(r, n - s)` is
/// valid too, so accepting both would make tokens malleable (a second, different token
/// for the same claims) and defeat replay caches keyed on the token bytes. posture's
/// signers (p256, the TPM path) normalize `s`; an independent signer must do the same,
/// as Bitcoin and libsecp256k1 require.
pub(crate) fn verify_es256(key: &VerifyingKey, input: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    if signature.normalize_s().is_some() {
        return false;
    }
    key.verify(input, &signature).is_ok()
}

/// JSON that is not acceptable untrusted input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsonError {
    /// What is wrong, with line and column.
    pub message: String,
}

/// Checks that `bytes` is one JSON value with no duplicate object keys and no nesting
/// deeper than `max_depth`. serde_json silently keeps the last of duplicate keys, which
/// would let two parsers of the same token disagree; this pass refuses such input.
pub fn check_json(bytes: &[u8], max_depth: usize) -> Result<(), JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = Guard {
        depth: 0,
        max_depth,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    result.map_err(|e| JsonError {
        message: e.to_string(),
    })
}

struct Guard {
    depth: usize,
    max_depth: usize,
}

impl Guard {
    fn child<E: de::Error>(&self) -> Result<Guard, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom(format!(
                "JSON nested deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(Guard {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Guard {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Guard {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let child = self.child::<A::Error>()?;
        while seq
            .next_element_seed(Guard {
                depth: child.depth,
                max_depth: child.max_depth,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let child = self.child::<A::Error>()?;
        // Keys are compared after unescaping, so `"a"` and `"\u0061"` are duplicates.
        // Small objects (the common case) use a linear scan over borrowed keys; large ones
        // switch to a hash set so a 64 KiB object of distinct keys stays linear.
        let mut small: Vec<Cow<'de, str>> = Vec::new();
        let mut large: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let duplicate = if large.is_empty() && small.len() < 16 {
                let found = small.contains(&key);
                small.push(key);
                found
            } else {
                large.extend(small.drain(..));
                !large.insert(key)
            };
            if duplicate {
                return Err(de::Error::custom("duplicate key in JSON object"));
            }
            map.next_value_seed(Guard {
                depth: child.depth,
                max_depth: child.max_depth,
            })?;
        }
        Ok(())
    }
}

/// Deserializes an object key, borrowing it from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_of_the_rfc7517_ec_key() {
        // RFC 7517 Appendix A.1's P-256 key. RFC 7638 only gives an RSA example, so the
        // expected value was computed independently with jwcrypto 1.1 (Debian
        // python3-jwcrypto): `jwk.JWK(kty="EC", crv="P-256", x=..., y=...).thumbprint()`.
        let jwk = Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
            kid: None,
        };
        assert_eq!(
            jwk.thumbprint(),
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
        assert!(jwk.to_public_key().is_ok());
    }

    #[test]
    fn duplicate_keys_are_refused_even_when_escaped() {
        assert!(check_json(br#"{"a":1,"b":{"c":2}}"#, 8).is_ok());
        let err = check_json(br#"{"a":1,"\u0061":2}"#, 8).unwrap_err();
        assert!(err.message.contains("duplicate key"), "{err}");
        let err = check_json(br#"[{"x":{"y":1,"y":1}}]"#, 8).unwrap_err();
        assert!(err.message.contains("duplicate key"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_found_in_large_objects() {
        let mut keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let distinct = format!("{{{}}}", keys.join(","));
        assert!(check_json(distinct.as_bytes(), 8).is_ok());
        keys.push("\"k3\":0".into());
        let duplicated = format!("{{{}}}", keys.join(","));
        assert!(check_json(duplicated.as_bytes(), 8).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(10) + &"]".repeat(10);
        assert!(check_json(deep.as_bytes(), 10).is_ok());
        let err = check_json(deep.as_bytes(), 9).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{err}");
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(check_json(br#"{"a":1} {"a":2}"#, 8).is_err());
    }

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64url_decode("AQ").unwrap(), vec![1]);
        assert!(b64url_decode("AQ==").is_err());
        assert!(b64url_decode("A+").is_err());
        // Non-canonical trailing bits.
        assert!(b64url_decode("AR").is_err());
    }
}
