//! `posture`: check this device's security posture, and produce and verify evidence of it.
//!
//! Exit codes: 0 compliant / allowed, 1 non-compliant / denied, 2 error.

mod cmd_status;
mod config;
mod daemon;
mod output;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Exit code when the device is compliant (or evidence is allowed).
const EXIT_OK: u8 = 0;
/// Exit code when the device is not compliant (or evidence is denied).
const EXIT_NONCOMPLIANT: u8 = 1;
/// Exit code for usage, configuration and I/O errors.
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "posture",
    version,
    about = "Device posture: check, report, verify"
)]
struct Cli {
    /// Config file (default: /etc/posture/config.toml as root, else ~/.config/posture/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check this device and show what is wrong and how to fix it.
    ///
    /// Exit status: 0 compliant (every check passed), 1 not compliant (a check failed or
    /// could not tell), 2 error.
    Check {
        /// Print the report as JSON (see schemas/report.schema.json).
        #[arg(long)]
        json: bool,
        /// Run only this check (repeatable), e.g. --only disk_encryption.
        #[arg(long, value_name = "ID")]
        only: Vec<String>,
    },
    /// Run in the background: keep posture fresh, serve signed evidence on a local
    /// socket, deliver evidence and compliance-change events.
    Daemon {
        /// Log format: text (journald-friendly) or json.
        #[arg(long, value_enum, default_value = "text")]
        log_format: daemon::LogFormat,
        /// Log level: error, warn, info, debug or trace.
        #[arg(long, default_value = "info", value_name = "LEVEL")]
        log_level: String,
    },
    /// Ask the running daemon for the latest posture and show it.
    ///
    /// Exit status as `check`: 0 compliant, 1 not compliant, 2 error (e.g. no daemon).
    Status {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::from(EXIT_OK)
                }
                _ => ExitCode::from(EXIT_ERROR),
            };
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("posture: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Check { json, only } => check(&config, json, only),
        Command::Daemon {
            log_format,
            log_level,
        } => {
            daemon::run(cli.config, config, log_format, &log_level)?;
            Ok(EXIT_OK)
        }
        Command::Status { json } => cmd_status::run(&config, json),
    }
}

fn check(config: &Config, json: bool, only: Vec<String>) -> anyhow::Result<u8> {
    let mut options = posture_checks::CollectOptions::new(config.checks.clone());
    options.only = only;
    let report = posture_checks::collect(&options)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let colour = output::use_colour(std::io::stdout().is_terminal());
        output::write_human(&mut out, &report, colour)?;
    }
    out.flush()?;
    Ok(if report.is_compliant() {
        EXIT_OK
    } else {
        EXIT_NONCOMPLIANT
    })
}
