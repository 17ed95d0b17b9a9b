//! `posture`: check this device's security posture, and produce and verify evidence of it.
//!
//! Exit codes: 0 compliant / allowed, 1 non-compliant / denied, 2 error.

mod cmd_cert;
mod cmd_check;
mod cmd_collect;
mod cmd_enroll;
mod cmd_enroll_server;
mod cmd_export;
mod cmd_key;
mod cmd_report;
mod cmd_status;
mod cmd_verify;
mod cmd_webauthn;
mod daemon;
mod fetch;
mod input;
mod output;
mod server_client;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use posture_agent::Config;

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
    /// Config file, `-` for standard input (default: /etc/posture/config.toml as root, else ~/.config/posture/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check this device and show what is wrong and how to fix it.
    ///
    /// Exit status: 0 compliant, 1 not compliant (a check failed or could not tell, or
    /// the configured `[compliance] policy` denies), 2 error.
    Check(cmd_check::CheckArgs),
    /// Print the device's public key, its id (RFC 7638 thumbprint) and its assurance.
    ///
    /// The key is created on first use. stdout is the key alone; id and assurance go to
    /// stderr (or use --json for all of it).
    Key(cmd_key::KeyArgs),
    /// Check this device and print signed evidence: a compact JWS (see docs/evidence.md).
    Report(cmd_report::ReportArgs),
    /// Verify evidence and decide a policy.
    ///
    /// Exit status: 0 allowed, 1 denied or invalid evidence, 2 usage or I/O error.
    Verify(cmd_verify::VerifyArgs),
    /// Enrol this device: with a posture-server (`--server URL --token T`), or the manual
    /// TPM steps (request, then complete the verifier's challenge).
    Enroll(cmd_enroll::EnrollArgs),
    /// TPM enrollment, on the verifier: begin (challenge) and finish (enrolled device).
    #[command(subcommand)]
    Enrollment(cmd_enroll::EnrollmentCommand),
    /// WebAuthn credentials in the TPM with `tpm` attestation under the posture
    /// attestation CA: register, assert.
    #[command(subcommand)]
    Webauthn(cmd_webauthn::WebauthnCommand),
    /// Quote the TPM's PCRs with a nonce and write files for tpm2_checkquote.
    Attest(cmd_enroll::AttestArgs),
    /// Export posture for other systems: caep, intune or opa.
    #[command(subcommand)]
    Export(cmd_export::ExportCommand),
    /// Run in the background: keep posture fresh, serve signed evidence on a local
    /// socket, deliver evidence and compliance-change events.
    Daemon(daemon::DaemonArgs),
    /// Ask the running daemon for the latest posture and its verdict, and show them.
    ///
    /// Exit status as `check`: 0 compliant, 1 not compliant, 2 error (e.g. no daemon).
    Status(cmd_status::StatusArgs),
    /// Write this device's client certificate from posture-server (issued while it is
    /// compliant) and a key reference for TLS clients.
    Cert(cmd_cert::CertArgs),
    /// Print a shell completion script, e.g. `posture completions bash > /etc/bash_completion.d/posture`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `posture man > /usr/share/man/man1/posture.1`.
    Man,
    /// Collect and print the unsigned report as one line of JSON (run by the daemon).
    #[command(hide = true)]
    Collect(cmd_collect::CollectArgs),
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
        Command::Check(args) => cmd_check::run(config, args),
        Command::Key(args) => cmd_key::run(config, args),
        Command::Report(args) => cmd_report::run(config, args),
        Command::Verify(args) => cmd_verify::run(args),
        Command::Enroll(command) => cmd_enroll::run_enroll(config, command),
        Command::Enrollment(command) => cmd_enroll::run_enrollment(command),
        Command::Attest(args) => cmd_enroll::run_attest(config, args),
        Command::Webauthn(command) => cmd_webauthn::run(config, command),
        Command::Export(command) => cmd_export::run(config, command),
        Command::Daemon(args) => {
            daemon::run(cli.config, config, args)?;
            Ok(EXIT_OK)
        }
        Command::Status(args) => cmd_status::run(config, args),
        Command::Cert(args) => cmd_cert::run(config, args),
        Command::Collect(args) => cmd_collect::run(config, args),
        Command::Completions { .. } | Command::Man => Ok(EXIT_OK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifier's nonce may be base64url starting with `-` (one in 64 random ones).
    #[test]
    fn a_nonce_starting_with_a_hyphen_is_a_value_not_an_option() {
        for args in [
            &["posture", "report", "--nonce", "-x1Yz2AbC"][..],
            &[
                "posture",
                "verify",
                "e.jws",
                "--key",
                "k",
                "--nonce",
                "-x1Yz2AbC",
            ][..],
            &[
                "posture",
                "export",
                "opa",
                "e.jws",
                "--key",
                "k",
                "--nonce",
                "-x1Yz2AbC",
            ][..],
        ] {
            let cli = Cli::try_parse_from(args);
            assert!(cli.is_ok(), "{args:?}: {cli:?}");
        }
    }
}
