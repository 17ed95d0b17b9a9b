//! `posture export --format caep|intune|opa`.
//!
//! `caep` and `intune` collect this device's posture now; `opa` turns verified evidence
//! (a file and trusted keys, as for `posture verify`) into an OPA input document.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;
use posture_core::exports::caep::{self, ComplianceChange, ComplianceStatus, SetOptions};
use posture_core::exports::{intune, opa};
use posture_core::policy::Policy;
use posture_core::verify::VerifyOptions;

use crate::config::Config;

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// An OpenID CAEP device-compliance-change Security Event Token, signed.
    Caep,
    /// Intune custom compliance discovery JSON (and, with --rules, the rules file).
    Intune,
    /// Verified evidence as an OPA input document.
    Opa,
}

/// What `posture export` was asked.
#[derive(Debug)]
pub struct ExportArgs {
    /// The format.
    pub format: ExportFormat,
    /// Key directory override.
    pub key_dir: Option<PathBuf>,
    /// Policy file for caep/intune.
    pub policy: Option<PathBuf>,
    /// caep: the status before this change.
    pub previous: Option<ComplianceStatus>,
    /// caep: `iss`.
    pub issuer: Option<String>,
    /// caep: `aud`; opa: the expected audience.
    pub audience: Option<String>,
    /// intune: where to write the rules file.
    pub rules: Option<PathBuf>,
    /// Checks to run (caep/intune).
    pub only: Vec<String>,
    /// opa: the evidence file or `-`.
    pub evidence: Option<PathBuf>,
    /// opa: trusted keys.
    pub keys: Vec<PathBuf>,
    /// opa: the nonce issued.
    pub nonce: Option<String>,
    /// opa: maximum evidence age.
    pub max_age: Option<Duration>,
}

/// The device key `posture report` would sign with (TPM, or software as `[key]` allows).
fn device_key(
    config: &Config,
    key_dir: Option<&std::path::Path>,
) -> Result<crate::device_key::DeviceKey> {
    let dir = crate::cmd_key::key_dir(key_dir)?;
    crate::device_key::open(&config.key, &dir, false)
}

/// Runs `posture export`.
pub fn run(config: &Config, args: ExportArgs) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match args.format {
        ExportFormat::Caep => {
            let previous = args
                .previous
                .context("--format caep needs --previous compliant|not-compliant")?;
            let key = device_key(config, args.key_dir.as_deref())?;
            let report = crate::cmd_report::collect(config, args.only)?;
            let policy = policy_or_all_checks(args.policy.as_deref(), &report)?;
            let decision = policy.decide_report(&report, key.assurance());
            let current = if decision.is_allowed() {
                ComplianceStatus::Compliant
            } else {
                ComplianceStatus::NotCompliant
            };
            let change = ComplianceChange {
                device_id: report.device.id.clone(),
                previous,
                current,
                event_time: SystemTime::now(),
                reasons: decision.reasons,
            };
            let options = SetOptions {
                issuer: args.issuer,
                audience: args.audience,
            };
            writeln!(
                out,
                "{}",
                caep::compliance_change(&change, key.signer.as_ref(), &options)?
            )?;
        }
        ExportFormat::Intune => {
            let key = device_key(config, args.key_dir.as_deref())?;
            let report = crate::cmd_report::collect(config, args.only)?;
            writeln!(out, "{}", intune::discovery_json(&report, key.assurance()))?;
            if let Some(path) = &args.rules {
                let policy = args
                    .policy
                    .as_deref()
                    .map(crate::cmd_verify::load_policy)
                    .transpose()?;
                let rules = intune::rules(&report, policy.as_ref());
                let text = serde_json::to_string_pretty(&rules)? + "\n";
                std::fs::write(path, text)
                    .with_context(|| format!("cannot write rules {}", path.display()))?;
            }
        }
        ExportFormat::Opa => {
            let Some(evidence) = &args.evidence else {
                bail!("--format opa needs an EVIDENCE file (or -) and --key FILE");
            };
            if args.keys.is_empty() {
                bail!("--format opa needs --key FILE");
            }
            let verifier = crate::cmd_verify::load_verifier(&args.keys)?;
            let token = crate::cmd_verify::read_evidence(evidence)?;
            let options = VerifyOptions {
                nonce: args.nonce,
                audience: args.audience,
                max_age: args.max_age,
                ..VerifyOptions::default()
            };
            let verified = match verifier.verify(&token, &options) {
                Ok(verified) => verified,
                Err(e) => {
                    eprintln!("posture: invalid evidence: {e}");
                    return Ok(crate::EXIT_NONCOMPLIANT);
                }
            };
            serde_json::to_writer_pretty(&mut out, &opa::input_document(&verified))?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(crate::EXIT_OK)
}

/// The policy file, or one requiring every check that ran to pass (posture's own notion
/// of compliance).
fn policy_or_all_checks(path: Option<&Path>, report: &posture_core::Report) -> Result<Policy> {
    match path {
        Some(path) => crate::cmd_verify::load_policy(path),
        None => Ok(Policy::every_check_of(report)),
    }
}
