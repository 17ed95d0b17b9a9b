//! `posture report`: collect, then print signed evidence (a compact JWS).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use posture_core::evidence::{sign_evidence, EvidenceOptions};
use posture_core::Report;

use crate::config::Config;

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
    let key = crate::cmd_key::load_key(key_dir)?;
    let report = collect(config, only)?;
    let options = EvidenceOptions {
        nonce,
        audience,
        ttl,
    };
    let token = sign_evidence(&report, &key, &options)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}
