//! Evidence end to end: signing with the software key, verifying, and every rejection the
//! verifier must make, each its own test.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use posture_core::evidence::{sign_evidence, sign_evidence_at, EvidenceOptions, EVIDENCE_TYP};
use posture_core::jose::{b64url_decode, b64url_encode};
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::{KeyAssurance, Signer};
use posture_core::verify::{Verifier, VerifyError, VerifyOptions};
use posture_core::Report;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const NONCE: &str = "b3f1c2d4e5a6978812";
const AUD: &str = "https://proxy.example";

fn report() -> Report {
    posture_test_support::laptop_report()
}

struct Setup {
    _dir: tempfile::TempDir,
    key: SoftwareKey,
    verifier: Verifier,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = SoftwareKey::load_or_create(&dir.path().join("key")).unwrap();
    let mut verifier = Verifier::new();
    verifier.add_key(key.public_key(), None);
    Setup {
        _dir: dir,
        key,
        verifier,
    }
}

fn sign_options() -> EvidenceOptions {
    EvidenceOptions {
        nonce: Some(NONCE.into()),
        audience: Some(AUD.into()),
        ttl: Duration::from_secs(300),
    }
}

fn verify_options() -> VerifyOptions {
    VerifyOptions {
        nonce: Some(NONCE.into()),
        audience: Some(AUD.into()),
        ..VerifyOptions::default()
    }
}

fn good_token(s: &Setup) -> String {
    sign_evidence(&report(), &s.key, &sign_options()).unwrap()
}

fn verify(s: &Setup, token: &str) -> Result<posture_core::verify::VerifiedPosture, VerifyError> {
    s.verifier.verify(token.as_bytes(), &verify_options())
}

fn parts(token: &str) -> (Value, Value, Vec<u8>) {
    let p: Vec<&str> = token.split('.').collect();
    (
        serde_json::from_slice(&b64url_decode(p[0]).unwrap()).unwrap(),
        serde_json::from_slice(&b64url_decode(p[1]).unwrap()).unwrap(),
        b64url_decode(p[2]).unwrap(),
    )
}

/// Signs arbitrary header and payload bytes with ES256 and a raw key.
fn sign_raw(header: &[u8], payload: &[u8], key: &SigningKey) -> String {
    let input = format!("{}.{}", b64url_encode(header), b64url_encode(payload));
    let sig: Signature = key.sign(input.as_bytes());
    // Verifiers take only low-S signatures (RFC 6979 signers may return either form).
    let sig = sig.normalize_s().unwrap_or(sig);
    format!("{input}.{}", b64url_encode(&sig.to_bytes()))
}

/// A raw signing key equal to the device key (read back from its PKCS#8 file).
fn raw_key(s: &Setup) -> SigningKey {
    use p256::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(s.key.path()).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}

fn resign_with(s: &Setup, header: Value, payload: Value) -> String {
    sign_raw(
        header.to_string().as_bytes(),
        payload.to_string().as_bytes(),
        &raw_key(s),
    )
}

fn raw_part(token: &str, part: usize) -> String {
    String::from_utf8(b64url_decode(token.split('.').nth(part).unwrap()).unwrap()).unwrap()
}

fn flip_bit(token: &str, part: usize, byte: usize) -> String {
    let mut p: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut raw = b64url_decode(&p[part]).unwrap();
    let i = byte % raw.len();
    raw[i] ^= 0x01;
    p[part] = b64url_encode(&raw);
    p.join(".")
}

#[test]
fn good_evidence_verifies_with_every_claim() {
    let s = setup();
    let token = good_token(&s);
    let verified = verify(&s, &token).unwrap();
    assert_eq!(verified.kid, s.key.public_key().pipe_kid());
    assert_eq!(verified.key_assurance, KeyAssurance::Software);
    assert_eq!(
        verified.claims.report,
        report_without_time(&verified.claims.report)
    );
    assert_eq!(verified.claims.eat_nonce.as_deref(), Some(NONCE));
    assert_eq!(verified.claims.swname, "posture");
    assert_eq!(verified.claims.exp - verified.claims.iat, 300);

    let (header, claims, sig) = parts(&token);
    assert_eq!(
        header,
        json!({"alg": "ES256", "typ": EVIDENCE_TYP, "kid": verified.kid})
    );
    assert_eq!(sig.len(), 64);
    for claim in [
        "eat_nonce",
        "ueid",
        "swname",
        "swversion",
        "eat_profile",
        "cnf",
        "iat",
        "exp",
        "aud",
        "jti",
        "key_assurance",
        "report",
    ] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
    assert_eq!(claims["report"]["findings"][1]["status"], "fail");
}

