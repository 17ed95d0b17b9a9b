//! Man page and shell completions are generated from the clap definition.

// Test helpers outside #[test] functions are not covered by clippy.toml's test allowance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use posture_integration_tests::run_posture;

#[test]
fn bash_completion_is_valid_bash_and_knows_the_subcommands() {
    let output = run_posture(&["completions", "bash"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let script = String::from_utf8(output.stdout).unwrap();
    for subcommand in ["check", "report", "verify", "daemon", "enroll"] {
        assert!(script.contains(subcommand), "{subcommand} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posture.bash");
    std::fs::write(&path, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&path).status().unwrap();
    assert!(syntax.success(), "bash -n rejects the completion script");
}

#[test]
fn man_page_is_roff_with_every_subcommand() {
    let output = run_posture(&["man"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(page.contains(".TH posture 1"), "{page}");
    for subcommand in ["check", "verify", "export", "status"] {
        assert!(page.contains(subcommand), "{subcommand} missing");
    }
}

#[test]
fn generating_needs_no_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "[checks\n").unwrap();
    let output = run_posture(
        &["--config", config.to_str().unwrap(), "completions", "zsh"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("#compdef posture"));
}
