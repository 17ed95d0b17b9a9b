//! Exports: the CAEP SET is a verifiable ES256 JWS with the CAEP event; Intune and OPA
//! documents carry the findings.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use posture_core::evidence::{sign_evidence, EvidenceOptions};
use posture_core::exports::caep::{
    compliance_change, ComplianceChange, ComplianceStatus, SetOptions, DEVICE_COMPLIANCE_CHANGE,
};
use posture_core::exports::{intune, opa};
use posture_core::jose::b64url_decode;
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::{key_id, KeyAssurance, Signer};
use posture_core::policy::Policy;
use posture_core::verify::{Verifier, VerifyOptions};
use posture_core::{Finding, Report};
use serde_json::Value;

fn report() -> Report {
    posture_test_support::report_with(vec![
        Finding::pass("os", "Debian 12"),
        posture_test_support::firewall_off(),
    ])
}

fn key() -> (tempfile::TempDir, SoftwareKey) {
    posture_test_support::software_key()
}

#[test]
fn caep_set_is_signed_and_carries_the_change() {
    let (_dir, key) = key();
    let r = report();
    let decision = Policy::from_toml_str("required_checks = [\"firewall\"]\n")
        .unwrap()
        .decide_report(&r, KeyAssurance::Software);
    let event_time = SystemTime::now() - Duration::from_secs(5);
    let change = ComplianceChange {
        device_id: r.device.id.clone(),
        previous: ComplianceStatus::Compliant,
        current: ComplianceStatus::NotCompliant,
        event_time,
        reasons: decision.reasons.clone(),
    };
    let options = SetOptions {
        issuer: None,
        audience: Some("https://idp.example".into()),
    };
    let set = compliance_change(&change, &key, &options).unwrap();

    let parts: Vec<&str> = set.split('.').collect();
    let header: Value = serde_json::from_slice(&b64url_decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["typ"], "secevent+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], key_id(&key.public_key()));
    let sig = Signature::from_slice(&b64url_decode(parts[2]).unwrap()).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    VerifyingKey::from(&key.public_key())
        .verify(input.as_bytes(), &sig)
        .unwrap();

    let claims: Value = serde_json::from_slice(&b64url_decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://idp.example");
    assert_eq!(claims["sub_id"]["format"], "opaque");
    assert_eq!(claims["sub_id"]["id"], r.device.id);
    assert!(claims["iss"]
        .as_str()
        .unwrap()
        .starts_with("urn:ietf:params:oauth:jwk-thumbprint:sha-256:"));
    let event = &claims["events"][DEVICE_COMPLIANCE_CHANGE];
    assert_eq!(event["previous_status"], "compliant");
    assert_eq!(event["current_status"], "not-compliant");
    assert_eq!(
        event["event_timestamp"],
        event_time.duration_since(UNIX_EPOCH).unwrap().as_secs()
    );
    assert!(event["reason_admin"]["en"]
        .as_str()
        .unwrap()
        .contains("no firewall is active"));
    assert_eq!(
        event["reason_user"]["en"],
        "Enable the firewall: sudo ufw enable"
    );
    // Our evidence verifier must not accept a SET as evidence (typ differs).
    let mut verifier = Verifier::new();
    verifier.add_key(key.public_key(), None);
    assert!(verifier
        .verify(set.as_bytes(), &VerifyOptions::default())
        .is_err());
}

#[test]
fn intune_discovery_is_one_line_of_settings() {
    let line = intune::discovery_json(&report(), KeyAssurance::Software, false, "running");
    assert!(!line.contains('\n'));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["posture_daemon"], "running");
    assert_eq!(v["posture_compliant"], false);
    assert_eq!(v["os_version"], "12");
    assert_eq!(v["key_assurance"], "software");
    assert_eq!(v["os"], "pass");
    assert_eq!(v["firewall"], "fail");

    let line = intune::unreachable_json(&["os", "firewall"]);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["posture_daemon"], "unreachable");
    assert_eq!(v["posture_compliant"], false);
    assert_eq!(v["firewall"], "unknown");
}

const DOCS: &str = "https://docs.example.org/posture/remediation.html";

/// Issue 13: the rules file is generic (nothing of the machine that generated it), with
/// links into the remediation page and commands that exist.
#[test]
fn intune_rules_are_generic_with_links_to_the_remediation_page_issue_13() {
    let checks = [("os", "Operating system"), ("firewall", "Firewall")];
    let (rules, notes) = intune::rules(&checks, None, DOCS);
    assert!(notes.is_empty());
    let all = rules["Rules"].as_array().unwrap();
    let names: Vec<&str> = all
        .iter()
        .map(|r| r["SettingName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["posture_daemon", "posture_compliant", "os", "firewall"]
    );
    let fw = &all[3];
    assert_eq!(fw["Operator"], "IsEquals");
    assert_eq!(fw["DataType"], "String");
    assert_eq!(fw["Operand"], "pass");
    assert_eq!(fw["MoreInfoUrl"], format!("{DOCS}#firewall"));
    assert_eq!(fw["RemediationStrings"][0]["Language"], "en_US");
    assert_eq!(
        fw["RemediationStrings"][0]["Title"],
        "Firewall: the check does not pass"
    );
    assert_eq!(all[1]["DataType"], "Boolean");
    assert_eq!(all[1]["Operand"], true);
    // Nothing of the report the old rules were built from (its summaries, its links).
    let text = rules.to_string();
    for host_specific in [
        "no firewall is active",
        "ufw",
        "laptop",
        "Debian",
        "example.invalid",
    ] {
        assert!(!text.contains(host_specific), "{host_specific} in {text}");
    }

    let policy = Policy::from_toml_str(
        "required_checks = [\"firewall\"]\nrequired_key_assurance = \"tpm\"\n[min_os_version]\ndebian = \"12\"\n",
    )
    .unwrap();
    let (rules, notes) = intune::rules(&checks, Some(&policy), DOCS);
    assert!(notes.is_empty());
    let names: Vec<&str> = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SettingName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "posture_daemon",
            "posture_compliant",
            "firewall",
            "os_version",
            "key_assurance"
        ]
    );
    assert_eq!(rules["Rules"][3]["DataType"], "Version");
    assert_eq!(rules["Rules"][3]["Operand"], "12");
    assert_eq!(rules["Rules"][4]["Operand"], "tpm");

    // Several distributions: no single os_version rule can say it; a note says why.
    let policy = Policy::from_toml_str(
        "required_checks = [\"os\"]\n[min_os_version]\ndebian = \"12\"\nubuntu = \"24.04\"\n",
    )
    .unwrap();
    let (rules, notes) = intune::rules(&checks, Some(&policy), DOCS);
    assert_eq!(rules["Rules"].as_array().unwrap().len(), 3);
    assert_eq!(notes.len(), 1, "{notes:?}");
}

#[test]
fn opa_input_indexes_findings_by_id() {
    let (_dir, key) = key();
    let token = sign_evidence(&report(), &key, &EvidenceOptions::default()).unwrap();
    let mut verifier = Verifier::new();
    verifier.add_key(key.public_key(), None);
    let verified = verifier
        .verify(token.as_bytes(), &VerifyOptions::default())
        .unwrap();
    let input = opa::input_document(&verified);
    assert_eq!(input["verified"], true);
    assert_eq!(input["key_assurance"], "software");
    assert_eq!(input["findings"]["firewall"]["status"], "fail");
    assert_eq!(input["os"]["id"], "debian");
    assert_eq!(input["claims"]["jti"], verified.claims.jti);
}
