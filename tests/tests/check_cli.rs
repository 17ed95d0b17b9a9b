//! `posture check` end to end: the built binary on this machine, its JSON validated
//! against the committed schema, and findings compared with facts read independently.

// Test helpers outside #[test] functions are not covered by clippy.toml's test allowance.
// Linux end to end (daemon sockets, Linux checks against this machine).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;

use posture_integration_tests::{posture_bin, run_posture, stdout_json, workspace_root};
use sha2::{Digest, Sha256};

const ALL_CHECKS: &[&str] = &[
    "os",
    "patch_level",
    "auto_updates",
    "disk_encryption",
    "edr",
    "firewall",
    "secure_boot",
    "tpm",
    "screen_lock",
];

fn schema_errors(instance: &serde_json::Value) -> Option<String> {
    let schema_path = workspace_root().join("schemas/report.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("report.schema.json", schema).unwrap();
    let index = compiler
        .compile("report.schema.json", &mut schemas)
        .unwrap();
    schemas
        .validate(instance, index)
        .err()
        .map(|e| format!("{e:#}"))
}

fn validate_against_schema(instance: &serde_json::Value) {
    if let Some(e) = schema_errors(instance) {
        panic!("report does not match schemas/report.schema.json: {e}");
    }
}

#[test]
fn schema_rejects_broken_invariants() {
    let output = run_posture(&["check", "--json", "--only", "os"], &[]);
    let report = stdout_json(&output);
    validate_against_schema(&report);

    let mut fail_without_fix = report.clone();
    fail_without_fix["findings"][0]["status"] = "fail".into();
    fail_without_fix["findings"][0]
        .as_object_mut()
        .unwrap()
        .remove("remediation");
    assert!(schema_errors(&fail_without_fix).is_some());

    let mut unknown_without_reason = report.clone();
    unknown_without_reason["findings"][0]["status"] = "unknown".into();
    unknown_without_reason["findings"][0]
        .as_object_mut()
        .unwrap()
        .remove("reason");
    assert!(schema_errors(&unknown_without_reason).is_some());

    let mut typo = report.clone();
    typo["findings"][0]["statsu"] = "pass".into();
    assert!(schema_errors(&typo).is_some());
}

fn os_release_field(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_owned())
}

fn findings_by_id(report: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

#[test]
fn json_report_matches_schema_and_this_machine() {
    let output = run_posture(&["check", "--json"], &[]);
    let report = stdout_json(&output);
    validate_against_schema(&report);

    // Every check ran, once, in registry order.
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ALL_CHECKS);

    // Exit code follows the findings: 0 only when every finding passed.
    let all_pass = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == "pass");
    assert_eq!(
        output.status.code(),
        Some(if all_pass { 0 } else { 1 }),
        "{report:#}"
    );

    // OS facts agree with os-release, read here independently.
    assert_eq!(
        report["os"]["id"].as_str(),
        os_release_field("ID").as_deref()
    );
    assert_eq!(
        report["os"]["version_id"].as_str(),
        os_release_field("VERSION_ID").as_deref()
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(report["os"]["kernel"].as_str(), Some(kernel.trim()));

    // The device id is a domain-separated hash of the machine id, never the raw value.
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap();
    let mut hasher = Sha256::new();
    hasher.update(b"posture device id v1\0");
    hasher.update(machine_id.trim().as_bytes());
    let expected: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(report["device"]["id"].as_str(), Some(expected.as_str()));
    assert!(!report.to_string().contains(machine_id.trim()));

    // Summary counts agree with the findings.
    let findings = findings_by_id(&report);
    for status in ["pass", "fail", "unknown"] {
        let count = findings.values().filter(|f| f["status"] == status).count();
        assert_eq!(
            report["summary"][status].as_u64(),
            Some(count as u64),
            "{status}"
        );
    }
}

#[test]
fn only_runs_the_named_checks() {
    let output = run_posture(&["check", "--json", "--only", "os"], &[]);
    let report = stdout_json(&output);
    validate_against_schema(&report);
    let findings = findings_by_id(&report);
    assert_eq!(findings.keys().collect::<Vec<_>>(), vec!["os"]);
    assert_eq!(findings["os"]["source"][0], "/etc/os-release");
}

