//! The committed JSON Schema must match the one generated from the code.
//! Regenerate with `POSTURE_BLESS=1 cargo test -p posture-core --test schema`.

use std::path::PathBuf;

#[test]
fn committed_report_schema_matches_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/report.schema.json");
    let generated = serde_json::to_string_pretty(&posture_core::report_schema()).unwrap() + "\n";
    if std::env::var_os("POSTURE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/report.schema.json is out of date with the Rust model; \
         regenerate with POSTURE_BLESS=1 cargo test -p posture-core --test schema"
    );
}

#[test]
fn committed_evidence_claims_schema_matches_code() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/evidence-claims.schema.json");
    let generated =
        serde_json::to_string_pretty(&posture_core::evidence::claims_schema()).unwrap() + "\n";
    if std::env::var_os("POSTURE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/evidence-claims.schema.json is out of date with the Rust types; \
         regenerate with POSTURE_BLESS=1 cargo test -p posture-core --test schema"
    );
}

/// Issue 10, item 9: the committed schemas compile in Ajv 8 with its default strict
/// options (schemars' `format: "uint32"` did not: "unknown format"), and a second,
/// independent validator accepts what the code produces and refuses what it must not.
/// Ajv is installed into `posture-core/tests/ajv/node_modules` by `scripts/setup.sh`.
#[test]
fn committed_schemas_compile_and_validate_in_ajv_strict_issue_10() {
    use posture_core::evidence::{build_claims, EvidenceOptions};
    use posture_core::keys::software::SoftwareKey;
    use posture_core::{Finding, Remediation};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ajv = root.join("tests/ajv");
    assert!(
        ajv.join("node_modules/ajv").is_dir(),
        "Ajv is not installed: run scripts/setup.sh (npm ci in posture-core/tests/ajv)"
    );
    let dir = tempfile::tempdir().unwrap();
    let key = SoftwareKey::load_or_create(&dir.path().join("key")).unwrap();
    let report = posture_test_support::report_with(vec![
        Finding::pass("os", "Debian 12").observe("id", "debian"),
        Finding::fail("firewall", "off", Remediation::new("sudo ufw enable")),
    ]);
    let options = EvidenceOptions {
        nonce: Some("0123456789abcdef".into()),
        ..EvidenceOptions::default()
    };
    let claims = build_claims(&report, &key, &options, std::time::SystemTime::now()).unwrap();
    let claims = serde_json::to_value(&claims).unwrap();
    let report = serde_json::to_value(&report).unwrap();

    let mut bad_report = report.clone();
    bad_report["findings"][0]["status"] = "maybe".into();
    let mut negative_count = report.clone();
    negative_count["summary"]["pass"] = (-1).into();
    let mut bad_claims = claims.clone();
    bad_claims["exp"] = (-5).into();
    let mut wrong_assurance = claims.clone();
    wrong_assurance["key_assurance"] = "hsm".into();

    let cases = [
        ("report.schema.json", "report", &report, true),
        ("report.schema.json", "bad-status", &bad_report, false),
        (
            "report.schema.json",
            "negative-count",
            &negative_count,
            false,
        ),
        ("evidence-claims.schema.json", "claims", &claims, true),
        (
            "evidence-claims.schema.json",
            "negative-exp",
            &bad_claims,
            false,
        ),
        (
            "evidence-claims.schema.json",
            "bad-assurance",
            &wrong_assurance,
            false,
        ),
    ];
    for (schema, name, instance, expect_valid) in cases {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(instance).unwrap()).unwrap();
        let out = std::process::Command::new("node")
            .arg(ajv.join("check.mjs"))
            .arg(root.join("../schemas").join(schema))
            .arg(&file)
            .output()
            .expect("node (installed by scripts/setup.sh)");
        assert!(
            out.status.success(),
            "{schema}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            result["valid"], expect_valid,
            "{schema} on {name}: {}",
            result["errors"]
        );
    }
}
