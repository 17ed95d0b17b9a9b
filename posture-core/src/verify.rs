//! Verifying evidence a consumer did not collect.
//!
//! A [`Verifier`] holds the trusted device keys (from JWK or PEM). It pins ES256 and
//! P-256: the token never chooses the key or the algorithm. The `kid` only selects among
//! the keys the verifier was given; embedded `jwk`, `jku`, `x5u` and `x5c` headers are
//! ignored. Input larger than [`MAX_EVIDENCE_BYTES`] is refused before any parsing, and
//! JSON with duplicate keys or deep nesting is refused before deserialization.
//!
//! A `Verifier` is immutable once built and `Send + Sync`: share one across threads.
//!
//! ```
//! use posture_core::keys::software::SoftwareKey;
//! use posture_core::keys::Signer;
//! use posture_core::evidence::{sign_evidence, EvidenceOptions};
//! use posture_core::verify::{Verifier, VerifyOptions};
//! # use posture_core::{Device, OsFacts, Report, Timestamp, Finding};
//! # let dir = tempfile::tempdir().unwrap();
//! # let report = Report::new(
//! #     Device { id: "ab".repeat(32), hostname: "laptop".into(), vendor: None, model: None, serial_number: None },
//! #     OsFacts::default(), Timestamp::now(), vec![Finding::pass("os", "Debian 12")]);
//! let key = SoftwareKey::load_or_create(&dir.path().join("key")).unwrap();
//! let options = EvidenceOptions { nonce: Some("n-0123456789".into()), ..Default::default() };
//! let token = sign_evidence(&report, &key, &options).unwrap();
//!
//! let mut verifier = Verifier::new();
//! verifier.add_key(key.public_key(), None);
//! let verified = verifier
//!     .verify(token.as_bytes(), &VerifyOptions { nonce: Some("n-0123456789".into()), ..Default::default() })
//!     .unwrap();
//! assert_eq!(verified.claims.report.findings[0].id, "os");
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use p256::PublicKey;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::attestation::tpm2::TpmPublic;
use crate::attestation::{to_hex, verify_quote, AttestationError, EnrolledDevice, VerifiedQuote};
use crate::evidence::{
    quote_qualifying_data, EvidenceClaims, EAT_PROFILE, EVIDENCE_TYP, MAX_EVIDENCE_BYTES, MAX_TTL,
};
use crate::jose::{self, CompactError, Jwk, JwkError, Part, ALG_ES256, MAX_JSON_DEPTH};
use crate::keys::KeyAssurance;
use crate::InvariantError;

/// Clock skew tolerated on `iat`, `nbf` and `exp`.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

/// The longest lifetime (`exp - iat`) accepted by default: 24 h, the most a device gives.
pub const DEFAULT_MAX_LIFETIME: Duration = MAX_TTL;

/// The maximum age (`now - iat`) applied when the caller sets none: 24 h. Evidence is
/// never accepted on its own `exp` alone.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A device key the verifier trusts.
#[derive(Clone, Debug)]
struct TrustedKey {
    kid: String,
    jwk: Jwk,
    verifying: VerifyingKey,
    /// What enrollment proved about the key, if anything; caps the claimed assurance.
    assurance: Option<KeyAssurance>,
    /// The enrolled attestation key of the TPM holding this key: quotes in evidence
    /// signed by this key are checked against it.
    ak: Option<TpmPublic>,
    /// For an enrolled key, how its EK was trusted (`ca` or `unverified`).
    ek_trust: Option<String>,
}

/// Verifies posture evidence against a fixed set of trusted device keys.
#[derive(Clone, Debug, Default)]
pub struct Verifier {
    keys: Vec<TrustedKey>,
}

