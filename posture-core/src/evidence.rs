//! Evidence: a [`Report`] signed by the device key as a compact JWS with EAT claims.
//!
//! The header is `{"alg":"ES256","typ":"posture-evidence+jwt","kid":THUMBPRINT}`; the
//! claims are [`EvidenceClaims`]. `docs/evidence.md` has a full example and
//! `schemas/evidence-claims.schema.json` the JSON Schema of the claims.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attestation::Quote;
use crate::jose::{self, Jwk, SignError};
use crate::keys::{KeyAssurance, KeyError, Signer};
use crate::{InvariantError, Report};

/// The JWS `typ` of posture evidence. Verifiers refuse any other.
pub const EVIDENCE_TYP: &str = "posture-evidence+jwt";

/// The EAT profile (RFC 9711 §4.3.2) this evidence follows; see `docs/evidence.md`.
pub const EAT_PROFILE: &str = "https://example.invalid/posture/evidence/v1";

/// Largest evidence accepted by verifiers, and so the largest produced: 64 KiB.
pub const MAX_EVIDENCE_BYTES: usize = 64 * 1024;

/// Longest lifetime a device will give its evidence.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Nonce length bounds in bytes (RFC 9711 §4.1: 8 to 64 bytes).
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 8..=64;

/// How to sign evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceOptions {
    /// The verifier's challenge, carried as `eat_nonce` (8 to 64 bytes).
    pub nonce: Option<String>,
    /// Who the evidence is for, carried as `aud`.
    pub audience: Option<String>,
    /// How long the evidence is valid: `exp = iat + ttl` (at most [`MAX_TTL`]).
    pub ttl: Duration,
}

impl Default for EvidenceOptions {
    fn default() -> Self {
        Self {
            nonce: None,
            audience: None,
            ttl: Duration::from_secs(300),
        }
    }
}

/// RFC 7800 proof-of-possession: the key the evidence is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The device's public key (its `kid` is the RFC 7638 thumbprint).
    pub jwk: Jwk,
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `name` is one of the audiences.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Audience::One(a) => a == name,
            Audience::Many(all) => all.iter().any(|a| a == name),
        }
    }
}

/// The claims of posture evidence. EAT (RFC 9711) names where EAT has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "posture evidence claims")]
pub struct EvidenceClaims {
    /// The EAT profile, always [`EAT_PROFILE`].
    pub eat_profile: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// Not before (seconds since the Unix epoch); posture writes none, verifiers check it
    /// when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expires at (seconds since the Unix epoch).
    pub exp: u64,
    /// The intended verifier, when the evidence was requested for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// A unique id for this evidence (128 random bits, base64url).
    pub jti: String,
    /// The verifier's challenge, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eat_nonce: Option<String>,
    /// The device's UEID, base64url: type byte 0x01 (RAND) and 32 bytes derived from the
    /// report's device id.
    pub ueid: String,
    /// The software that produced the evidence (`posture`).
    pub swname: String,
    /// Its version.
    pub swversion: String,
    /// The key the evidence is bound to.
    pub cnf: Confirmation,
    /// Where the signing key lives: `software` or `tpm`.
    pub key_assurance: KeyAssurance,
    /// Why the device signed with a software key although it was configured to use its
    /// TPM when usable (e.g. no permission on `/dev/tpmrm0`). Absent when no fallback
    /// happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fallback_reason: Option<String>,
    /// The TPM that holds the device key, and a PCR quote when a nonce was given. Absent
    /// with a software key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmClaims>,
    /// The local program that asked the device's agent for this evidence, as the agent
    /// saw it through the socket's credentials. Absent when the evidence was not made for
    /// a local request (`posture report`, pushed evidence). See docs/evidence.md,
    /// "Threat model".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    /// The posture report: device, OS facts and every finding with its status.
    pub report: Report,
}

/// The `requester` claim: who asked the local agent for this evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    /// The requesting process's uid (`SO_PEERCRED`: from the kernel, race-free);
    /// 4294967295 (`(uid_t) -1`, no uid) on Windows, where `sid` names the caller.
    pub uid: u32,
    /// Windows: the requesting process's token user SID (`S-1-5-21-...`); absent on Unix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Its executable (`/proc/PID/exe`), present only when the agent could tell it
    /// without a pid-reuse race (a pidfd of the peer); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
}

