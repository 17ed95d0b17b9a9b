//! `posture export caep|intune|opa`.
//!
//! `caep` and `intune` collect this device's posture now and decide compliance with the
//! configured policy (as `posture check` and the daemon do); `opa` turns verified
//! evidence (a file and trusted keys, as for `posture verify`) into an OPA input document.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use posture_agent::compliance::{load_policy, Compliance};
use posture_agent::{Agent, Config};
use posture_core::exports::caep::{ComplianceStatus, SetOptions};
use posture_core::exports::{intune, opa};
use posture_core::verify::VerifyOptions;

/// `posture export ...`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A signed OpenID CAEP device-compliance-change Security Event Token.
    Caep {
        /// The compliance status before this change.
        #[arg(long, value_name = "STATUS")]
        previous: ComplianceStatus,
        /// The issuer (default: the device key's JWK thumbprint URI).
        #[arg(long, value_name = "ISS")]
        issuer: Option<String>,
        /// The receiver (aud).
        #[arg(long, value_name = "A")]
        audience: Option<String>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Intune custom compliance discovery JSON (and, with --rules, the rules file).
    Intune {
        /// Also write the rules file here.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Verified evidence as an OPA input document.
    Opa {
        /// The evidence file, or -.
        #[arg(value_name = "EVIDENCE_FILE")]
        evidence: PathBuf,
        /// Trusted device key: JWK, JWK Set or PEM (repeatable).
        #[arg(long, value_name = "FILE", required = true)]
        key: Vec<PathBuf>,
        /// The audience the evidence must name.
        #[arg(long, value_name = "A")]
        audience: Option<String>,
        /// The nonce you issued.
        #[arg(long, value_name = "N")]
        nonce: Option<String>,
        /// Refuse evidence older than this.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        max_age: Option<Duration>,
    },
}

/// What the exports that collect on this device share.
#[derive(Debug, clap::Args)]
pub struct DeviceArgs {
    /// Policy deciding compliance (default: `[compliance] policy`, else every check must
    /// pass).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Run only this check (repeatable).
    #[arg(long, value_name = "ID")]
    only: Vec<String>,
    /// Key directory (default: the state directory's keys/).
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
}

/// Runs `posture export`.
pub fn run(config: Config, command: ExportCommand) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match command {
        ExportCommand::Caep {
            previous,
            issuer,
            audience,
            device,
        } => {
            let (agent, compliance) = agent(config, &device)?;
            let key = crate::cmd_key::open_key(&agent, false)?;
            let report = agent.collect(&device.only)?;
            let current = compliance.assess(&report, key.assurance());
            let options = SetOptions { issuer, audience };
            let event = posture_agent::caep::compliance_change(
                &key, &report, previous, &current, &options,
            )?;
            writeln!(out, "{}", event.token)?;
        }
        ExportCommand::Intune { rules, device } => {
            let (agent, compliance) = agent(config, &device)?;
            let key = crate::cmd_key::open_key(&agent, false)?;
            let report = agent.collect(&device.only)?;
            let verdict = compliance.assess(&report, key.assurance());
            writeln!(
                out,
                "{}",
                intune::discovery_json(&report, key.assurance(), verdict.compliant)
            )?;
            if let Some(path) = &rules {
                let policy = device
                    .policy
                    .as_deref()
                    .or(agent.config.policy_file())
                    .map(load_policy)
                    .transpose()?;
                let rules = intune::rules(&report, policy.as_ref());
                let text = serde_json::to_string_pretty(&rules)? + "\n";
                std::fs::write(path, text)
                    .with_context(|| format!("cannot write rules {}", path.display()))?;
            }
        }
        ExportCommand::Opa {
            evidence,
            key,
            audience,
            nonce,
            max_age,
        } => {
            let verifier = crate::cmd_verify::load_verifier(&key)?;
            let token = crate::cmd_verify::read_evidence(&evidence)?;
            let options = VerifyOptions {
                nonce,
                audience,
                max_age,
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

/// The agent, and the compliance `--policy` asks for (else the configured one).
fn agent(config: Config, device: &DeviceArgs) -> Result<(Agent, Compliance)> {
    let agent = Agent::new(config, device.key_dir.as_deref())?;
    let compliance = match &device.policy {
        Some(path) => Compliance::new(Some(load_policy(path)?)),
        None => agent.compliance().clone(),
    };
    Ok((agent, compliance))
}