/// What to require of evidence besides a valid signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The nonce this verifier issued; `eat_nonce` must equal it.
    pub nonce: Option<String>,
    /// This verifier's name; `aud` must contain it. Evidence that names an audience is
    /// refused when no audience is given (RFC 7519 §4.1.3).
    pub audience: Option<String>,
    /// Refuse evidence issued longer ago than this; `None` means [`DEFAULT_MAX_AGE`]
    /// (there is always a maximum age).
    pub max_age: Option<Duration>,
    /// Refuse evidence whose lifetime `exp - iat` is longer than this
    /// ([`DEFAULT_MAX_LIFETIME`]).
    pub max_lifetime: Duration,
    /// The current time; `None` means the system clock.
    pub now: Option<SystemTime>,
    /// Tolerated clock skew ([`DEFAULT_SKEW`]).
    pub skew: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            nonce: None,
            audience: None,
            max_age: None,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            now: None,
            skew: DEFAULT_SKEW,
        }
    }
}

/// Evidence that passed every check.
///
/// Its JSON form (`Serialize`, used by `posture verify --json`, the C result and the OPA
/// input) carries only what the verifier established under plain names: `key_assurance`
/// is the verified level; the device's own claim is `claimed_key_assurance` and is
/// removed from `claims`, so no consumer can mistake the claim for the verified value.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedPosture {
    /// The key id (RFC 7638 thumbprint) of the device key that signed it.
    pub kid: String,
    /// The key assurance to rely on: the claimed one, capped by what the verifier proved
    /// about this key (`software` for a bare public key, `tpm-unverified` or `tpm` for an
    /// enrolled TPM key by its `ek_trust`).
    pub key_assurance: KeyAssurance,
    /// For an enrolled TPM key, how its EK was trusted: `ca` (its certificate chained to a
    /// configured CA) or `unverified` (trust on first use). `None` for bare keys.
    pub ek_trust: Option<String>,
    /// The verified claims, including the report. `claims.key_assurance` is what the
    /// device *claimed*; rely on [`VerifiedPosture::key_assurance`].
    pub claims: EvidenceClaims,
    /// The sha256 PCR values (index to hex) of the evidence's TPM quote, present only when
    /// the key is an enrolled TPM key and its quote verified with the enrolled AK and
    /// binds this very token (see [`quote_qualifying_data`]).
    pub attested_pcrs: Option<BTreeMap<u32, String>>,
    /// The TPM clock of that verified quote, for stateful verifiers that refuse
    /// regressions (a quote older than one already seen from the same TPM).
    pub quote_clock: Option<QuoteClock>,
}

/// The `TPMS_CLOCK_INFO` of a verified quote.
///
/// A verifier that remembers the last values per device can refuse a regression: the
/// same `reset_count` and `restart_count` with a smaller `clock`, or smaller counts, mean
/// an older quote (or a TPM that was cleared). posture's verifier is stateless and only
/// reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QuoteClock {
    /// `clock`: milliseconds the TPM has been powered since it was last cleared.
    pub clock: u64,
    /// `resetCount`: TPM resets (reboots) since the last TPM2_Clear.
    pub reset_count: u32,
    /// `restartCount`: restarts (resume from hibernation) since the last reset.
    pub restart_count: u32,
    /// `safe`: the clock has not gone backwards since it was last advanced.
    pub safe: bool,
}

impl Serialize for VerifiedPosture {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let claims = self.consumer_claims().map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kid", &self.kid)?;
        map.serialize_entry("key_assurance", &self.key_assurance)?;
        map.serialize_entry("claimed_key_assurance", &self.claims.key_assurance)?;
        if let Some(ek_trust) = &self.ek_trust {
            map.serialize_entry("ek_trust", ek_trust)?;
        }
        if let Some(pcrs) = &self.attested_pcrs {
            map.serialize_entry("attested_pcrs", pcrs)?;
        }
        if let Some(clock) = &self.quote_clock {
            map.serialize_entry("quote_clock", clock)?;
        }
        map.serialize_entry("claims", &claims)?;
        map.end()
    }
}

impl VerifiedPosture {
    /// The claims as JSON for consumers: every claim except the device's
    /// `key_assurance`, which a consumer must not read as verified (it is
    /// [`VerifiedPosture::key_assurance`], and the claim `claimed_key_assurance` beside it).
    pub fn consumer_claims(&self) -> Result<serde_json::Value, serde_json::Error> {
        let mut claims = serde_json::to_value(&self.claims)?;
        if let Some(map) = claims.as_object_mut() {
            map.remove("key_assurance");
        }
        Ok(claims)
    }

