//! `posture report`: collect, then print signed evidence (a compact JWS).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use posture_core::evidence::{build_claims, sign_claims, EvidenceError, EvidenceOptions};
use posture_core::Report;

use crate::config::Config;
use crate::device_key::DeviceKey;

/// Collects a report on this machine.
pub fn collect(config: &Config, only: Vec<String>) -> Result<Report> {
    let mut options = posture_checks::CollectOptions::new(config.checks.clone());
    options.only = only;
    Ok(posture_checks::collect(&options)?)
}

/// Runs `posture report`.
pub fn run(
    config: &Config,
    key_dir: Option<&Path>,
    only: Vec<String>,
    nonce: Option<String>,
    audience: Option<String>,
    ttl: Duration,
) -> Result<u8> {
    let dir = crate::cmd_key::key_dir(key_dir)?;
    // The AK is loaded only when a quote will be made (a nonce to bind it to).
    let key = crate::device_key::open(&config.key, &dir, nonce.is_some())?;
    let report = collect(config, only)?;
    let options = EvidenceOptions {
        nonce,
        audience,
        ttl,
    };
    let token = sign(&key, &report, &options, &config.key.quote_pcrs)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}

/// Signs `report` with `key`; with a TPM key and a nonce, a PCR quote bound to this very
/// token (its nonce, `jti`, `iat` and report: `quote_qualifying_data`) goes into the
/// `tpm` claim.
pub fn sign(
    key: &DeviceKey,
    report: &Report,
    options: &EvidenceOptions,
    pcrs: &[u32],
) -> Result<String> {
    let mut claims = build_claims(report, key.signer.as_ref(), options, SystemTime::now())?;
    claims.key_fallback_reason = key.fallback_reason.clone();
    claims.tpm = key.tpm_claims();
    if claims.tpm.is_some() && options.nonce.is_some() {
        // The claims are final but for the quote itself, which their binding covers.
        let qualifying_data = posture_core::evidence::quote_qualifying_data(&claims)?;
        let made = quote(key, &qualifying_data, pcrs)?;
        if let Some(tpm) = claims.tpm.as_mut() {
            tpm.quote = made;
        }
    }
    match sign_claims(&claims, key.signer.as_ref()) {
        // A long firmware event log can push evidence past the size verifiers accept;
        // the quote stays verifiable without it.
        Err(EvidenceError::TooLarge(_))
            if claims
                .tpm
                .as_ref()
                .and_then(|t| t.quote.as_ref())
                .is_some_and(|q| q.event_log.is_some()) =>
        {
            eprintln!("posture: warning: the TPM event log is too large for evidence; left out");
            if let Some(q) = claims.tpm.as_mut().and_then(|t| t.quote.as_mut()) {
                q.event_log = None;
            }
            Ok(sign_claims(&claims, key.signer.as_ref())?)
        }
        other => Ok(other?),
    }
}

#[cfg(all(feature = "tpm", target_os = "linux"))]
fn quote(
    key: &DeviceKey,
    qualifying_data: &[u8; 32],
    pcrs: &[u32],
) -> Result<Option<posture_core::attestation::Quote>> {
    let Some(ak) = key.tpm.as_ref().and_then(|t| t.ak.as_ref()) else {
        return Ok(None);
    };
    let quote = ak
        .quote(qualifying_data, pcrs)
        .context("cannot quote the TPM's PCRs")?;
    Ok(Some(quote))
}

#[cfg(not(all(feature = "tpm", target_os = "linux")))]
fn quote(
    _key: &DeviceKey,
    _qualifying_data: &[u8; 32],
    _pcrs: &[u32],
) -> Result<Option<posture_core::attestation::Quote>> {
    Ok(None)
}
