//! Windows sources through one PowerShell invocation per check, answering JSON.
//!
//! # Why PowerShell and not a WMI crate
//! Every Windows source posture reads is reachable from Windows PowerShell 5.1, which ships
//! with every supported Windows: WMI/CIM classes (`Win32_EncryptableVolume`,
//! `root\SecurityCenter2`, `Win32_Tpm`), the registry, services, processes, Windows
//! Update's COM API and the firewall cmdlets. One `powershell.exe` run per check that ends
//! in `ConvertTo-Json` keeps the Rust side to pure parsers of JSON (compiled and tested on
//! every OS, see each check's parser module), adds no dependency (a WMI crate would bring
//! COM bindings and an async runtime for a handful of queries) and goes through the same
//! command runner as every other command ([`run_command`]: timeout, cancellation). The
//! price is PowerShell's start-up time (a few hundred milliseconds per check, the checks
//! run concurrently).
//!
//! When PowerShell is missing (Wine has none) or a query fails, the check answers
//! `unknown` with the reason; nothing passes by accident.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::source::{run_command, SourceError};
use crate::Context;

/// How long one check's PowerShell may run (Windows Update's offline search is the slowest).
const TIMEOUT: Duration = Duration::from_secs(30);

/// The program, found in `%SystemRoot%\System32\WindowsPowerShell\v1.0`.
pub(crate) const POWERSHELL: &str = "powershell.exe";

/// Runs `script` (which must print one JSON value) and parses its output.
pub(crate) fn query(ctx: &Context, script: &str) -> Result<Value, String> {
    // UTF-8 output whatever the console code page; errors become a non-zero exit.
    let full = format!(
        "$ErrorActionPreference = 'Stop'; \
         [Console]::OutputEncoding = [System.Text.Encoding]::UTF8; {script}"
    );
    // -EncodedCommand (base64 of UTF-16LE): no quoting of the script on the command line.
    let utf16: Vec<u8> = full.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(utf16);
    let output = run_command(
        ctx,
        POWERSHELL,
        &[
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-EncodedCommand",
            &encoded,
        ],
        TIMEOUT,
    )
    .map_err(|e| match e {
        SourceError::CommandNotFound(_) => {
            "Windows PowerShell (powershell.exe) is not available, so the Windows sources \
             (WMI, registry) cannot be read"
                .to_owned()
        }
        other => other.to_string(),
    })?;
    if output.code != Some(0) {
        let err = output.stderr.trim();
        return Err(format!(
            "PowerShell query failed (exit {:?}): {}",
            output.code,
            err.chars().take(300).collect::<String>()
        ));
    }
    if output.stdout.trim().is_empty() {
        // Wine's powershell.exe is a stub that exits 0 and writes nothing.
        return Err("PowerShell wrote no answer (powershell.exe is not Windows PowerShell)".into());
    }
    serde_json::from_str(output.stdout.trim())
        .map_err(|e| format!("PowerShell did not answer JSON: {e}"))
}