    /// When the evidence was issued.
    pub fn issued_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.claims.iat)
    }
}

/// A trusted key that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// A JWK that is not an EC P-256 public key.
    #[error(transparent)]
    Jwk(#[from] JwkError),
    /// PEM that is not a P-256 SubjectPublicKeyInfo.
    #[error("not a P-256 public key in PEM (BEGIN PUBLIC KEY): {0}")]
    Pem(String),
    /// Neither JWK, JWK Set nor PEM.
    #[error("expected a JWK, a JWK Set or a PEM public key")]
    UnknownFormat,
}

/// Why evidence was refused. [`VerifyError::code`] gives a stable machine name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Larger than [`MAX_EVIDENCE_BYTES`]; not parsed at all.
    #[error("evidence is {size} bytes, more than the {max} accepted")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not a compact JWS of three base64url parts.
    #[error(transparent)]
    Malformed(#[from] CompactError),
    /// A part is not acceptable JSON (syntax, duplicate keys, nesting, wrong shape).
    #[error("the {part} is not acceptable JSON: {message}")]
    Json {
        /// Which part.
        part: Part,
        /// What is wrong.
        message: String,
    },
    /// `alg` other than ES256 (including `none`, HMAC, RSA and other curves).
    #[error("algorithm {0:?} is not accepted (only ES256)")]
    Algorithm(String),
    /// A `crit` header: extensions this verifier does not implement.
    #[error("critical header extensions are not supported")]
    Critical,
    /// `typ` is not posture evidence.
    #[error("typ {found:?} is not {EVIDENCE_TYP:?}")]
    Type {
        /// The `typ` found, if any.
        found: Option<String>,
    },
    /// No `kid` header.
    #[error("no kid in the header")]
    MissingKid,
    /// A `kid` that is not one of the trusted keys.
    #[error("key {0:?} is not trusted")]
    UnknownKid(String),
    /// The signature does not verify with the trusted key.
    #[error("the signature does not verify")]
    Signature,
    /// `cnf.jwk` is not the key that signed.
    #[error("the evidence is bound to another key (cnf.jwk does not match kid)")]
    KeyBinding,
    /// Claims of the wrong shape or an unknown profile.
    #[error("invalid claims: {0}")]
    Claims(String),
    /// `exp` has passed.
    #[error("expired at {exp} (now {now})")]
    Expired {
        /// Expiry.
        exp: u64,
        /// Now.
        now: u64,
    },
    /// `iat` lies in the future.
    #[error("issued in the future ({iat}, now {now})")]
    IssuedInFuture {
        /// Issued at.
        iat: u64,
        /// Now.
        now: u64,
    },
    /// `nbf` lies in the future.
    #[error("not valid before {nbf} (now {now})")]
    NotYetValid {
        /// Not before.
        nbf: u64,
        /// Now.
        now: u64,
    },
    /// `exp - iat` is longer than the verifier accepts.
    #[error("a lifetime of {lifetime} s (exp - iat), more than the {max} s allowed")]
    Lifetime {
        /// `exp - iat` in seconds.
        lifetime: u64,
        /// The limit in seconds.
        max: u64,
    },
    /// Issued longer ago than `max_age`.
    #[error("issued {age} s ago, more than the {max_age} s allowed")]
    TooOld {
        /// Age in seconds.
        age: u64,
        /// The limit in seconds.
        max_age: u64,
    },
    /// `eat_nonce` missing or not the expected nonce.
    #[error("the nonce does not match")]
    Nonce,
    /// `aud` does not name this verifier (or names one when none was expected).
    #[error("the audience does not match")]
    Audience,
    /// The embedded report breaks the model's invariants.
    #[error("invalid report: {0}")]
    Report(#[from] InvariantError),
    /// The TPM quote in evidence from an enrolled TPM key does not verify (not by the
    /// enrolled AK, not bound to this nonce and report, tampered PCR values, empty
    /// selection).
    #[error("TPM quote: {0}")]
    Quote(String),
}

impl VerifyError {
    /// A stable machine name for the error (used in `posture verify --json`).
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::TooLarge { .. } => "too_large",
            VerifyError::Malformed(_) => "malformed",
            VerifyError::Json { .. } => "invalid_json",
            VerifyError::Algorithm(_) => "algorithm",
            VerifyError::Critical => "critical_header",
            VerifyError::Type { .. } => "typ",
            VerifyError::MissingKid => "missing_kid",
            VerifyError::UnknownKid(_) => "unknown_kid",
            VerifyError::Signature => "signature",
            VerifyError::KeyBinding => "key_binding",
            VerifyError::Claims(_) => "claims",
            VerifyError::Expired { .. } => "expired",
            VerifyError::IssuedInFuture { .. } => "issued_in_future",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::TooOld { .. } => "too_old",
            VerifyError::Lifetime { .. } => "lifetime",
            VerifyError::Nonce => "nonce",
            VerifyError::Audience => "audience",
            VerifyError::Report(_) => "report",
            VerifyError::Quote(_) => "quote",
        }
    }
}