#[test]
fn unknown_check_is_a_usage_error_exit_2() {
    let output = run_posture(&["check", "--only", "firewal"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown check `firewal`"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn config_typo_is_an_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[checks]\ntimeout = \"2s\"\ndisabld = [\"os\"]\n").unwrap();
    let output = run_posture(&["check", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3, column 1"), "{stderr}");
    assert!(stderr.contains("disabld"), "{stderr}");
}

#[test]
fn missing_explicit_config_is_an_error() {
    let output = run_posture(&["check", "--config", "/nonexistent/posture.toml"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/posture.toml"));
}

#[test]
fn disabled_checks_from_config_do_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let disabled: Vec<String> = ALL_CHECKS
        .iter()
        .filter(|id| **id != "os")
        .map(|id| format!("\"{id}\""))
        .collect();
    std::fs::write(
        &config,
        format!("[checks]\ndisabled = [{}]\n", disabled.join(", ")),
    )
    .unwrap();
    let output = run_posture(
        &["check", "--json", "--config", config.to_str().unwrap()],
        &[],
    );
    let report = stdout_json(&output);
    assert_eq!(
        findings_by_id(&report).keys().collect::<Vec<_>>(),
        vec!["os"]
    );
}

#[test]
fn human_output_has_a_line_per_finding_and_no_colour_in_a_pipe() {
    let output = run_posture(&["check"], &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains('\x1b'), "colour in a pipe: {text}");
    for title in [
        "Operating system",
        "Disk encryption",
        "Firewall",
        "Screen lock",
    ] {
        assert!(text.contains(title), "{title} missing from:\n{text}");
    }
    assert!(text.contains("COMPLIANT"), "{text}");
}

/// Runs `posture check --only os` on a pseudo-terminal (util-linux `script`).
fn on_terminal(no_color: Option<&str>) -> String {
    let command = format!("{} check --only os", posture_bin().display());
    let mut script = Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR");
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let output = script.output().expect("util-linux `script` is installed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    assert!(
        on_terminal(None).contains("\x1b["),
        "no colour on a terminal"
    );
    assert!(
        !on_terminal(Some("1")).contains("\x1b["),
        "colour despite NO_COLOR"
    );
}

/// Whether `/` sits on dm-crypt anywhere in its device chain, read straight from
/// mountinfo and sysfs without any of posture's code.
fn root_is_on_dm_crypt() -> Option<bool> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // The last mount of `/` wins (mounts stack).
    let dev = mountinfo
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("/"))
        .filter_map(|l| l.split_whitespace().nth(2))
        .next_back()?
        .to_owned();
    let mut stack = vec![std::fs::canonicalize(format!("/sys/dev/block/{dev}")).ok()?];
    let mut crypt = false;
    while let Some(node) = stack.pop() {
        if let Ok(uuid) = std::fs::read_to_string(node.join("dm/uuid")) {
            crypt |= uuid.starts_with("CRYPT-");
        }
        if let Ok(slaves) = std::fs::read_dir(node.join("slaves")) {
            stack.extend(
                slaves
                    .flatten()
                    .filter_map(|e| std::fs::canonicalize(e.path()).ok()),
            );
        }
        // A partition's parent disk.
        if node.join("partition").exists() {
            stack.extend(node.parent().map(std::path::Path::to_path_buf));
        }
    }
    Some(crypt)
}

#[test]
fn statuses_agree_with_facts_read_independently() {
    let output = run_posture(&["check", "--json"], &[]);
    let report = stdout_json(&output);
    let findings = findings_by_id(&report);

    // An unencrypted `/` must fail, whatever else is encrypted.
    if root_is_on_dm_crypt() == Some(false) {
        assert_eq!(
            findings["disk_encryption"]["status"], "fail",
            "{:#}",
            findings["disk_encryption"]
        );
    }

    // No TPM device in sysfs: the tpm check must fail, never pass.
    let tpms = std::fs::read_dir("/sys/class/tpm")
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    if tpms == 0 {
        assert_eq!(findings["tpm"]["status"], "fail", "{:#}", findings["tpm"]);
    }

    // Not booted by UEFI: Secure Boot cannot be known, so it must not pass.
    if !std::path::Path::new("/sys/firmware/efi").exists() {
        assert_eq!(
            findings["secure_boot"]["status"], "unknown",
            "{:#}",
            findings["secure_boot"]
        );
        assert!(findings["secure_boot"]["reason"]
            .as_str()
            .unwrap()
            .contains("UEFI"));
    }

    // Every failure says how to fix it; every unknown says why.
    for finding in findings.values() {
        match finding["status"].as_str().unwrap() {
            "fail" => assert!(!finding["remediation"]["text"].as_str().unwrap().is_empty()),
            "unknown" => assert!(!finding["reason"].as_str().unwrap().is_empty()),
            _ => {}
        }
    }
}

/// `posture.exe check --json` run under Wine (issue 15, `scripts/cross.sh` builds it first):
/// the report is schema-valid and every finding is `unknown` with a reason. Wine has no
/// Windows PowerShell, WMI, Security Center or TPM, so any other status would be an answer
/// about Wine's stubs, not about a device.
#[test]
fn windows_report_under_wine_is_schema_valid_and_all_unknown() {
    let exe_path = std::env::current_exe().unwrap();
    // <target>/debug/deps/check_cli-<hash>: the target directory is three levels up.
    let target = exe_path.ancestors().nth(3).unwrap().to_owned();
    let exe = target.join("x86_64-pc-windows-gnu/debug/posture.exe");
    let wine = ["/usr/bin/wine64", "/usr/lib/wine/wine64"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    let needs = if !wine {
        Err("wine64 is not installed".to_owned())
    } else if !exe.is_file() {
        Err(format!(
            "{} is not built (scripts/cross.sh builds it)",
            exe.display()
        ))
    } else {
        Ok(())
    };
    if !posture_test_support::can_run(needs) {
        return;
    }
    let output = Command::new(workspace_root().join("scripts/wine/run.sh"))
        .arg(&exe)
        .args(["check", "--json"])
        .env("CARGO_TARGET_DIR", &target)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let report = stdout_json(&output);
    validate_against_schema(&report);
    assert_eq!(report["os"]["family"], "windows", "{report}");
    let findings = findings_by_id(&report);
    let mut ids = CHECK_IDS.to_vec();
    ids.sort_unstable();
    assert_eq!(
        findings.keys().map(String::as_str).collect::<Vec<_>>(),
        ids,
        "every check, once: {report}"
    );
    for (id, finding) in &findings {
        assert_eq!(finding["status"], "unknown", "{id} under Wine: {finding}");
        let reason = finding["reason"].as_str().unwrap_or("");
        assert!(!reason.is_empty(), "{id} has no reason: {finding}");
    }
}

/// The ids of `posture_checks::CHECKS`.
const CHECK_IDS: &[&str] = &[
    "os",
    "patch_level",
    "auto_updates",
    "disk_encryption",
    "edr",
    "firewall",
    "secure_boot",
    "tpm",
    "screen_lock",
];
