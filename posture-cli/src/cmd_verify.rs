//! `posture verify`: verify evidence against trusted keys, optionally decide a policy.
//!
//! Exit 0 allowed, 1 denied or invalid evidence, 2 usage or I/O error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use posture_core::evidence::MAX_EVIDENCE_BYTES;
use posture_core::policy::{Decision, Outcome, Policy};
use posture_core::verify::{VerifiedPosture, Verifier, VerifyError, VerifyOptions};
use serde_json::json;

/// `posture verify` arguments.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The evidence file, or - for stdin.
    #[arg(value_name = "EVIDENCE_FILE")]
    pub evidence: PathBuf,
    /// Trusted device key: JWK, JWK Set or PEM (repeatable). Counts as a software key.
    #[arg(
        long = "key",
        value_name = "FILE",
        required_unless_present = "enrolled"
    )]
    pub keys: Vec<PathBuf>,
    /// Enrolled TPM device record from `posture enrollment finish` (repeatable): its
    /// key counts as a TPM key, and the quote in its evidence is verified.
    #[arg(long, value_name = "FILE")]
    pub enrolled: Vec<PathBuf>,
    /// The nonce you issued; the evidence must echo it.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub nonce: Option<String>,
    /// Your audience name; the evidence's aud must contain it.
    #[arg(long, value_name = "A")]
    pub audience: Option<String>,
    /// Refuse evidence older than this, e.g. 10m (default 24h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// Refuse evidence whose lifetime (exp - iat) is longer than this.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "24h")]
    pub max_lifetime: Duration,
    /// Policy file (TOML, or JSON). Without one, every check in the report must pass
    /// ([`Policy::every_check_of`]), as for `check`, `export` and the daemon.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Allow any valid evidence whatever its posture (no policy at all): an explicit
    /// choice, never the default.
    #[arg(long, conflicts_with = "policy")]
    pub allow_any_posture: bool,
    /// Print the verified claims, the decision and every reason as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads evidence, refusing more than [`MAX_EVIDENCE_BYTES`] without reading it all.
pub fn read_evidence(path: &Path) -> Result<Vec<u8>> {
    crate::input::read_capped(path, MAX_EVIDENCE_BYTES, "evidence")
}

/// Builds a verifier from key files.
pub fn load_verifier(keys: &[PathBuf]) -> Result<Verifier> {
    let mut verifier = Verifier::new();
    for path in keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key {}", path.display()))?;
        verifier
            .add_keys_from_text(&text)
            .with_context(|| format!("invalid key {}", path.display()))?;
    }
    Ok(verifier)
}

/// Loads a policy file (TOML, or JSON when it starts with `{`).
pub fn load_policy(path: &Path) -> Result<Policy> {
    Ok(posture_agent::compliance::load_policy(path)?)
}

/// Runs `posture verify`.
pub fn run(args: VerifyArgs) -> Result<u8> {
    let mut verifier = load_verifier(&args.keys)?;
    for path in &args.enrolled {
        let device = crate::cmd_enroll::load_enrolled(path)?;
        verifier
            .add_enrolled(&device)
            .with_context(|| format!("invalid enrolled device {}", path.display()))?;
    }
    let policy = args.policy.as_deref().map(load_policy).transpose()?;
    let token = read_evidence(&args.evidence)?;
    let options = VerifyOptions {
        nonce: args.nonce,
        audience: args.audience,
        max_age: args.max_age,
        max_lifetime: args.max_lifetime,
        ..VerifyOptions::default()
    };
    let result = verifier.verify(&token, &options);
    let decision = match (&result, &policy) {
        (Ok(verified), Some(policy)) => Some(policy.decide(verified)),
        (Ok(_), None) if args.allow_any_posture => None,
        // Fail closed: without a policy every check that ran must pass.
        (Ok(verified), None) => {
            Some(Policy::every_check_of(&verified.claims.report).decide(verified))
        }
        _ => None,
    };
    let allowed = result.is_ok() && decision.as_ref().is_none_or(Decision::is_allowed);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json_output(&result, decision.as_ref(), allowed))?;
        writeln!(out)?;
    } else {
        write_human(&mut out, &result, decision.as_ref(), allowed)?;
    }
    out.flush()?;
    Ok(if allowed {
        crate::EXIT_OK
    } else {
        crate::EXIT_NONCOMPLIANT
    })
}

fn json_output(
    result: &Result<VerifiedPosture, VerifyError>,
    decision: Option<&Decision>,
    allowed: bool,
) -> serde_json::Value {
    let outcome = if allowed {
        Outcome::Allow
    } else {
        Outcome::Deny
    };
    match result {
        // `key_assurance` is the verified level; the device's claim is only
        // `claimed_key_assurance` (and is not in `claims`).
        Ok(verified) => json!({
            "valid": true,
            "decision": outcome,
            "reasons": decision.map(|d| d.reasons.as_slice()).unwrap_or_default(),
            "kid": verified.kid,
            "key_assurance": verified.key_assurance,
            "claimed_key_assurance": verified.claims.key_assurance,
            "ek_trust": verified.ek_trust,
            "attested_pcrs": verified.attested_pcrs,
            "quote_clock": verified.quote_clock,
            "claims": verified.consumer_claims().unwrap_or_default(),
        }),
        Err(e) => json!({
            "valid": false,
            "decision": outcome,
            "reasons": [{ "rule": "evidence", "code": e.code(), "message": e.to_string() }],
            "error": { "code": e.code(), "message": e.to_string() },
        }),
    }
}

fn write_human(
    out: &mut impl Write,
    result: &Result<VerifiedPosture, VerifyError>,
    decision: Option<&Decision>,
    allowed: bool,
) -> std::io::Result<()> {
    let verified = match result {
        Ok(verified) => verified,
        Err(e) => {
            writeln!(out, "INVALID evidence: {e}")?;
            return writeln!(out, "DENY");
        }
    };
    let report = &verified.claims.report;
    writeln!(
        out,
        "valid evidence from {} ({}), key {} ({})",
        report.device.hostname,
        report.os.name,
        verified.kid,
        verified.key_assurance.as_str()
    )?;
    if let Some(pcrs) = &verified.attested_pcrs {
        let list: Vec<String> = pcrs.keys().map(u32::to_string).collect();
        writeln!(
            out,
            "TPM quote verified with the enrolled attestation key (sha256 PCRs {})",
            list.join(",")
        )?;
    }
    if let Some(reason) = &verified.claims.key_fallback_reason {
        writeln!(out, "the device fell back to a software key: {reason}")?;
    }
    if let Some(decision) = decision {
        for reason in &decision.reasons {
            let finding = reason
                .finding
                .as_deref()
                .map(|f| format!(" [{f}]"))
                .unwrap_or_default();
            writeln!(out, "  ✘ {}{finding}: {}", reason.rule, reason.message)?;
            if let Some(fix) = &reason.remediation {
                writeln!(out, "    → fix: {}", fix.text)?;
                if let Some(url) = &fix.url {
                    writeln!(out, "      {url}")?;
                }
            }
        }
    }
    writeln!(out, "{}", if allowed { "ALLOW" } else { "DENY" })
}