/// The header members a verifier reads. Everything else (`jwk`, `jku`, `x5u`, `x5c`, ...)
/// is deliberately ignored.
#[derive(Deserialize)]
struct ProtectedHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl Verifier {
    /// A verifier that trusts no key yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key`; `assurance` is what enrollment proved about it (`None`: take the
    /// evidence's claim). Returns the key id.
    pub fn add_key(&mut self, key: PublicKey, assurance: Option<KeyAssurance>) -> String {
        let jwk = Jwk::from_public_key(&key);
        let kid = jwk.thumbprint();
        self.keys.retain(|k| k.kid != kid);
        self.keys.push(TrustedKey {
            kid: kid.clone(),
            jwk,
            verifying: VerifyingKey::from(&key),
            assurance,
            ak: None,
            ek_trust: None,
        });
        kid
    }

    /// Trusts the device key of an enrolled TPM device: evidence it signs is at most
    /// `tpm` when the EK certificate chained to a CA at enrollment, at most
    /// `tpm-unverified` when it was never checked; a quote in it must verify with the
    /// enrolled AK. Returns the key id.
    pub fn add_enrolled(&mut self, device: &EnrolledDevice) -> Result<String, AttestationError> {
        let key = device.device_key()?;
        let ak = device.ak()?;
        let assurance = device.key_assurance()?;
        let kid = self.add_key(key, Some(assurance));
        if let Some(trusted) = self.keys.iter_mut().find(|k| k.kid == kid) {
            trusted.ak = Some(ak);
            trusted.ek_trust = Some(device.ek_trust.clone());
        }
        Ok(kid)
    }

