//! `posture`: check this device's security posture, and produce and verify evidence of it.
//!
//! Exit codes: 0 compliant / allowed, 1 non-compliant / denied, 2 error.

mod cmd_enroll;
mod cmd_export;
mod cmd_key;
mod cmd_report;
mod cmd_status;
mod cmd_verify;
mod config;
mod daemon;
mod device_key;
mod input;
mod output;
mod paths;

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
    /// Print the device's public key, its id (RFC 7638 thumbprint) and its assurance.
    ///
    /// The key is created on first use. stdout is the key alone; id and assurance go to
    /// stderr (or use --json for all of it).
    Key {
        /// Public key format.
        #[arg(long, value_enum, default_value = "jwk")]
        format: cmd_key::KeyFormat,
        /// Print kid, assurance, JWK and PEM as one JSON object.
        #[arg(long)]
        json: bool,
        /// Key directory (default: /var/lib/posture/keys as root, else the user's data dir).
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
    /// Check this device and print signed evidence: a compact JWS (see docs/evidence.md).
    Report {
        /// The verifier's challenge, echoed as eat_nonce (8 to 64 bytes).
        #[arg(long, value_name = "N")]
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
        /// Key directory (default: /var/lib/posture/keys as root, else the user's data dir).
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
    /// Verify evidence and decide a policy.
    ///
    /// Exit status: 0 allowed, 1 denied or invalid evidence, 2 usage or I/O error.
    Verify {
        /// The evidence file, or - for stdin.
        #[arg(value_name = "EVIDENCE_FILE")]
        evidence: PathBuf,
        /// Trusted device key: JWK, JWK Set or PEM (repeatable). Counts as a software key.
        #[arg(long, value_name = "FILE", required_unless_present = "enrolled")]
        key: Vec<PathBuf>,
        /// Enrolled TPM device record from `posture enrollment finish` (repeatable): its
        /// key counts as a TPM key, and the quote in its evidence is verified.
        #[arg(long, value_name = "FILE")]
        enrolled: Vec<PathBuf>,
        /// The nonce you issued; the evidence must echo it.
        #[arg(long, value_name = "N")]
        nonce: Option<String>,
        /// Your audience name; the evidence's aud must contain it.
        #[arg(long, value_name = "A")]
        audience: Option<String>,
        /// Refuse evidence older than this, e.g. 10m (default 24h).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
        /// Refuse evidence whose lifetime (exp - iat) is longer than this.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
              default_value = "24h")]
        max_lifetime: std::time::Duration,
        /// Policy file (TOML, or JSON). Without one, every check in the report must pass.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Allow any valid evidence whatever its posture (no policy): an explicit choice.
        #[arg(long, conflicts_with = "policy")]
        allow_any_posture: bool,
        /// Print the verified claims, the decision and every reason as JSON.
        #[arg(long)]
        json: bool,
    },
    /// TPM enrollment, on the device: request, then complete the verifier's challenge.
    #[command(subcommand)]
    Enroll(cmd_enroll::EnrollCommand),
    /// TPM enrollment, on the verifier: begin (challenge) and finish (enrolled device).
    #[command(subcommand)]
    Enrollment(cmd_enroll::EnrollmentCommand),
    /// Quote the TPM's PCRs with a nonce and write files for tpm2_checkquote.
    Attest {
        /// The verifier's nonce as hex (8 to 64 bytes): the quote's qualifying data.
        #[arg(long, value_name = "HEX")]
        nonce: String,
        /// Directory for quote.msg, quote.sig, ak.pub.pem, qualifying-data.hex, pcrs.bin
        /// and quote.json.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// sha256 PCRs to quote (default: quote_pcrs of the config's key table, else 0-7).
        #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
        pcrs: Vec<u32>,
        /// Key directory.
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
    /// Export posture for other systems: caep, intune or opa.
    Export {
        /// caep: signed CAEP device-compliance-change SET; intune: custom compliance
        /// discovery JSON; opa: verified evidence as an OPA input document.
        #[arg(long, value_enum)]
        format: cmd_export::ExportFormat,
        /// caep: the compliance status before this change (compliant, not-compliant).
        #[arg(long, value_name = "STATUS")]
        previous: Option<posture_core::exports::caep::ComplianceStatus>,
        /// caep: the issuer (default: the device key's JWK thumbprint URI).
        #[arg(long, value_name = "ISS")]
        issuer: Option<String>,
        /// caep: the receiver (aud); opa: the audience the evidence must name.
        #[arg(long, value_name = "A")]
        audience: Option<String>,
        /// caep/intune: policy deciding compliance (default: every check must pass).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// intune: also write the rules file here.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// caep/intune: run only this check (repeatable).
        #[arg(long, value_name = "ID")]
        only: Vec<String>,
        /// caep/intune: key directory.
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
        /// opa: the evidence file, or -.
        #[arg(value_name = "EVIDENCE_FILE")]
        evidence: Option<PathBuf>,
        /// opa: trusted device key (repeatable).
        #[arg(long, value_name = "FILE")]
        key: Vec<PathBuf>,
        /// opa: the nonce you issued.
        #[arg(long, value_name = "N")]
        nonce: Option<String>,
        /// opa: refuse evidence older than this.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
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
    /// Print a shell completion script, e.g. `posture completions bash > /etc/bash_completion.d/posture`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `posture man > /usr/share/man/man1/posture.1`.
    Man,
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
        // The reader went away (`posture man | head`): nothing is wrong, stop quietly.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("posture: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    // Generated from the clap definition; they need no config.
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "posture", &mut std::io::stdout());
            return Ok(EXIT_OK);
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Check { json, only } => check(&config, json, only),
        Command::Key {
            format,
            json,
            key_dir,
        } => cmd_key::run(&config, key_dir.as_deref(), format, json),
        Command::Report {
            nonce,
            audience,
            ttl,
            only,
            key_dir,
        } => cmd_report::run(&config, key_dir.as_deref(), only, nonce, audience, ttl),
        Command::Verify {
            evidence,
            key,
            enrolled,
            nonce,
            audience,
            max_age,
            max_lifetime,
            policy,
            allow_any_posture,
            json,
        } => cmd_verify::run(cmd_verify::VerifyArgs {
            evidence,
            keys: key,
            enrolled,
            nonce,
            audience,
            max_age,
            max_lifetime,
            policy,
            allow_any_posture,
            json,
        }),
        Command::Enroll(command) => cmd_enroll::run_enroll(command),
        Command::Enrollment(command) => cmd_enroll::run_enrollment(command),
        Command::Attest {
            nonce,
            out,
            pcrs,
            key_dir,
        } => {
            let pcrs = if pcrs.is_empty() {
                config.key.quote_pcrs.clone()
            } else {
                pcrs
            };
            cmd_enroll::run_attest(key_dir.as_deref(), &nonce, &out, &pcrs)
        }
        Command::Export {
            format,
            previous,
            issuer,
            audience,
            policy,
            rules,
            only,
            key_dir,
            evidence,
            key,
            nonce,
            max_age,
        } => cmd_export::run(
            &config,
            cmd_export::ExportArgs {
                format,
                key_dir,
                policy,
                previous,
                issuer,
                audience,
                rules,
                only,
                evidence,
                keys: key,
                nonce,
                max_age,
            },
        ),
        Command::Daemon {
            log_format,
            log_level,
        } => {
            daemon::run(cli.config, config, log_format, &log_level)?;
            Ok(EXIT_OK)
        }
        Command::Status { json } => cmd_status::run(&config, json),
        Command::Completions { .. } | Command::Man => Ok(EXIT_OK),
    }
}

fn check(config: &Config, json: bool, only: Vec<String>) -> anyhow::Result<u8> {
    let mut options = posture_checks::CollectOptions::new(config.checks.clone());
    options.only = only;
    options.state_dir = paths::state_dir();
    let report = posture_checks::collect(&options)?;
    Ok(output::print_report(&report, json, None)?)
}
