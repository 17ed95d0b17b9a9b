//! Signing evidence with the device key: the one path used by `posture report`, the
//! daemon and the C agent. With a TPM key and a nonce, a PCR quote bound to the nonce and
//! to the report goes into the `tpm` claim.

use std::time::SystemTime;

use posture_core::evidence::{
    build_claims, sign_claims, EvidenceClaims, EvidenceError, EvidenceOptions, Requester,
};
use posture_core::keys::KeyError;
use posture_core::Report;

use crate::key::DeviceKey;

/// Signed evidence.
#[derive(Debug, Clone)]
pub struct SignedEvidence {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`, for de-duplication by the receiver and the outbox.
    pub jti: String,
    /// What a person should know (e.g. the event log was left out); the daemon logs
    /// these, the CLI prints them.
    pub warnings: Vec<String>,
}

/// Evidence could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The claims or the signature.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// The TPM could not quote.
    #[error("cannot quote the TPM's PCRs: {0}")]
    Quote(#[source] KeyError),
}

/// Signs `report` with `key`, quoting `pcrs` when the key is in a TPM and the caller gave
/// a nonce. `requester` names the local process that asked (the daemon's API), so a
/// verifier can refuse evidence relayed from another program.
pub fn sign_evidence(
    key: &DeviceKey,
    report: &Report,
    options: &EvidenceOptions,
    pcrs: &[u32],
    requester: Option<&Requester>,
) -> Result<SignedEvidence, SignError> {
    let mut claims = build_claims(report, key.signer.as_ref(), options, SystemTime::now())?;
    claims.key_fallback_reason = key.fallback_reason.clone();
    claims.tpm = key.tpm_claims();
    claims.requester = requester.cloned();
    if claims.tpm.is_some() && options.nonce.is_some() {
        // The claims are final but for the quote, whose qualifying data binds this very
        // token: its nonce, `jti`, `iat` and report.
        let qualifying_data = posture_core::evidence::quote_qualifying_data(&claims)?;
        let quote = quote(key, &qualifying_data, pcrs)?;
        if let Some(tpm) = claims.tpm.as_mut() {
            tpm.quote = quote;
        }
    }
    let mut warnings = Vec::new();
    let token = match sign_claims(&claims, key.signer.as_ref()) {
        // A long firmware event log can push evidence past the size verifiers accept;
        // the quote stays verifiable without it.
        Err(EvidenceError::TooLarge(_)) if has_event_log(&claims) => {
            warnings.push("the TPM event log is too large for evidence; left out".to_owned());
            if let Some(q) = claims.tpm.as_mut().and_then(|t| t.quote.as_mut()) {
                q.event_log = None;
            }
            sign_claims(&claims, key.signer.as_ref())?
        }
        other => other?,
    };
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    Ok(SignedEvidence {
        token,
        jti: claims.jti,
        warnings,
    })
}

fn has_event_log(claims: &EvidenceClaims) -> bool {
    claims
        .tpm
        .as_ref()
        .and_then(|t| t.quote.as_ref())
        .is_some_and(|q| q.event_log.is_some())
}

#[cfg(all(feature = "tpm", target_os = "linux"))]
fn quote(
    key: &DeviceKey,
    qualifying_data: &[u8; 32],
    pcrs: &[u32],
) -> Result<Option<posture_core::attestation::Quote>, SignError> {
    let Some(ak) = key.tpm.as_ref().and_then(|t| t.ak.as_ref()) else {
        return Ok(None);
    };
    let quote = ak.quote(qualifying_data, pcrs).map_err(SignError::Quote)?;
    Ok(Some(quote))
}

#[cfg(not(all(feature = "tpm", target_os = "linux")))]
fn quote(
    _key: &DeviceKey,
    _qualifying_data: &[u8; 32],
    _pcrs: &[u32],
) -> Result<Option<posture_core::attestation::Quote>, SignError> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{open, Backend, KeyConfig};
    use posture_core::verify::{Verifier, VerifyOptions};
    use posture_test_support::laptop_report;

    #[test]
    fn evidence_verifies_with_the_published_key_and_carries_its_jti() {
        let dir = tempfile::tempdir().unwrap();
        let config = KeyConfig {
            backend: Backend::Software,
            ..KeyConfig::default()
        };
        let key = open(&config, &dir.path().join("keys"), false).unwrap();
        let options = EvidenceOptions {
            nonce: Some("n0nce-123".into()),
            audience: Some("idp".into()),
            ttl: std::time::Duration::from_secs(60),
        };
        let signed = sign_evidence(&key, &laptop_report(), &options, &[0], None).unwrap();
        let mut verifier = Verifier::new();
        verifier.add_key(key.signer.public_key(), None);
        let verify = VerifyOptions {
            nonce: Some("n0nce-123".into()),
            audience: Some("idp".into()),
            ..VerifyOptions::default()
        };
        let verified = verifier.verify(signed.token.as_bytes(), &verify).unwrap();
        assert_eq!(verified.claims.jti, signed.jti);
        assert!(signed.warnings.is_empty());
    }
}