    /// Trusts the keys in `text`: a JWK, a JWK Set (`{"keys": [...]}`) or a PEM public key.
    /// Returns their key ids. Any key that is not EC P-256 is an error.
    ///
    /// A bare public key proves nothing about where its private half lives, so evidence
    /// signed by these keys counts as `software` whatever it claims; use
    /// [`Verifier::add_enrolled`] for TPM keys.
    pub fn add_keys_from_text(&mut self, text: &str) -> Result<Vec<String>, KeyParseError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            let value: serde_json::Value = serde_json::from_str(trimmed)
                .map_err(|e| KeyParseError::Jwk(JwkError::Malformed(e.to_string())))?;
            if let Some(keys) = value.get("keys").and_then(|k| k.as_array()) {
                let mut kids = Vec::new();
                for key in keys {
                    let jwk = Jwk::from_json(&key.to_string())?;
                    kids.push(self.add_key(jwk.to_public_key()?, Some(KeyAssurance::Software)));
                }
                return Ok(kids);
            }
            let jwk = Jwk::from_json(trimmed)?;
            return Ok(vec![
                self.add_key(jwk.to_public_key()?, Some(KeyAssurance::Software))
            ]);
        }
        if trimmed.starts_with("-----BEGIN") {
            let key = PublicKey::from_public_key_pem(trimmed)
                .map_err(|e| KeyParseError::Pem(e.to_string()))?;
            return Ok(vec![self.add_key(key, Some(KeyAssurance::Software))]);
        }
        Err(KeyParseError::UnknownFormat)
    }

    /// A verifier trusting the keys in `text` (see [`Verifier::add_keys_from_text`]).
    pub fn from_keys_text(text: &str) -> Result<Self, KeyParseError> {
        let mut verifier = Self::new();
        verifier.add_keys_from_text(text)?;
        Ok(verifier)
    }

    /// The ids of the trusted keys.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// Verifies compact-JWS evidence; see the module documentation for every check.
    pub fn verify(
        &self,
        token: &[u8],
        options: &VerifyOptions,
    ) -> Result<VerifiedPosture, VerifyError> {
        if token.len() > MAX_EVIDENCE_BYTES {
            return Err(VerifyError::TooLarge {
                size: token.len(),
                max: MAX_EVIDENCE_BYTES,
            });
        }
        let parts = jose::split_compact(token)?;
        let header: ProtectedHeader = parse_json(&parts.header, Part::Header)?;
        if header.alg != ALG_ES256 {
            return Err(VerifyError::Algorithm(header.alg));
        }
        if header.crit.is_some() {
            return Err(VerifyError::Critical);
        }
        let kid = header.kid.ok_or(VerifyError::MissingKid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| VerifyError::UnknownKid(kid.clone()))?;
        if !jose::verify_es256(&key.verifying, parts.signing_input, &parts.signature) {
            return Err(VerifyError::Signature);
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| typ_matches(t, EVIDENCE_TYP))
        {
            return Err(VerifyError::Type { found: header.typ });
        }
        let claims: EvidenceClaims = parse_json(&parts.payload, Part::Payload)?;
        check_claims(&claims, key, options)?;
        let key_assurance = match key.assurance {
            Some(proven) => proven.min(claims.key_assurance),
            None => claims.key_assurance,
        };
        let quote = match &key.ak {
            Some(ak) => check_quote(ak, &claims)?,
            None => None,
        };
        let attested_pcrs = quote.as_ref().map(|q| {
            q.pcrs
                .iter()
                .map(|(pcr, value)| (*pcr, to_hex(value)))
                .collect()
        });
        let quote_clock = quote.as_ref().map(|q| QuoteClock {
            clock: q.clock,
            reset_count: q.reset_count,
            restart_count: q.restart_count,
            safe: q.safe,
        });
        Ok(VerifiedPosture {
            kid,
            key_assurance,
            ek_trust: key.ek_trust.clone(),
            claims,
            attested_pcrs,
            quote_clock,
        })
    }
}

/// Verifies the quote in `claims` (if any) with the enrolled `ak`: qualifying data
/// [`quote_qualifying_data`]`(claims)` (this token's nonce, `jti`, `iat` and report), a
/// non-empty sha256 selection, PCR values matching the signed digest.
fn check_quote(
    ak: &TpmPublic,
    claims: &EvidenceClaims,
) -> Result<Option<VerifiedQuote>, VerifyError> {
    let Some(quote) = claims.tpm.as_ref().and_then(|t| t.quote.as_ref()) else {
        return Ok(None);
    };
    let expected = quote_qualifying_data(claims).map_err(|e| VerifyError::Quote(e.to_string()))?;
    verify_quote(ak, quote, &expected, &[])
        .map(Some)
        .map_err(|e| VerifyError::Quote(format!("{e} (the quote must bind this token)")))
}

