//! `posture report`: collect, then print signed evidence (a compact JWS).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use posture_agent::sign::sign_evidence;
use posture_agent::{Agent, Config};
use posture_core::evidence::EvidenceOptions;

/// `posture report` arguments.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The verifier's challenge, echoed as eat_nonce (8 to 64 bytes).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    nonce: Option<String>,
    /// Who the evidence is for (aud).
    #[arg(long, value_name = "A")]
    audience: Option<String>,
    /// How long the evidence stays valid, e.g. 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
    /// Run only this check (repeatable).
    #[arg(long, value_name = "ID")]
    only: Vec<String>,
    /// Key directory (default: the state directory's keys/).
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
}

/// Runs `posture report`.
pub fn run(config: Config, args: ReportArgs) -> Result<u8> {
    let agent = Agent::new(config, args.key_dir.as_deref())?;
    // The AK is loaded only when a quote will be made (a nonce to bind it to).
    let key = crate::cmd_key::open_key(&agent, args.nonce.is_some())?;
    let report = agent.collect(&args.only)?;
    let options = EvidenceOptions {
        nonce: args.nonce,
        audience: args.audience,
        ttl: args.ttl,
    };
    let signed = sign_evidence(&key, &report, &options, &agent.config.key.quote_pcrs, None)?;
    for warning in &signed.warnings {
        eprintln!("posture: warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", signed.token)?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}
