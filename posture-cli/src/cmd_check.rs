//! `posture check`: collect, show what is wrong and how to fix it, and decide compliance
//! with the configured policy (the verdict the daemon sends to the IdP).

use posture_agent::{Agent, Config};

/// `posture check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Print the report as JSON (see schemas/report.schema.json).
    #[arg(long)]
    json: bool,
    /// Run only this check (repeatable), e.g. --only disk_encryption.
    #[arg(long, value_name = "ID")]
    only: Vec<String>,
}

/// Runs `posture check`.
pub fn run(config: Config, args: CheckArgs) -> anyhow::Result<u8> {
    let agent = Agent::new(config, None)?;
    let report = agent.collect(&args.only)?;
    let assessment = agent.assess_device(&report)?;
    Ok(crate::output::print_report(
        &report,
        &assessment,
        args.json,
        None,
    )?)
}
