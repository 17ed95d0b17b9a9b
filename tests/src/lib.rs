//! Helpers for the cross-crate integration tests: where the built binaries are, and
//! running them.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The `posture` binary built by this same cargo invocation (`target/<profile>/posture`).
///
/// Test binaries live in `target/<profile>/deps/`; the workspace's binaries one level up.
/// `cargo test --workspace` / `cargo nextest run --workspace` build them first.
pub fn posture_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let bin = profile_dir.join(format!("posture{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        // A clear message beats a confusing "No such file" from Command.
        eprintln!(
            "posture binary not found at {}; build the workspace first (cargo build --workspace)",
            bin.display()
        );
    }
    bin
}

/// Runs `posture` with arguments and extra environment, stdin closed.
pub fn run_posture(args: &[&str], env: &[(&str, &str)]) -> Output {
    // Keep the machine's own state directory (/var/lib/posture as root) out of tests.
    let state = std::env::temp_dir().join(format!("posture-test-state-{}", std::process::id()));
    let mut command = Command::new(posture_bin());
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env("POSTURE_STATE_DIR", &state)
        .stdin(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    match command.output() {
        Ok(output) => output,
        Err(e) => {
            eprintln!("cannot run {}: {e}", posture_bin().display());
            Output {
                status: not_run_status(),
                stdout: Vec::new(),
                stderr: e.to_string().into_bytes(),
            }
        }
    }
}

/// The exit status of a command that could not be started (the shell's 127).
#[cfg(unix)]
fn not_run_status() -> std::process::ExitStatus {
    std::os::unix::process::ExitStatusExt::from_raw(127 << 8)
}

/// The exit status of a command that could not be started (the shell's 127).
#[cfg(windows)]
fn not_run_status() -> std::process::ExitStatus {
    std::os::windows::process::ExitStatusExt::from_raw(127)
}

/// Parses stdout as JSON, with the output in the message when it is not.
pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        serde_json::json!({
            "error": format!("stdout is not JSON: {e}"),
            "stdout": String::from_utf8_lossy(&output.stdout),
            "stderr": String::from_utf8_lossy(&output.stderr),
        })
    })
}