trait PipeKid {
    fn pipe_kid(&self) -> String;
}
impl PipeKid for p256::PublicKey {
    fn pipe_kid(&self) -> String {
        posture_core::keys::key_id(self)
    }
}

fn report_without_time(r: &Report) -> Report {
    // The fixture report's timestamps are "now"; compare everything else.
    let mut expected = report();
    expected.collected_at = r.collected_at;
    for (e, g) in expected.findings.iter_mut().zip(&r.findings) {
        e.collected_at = g.collected_at;
    }
    expected
}

#[test]
fn verifies_with_pem_and_jwk_keys() {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let s = setup();
    let token = good_token(&s);
    let pem = s
        .key
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let jwk = serde_json::to_string(&posture_core::keys::Jwk::from_public_key(
        &s.key.public_key(),
    ))
    .unwrap();
    for text in [pem, jwk.clone(), format!(r#"{{"keys":[{jwk}]}}"#)] {
        let verifier = Verifier::from_keys_text(&text).unwrap();
        assert!(verifier.verify(token.as_bytes(), &verify_options()).is_ok());
    }
}

#[test]
fn rejects_flipped_bit_in_header() {
    let s = setup();
    let token = good_token(&s);
    // Flip a bit inside the typ value: still valid JSON, same alg and kid.
    let at = raw_part(&token, 0).find("evidence").unwrap();
    let err = verify(&s, &flip_bit(&token, 0, at)).unwrap_err();
    assert_eq!(err, VerifyError::Signature);
}

#[test]
fn rejects_flipped_bit_in_payload() {
    let s = setup();
    let token = good_token(&s);
    let at = raw_part(&token, 1).find("laptop-7").unwrap();
    let err = verify(&s, &flip_bit(&token, 1, at)).unwrap_err();
    assert_eq!(err, VerifyError::Signature);
}

#[test]
fn rejects_flipped_bit_in_signature() {
    let s = setup();
    let token = good_token(&s);
    for byte in [0, 31, 32, 63] {
        let err = verify(&s, &flip_bit(&token, 2, byte)).unwrap_err();
        assert_eq!(err, VerifyError::Signature, "byte {byte}");
    }
}

#[test]
fn rejects_alg_none() {
    let s = setup();
    let (mut header, claims, _) = parts(&good_token(&s));
    header["alg"] = json!("none");
    let token = format!(
        "{}.{}.",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    assert_eq!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Algorithm("none".into())
    );
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn rejects_hs256_signed_with_the_public_key_as_secret() {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let s = setup();
    let (mut header, claims, _) = parts(&good_token(&s));
    header["alg"] = json!("HS256");
    let input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    // The classic confusion attack: the public key (as PEM, as a verifier stores it) used
    // as the HMAC secret.
    let secret = s
        .key
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let mac = hmac_sha256(secret.as_bytes(), input.as_bytes());
    let token = format!("{input}.{}", b64url_encode(&mac));
    assert_eq!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Algorithm("HS256".into())
    );
}

#[test]
fn rejects_es384_header() {
    let s = setup();
    let (mut header, claims, _) = parts(&good_token(&s));
    header["alg"] = json!("ES384");
    let token = resign_with(&s, header, claims);
    assert_eq!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Algorithm("ES384".into())
    );
}

#[test]
fn rejects_rs256_header() {
    let s = setup();
    let (mut header, claims, _) = parts(&good_token(&s));
    header["alg"] = json!("RS256");
    let token = resign_with(&s, header, claims);
    assert_eq!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Algorithm("RS256".into())
    );
}

#[test]
fn rejects_wrong_typ() {
    let s = setup();
    let (mut header, claims, _) = parts(&good_token(&s));
    header["typ"] = json!("JWT");
    let token = resign_with(&s, header, claims);
    assert_eq!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Type {
            found: Some("JWT".into())
        }
    );
}

