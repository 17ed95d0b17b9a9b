//! `posture collect` (hidden): collect and print the unsigned report as one line of JSON.
//!
//! The daemon runs its collections through this command in a short-lived child process,
//! so the checks' code, their parse buffers and their threads never live in the
//! long-running daemon: its resident memory stays what serving the API needs, and a
//! check that hangs dies with the child.

use std::io::Write;
use std::path::PathBuf;

use posture_agent::Config;

/// `posture collect` arguments.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Run only this check (repeatable).
    #[arg(long, value_name = "ID")]
    only: Vec<String>,
    /// The state directory (the daemon passes its own, so a config edited since the
    /// daemon started cannot move it).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Runs `posture collect`.
pub fn run(config: Config, args: CollectArgs) -> anyhow::Result<u8> {
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => config.paths(None)?.state_dir,
    };
    let report = posture_agent::collect::collect(&config, &state_dir, &args.only)?;
    // One line: the reader takes the report at the newline and does not wait for the
    // process to end (a check stuck in the kernel can keep it from exiting).
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &report)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}
