//! The example in docs/evidence.md is real: its token verifies with its key, and the
//! claims shown are exactly the token's payload.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use posture_core::evidence::EvidenceClaims;
use posture_core::verify::{Verifier, VerifyOptions};

/// The fenced block that follows `<!-- marker -->`.
fn block(doc: &str, marker: &str) -> String {
    let start = doc.find(&format!("<!-- {marker}")).unwrap();
    let rest = &doc[start..];
    let open = rest.find("```").unwrap();
    let body = &rest[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

#[test]
fn documented_example_verifies_and_matches_its_claims() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/evidence.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let key = block(&doc, "key-example");
    let token: String = block(&doc, "token-example").split_whitespace().collect();
    let shown: EvidenceClaims = serde_json::from_str(&block(&doc, "claims-example")).unwrap();

    let verifier = Verifier::from_keys_text(&key).unwrap();
    let options = VerifyOptions {
        nonce: Some("5hG2kq9vR3xY7wLp".into()),
        audience: Some("https://proxy.example.com".into()),
        now: Some(UNIX_EPOCH + Duration::from_secs(shown.iat + 1)),
        ..VerifyOptions::default()
    };
    let verified = verifier.verify(token.as_bytes(), &options).unwrap();
    assert_eq!(verified.claims, shown);
}