#[test]
fn rejects_unknown_kid() {
    let s = setup();
    let (mut header, claims, _) = parts(&good_token(&s));
    header["kid"] = json!("not-a-trusted-key");
    let token = resign_with(&s, header, claims);
    assert_eq!(
        verify(&s, &token).unwrap_err(),
        VerifyError::UnknownKid("not-a-trusted-key".into())
    );
}

#[test]
fn ignores_embedded_jwk_and_key_urls() {
    // An attacker's own key in the header must not be used, even when it matches the
    // signature: the verifier only knows the device's key.
    let s = setup();
    let attacker = setup();
    let (mut header, mut claims, _) = parts(&good_token(&s));
    let attacker_jwk = posture_core::keys::Jwk::from_public_key(&attacker.key.public_key());
    header["jwk"] = serde_json::to_value(&attacker_jwk).unwrap();
    header["jku"] = json!("https://attacker.example/jwks.json");
    header["x5u"] = json!("https://attacker.example/cert.pem");
    header["x5c"] = json!(["MIIB"]);
    claims["cnf"]["jwk"] = serde_json::to_value(&attacker_jwk).unwrap();
    let token = resign_with(&attacker, header, claims);
    assert_eq!(verify(&s, &token).unwrap_err(), VerifyError::Signature);
}

#[test]
fn rejects_another_devices_key() {
    let s = setup();
    let other = setup();
    let token = good_token(&other);
    let other_kid = other.key.public_key().pipe_kid();
    assert_eq!(
        verify(&s, &token).unwrap_err(),
        VerifyError::UnknownKid(other_kid)
    );
}

#[test]
fn rejects_cnf_bound_to_another_key() {
    let s = setup();
    let other = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    claims["cnf"]["jwk"] = serde_json::to_value(posture_core::keys::Jwk::from_public_key(
        &other.key.public_key(),
    ))
    .unwrap();
    let token = resign_with(&s, header, claims);
    assert_eq!(verify(&s, &token).unwrap_err(), VerifyError::KeyBinding);
}

#[test]
fn rejects_expired() {
    let s = setup();
    let then = SystemTime::now() - Duration::from_secs(3600);
    let token = sign_evidence_at(&report(), &s.key, &sign_options(), then).unwrap();
    assert!(matches!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Expired { .. }
    ));
}

#[test]
fn accepts_expiry_within_skew_only() {
    let s = setup();
    let now = SystemTime::now();
    // Expired 30 s ago: inside the 60 s skew.
    let token = sign_evidence_at(
        &report(),
        &s.key,
        &sign_options(),
        now - Duration::from_secs(330),
    )
    .unwrap();
    assert!(verify(&s, &token).is_ok());
    let token = sign_evidence_at(
        &report(),
        &s.key,
        &sign_options(),
        now - Duration::from_secs(400),
    )
    .unwrap();
    assert!(matches!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Expired { .. }
    ));
}

#[test]
fn rejects_iat_in_the_future() {
    let s = setup();
    let later = SystemTime::now() + Duration::from_secs(600);
    let token = sign_evidence_at(&report(), &s.key, &sign_options(), later).unwrap();
    assert!(matches!(
        verify(&s, &token).unwrap_err(),
        VerifyError::IssuedInFuture { .. }
    ));
}

#[test]
fn rejects_nbf_in_the_future() {
    let s = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["nbf"] = json!(now + 600);
    let token = resign_with(&s, header, claims);
    assert!(matches!(
        verify(&s, &token).unwrap_err(),
        VerifyError::NotYetValid { .. }
    ));
}

#[test]
fn rejects_evidence_older_than_max_age() {
    let s = setup();
    let token = sign_evidence_at(
        &report(),
        &s.key,
        &EvidenceOptions {
            ttl: Duration::from_secs(3600),
            ..sign_options()
        },
        SystemTime::now() - Duration::from_secs(600),
    )
    .unwrap();
    let options = VerifyOptions {
        max_age: Some(Duration::from_secs(120)),
        ..verify_options()
    };
    assert!(matches!(
        s.verifier.verify(token.as_bytes(), &options).unwrap_err(),
        VerifyError::TooOld { .. }
    ));
    assert!(verify(&s, &token).is_ok());
}