/// The `tpm` claim: what the TPM says about itself, and the PCR quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TpmClaims {
    /// `TPM_PT_MANUFACTURER`, e.g. `IFX`, `NTC`, `INTC`, `IBM`. Self-reported by the TPM.
    pub manufacturer: String,
    /// The TPM is a software TPM (swtpm, a simulator): it protects nothing against the
    /// machine's owner. Self-reported; an enrolled EK certificate is what proves a vendor.
    pub software_tpm: bool,
    /// A TPM2_Quote by the attestation key over the sha256 PCRs, present when the
    /// evidence was requested with a nonce. Its qualifying data is
    /// [`quote_qualifying_data`] of the claims that carry it (nonce, `jti`, `iat`, report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
}

/// Claims that only the device's agent knows: how the key is held, the quote, and who
/// asked for the evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyClaims {
    /// See [`EvidenceClaims::key_fallback_reason`].
    pub key_fallback_reason: Option<String>,
    /// See [`EvidenceClaims::tpm`].
    pub tpm: Option<TpmClaims>,
    /// See [`EvidenceClaims::requester`].
    pub requester: Option<Requester>,
}

/// The bytes of the report that a quote binds: its compact JSON serialization, exactly
/// as `serde_json` writes the `report` claim (object members in the order of the
/// schema, `observed` maps sorted by key, no whitespace).
pub fn report_bytes(report: &Report) -> Result<Vec<u8>, EvidenceError> {
    serde_json::to_vec(report).map_err(EvidenceError::Json)
}

/// Domain separation of [`quote_qualifying_data`]: version 2 of the quote binding.
pub const QUOTE_BINDING_CONTEXT: &[u8] = b"posture-quote-v2";

/// The qualifying data (`TPMS_ATTEST.extraData`) of the quote carried in `claims`. It
/// binds the quote to the token that carries it, with or without a verifier nonce:
///
/// ```text
/// SHA-256( "posture-quote-v2" || 0x00
///          || u32be(len(eat_nonce)) || eat_nonce        (empty when there is none)
///          || u32be(len(jti))       || jti
///          || u64be(iat)
///          || SHA-256(report JSON) )
/// ```
///
/// `report JSON` is [`report_bytes`]. Because `jti` and `iat` are in it, a quote made for
/// one token cannot be carried in another (newly signed) token: its old PCR values cannot
/// satisfy a policy after the PCRs changed. The lengths make the encoding unambiguous.
pub fn quote_qualifying_data(claims: &EvidenceClaims) -> Result<[u8; 32], EvidenceError> {
    let nonce = claims.eat_nonce.as_deref().unwrap_or_default().as_bytes();
    let jti = claims.jti.as_bytes();
    let len = |bytes: &[u8]| {
        u32::try_from(bytes.len())
            .map(u32::to_be_bytes)
            .map_err(|_| EvidenceError::TooLarge(bytes.len()))
    };
    let mut h = Sha256::new();
    h.update(QUOTE_BINDING_CONTEXT);
    h.update([0u8]);
    h.update(len(nonce)?);
    h.update(nonce);
    h.update(len(jti)?);
    h.update(jti);
    h.update(claims.iat.to_be_bytes());
    h.update(Sha256::digest(report_bytes(&claims.report)?));
    Ok(h.finalize().into())
}

/// Errors while producing evidence.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The report breaks the model's invariants; signing it would vouch for nonsense.
    #[error("refusing to sign an invalid report: {0}")]
    InvalidReport(#[from] InvariantError),
    /// A nonce outside 8 to 64 bytes.
    #[error("the nonce must be 8 to 64 bytes long (got {0})")]
    NonceLength(usize),
    /// A lifetime of zero or longer than [`MAX_TTL`].
    #[error("the evidence lifetime must be between 1 s and 24 h (got {0:?})")]
    Ttl(Duration),
    /// The signed evidence would be larger than verifiers accept.
    #[error("the evidence is {0} bytes, more than the {MAX_EVIDENCE_BYTES} verifiers accept")]
    TooLarge(usize),
    /// The clock is before 1970.
    #[error("the system clock is before the Unix epoch")]
    Clock,
    /// Serializing the claims failed.
    #[error("cannot serialize the claims: {0}")]
    Json(serde_json::Error),
    /// The device key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<SignError> for EvidenceError {
    fn from(e: SignError) -> Self {
        match e {
            SignError::Json(e) => EvidenceError::Json(e),
            SignError::Key(e) => EvidenceError::Key(e),
        }
    }
}

/// Signs `report` as compact-JWS evidence, issued now.
pub fn sign_evidence(
    report: &Report,
    signer: &dyn Signer,
    options: &EvidenceOptions,
) -> Result<String, EvidenceError> {
    sign_evidence_at(report, signer, options, SystemTime::now())
}

