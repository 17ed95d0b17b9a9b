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