#[test]
fn rejects_wrong_nonce() {
    let s = setup();
    let token = good_token(&s);
    let options = VerifyOptions {
        nonce: Some("b3f1c2d4e5a6978813".into()),
        ..verify_options()
    };
    assert_eq!(
        s.verifier.verify(token.as_bytes(), &options).unwrap_err(),
        VerifyError::Nonce
    );
}

#[test]
fn rejects_missing_nonce_when_one_was_issued() {
    let s = setup();
    let token = sign_evidence(
        &report(),
        &s.key,
        &EvidenceOptions {
            nonce: None,
            ..sign_options()
        },
    )
    .unwrap();
    assert_eq!(verify(&s, &token).unwrap_err(), VerifyError::Nonce);
}

#[test]
fn rejects_wrong_audience() {
    let s = setup();
    let token = good_token(&s);
    let options = VerifyOptions {
        audience: Some("https://other.example".into()),
        ..verify_options()
    };
    assert_eq!(
        s.verifier.verify(token.as_bytes(), &options).unwrap_err(),
        VerifyError::Audience
    );
    // Evidence for an audience is refused by a verifier that does not say who it is.
    let options = VerifyOptions {
        audience: None,
        ..verify_options()
    };
    assert_eq!(
        s.verifier.verify(token.as_bytes(), &options).unwrap_err(),
        VerifyError::Audience
    );
}

#[test]
fn rejects_oversized_input_before_parsing() {
    let s = setup();
    // Not even a JWS: the size check must come first.
    let big = vec![b'A'; 64 * 1024 + 1];
    assert_eq!(
        s.verifier.verify(&big, &verify_options()).unwrap_err(),
        VerifyError::TooLarge {
            size: 64 * 1024 + 1,
            max: 64 * 1024
        }
    );
}

#[test]
fn rejects_bad_base64() {
    let s = setup();
    let token = good_token(&s);
    let mut p: Vec<String> = token.split('.').map(str::to_owned).collect();
    p[1].insert(5, '+');
    assert!(matches!(
        verify(&s, &p.join(".")).unwrap_err(),
        VerifyError::Malformed(_)
    ));
    let padded = format!("{}=", token);
    assert!(matches!(
        verify(&s, &padded).unwrap_err(),
        VerifyError::Malformed(_)
    ));
    assert!(matches!(
        verify(&s, "abc.def").unwrap_err(),
        VerifyError::Malformed(_)
    ));
}

#[test]
fn rejects_duplicate_keys_in_payload() {
    let s = setup();
    let (header, claims, _) = parts(&good_token(&s));
    // Append a second "key_assurance": a parser keeping the last one would read "tpm".
    let mut text = claims.to_string();
    text.pop();
    text.push_str(r#","key_assurance":"tpm"}"#);
    let token = sign_raw(header.to_string().as_bytes(), text.as_bytes(), &raw_key(&s));
    let err = verify(&s, &token).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Json { message, .. } if message.contains("duplicate key")),
        "{err:?}"
    );
}

#[test]
fn rejects_duplicate_keys_in_header() {
    let s = setup();
    let (_, claims, _) = parts(&good_token(&s));
    let kid = s.key.public_key().pipe_kid();
    let header = format!(r#"{{"alg":"ES256","typ":"{EVIDENCE_TYP}","kid":"{kid}","alg":"none"}}"#);
    let token = sign_raw(
        header.as_bytes(),
        claims.to_string().as_bytes(),
        &raw_key(&s),
    );
    let err = verify(&s, &token).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Json { message, .. } if message.contains("duplicate key")),
        "{err:?}"
    );
}

#[test]
fn rejects_deep_nesting() {
    let s = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    claims["report"]["findings"][0]["observed"]["deep"] = deep;
    let token = resign_with(&s, header, claims);
    let err = verify(&s, &token).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Json { message, .. } if message.contains("nested deeper")),
        "{err:?}"
    );
}

#[test]
fn rejects_a_crit_header() {
    let s = setup();
    let (mut header, claims, _) = parts(&good_token(&s));
    header["crit"] = json!(["exp"]);
    let token = resign_with(&s, header, claims);
    assert_eq!(verify(&s, &token).unwrap_err(), VerifyError::Critical);
}

#[test]
fn rejects_a_report_breaking_invariants() {
    let s = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    claims["report"]["findings"][1]
        .as_object_mut()
        .unwrap()
        .remove("remediation");
    let token = resign_with(&s, header, claims);
    assert!(matches!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Report(_)
    ));
}