/// Signs `report` as evidence issued at `now` (tests and replays of a fixed clock).
pub fn sign_evidence_at(
    report: &Report,
    signer: &dyn Signer,
    options: &EvidenceOptions,
    now: SystemTime,
) -> Result<String, EvidenceError> {
    sign_evidence_with(report, signer, options, &KeyClaims::default(), now)
}

/// Signs `report` as evidence issued at `now`, with the key's claims (fallback reason,
/// TPM quote).
pub fn sign_evidence_with(
    report: &Report,
    signer: &dyn Signer,
    options: &EvidenceOptions,
    key_claims: &KeyClaims,
    now: SystemTime,
) -> Result<String, EvidenceError> {
    let mut claims = build_claims(report, signer, options, now)?;
    claims.key_fallback_reason = key_claims.key_fallback_reason.clone();
    claims.tpm = key_claims.tpm.clone();
    claims.requester = key_claims.requester.clone();
    sign_claims(&claims, signer)
}

/// Signs claims made by [`build_claims`] (and completed by the caller, e.g. with a quote
/// bound to them by [`quote_qualifying_data`]`(&claims)`) as compact-JWS evidence; refuses
/// evidence larger than verifiers accept.
pub fn sign_claims(claims: &EvidenceClaims, signer: &dyn Signer) -> Result<String, EvidenceError> {
    claims.report.check_invariants()?;
    let token = jose::sign_compact(EVIDENCE_TYP, claims, signer)?;
    if token.len() > MAX_EVIDENCE_BYTES {
        return Err(EvidenceError::TooLarge(token.len()));
    }
    Ok(token)
}

/// The claims [`sign_evidence_at`] signs.
pub fn build_claims(
    report: &Report,
    signer: &dyn Signer,
    options: &EvidenceOptions,
    now: SystemTime,
) -> Result<EvidenceClaims, EvidenceError> {
    report.check_invariants()?;
    if let Some(nonce) = &options.nonce {
        if !NONCE_LEN.contains(&nonce.len()) {
            return Err(EvidenceError::NonceLength(nonce.len()));
        }
    }
    if options.ttl.is_zero() || options.ttl > MAX_TTL {
        return Err(EvidenceError::Ttl(options.ttl));
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| EvidenceError::Clock)?
        .as_secs();
    let mut jti = [0u8; 16];
    OsRng.fill_bytes(&mut jti);
    Ok(EvidenceClaims {
        eat_profile: EAT_PROFILE.to_owned(),
        iat,
        nbf: None,
        exp: iat.saturating_add(options.ttl.as_secs().max(1)),
        aud: options.audience.clone().map(Audience::One),
        jti: jose::b64url_encode(&jti),
        eat_nonce: options.nonce.clone(),
        ueid: ueid(&report.device.id),
        swname: report.agent.name.clone(),
        swversion: report.agent.version.clone(),
        cnf: Confirmation {
            jwk: Jwk::from_public_key(&signer.public_key()),
        },
        key_assurance: signer.assurance(),
        key_fallback_reason: None,
        tpm: None,
        requester: None,
        report: report.clone(),
    })
}

/// The UEID for a device id: 0x01 (RAND type) then the 32 bytes of the id when it is hex
/// SHA-256 (as posture's device ids are), else SHA-256 of the id text.
pub fn ueid(device_id: &str) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(0x01);
    match decode_hex32(device_id) {
        Some(raw) => bytes.extend_from_slice(&raw),
        None => bytes.extend_from_slice(&Sha256::digest(device_id.as_bytes())),
    }
    jose::b64url_encode(&bytes)
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    crate::hex::decode(text)?.try_into().ok()
}

/// The JSON Schema of [`EvidenceClaims`]; the committed copy is
/// `schemas/evidence-claims.schema.json`.
pub fn claims_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(EvidenceClaims))
        .unwrap_or(serde_json::Value::Null);
    crate::standard_keywords(&mut schema);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ueid_keeps_a_hex_device_id() {
        let id = "ab".repeat(32);
        let raw = jose::b64url_decode(&ueid(&id)).unwrap();
        assert_eq!(raw.len(), 33);
        assert_eq!(raw[0], 0x01);
        assert_eq!(raw[1..], [0xab; 32]);
        // Anything else is hashed, still 33 bytes.
        assert_eq!(jose::b64url_decode(&ueid("laptop-7")).unwrap().len(), 33);
    }
}
