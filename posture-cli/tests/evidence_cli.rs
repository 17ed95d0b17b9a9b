//! `posture key`, `report`, `verify` and `export` end to end, running the real binary on
//! this machine with a key directory in a temp dir.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const NONCE: &str = "c0ffee-0123456789";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn posture(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_posture"))
            .args(args)
            // An empty config so that the user's config does not leak into the test.
            .arg("--config")
            .arg(self.config())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn config(&self) -> PathBuf {
        let path = self.path("config.toml");
        if !path.exists() {
            std::fs::write(&path, "").unwrap();
        }
        path
    }

    fn key_dir(&self) -> String {
        self.path("keys").display().to_string()
    }

    /// Writes the public key as JWK and returns its path.
    fn public_jwk(&self) -> PathBuf {
        let out = self.posture(&["key", "--key-dir", &self.key_dir()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let path = self.path("device.jwk");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    fn evidence(&self, extra: &[&str]) -> PathBuf {
        let key_dir = self.key_dir();
        let mut args = vec!["report", "--key-dir", key_dir.as_str()];
        args.extend_from_slice(extra);
        let out = self.posture(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let path = self.path("evidence.jws");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn key_prints_jwk_pem_id_and_assurance() {
    let env = Env::new();
    let out = env.posture(&["key", "--key-dir", &env.key_dir(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["assurance"], "software");
    assert_eq!(v["jwk"]["kty"], "EC");
    assert_eq!(v["jwk"]["crv"], "P-256");
    assert_eq!(v["jwk"]["kid"], v["kid"]);
    assert!(v["pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));

    let out = env.posture(&["key", "--key-dir", &env.key_dir(), "--format", "pem"]);
    assert!(stdout(&out).starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(stderr(&out).contains(&format!("kid: {}", v["kid"].as_str().unwrap())));
    assert!(stderr(&out).contains("assurance: software"));
}

#[cfg(unix)]
#[test]
fn key_with_loose_permissions_is_refused_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.public_jwk();
    let file = env.path("keys").join("device-key.p8.pem");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = env.posture(&["key", "--key-dir", &env.key_dir()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("mode 0640"), "{}", stderr(&out));
}

#[test]
fn report_then_verify_allows_and_json_has_claims() {
    let env = Env::new();
    let key = env.public_jwk();
    let evidence = env.evidence(&["--nonce", NONCE, "--audience", "proxy", "--ttl", "2m"]);
    let out = env.posture(&[
        "verify",
        s(&evidence),
        "--key",
        s(&key),
        "--nonce",
        NONCE,
        "--audience",
        "proxy",
        "--max-age",
        "1m",
        "--allow-any-posture",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["claims"]["eat_nonce"], NONCE);
    assert_eq!(v["claims"]["aud"], "proxy");
    assert_eq!(
        v["claims"]["exp"].as_u64().unwrap() - v["claims"]["iat"].as_u64().unwrap(),
        120
    );
    assert!(v["claims"]["report"]["findings"].as_array().is_some());
}

#[test]
fn verify_reads_stdin() {
    let env = Env::new();
    let key = env.public_jwk();
    let evidence = env.evidence(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_posture"))
        .args([
            "--config",
            s(&env.config()),
            "verify",
            "-",
            "--key",
            s(&key),
            "--allow-any-posture",
        ])
        .stdin(std::fs::File::open(&evidence).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("ALLOW\n"));
}

#[test]
fn wrong_nonce_is_denied_with_exit_1_and_the_reason() {
    let env = Env::new();
    let key = env.public_jwk();
    let evidence = env.evidence(&["--nonce", NONCE]);
    let out = env.posture(&[
        "verify",
        s(&evidence),
        "--key",
        s(&key),
        "--nonce",
        "another-nonce-1234",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["error"]["code"], "nonce");
    assert_eq!(v["reasons"][0]["code"], "nonce");
}

#[test]
fn another_devices_key_is_denied() {
    let env = Env::new();
    let other = Env::new();
    let evidence = env.evidence(&[]);
    let out = env.posture(&["verify", s(&evidence), "--key", s(&other.public_jwk())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("is not trusted"), "{}", stdout(&out));
}

#[test]
fn policy_denial_lists_each_failed_rule_with_its_fix() {
    let env = Env::new();
    let key = env.public_jwk();
    let evidence = env.evidence(&[]);
    let policy = env.path("policy.toml");
    std::fs::write(
        &policy,
        "required_checks = [\"no_such_check\"]\nrequired_key_assurance = \"tpm\"\n",
    )
    .unwrap();
    let out = env.posture(&[
        "verify",
        s(&evidence),
        "--key",
        s(&key),
        "--policy",
        s(&policy),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["decision"], "deny");
    let rules: Vec<&str> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["required_checks", "required_key_assurance"]);
    assert!(v["reasons"][1]["remediation"]["text"]
        .as_str()
        .unwrap()
        .contains("TPM"));

    let out = env.posture(&[
        "verify",
        s(&evidence),
        "--key",
        s(&key),
        "--policy",
        s(&policy),
    ]);
    let text = stdout(&out);
    assert!(text.contains("✘ required_checks [no_such_check]"), "{text}");
    assert!(text.contains("→ fix:"), "{text}");
    assert!(text.ends_with("DENY\n"), "{text}");
}

#[test]
fn policy_with_unknown_rule_is_a_usage_error_with_position() {
    let env = Env::new();
    let key = env.public_jwk();
    let evidence = env.evidence(&[]);
    let policy = env.path("policy.toml");
    std::fs::write(
        &policy,
        "require_secure_boot = true\nrequire_firewal = true\n",
    )
    .unwrap();
    let out = env.posture(&[
        "verify",
        s(&evidence),
        "--key",
        s(&key),
        "--policy",
        s(&policy),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("line 2, column 1") && err.contains("require_firewal"),
        "{err}"
    );
}

#[test]
fn missing_evidence_file_is_exit_2() {
    let env = Env::new();
    let key = env.public_jwk();
    let out = env.posture(&["verify", s(&env.path("nope.jws")), "--key", s(&key)]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn oversized_evidence_is_denied_without_reading_it_all() {
    let env = Env::new();
    let key = env.public_jwk();
    let big = env.path("big.jws");
    std::fs::write(&big, vec![b'A'; 1024 * 1024]).unwrap();
    let out = env.posture(&["verify", s(&big), "--key", s(&key), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "too_large");
}

#[test]
fn export_caep_prints_a_signed_set() {
    let env = Env::new();
    env.public_jwk();
    let out = env.posture(&[
        "export",
        "caep",
        "--previous",
        "compliant",
        "--key-dir",
        &env.key_dir(),
        "--audience",
        "https://idp.example",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = stdout(&out);
    let parts: Vec<&str> = token.trim().split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&posture_core::jose::b64url_decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["typ"], "secevent+jwt");
    let claims: Value =
        serde_json::from_slice(&posture_core::jose::b64url_decode(parts[1]).unwrap()).unwrap();
    let event = &claims["events"]
        ["https://schemas.openid.net/secevent/caep/event-type/device-compliance-change"];
    assert_eq!(event["previous_status"], "compliant");
    assert!(event["current_status"] == "compliant" || event["current_status"] == "not-compliant");
}

#[test]
fn export_intune_prints_one_line_and_writes_rules() {
    let env = Env::new();
    let rules = env.path("rules.json");
    let out = env.posture(&[
        "export",
        "intune",
        "--key-dir",
        &env.key_dir(),
        "--rules",
        s(&rules),
        "--docs-url",
        "https://it.example.org/posture/remediation.html",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1);
    // Collected by this user, not by the daemon: said so.
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["posture_daemon"],
        "not_used"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["key_assurance"], "software");
    let rules: Value = serde_json::from_str(&std::fs::read_to_string(&rules).unwrap()).unwrap();
    assert!(rules["Rules"].as_array().is_some());
}

#[test]
fn export_opa_gives_verified_input() {
    let env = Env::new();
    let key = env.public_jwk();
    let evidence = env.evidence(&[]);
    let out = env.posture(&["export", "opa", s(&evidence), "--key", s(&key)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["key_assurance"], "software");
    assert!(v["findings"].is_object());
}

/// Issue 10, item 3: without `--policy`, `posture verify` decides with the same default as
/// `export` and the daemon (every check in the report must pass), so a report whose
/// findings fail is denied; allowing it anyway is spelled out (`--allow-any-posture`).
#[test]
fn verify_without_a_policy_fails_closed_issue_10() {
    use posture_core::evidence::{sign_evidence, EvidenceOptions};
    use posture_core::keys::software::SoftwareKey;
    use posture_core::{Finding, Remediation};

    let env = Env::new();
    let key = env.public_jwk();
    let device_key = SoftwareKey::load_or_create(&env.path("keys")).unwrap();
    let report = posture_test_support::report_with(vec![
        Finding::pass("os", "Debian 12"),
        Finding::fail(
            "firewall",
            "no firewall is active",
            Remediation::new("ufw enable"),
        ),
    ]);
    let token = sign_evidence(&report, &device_key, &EvidenceOptions::default()).unwrap();
    let evidence = env.path("failing.jws");
    std::fs::write(&evidence, token).unwrap();

    let out = env.posture(&["verify", s(&evidence), "--key", s(&key), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reasons"][0]["rule"], "required_checks");
    assert_eq!(v["reasons"][0]["finding"], "firewall");

    let out = env.posture(&[
        "verify",
        s(&evidence),
        "--key",
        s(&key),
        "--allow-any-posture",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Runs `posture --config - collect` with `config` on stdin.
fn collect_with_stdin_config(config: &str, state_dir: &Path) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_posture"))
        .args(["--config", "-", "collect", "--state-dir"])
        .arg(state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn collect_reads_its_config_from_stdin_and_prints_one_report_line() {
    // What the daemon runs for every collection.
    let env = Env::new();
    let root = env.path("root");
    posture_test_support::write_device_root(&root);
    let config = format!(
        "[checks]\ndisabled = [\"patch_level\", \"auto_updates\", \"disk_encryption\", \"edr\", \"firewall\", \"secure_boot\", \"tpm\", \"screen_lock\"]\n\n[daemon]\nroot = {root:?}\n"
    );
    let output = collect_with_stdin_config(&config, &env.path("state"));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["os"]);
    assert_eq!(report["findings"][0]["status"], "pass");

    let output = collect_with_stdin_config("[checks]\ntypo = 1\n", &env.path("state"));
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("<stdin>"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}