#[test]
fn proven_assurance_caps_the_claim() {
    let s = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    claims["key_assurance"] = json!("tpm");
    let token = resign_with(&s, header, claims);
    let mut verifier = Verifier::new();
    verifier.add_key(s.key.public_key(), Some(KeyAssurance::Software));
    let verified = verifier
        .verify(token.as_bytes(), &verify_options())
        .unwrap();
    assert_eq!(verified.key_assurance, KeyAssurance::Software);
}

#[test]
fn refuses_to_sign_a_short_nonce() {
    let s = setup();
    let options = EvidenceOptions {
        nonce: Some("abc".into()),
        ..sign_options()
    };
    assert!(sign_evidence(&report(), &s.key, &options).is_err());
}

#[test]
fn one_verifier_is_shared_across_threads() {
    let s = setup();
    let token = good_token(&s);
    let verifier = std::sync::Arc::new(s.verifier.clone());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token.clone();
            std::thread::spawn(move || verifier.verify(token.as_bytes(), &verify_options()).is_ok())
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
}

/// Issue 10, item 7: `(r, n - s)` verifies mathematically for any valid `(r, s)`; taking
/// it makes tokens malleable and defeats a replay cache keyed on the token bytes.
#[test]
fn rejects_high_s_signatures_issue_10() {
    let s = setup();
    // Sign until both forms occur, so the test does not depend on one signature's luck.
    for _ in 0..8 {
        let token = good_token(&s);
        let (header, claims, sig) = parts(&token);
        let sig = Signature::from_slice(&sig).unwrap();
        assert!(
            sig.normalize_s().is_none(),
            "posture must emit low-S signatures"
        );
        assert!(verify(&s, &token).is_ok());
        let (r, low_s) = sig.split_scalars();
        let high = Signature::from_scalars(r, -low_s).unwrap();
        assert!(high.normalize_s().is_some());
        let input = format!(
            "{}.{}",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(claims.to_string().as_bytes())
        );
        // Same header and payload bytes as the original token.
        let input = token
            .rsplit_once('.')
            .map(|(i, _)| i.to_owned())
            .unwrap_or(input);
        let forged = format!("{input}.{}", b64url_encode(&high.to_bytes()));
        assert_ne!(forged, token);
        assert_eq!(verify(&s, &forged).unwrap_err(), VerifyError::Signature);
    }
}

/// Issue 10, item 9: RFC 7515 §4.1.9 — `typ` is a media type, compared case-insensitively
/// and with or without `application/`.
#[test]
fn typ_is_compared_as_a_media_type_issue_10() {
    let s = setup();
    for typ in [
        "application/posture-evidence+jwt",
        "POSTURE-EVIDENCE+JWT",
        "Application/Posture-Evidence+Jwt",
    ] {
        let (mut header, claims, _) = parts(&good_token(&s));
        header["typ"] = json!(typ);
        let token = resign_with(&s, header, claims);
        assert!(verify(&s, &token).is_ok(), "{typ} must be accepted");
    }
    for typ in [
        "text/posture-evidence+jwt",
        "application/x/posture-evidence+jwt",
        "posture-evidence+jwt ",
        "application/",
        "jwt",
    ] {
        let (mut header, claims, _) = parts(&good_token(&s));
        header["typ"] = json!(typ);
        let token = resign_with(&s, header, claims);
        assert!(
            matches!(verify(&s, &token), Err(VerifyError::Type { .. })),
            "{typ} must be refused"
        );
    }
}

/// Issue 10, item 5: `iat` ten years ago with `exp` ten years ahead verified; the
/// lifetime `exp - iat` is now capped (24 h by default, configurable).
#[test]
fn rejects_a_lifetime_longer_than_the_maximum_issue_10() {
    let s = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ten_years = 10 * 365 * 24 * 3600;
    claims["iat"] = json!(now - ten_years);
    claims["exp"] = json!(now + ten_years);
    let token = resign_with(&s, header.clone(), claims.clone());
    assert!(matches!(
        verify(&s, &token).unwrap_err(),
        VerifyError::Lifetime { .. }
    ));

    // 25 h of lifetime, issued a minute ago: over the 24 h default, under a 48 h setting.
    claims["iat"] = json!(now - 60);
    claims["exp"] = json!(now - 60 + 25 * 3600);
    let token = resign_with(&s, header, claims);
    let err = verify(&s, &token).unwrap_err();
    assert_eq!(err.code(), "lifetime");
    let options = VerifyOptions {
        max_lifetime: Duration::from_secs(48 * 3600),
        ..verify_options()
    };
    assert!(s.verifier.verify(token.as_bytes(), &options).is_ok());
}

