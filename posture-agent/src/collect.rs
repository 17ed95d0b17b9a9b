//! Collection with this agent's configuration: always with the state directory, so
//! checks such as patch_level remember what they saw between runs and reuse their caches.

use std::path::Path;
use std::time::SystemTime;

use posture_checks::{CollectOptions, Context};
use posture_core::Report;

use crate::config::Config;

/// The collection options for `config`, reading this machine (or `[daemon] root`, a
/// fixture tree for tests and image builds), keeping state in `state_dir`.
pub fn options(config: &Config, state_dir: &Path, only: &[String]) -> CollectOptions {
    let mut options = CollectOptions::new(config.checks.clone());
    options.only = only.to_vec();
    options.state_dir = Some(state_dir.to_owned());
    if let Some(root) = &config.daemon.root {
        options.context = Some(
            Context::fixture(root.clone(), config.checks.clone(), SystemTime::now())
                .with_state_dir(state_dir),
        );
    }
    options
}

/// Collects a report.
pub fn collect(
    config: &Config,
    state_dir: &Path,
    only: &[String],
) -> Result<Report, posture_checks::Error> {
    posture_checks::collect(&options(config, state_dir, only))
}
