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
use posture_core::keys::KeyAssurance;
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
        /// Ask the running posture daemon (which collects as root) instead of collecting
        /// as this user: what the Intune discovery script runs. When the daemon cannot
        /// be asked, prints `posture_daemon: unreachable` with every check unknown.
        #[arg(long)]
        daemon: bool,
        /// Also write the rules file here (generic: the same for every device).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Where your users can read posture's `docs/remediation.md` (the rules'
        /// `MoreInfoUrl`s link to its sections). Default: that file in the project's
        /// repository.
        #[arg(long, value_name = "URL")]
        docs_url: Option<String>,
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
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
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
        ExportCommand::Intune {
            daemon,
            rules,
            docs_url,
            device,
        } => {
            // The rules first: a bad --docs-url or policy is an error before anything is
            // printed.
            if let Some(path) = &rules {
                let docs_url = match docs_url {
                    Some(url) => url,
                    None => default_docs_url()?,
                };
                let policy = match &device.policy {
                    Some(path) => Some(load_policy(path)?),
                    None => config.policy_file().map(load_policy).transpose()?,
                };
                // Without a policy: every check this configuration runs.
                let checks: Vec<(&str, &str)> = posture_checks::CHECKS
                    .iter()
                    .filter(|c| config.checks.is_enabled(c.id))
                    .map(|c| (c.id, c.title))
                    .collect();
                let (rules, notes) = intune::rules(&checks, policy.as_ref(), &docs_url);
                for note in notes {
                    eprintln!("posture: note: {note}");
                }
                let text = serde_json::to_string_pretty(&rules)? + "\n";
                std::fs::write(path, text)
                    .with_context(|| format!("cannot write rules {}", path.display()))?;
            }
            let line = if daemon {
                from_daemon(config)
            } else {
                let (agent, compliance) = agent(config, &device)?;
                let key = crate::cmd_key::open_key(&agent, false)?;
                let report = agent.collect(&device.only)?;
                let verdict = compliance.assess(&report, key.assurance());
                intune::discovery_json(
                    &report,
                    key.assurance(),
                    verdict.compliant,
                    intune::DAEMON_NOT_USED,
                )
            };
            writeln!(out, "{line}")?;
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

/// The discovery JSON from the daemon's latest report and verdict; when the daemon
/// cannot be asked, the `unreachable` answer (and why, on stderr).
fn from_daemon(config: Config) -> String {
    let asked = (|| -> Result<String> {
        let agent = Agent::new(config, None)?;
        let socket = crate::cmd_status::daemon_socket(&agent)?;
        let report: posture_core::Report =
            serde_json::from_slice(&crate::cmd_status::get(&socket, "/v1/report")?)
                .context("the daemon sent an invalid report")?;
        let assessment: posture_agent::Assessment =
            serde_json::from_slice(&crate::cmd_status::get(&socket, "/v1/compliance")?)
                .context("the daemon sent an invalid verdict")?;
        let health: serde_json::Value =
            serde_json::from_slice(&crate::cmd_status::get(&socket, "/v1/health")?)
                .context("the daemon sent an invalid health answer")?;
        let assurance = match health["key"]["key_assurance"].as_str() {
            Some("tpm") => KeyAssurance::Tpm,
            Some("tpm-unverified") => KeyAssurance::TpmUnverified,
            Some("software") => KeyAssurance::Software,
            other => anyhow::bail!("the daemon named no key assurance ({other:?})"),
        };
        Ok(intune::discovery_json(
            &report,
            assurance,
            assessment.compliant,
            intune::DAEMON_RUNNING,
        ))
    })();
    asked.unwrap_or_else(|e| {
        eprintln!("posture: {e:#}");
        let ids: Vec<&str> = posture_checks::CHECKS.iter().map(|c| c.id).collect();
        intune::unreachable_json(&ids)
    })
}

/// Where the rules link when `--docs-url` is not given: `docs/remediation.md` in the
/// project's repository (the workspace's `repository` URL). A placeholder repository
/// (an `.invalid` host) is refused rather than written into a rules file.
fn default_docs_url() -> Result<String> {
    let repository = env!("CARGO_PKG_REPOSITORY").trim_end_matches('/');
    let host = repository
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    if repository.is_empty() || host.ends_with(".invalid") {
        anyhow::bail!(
            "this build names no public repository ({repository:?}); pass --docs-url with \
             the address where your users can read posture's docs/remediation.md"
        );
    }
    Ok(format!("{repository}/blob/main/docs/remediation.md"))
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