/// Issue 10, item 5: without `max_age`, a default maximum age (24 h) still applies.
#[test]
fn a_default_maximum_age_applies_without_max_age_issue_10() {
    let s = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["iat"] = json!(now - 2 * 24 * 3600);
    claims["exp"] = json!(now + 3600);
    let token = resign_with(&s, header, claims);
    // Even with a lifetime limit the caller raised, the age is capped by default.
    let options = VerifyOptions {
        max_lifetime: Duration::from_secs(30 * 24 * 3600),
        ..verify_options()
    };
    assert!(matches!(
        s.verifier.verify(token.as_bytes(), &options).unwrap_err(),
        VerifyError::TooOld { max_age: 86400, .. }
    ));
    let options = VerifyOptions {
        max_age: Some(Duration::from_secs(3 * 24 * 3600)),
        ..options
    };
    assert!(s.verifier.verify(token.as_bytes(), &options).is_ok());
}

/// Issue 10, item 6: what a consumer reads is what was verified. A software key claiming
/// `tpm` is `software`; the JSON form of the verified result (used by `verify --json`,
/// the C result and the OPA input) has the verified value as `key_assurance`, the claim
/// only as `claimed_key_assurance`, and no `key_assurance` inside `claims`.
#[test]
fn consumers_read_the_verified_key_assurance_not_the_claim_issue_10() {
    let s = setup();
    let (header, mut claims, _) = parts(&good_token(&s));
    claims["key_assurance"] = json!("tpm");
    let token = resign_with(&s, header, claims);
    let verifier = Verifier::from_keys_text(
        &serde_json::to_string(&posture_core::jose::Jwk::from_public_key(
            &s.key.public_key(),
        ))
        .unwrap(),
    )
    .unwrap();
    let verified = verifier
        .verify(token.as_bytes(), &verify_options())
        .unwrap();
    assert_eq!(verified.key_assurance, KeyAssurance::Software);

    let json = serde_json::to_value(&verified).unwrap();
    assert_eq!(json["key_assurance"], "software");
    assert_eq!(json["claimed_key_assurance"], "tpm");
    assert!(json["claims"].get("key_assurance").is_none(), "{json:#}");
    assert!(json.get("ek_trust").is_none());

    let input = posture_core::exports::opa::input_document(&verified);
    assert_eq!(input["key_assurance"], "software");
    assert_eq!(input["claimed_key_assurance"], "tpm");
    assert!(input["claims"].get("key_assurance").is_none(), "{input:#}");
    assert!(input["claims"]["report"]["findings"].is_array());
}

/// Issue 10, item 1: the levels are ordered, and a policy can require either TPM level.
#[test]
fn key_assurance_levels_are_ordered_issue_10() {
    use posture_core::policy::Policy;
    assert!(KeyAssurance::Software < KeyAssurance::TpmUnverified);
    assert!(KeyAssurance::TpmUnverified < KeyAssurance::Tpm);
    assert_eq!(
        serde_json::to_value(KeyAssurance::TpmUnverified).unwrap(),
        "tpm-unverified"
    );
    let r = report();
    let either = Policy::from_toml_str("required_key_assurance = \"tpm-unverified\"\n").unwrap();
    let verified_only = Policy::from_toml_str("required_key_assurance = \"tpm\"\n").unwrap();
    assert!(!either
        .decide_report(&r, KeyAssurance::Software)
        .is_allowed());
    assert!(either
        .decide_report(&r, KeyAssurance::TpmUnverified)
        .is_allowed());
    assert!(either.decide_report(&r, KeyAssurance::Tpm).is_allowed());
    assert!(!verified_only
        .decide_report(&r, KeyAssurance::TpmUnverified)
        .is_allowed());
    assert!(verified_only
        .decide_report(&r, KeyAssurance::Tpm)
        .is_allowed());
}
