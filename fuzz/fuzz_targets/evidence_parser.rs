//! Untrusted evidence: the whole verifier on arbitrary bytes, plus the claims parser and
//! the JWK parser directly (random input never carries a valid signature, so the payload
//! parser is also driven on its own).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use posture_core::evidence::EvidenceClaims;
use posture_core::jose::{check_json, Jwk, MAX_JSON_DEPTH};
use posture_core::verify::{Verifier, VerifyOptions};

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let mut verifier = Verifier::new();
        if let Ok(secret) = p256::SecretKey::from_slice(&[7u8; 32]) {
            verifier.add_key(secret.public_key(), None);
        }
        verifier
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = verifier().verify(data, &VerifyOptions::default());
    if check_json(data, MAX_JSON_DEPTH).is_ok() {
        let _ = serde_json::from_slice::<EvidenceClaims>(data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Verifier::from_keys_text(text);
        if let Ok(jwk) = Jwk::from_json(text) {
            let _ = jwk.to_public_key();
        }
    }
});