/// Whether a JWS `typ` names the media type `expected` (given without `application/`).
///
/// RFC 7515 §4.1.9: media type names are case-insensitive, and `application/` may be
/// omitted when no other `/` appears, so `posture-evidence+jwt`,
/// `application/posture-evidence+jwt` and `Posture-Evidence+JWT` are the same type.
pub fn typ_matches(typ: &str, expected: &str) -> bool {
    const PREFIX: &str = "application/";
    let bare = match typ.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    };
    !bare.contains('/') && bare.eq_ignore_ascii_case(expected)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], part: Part) -> Result<T, VerifyError> {
    let json_error = |message: String| VerifyError::Json { part, message };
    jose::check_json(bytes, MAX_JSON_DEPTH).map_err(|e| json_error(e.message))?;
    serde_json::from_slice(bytes).map_err(|e| match part {
        Part::Payload if !e.is_syntax() && !e.is_eof() => VerifyError::Claims(e.to_string()),
        _ => json_error(e.to_string()),
    })
}

fn check_claims(
    claims: &EvidenceClaims,
    key: &TrustedKey,
    options: &VerifyOptions,
) -> Result<(), VerifyError> {
    if claims.eat_profile != EAT_PROFILE {
        return Err(VerifyError::Claims(format!(
            "unknown eat_profile {:?}",
            claims.eat_profile
        )));
    }
    // Coordinates are fixed-length base64url with canonical trailing bits, so equal
    // members mean the same key: no need to hash or decode on every verification.
    let cnf = &claims.cnf.jwk;
    if cnf.kty != key.jwk.kty || cnf.crv != key.jwk.crv || cnf.x != key.jwk.x || cnf.y != key.jwk.y
    {
        return Err(VerifyError::KeyBinding);
    }
    if cnf.kid.as_deref().is_some_and(|kid| kid != key.kid) {
        return Err(VerifyError::KeyBinding);
    }
    let now = options
        .now
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let skew = options.skew.as_secs();
    if claims.exp < claims.iat {
        return Err(VerifyError::Claims("exp is before iat".into()));
    }
    let lifetime = claims.exp - claims.iat;
    if lifetime > options.max_lifetime.as_secs() {
        return Err(VerifyError::Lifetime {
            lifetime,
            max: options.max_lifetime.as_secs(),
        });
    }
    if claims.iat > now.saturating_add(skew) {
        return Err(VerifyError::IssuedInFuture {
            iat: claims.iat,
            now,
        });
    }
    if let Some(nbf) = claims.nbf {
        if nbf > now.saturating_add(skew) {
            return Err(VerifyError::NotYetValid { nbf, now });
        }
    }
    if claims.exp.saturating_add(skew) <= now {
        return Err(VerifyError::Expired {
            exp: claims.exp,
            now,
        });
    }
    let max_age = options.max_age.unwrap_or(DEFAULT_MAX_AGE);
    let age = now.saturating_sub(claims.iat);
    if age > max_age.as_secs().saturating_add(skew) {
        return Err(VerifyError::TooOld {
            age,
            max_age: max_age.as_secs(),
        });
    }
    if let Some(expected) = &options.nonce {
        let got = claims.eat_nonce.as_deref().unwrap_or_default();
        // Constant time over the contents; only the length can leak, which is not secret.
        if claims.eat_nonce.is_none() || !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(VerifyError::Nonce);
        }
    }
    match (&options.audience, &claims.aud) {
        (Some(expected), Some(aud)) if aud.contains(expected) => {}
        (None, None) => {}
        _ => return Err(VerifyError::Audience),
    }
    claims.report.check_invariants()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<VerifiedPosture>();
    }

    #[test]
    fn rejects_keys_of_other_curves() {
        // RFC 7517 A.1's P-256 key relabelled as P-384.
        let jwk = r#"{"kty":"EC","crv":"P-384","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#;
        assert!(matches!(
            Verifier::from_keys_text(jwk),
            Err(KeyParseError::Jwk(JwkError::Unsupported { .. }))
        ));
        let rsa = r#"{"kty":"RSA","n":"0vx7","e":"AQAB"}"#;
        assert!(Verifier::from_keys_text(rsa).is_err());
        assert!(matches!(
            Verifier::from_keys_text("hello"),
            Err(KeyParseError::UnknownFormat)
        ));
    }
}
