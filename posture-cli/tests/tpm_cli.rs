//! The TPM end to end through the `posture` binary, against real software TPMs (swtpm):
//! enrollment, TPM-signed evidence with a PCR quote, verification with the enrolled
//! device, fallback to a software key, and `posture attest` checked by `tpm2_checkquote`.
#![cfg(all(feature = "tpm", target_os = "linux"))]
// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The swtpm harness is shared with posture-core's TPM tests.
#[path = "../../posture-agent/tests/tpm_support/mod.rs"]
#[allow(dead_code)]
mod tpm_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use posture_core::jose::{b64url_decode, b64url_encode};
use posture_core::keys::Signer;
use serde_json::Value;
use tpm_support::Swtpm;

const NONCE: &str = "verifier-nonce-0123456789";

/// swtpm right after TPM2_Startup(CLEAR): nothing measured, PCRs 0-7 are zero.
const ZERO_PCR: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One device (a swtpm and a key directory) plus a verifier's working directory.
struct Device {
    swtpm: Swtpm,
    dir: tempfile::TempDir,
}

impl Device {
    fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        Device {
            swtpm: Swtpm::start(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn key_dir(&self) -> PathBuf {
        self.path("keys")
    }

    /// Runs posture with this device's TPM as `TCTI`.
    fn posture(&self, args: &[&str]) -> Output {
        self.posture_with(&self.swtpm.tcti(), args)
    }

    fn posture_with(&self, tcti: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_posture"))
            .args(args)
            .arg("--config")
            .arg(self.path("config.toml"))
            .env("TCTI", tcti)
            .env("NO_COLOR", "1")
            .env_remove("TSS2_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.posture(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        out
    }

    /// Runs the whole CLI enrollment; the verifier trusts swtpm's local CA as EK root.
    fn enroll(&self) -> PathBuf {
        let key_dir = self.key_dir();
        let kd = s(&key_dir);
        let (req, ch, pending, resp, device, roots) = (
            self.path("request.json"),
            self.path("challenge.json"),
            self.path("pending.json"),
            self.path("response.json"),
            self.path("device.json"),
            self.path("ek-roots.pem"),
        );
        std::fs::write(&roots, self.swtpm.ca_bundle()).unwrap();
        self.ok(&["enroll", "request", "--out", s(&req), "--key-dir", kd]);
        self.ok(&[
            "enrollment",
            "begin",
            s(&req),
            "--ek-roots",
            s(&roots),
            "--challenge-out",
            s(&ch),
            "--pending-out",
            s(&pending),
        ]);
        self.ok(&[
            "enroll",
            "complete",
            s(&ch),
            "--out",
            s(&resp),
            "--key-dir",
            kd,
        ]);
        let out = self.ok(&[
            "enrollment",
            "finish",
            "--pending",
            s(&pending),
            s(&resp),
            "--out",
            s(&device),
        ]);
        assert!(stderr(&out).contains("EK trust: ca"), "{}", stderr(&out));
        assert!(!pending.exists(), "the pending secret is deleted");
        device
    }

    /// `posture report --nonce NONCE` with the TPM key; returns the token.
    fn report(&self, nonce: &str) -> String {
        let kd = self.key_dir();
        let out = self.ok(&[
            "report",
            "--nonce",
            nonce,
            "--key-dir",
            s(&kd),
            "--only",
            "os",
        ]);
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `posture verify` of `token` with the enrolled device; returns exit code and JSON.
    fn verify(&self, token: &str, device: &Path, nonce: &str, policy: &str) -> (i32, Value) {
        self.verify_nonce(token, device, Some(nonce), policy)
    }

    /// `posture verify`, with or without a nonce.
    fn verify_nonce(
        &self,
        token: &str,
        device: &Path,
        nonce: Option<&str>,
        policy: &str,
    ) -> (i32, Value) {
        let evidence = self.path("evidence.jws");
        std::fs::write(&evidence, token).unwrap();
        let policy_path = self.path("policy.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let mut args = vec![
            "verify",
            s(&evidence),
            "--enrolled",
            s(device),
            "--policy",
            s(&policy_path),
            "--json",
        ];
        if let Some(nonce) = nonce {
            args.extend(["--nonce", nonce]);
        }
        let out = self.posture(&args);
        let code = out.status.code().unwrap();
        assert!(code == 0 || code == 1, "{}", stderr(&out));
        (code, serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Re-signs `claims` with this device's TPM key, as malware holding the device (but
    /// not able to forge its attestation key's quotes) could.
    fn resign_with_tpm_key(&self, token: &str, claims: &Value) -> String {
        let tpm = self.swtpm.open();
        let srk = posture_agent::tpm::Srk::create(&tpm).unwrap();
        let signer = posture_agent::tpm::TpmSigner::load(&srk, &self.key_dir()).unwrap();
        drop(srk);
        resign(token, claims, &signer)
    }
}

fn resign(token: &str, claims: &Value, signer: &dyn Signer) -> String {
    let header = token.split('.').next().unwrap();
    let input = format!("{header}.{}", b64url_encode(claims.to_string().as_bytes()));
    let signature = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64url_encode(&signature.to_bytes()))
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&b64url_decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Requires the TPM key and PCRs 0-7 as swtpm has them.
fn tpm_policy() -> String {
    let mut policy = String::from("required_key_assurance = \"tpm\"\n[expected_pcrs]\n");
    for pcr in 0..8 {
        policy.push_str(&format!("{pcr} = \"{ZERO_PCR}\"\n"));
    }
    policy
}

fn reason_rules(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn enrolled_tpm_evidence_is_allowed_and_the_key_survives_a_restart() {
    let mut device = Device::new();
    let enrolled = device.enroll();

    // `posture key` shows the TPM key and says the TPM is a simulator.
    let kd = device.key_dir();
    let out = device.ok(&["key", "--json", "--key-dir", s(&kd)]);
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["assurance"], "tpm");
    assert_eq!(key["tpm"]["software_tpm"], true);
    assert_eq!(key["tpm"]["manufacturer"], "IBM");
    assert!(key["pem"].as_str().unwrap().contains("BEGIN PUBLIC KEY"));
    let kid = key["kid"].as_str().unwrap().to_owned();

    let token = device.report(NONCE);
    let c = claims(&token);
    assert_eq!(c["key_assurance"], "tpm");
    assert!(c.get("key_fallback_reason").is_none());
    assert_eq!(c["tpm"]["software_tpm"], true);
    let quote = &c["tpm"]["quote"];
    assert_eq!(quote["pcrs"]["sha256"].as_object().unwrap().len(), 8);
    assert!(!quote["quote"]["attest"].as_str().unwrap().is_empty());

    let (code, v) = device.verify(&token, &enrolled, NONCE, &tpm_policy());
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["kid"], kid.as_str());
    assert_eq!(v["key_assurance"], "tpm");
    assert_eq!(v["ek_trust"], "ca");
    assert_eq!(v["attested_pcrs"]["7"], ZERO_PCR);
    // What a consumer reads is what was verified: the claim only under its own name.
    assert_eq!(v["claimed_key_assurance"], "tpm");
    assert!(v["claims"].get("key_assurance").is_none(), "{v:#}");
    // The quote's clock, for stateful verifiers refusing regressions.
    assert!(v["quote_clock"]["clock"].as_u64().unwrap() > 0, "{v:#}");
    assert!(v["quote_clock"]["reset_count"].is_u64());
    assert!(v["quote_clock"]["restart_count"].is_u64());

    // Power-cycle the TPM (state kept, new port): the same enrolled key signs again.
    device.swtpm.restart();
    let token = device.report(NONCE);
    let (code, v) = device.verify(&token, &enrolled, NONCE, &tpm_policy());
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["kid"], kid.as_str());

    // A policy expecting another boot state denies, naming the PCR.
    let other = tpm_policy().replace(
        &format!("7 = \"{ZERO_PCR}\""),
        &format!("7 = \"{}\"", "ab".repeat(32)),
    );
    let (code, v) = device.verify(&token, &enrolled, NONCE, &other);
    assert_eq!(code, 1);
    assert_eq!(reason_rules(&v), ["expected_pcrs"]);
    assert!(v["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("PCR 7"));

    // A policy requiring a PCR the device did not quote denies too.
    let (code, v) = device.verify(
        &token,
        &enrolled,
        NONCE,
        &format!("[expected_pcrs]\n10 = \"{ZERO_PCR}\"\n"),
    );
    assert_eq!(code, 1);
    assert!(v["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("not in the quote"));
}

/// The EK of `posture enroll request`'s output: its curve (`None` for RSA).
fn request_ek_curve(device: &Device) -> Option<u16> {
    use posture_core::attestation::tpm2::{PublicKey, TpmPublic};
    use posture_core::attestation::EnrollmentRequest;
    let request =
        EnrollmentRequest::from_json(&std::fs::read(device.path("request.json")).unwrap()).unwrap();
    match TpmPublic::parse(&request.ek_public).unwrap().key {
        PublicKey::Rsa { .. } => None,
        PublicKey::Ecc { curve, .. } => Some(curve),
    }
}

/// Issue 10 item 8: a TPM whose only EK certificate is an ECC one (swtpm's P-384 EK,
/// with the RSA EK certificate deleted) enrolls with that EK through the CLI, and its
/// evidence verifies with the enrolled device.
#[test]
fn a_tpm_with_only_an_ecc_ek_certificate_enrolls_and_its_evidence_verifies_issue_10() {
    use posture_core::attestation::tpm2::ECC_NIST_P384;
    let device = Device::new();
    device.swtpm.undefine_nv_index(0x01c0_0002);
    let enrolled = device.enroll();
    assert_eq!(request_ek_curve(&device), Some(ECC_NIST_P384));
    let token = device.report(NONCE);
    let (code, v) = device.verify(&token, &enrolled, NONCE, &tpm_policy());
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["key_assurance"], "tpm");
    assert_eq!(v["ek_trust"], "ca");
}

/// `[key] ek = "ecc"` makes `posture enroll request` present the ECC EK although the RSA
/// EK certificate is there; without it the RSA EK is presented.
#[test]
fn the_ek_setting_selects_the_ecc_ek() {
    use posture_core::attestation::tpm2::ECC_NIST_P384;
    let device = Device::new();
    let kd = device.key_dir();
    let req = device.path("request.json");
    device.ok(&["enroll", "request", "--out", s(&req), "--key-dir", s(&kd)]);
    assert_eq!(request_ek_curve(&device), None);
    std::fs::write(device.path("config.toml"), "[key]\nek = \"ecc\"\n").unwrap();
    let enrolled = device.enroll();
    assert_eq!(request_ek_curve(&device), Some(ECC_NIST_P384));
    let token = device.report(NONCE);
    let (code, v) = device.verify(&token, &enrolled, NONCE, &tpm_policy());
    assert_eq!(code, 0, "{v:#}");
}

#[test]
fn evidence_from_another_tpm_is_not_accepted_for_this_enrollment() {
    let a = Device::new();
    let b = Device::new();
    let enrolled_a = a.enroll();
    let token_b = b.report(NONCE);
    let (code, v) = a.verify(&token_b, &enrolled_a, NONCE, "");
    assert_eq!(code, 1);
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["code"], "unknown_kid");
}

#[test]
fn a_wrong_nonce_and_tampered_quotes_are_rejected() {
    let device = Device::new();
    let enrolled = device.enroll();
    let token = device.report(NONCE);

    // The nonce the verifier issued is not the one in the evidence.
    let (code, v) = device.verify(&token, &enrolled, "another-nonce-0123456789", "");
    assert_eq!(code, 1);
    assert_eq!(v["error"]["code"], "nonce");

    // Re-signed by the TPM device key without changes: still valid (the control case).
    let original = claims(&token);
    let resigned = device.resign_with_tpm_key(&token, &original);
    let (code, v) = device.verify(&resigned, &enrolled, NONCE, &tpm_policy());
    assert_eq!(code, 0, "{v:#}");

    // Tampered PCR value: the quote's signed digest no longer matches.
    let mut tampered = original.clone();
    tampered["tpm"]["quote"]["pcrs"]["sha256"]["0"] = Value::from("11".repeat(32));
    let token_t = device.resign_with_tpm_key(&token, &tampered);
    let (code, v) = device.verify(&token_t, &enrolled, NONCE, "");
    assert_eq!(code, 1);
    assert_eq!(v["error"]["code"], "quote");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PCR digest"),
        "{v:#}"
    );

    // The quote from this evidence moved into evidence with another report: the quote
    // is bound to the report it was made for.
    let mut other_report = original.clone();
    other_report["report"]["device"]["hostname"] = Value::from("someone-else");
    let token_r = device.resign_with_tpm_key(&token, &other_report);
    let (code, v) = device.verify(&token_r, &enrolled, NONCE, "");
    assert_eq!(code, 1);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("qualifying data"),
        "{v:#}"
    );

    // An old quote replayed under a new nonce.
    let mut replay = original.clone();
    replay["eat_nonce"] = Value::from("fresh-nonce-0123456789");
    let token_n = device.resign_with_tpm_key(&token, &replay);
    let (code, v) = device.verify(&token_n, &enrolled, "fresh-nonce-0123456789", "");
    assert_eq!(code, 1);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("qualifying data"),
        "{v:#}"
    );

    // Without the quote, a PCR policy cannot be met.
    let mut stripped = original.clone();
    stripped["tpm"].as_object_mut().unwrap().remove("quote");
    let token_s = device.resign_with_tpm_key(&token, &stripped);
    let (code, v) = device.verify(&token_s, &enrolled, NONCE, &tpm_policy());
    assert_eq!(code, 1);
    assert_eq!(reason_rules(&v), ["expected_pcrs"]);
}

#[test]
fn a_software_key_claiming_tpm_is_software() {
    let device = Device::new();
    let enrolled = device.enroll();
    // The device's own software key (a file an attacker could copy) claims tpm.
    std::fs::write(
        device.path("config.toml"),
        "[key]\nbackend = \"software\"\n",
    )
    .unwrap();
    let kd = device.key_dir();
    let out = device.ok(&["key", "--key-dir", s(&kd)]);
    let jwk = device.path("software.jwk");
    std::fs::write(&jwk, &out.stdout).unwrap();
    let token = device.report(NONCE);
    assert_eq!(claims(&token)["key_assurance"], "software");
    let software = posture_core::keys::software::SoftwareKey::load_or_create(&kd).unwrap();
    let mut c = claims(&token);
    c["key_assurance"] = Value::from("tpm");
    let forged = resign(&token, &c, &software);

    // Trusted as a plain key, it counts as software whatever it claims.
    let evidence = device.path("forged.jws");
    std::fs::write(&evidence, &forged).unwrap();
    let policy = device.path("tpm-policy.toml");
    std::fs::write(&policy, "required_key_assurance = \"tpm\"\n").unwrap();
    let out = device.posture(&[
        "verify",
        s(&evidence),
        "--key",
        s(&jwk),
        "--enrolled",
        s(&enrolled),
        "--nonce",
        NONCE,
        "--policy",
        s(&policy),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["key_assurance"], "software");
    assert_eq!(reason_rules(&v), ["required_key_assurance"]);
    // Against the enrollment alone, the software key is not trusted at all.
    let (code, v) = device.verify(&forged, &enrolled, NONCE, "");
    assert_eq!(code, 1);
    assert_eq!(v["error"]["code"], "unknown_kid");
}

#[test]
fn an_empty_pcr_selection_is_refused_before_quoting() {
    let device = Device::new();
    std::fs::write(device.path("config.toml"), "[key]\nquote_pcrs = []\n").unwrap();
    let kd = device.key_dir();
    let out = device.posture(&["report", "--nonce", NONCE, "--key-dir", s(&kd)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("quote_pcrs"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_tpm_falls_back_to_software_and_says_why() {
    let device = Device::new();
    // A TCTI pointing at a closed port: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    let kd = device.key_dir();
    let out = device.posture_with(
        &tcti,
        &[
            "report",
            "--nonce",
            NONCE,
            "--key-dir",
            s(&kd),
            "--only",
            "os",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("signing with a software key"), "{err}");
    assert!(err.contains("posture: fix:"), "{err}");
    // libtss2's own error log is silenced; only posture's lines remain.
    assert!(!err.contains("ERROR:esys"), "{err}");
    let c = claims(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(c["key_assurance"], "software");
    assert!(
        c["key_fallback_reason"].as_str().unwrap().contains("TPM"),
        "{c:#}"
    );
    assert!(c.get("tpm").is_none());

    // Fallback refused: an error, exit 2.
    for config in [
        "[key]\nbackend = \"tpm\"\n",
        "[key]\nallow_software_fallback = false\n",
    ] {
        std::fs::write(device.path("config.toml"), config).unwrap();
        let out = device.posture_with(&tcti, &["report", "--key-dir", s(&kd), "--only", "os"]);
        assert_eq!(out.status.code(), Some(2), "{config}: {}", stderr(&out));
        assert!(stderr(&out).contains("TPM"), "{}", stderr(&out));
    }
}

#[test]
fn posture_attest_files_pass_tpm2_checkquote() {
    let device = Device::new();
    let out_dir = device.path("attest");
    let kd = device.key_dir();
    let nonce = "5a".repeat(20);
    device.ok(&[
        "attest",
        "--nonce",
        &nonce,
        "--out",
        s(&out_dir),
        "--key-dir",
        s(&kd),
    ]);
    for file in [
        "quote.msg",
        "quote.sig",
        "ak.pub.pem",
        "qualifying-data.hex",
        "pcrs.bin",
        "quote.json",
    ] {
        assert!(out_dir.join(file).exists(), "{file}");
    }
    let qd = std::fs::read_to_string(out_dir.join("qualifying-data.hex")).unwrap();
    assert_eq!(qd.trim(), nonce);
    let check = |qd: &str| {
        Command::new("tpm2_checkquote")
            .current_dir(&out_dir)
            .args(["-u", "ak.pub.pem", "-m", "quote.msg", "-s", "quote.sig"])
            .args(["-f", "pcrs.bin", "-g", "sha256", "-q", qd])
            .output()
            .expect("tpm2_checkquote (install tpm2-tools: scripts/setup.sh)")
    };
    let ok = check(qd.trim());
    assert!(ok.status.success(), "{}", stderr(&ok));
    let bad = check(&"5b".repeat(20));
    assert!(!bad.status.success(), "a wrong qualifying data must fail");
}

/// A TPM device the user may not open (root-owned, mode 0600) falls back to the software
/// key and tells the person exactly how to get access. As root the test drops to `nobody`
/// (setpriv), since root may open anything.
#[test]
fn no_permission_on_the_tpm_device_says_to_join_the_tss_group() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let device = dir.path().join("tpmrm0");
    std::fs::write(&device, b"").unwrap();
    std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o600)).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();

    let is_root = posture_core::process::is_root();
    let mut command = if is_root {
        // nobody/nogroup; the user's files must then be nobody's.
        std::process::Command::new("chown")
            .args(["65534:65534", s(&home)])
            .status()
            .unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_posture"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_posture"))
    };
    let key_dir = home.join("keys");
    let out = command
        .args([
            "report",
            "--only",
            "os",
            "--key-dir",
            s(&key_dir),
            "--config",
        ])
        .arg(dir.path().join("config.toml"))
        .env("TCTI", format!("device:{}", device.display()))
        .env("HOME", &home)
        .env_remove("TSS2_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("sudo usermod -aG tss $USER"), "{err}");
    let c = claims(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(c["key_assurance"], "software");
    let reason = c["key_fallback_reason"].as_str().unwrap();
    assert!(reason.contains("no permission"), "{reason}");
}

#[test]
fn enrollment_needs_ek_roots_or_an_explicit_trust_on_first_use() {
    let device = Device::new();
    let kd = device.key_dir();
    let req = device.path("request.json");
    device.ok(&["enroll", "request", "--out", s(&req), "--key-dir", s(&kd)]);
    let (ch, pending) = (device.path("ch.json"), device.path("pending.json"));
    let begin = |extra: &[&str]| {
        let mut args = vec![
            "enrollment",
            "begin",
            s(&req),
            "--challenge-out",
            s(&ch),
            "--pending-out",
            s(&pending),
        ];
        args.extend_from_slice(extra);
        device.posture(&args)
    };
    assert_eq!(begin(&[]).status.code(), Some(2));
    // Another TPM's CA did not issue this EK certificate.
    let other = Swtpm::start();
    let roots = device.path("other-roots.pem");
    std::fs::write(&roots, other.ca_bundle()).unwrap();
    let out = begin(&["--ek-roots", s(&roots)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not chain"), "{}", stderr(&out));
    assert!(!ch.exists());
    // Trust on first use is possible, and recorded as such.
    assert_eq!(begin(&["--allow-unverified-ek"]).status.code(), Some(0));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pending).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the pending secret is owner-only");
    let resp = device.path("resp.json");
    device.ok(&[
        "enroll",
        "complete",
        s(&ch),
        "--out",
        s(&resp),
        "--key-dir",
        s(&kd),
    ]);
    let enrolled = device.path("device.json");
    device.ok(&[
        "enrollment",
        "finish",
        "--pending",
        s(&pending),
        s(&resp),
        "--out",
        s(&enrolled),
    ]);
    let record: Value = serde_json::from_slice(&std::fs::read(&enrolled).unwrap()).unwrap();
    assert_eq!(record["ek_trust"], "unverified");

    // Issue 10, item 1: an EK never checked against a CA is not a hardware-verified TPM
    // (a short script emulating a TPM enrolls just as well), so its key is
    // `tpm-unverified`: it does not meet `required_key_assurance = "tpm"`, even with
    // every PCR as expected, but meets `"tpm-unverified"`.
    let token = device.report(NONCE);
    assert_eq!(claims(&token)["key_assurance"], "tpm");
    let (code, v) = device.verify(&token, &enrolled, NONCE, &tpm_policy());
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["key_assurance"], "tpm-unverified");
    assert_eq!(v["claimed_key_assurance"], "tpm");
    assert_eq!(v["ek_trust"], "unverified");
    assert_eq!(reason_rules(&v), ["required_key_assurance"]);
    let tofu = tpm_policy().replace("\"tpm\"", "\"tpm-unverified\"");
    let (code, v) = device.verify(&token, &enrolled, NONCE, &tofu);
    assert_eq!(code, 0, "{v:#}");
}

/// Issue 10, item 4: a quote is bound to the token that carries it (its `jti` and `iat`
/// with the report). Without a verifier nonce, an old quote re-signed into evidence with
/// a new `iat` (whose old PCR values would still satisfy `expected_pcrs` after the PCRs
/// changed) is refused; so is one under a new `jti`.
#[test]
fn an_old_quote_in_newly_signed_evidence_is_refused_issue_10() {
    let device = Device::new();
    let enrolled = device.enroll();
    let token = device.report(NONCE);
    let original = claims(&token);

    // Control: the original verifies without a verifier nonce too.
    let (code, v) = device.verify_nonce(&token, &enrolled, None, &tpm_policy());
    assert_eq!(code, 0, "{v:#}");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut later = original.clone();
    later["iat"] = Value::from(original["iat"].as_u64().unwrap() + 1);
    later["exp"] = Value::from(now + 300);
    let mut new_jti = original.clone();
    new_jti["jti"] = Value::from("AAAAAAAAAAAAAAAAAAAAAA");
    for forged in [later, new_jti] {
        let token_f = device.resign_with_tpm_key(&token, &forged);
        let (code, v) = device.verify_nonce(&token_f, &enrolled, None, &tpm_policy());
        assert_eq!(code, 1, "{v:#}");
        assert_eq!(v["error"]["code"], "quote", "{v:#}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("qualifying data"),
            "{v:#}"
        );
    }
}

/// Serves `routes` (path to body) over HTTP/1.1 on 127.0.0.1 only; records the paths asked.
fn serve_on_localhost(
    routes: Vec<(String, Vec<u8>)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&asked);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request.split(' ').nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(path.clone());
            let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (base, asked)
}

fn ek_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../posture-core/tests/fixtures/ek/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text: String = String::from_utf8(pem.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    <base64ct::Base64 as base64ct::Encoding>::decode_vec(&text).unwrap()
}

/// Intel PTT keeps no EK certificate in NV: the verifier fetches it from the EK certificate
/// service (here a server on 127.0.0.1 serving Intel's real certificate at the path Intel
/// derives from this EK), with the intermediate from the device's NV chain.
#[test]
fn enrollment_fetches_the_ek_certificate_from_the_ek_certificate_service() {
    use base64ct::Encoding as _;
    let dir = tempfile::tempdir().unwrap();
    let intel_pem = ek_fixture("intel-ek-rsa.pem");
    let intel_der = pem_to_der(&intel_pem);
    // The EK as the TPM reports it: TCG default RSA template, Intel's modulus.
    let at = intel_der
        .windows(5)
        .position(|w| w == [0x02, 0x82, 0x01, 0x01, 0x00])
        .unwrap();
    let modulus = &intel_der[at + 5..at + 5 + 256];
    let mut ek = hex_bytes("0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00060080004300100800000000000100");
    ek.extend_from_slice(modulus);
    let ak = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/tpm_structures/swtpm-ak.tpmt_public"
    ))
    .unwrap();
    let request = serde_json::json!({
        "version": 1,
        "ek_public": base64ct::Base64::encode_string(&ek),
        "ek_chain": [base64ct::Base64::encode_string(&pem_to_der(&ek_fixture("intel-ek-intermediate-spth.pem")))],
        "ak_public": base64ct::Base64::encode_string(&ak),
    });
    let req = dir.path().join("req.json");
    std::fs::write(&req, request.to_string()).unwrap();
    let roots = dir.path().join("intel-root.pem");
    std::fs::write(&roots, ek_fixture("intel-ek-root.pem")).unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();

    let path = "/ekcertservice/WVEG2rRwkQ7m3RpXlUphgo6Y2HLxl18h6ZZkkOAdnBE%3D".to_owned();
    let (base, asked) = serve_on_localhost(vec![(path.clone(), intel_pem)]);
    let begin = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_posture"))
            .args(["enrollment", "begin", s(&req), "--ek-roots", s(&roots)])
            .args(extra)
            .arg("--challenge-out")
            .arg(dir.path().join("ch.json"))
            .arg("--pending-out")
            .arg(dir.path().join("pending.json"))
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    let out = begin(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no EK certificate"),
        "{}",
        stderr(&out)
    );

    let template = format!("{base}/ekcertservice/{{intel}}");
    let out = begin(&["--ek-cert-service", &template, "--fetch-timeout", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(*asked.lock().unwrap(), vec![path]);
    let pending: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("pending.json")).unwrap()).unwrap();
    assert_eq!(pending["ek_trust"], "ca");
    assert!(dir.path().join("ch.json").exists());
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The TSS libraries (and libcrypto, which only they bring) are loaded when a TPM is
/// first used, not at every start (`posture check` never needs them; issue 17's 10 ms
/// budget). glibc's loader lists what it loads at start under LD_TRACE_LOADED_OBJECTS
/// (what `ldd` does), without running the program. A TSS function missing from
/// posture-agent's `tpm::lazy::SYMBOLS` would bring the libraries back here.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_tss_libraries_are_not_loaded_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_posture"))
        .arg("--version")
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("libc.so"),
        "{listed}"
    );
    assert!(
        !listed.contains("libtss2"),
        "TSS loaded at start:\n{listed}"
    );
    assert!(
        !listed.contains("libcrypto"),
        "libcrypto loaded at start:\n{listed}"
    );
}
