//! Interop with an independent JOSE implementation: jwcrypto (Python, OpenSSL-backed),
//! installed by scripts/setup.sh as Debian's python3-jwcrypto.
//!
//! - evidence and CAEP SETs signed here verify with jwcrypto, and its RFC 7638 thumbprint
//!   equals our `kid`;
//! - an ES256 token that jwcrypto signs with the device key verifies with our verifier.
//!
//! The interpreter is `/usr/bin/python3` (Debian's, which sees python3-jwcrypto) unless
//! `POSTURE_PYTHON` names another one.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use posture_core::evidence::{build_claims, sign_evidence, EvidenceOptions, EVIDENCE_TYP};
use posture_core::exports::caep::{
    compliance_change, ComplianceChange, ComplianceStatus, SetOptions, DEVICE_COMPLIANCE_CHANGE,
};
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::{key_id, Jwk, Signer};
use posture_core::verify::{Verifier, VerifyError, VerifyOptions};
use posture_core::Report;
use serde_json::{json, Value};

fn python() -> PathBuf {
    std::env::var_os("POSTURE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/jose_check.py")
}

fn run_python(args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("python3 runs (install with scripts/setup.sh)");
    assert!(
        out.status.success(),
        "jwcrypto failed (is python3-jwcrypto installed? scripts/setup.sh installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn report() -> Report {
    posture_test_support::laptop_report()
}

struct Fixture {
    dir: tempfile::TempDir,
    key: SoftwareKey,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = SoftwareKey::load_or_create(&dir.path().join("key")).unwrap();
        Self { dir, key }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn jwk_file(&self) -> PathBuf {
        let jwk = Jwk::from_public_key(&self.key.public_key());
        self.write("device.jwk", &serde_json::to_string(&jwk).unwrap())
    }

    fn jwcrypto_verify(&self, token: &str, kind: &str) -> Value {
        let token_file = self.write("token", token);
        let out = run_python(&[
            Path::new("verify"),
            &token_file,
            &self.jwk_file(),
            Path::new(kind),
        ]);
        serde_json::from_str(&out).unwrap()
    }
}

#[test]
fn our_evidence_verifies_with_jwcrypto() {
    let f = Fixture::new();
    let options = EvidenceOptions {
        nonce: Some("0123456789abcdef".into()),
        audience: Some("proxy".into()),
        ttl: Duration::from_secs(300),
    };
    let token = sign_evidence(&report(), &f.key, &options).unwrap();
    let checked = f.jwcrypto_verify(&token, "evidence");
    assert_eq!(checked["header"]["alg"], "ES256");
    assert_eq!(checked["header"]["typ"], EVIDENCE_TYP);
    // Our kid is the RFC 7638 thumbprint as jwcrypto computes it.
    let kid = key_id(&f.key.public_key());
    assert_eq!(checked["header"]["kid"], kid);
    assert_eq!(checked["thumbprint"], kid);
    assert_eq!(checked["claims"]["eat_nonce"], "0123456789abcdef");
    assert_eq!(checked["claims"]["report"]["findings"][1]["id"], "firewall");
}

#[test]
fn jwcrypto_rejects_our_evidence_with_a_flipped_bit() {
    let f = Fixture::new();
    let token = sign_evidence(&report(), &f.key, &EvidenceOptions::default()).unwrap();
    // Change one signature character (keeping it valid base64url).
    let mut bytes = token.into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let token_file = f.write("token", std::str::from_utf8(&bytes).unwrap());
    let out = Command::new(python())
        .arg(script())
        .args([Path::new("verify"), &token_file, &f.jwk_file()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "jwcrypto accepted a tampered token");
}

#[test]
fn our_caep_set_verifies_with_jwcrypto() {
    let f = Fixture::new();
    let change = ComplianceChange {
        device_id: "5f".repeat(32),
        previous: ComplianceStatus::Compliant,
        current: ComplianceStatus::NotCompliant,
        event_time: SystemTime::now(),
        reasons: Vec::new(),
    };
    let set = compliance_change(&change, &f.key, &SetOptions::default()).unwrap();
    let checked = f.jwcrypto_verify(&set, "set");
    assert_eq!(checked["header"]["typ"], "secevent+jwt");
    assert_eq!(
        checked["claims"]["events"][DEVICE_COMPLIANCE_CHANGE]["current_status"],
        "not-compliant"
    );
}

#[test]
fn our_verifier_accepts_a_token_jwcrypto_signed_with_the_device_key() {
    let f = Fixture::new();
    let claims = build_claims(
        &report(),
        &f.key,
        &EvidenceOptions {
            nonce: Some("0123456789abcdef".into()),
            ..EvidenceOptions::default()
        },
        SystemTime::now(),
    )
    .unwrap();
    let kid = key_id(&f.key.public_key());
    let header = json!({"alg": "ES256", "typ": EVIDENCE_TYP, "kid": kid});
    let header_file = f.write("header.json", &header.to_string());
    let claims_file = f.write("claims.json", &serde_json::to_string(&claims).unwrap());
    let token = run_python(&[Path::new("sign"), f.key.path(), &header_file, &claims_file]);

    let mut verifier = Verifier::new();
    verifier.add_key(f.key.public_key(), None);
    let options = VerifyOptions {
        nonce: Some("0123456789abcdef".into()),
        ..VerifyOptions::default()
    };
    let verified = verifier.verify(token.as_bytes(), &options).unwrap();
    assert_eq!(verified.claims, claims);

    // And the same signer with another typ is refused: interop does not loosen checks.
    let header_file = f.write(
        "header.json",
        &json!({"alg": "ES256", "kid": kid}).to_string(),
    );
    let token = run_python(&[Path::new("sign"), f.key.path(), &header_file, &claims_file]);
    assert_eq!(
        verifier.verify(token.as_bytes(), &options).unwrap_err(),
        VerifyError::Type { found: None }
    );
}
