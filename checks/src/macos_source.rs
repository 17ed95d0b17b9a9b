//! Reading macOS sources for the `macos.rs` check implementations: commands through the
//! `crate::source::run_command` runner (timeout, cancel, `LC_ALL=C`), plists
//! (binary ones converted with `plutil`, part of every macOS), the console user, root.
//! Nothing here interprets what it reads; the parsers do.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::source::{read_bytes, run_command, CommandOutput, SourceError};
use crate::Context;

/// Timeout of the quick status commands (`fdesetup`, `csrutil`, `spctl`...).
pub const QUICK: Duration = Duration::from_secs(10);

/// Runs `program` (an absolute macOS path) and returns stdout followed by stderr: several
/// of these tools print their answer on stderr (`sysadminctl`, `softwareupdate`'s "No new
/// software available.").
pub fn run_text(
    ctx: &Context,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, SourceError> {
    let out: CommandOutput = run_command(ctx, program, args, timeout)?;
    if out.code != Some(0) && out.stdout.trim().is_empty() {
        return out.success(&command_line(program, args)).map(|o| o.stdout);
    }
    Ok(format!("{}\n{}", out.stdout, out.stderr))
}

/// `program args...`, for sources and reasons.
pub fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads and parses a plist below the context root. A binary plist (`bplist00`) is
/// converted to XML by `plutil -convert xml1 -o - FILE` first (live contexts only).
pub fn read_plist(ctx: &Context, absolute: &str) -> Result<Value, String> {
    let bytes = read_bytes(ctx, absolute).map_err(|e| e.to_string())?;
    let text = if bytes.starts_with(b"bplist00") {
        let path = ctx.path(absolute);
        let path = path.to_string_lossy();
        run_command(
            ctx,
            "/usr/bin/plutil",
            &["-convert", "xml1", "-o", "-", &path],
            QUICK,
        )
        .and_then(|o| o.success("plutil -convert xml1"))
        .map_err(|e| format!("{absolute} is a binary plist and plutil could not convert it: {e}"))?
        .stdout
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    crate::plist::parse(&text).map_err(|e| format!("{absolute}: {e}"))
}

/// Reads a plist that may legitimately be absent: `Ok(None)` when it does not exist.
pub fn read_optional_plist(ctx: &Context, absolute: &str) -> Result<Option<Value>, String> {
    if !ctx.path(absolute).exists() {
        return Ok(None);
    }
    read_plist(ctx, absolute).map(Some)
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The user logged in at the console (the owner of `/dev/console`), unless nobody is
/// (`root` owns it at the login window).
pub fn console_user(ctx: &Context) -> Option<String> {
    let out = run_command(ctx, "/usr/bin/stat", &["-f", "%Su", "/dev/console"], QUICK).ok()?;
    let user = out.stdout.trim();
    (out.code == Some(0) && !user.is_empty() && user != "root" && user != "_mbsetupuser")
        .then(|| user.to_owned())
}

/// Runs a command as the console user when this process is root (`sudo -u USER`; root
/// needs no password), else as this user. Per-user settings (screen saver, lock delay)
/// are that user's.
pub fn run_as_console_user(
    ctx: &Context,
    program: &str,
    args: &[&str],
) -> Result<(String, String), String> {
    if !is_root() {
        let text = run_text(ctx, program, args, QUICK).map_err(|e| e.to_string())?;
        return Ok((text, command_line(program, args)));
    }
    let user = console_user(ctx).ok_or("nobody is logged in at the console")?;
    let mut sudo_args = vec!["-n", "-u", user.as_str(), program];
    sudo_args.extend_from_slice(args);
    let text = run_text(ctx, "/usr/bin/sudo", &sudo_args, QUICK).map_err(|e| e.to_string())?;
    Ok((text, format!("{} (as {user})", command_line(program, args))))
}

/// Whether this is an Apple silicon Mac (true also for an Intel build under Rosetta).
pub fn apple_silicon(ctx: &Context) -> bool {
    if cfg!(target_arch = "aarch64") {
        return true;
    }
    run_command(ctx, "/usr/sbin/sysctl", &["-n", "hw.optional.arm64"], QUICK)
        .map(|o| o.stdout.trim() == "1")
        .unwrap_or(false)
}

/// Whether a path exists below the root.
pub fn exists(ctx: &Context, absolute: &str) -> bool {
    ctx.path(Path::new(absolute)).exists()
}
