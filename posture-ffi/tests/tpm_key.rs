//! The C agent's device key in a real TPM (swtpm): `posture_key_open` with `[key] backend =
//! "tpm"` signs evidence with a key that never leaves the TPM, and its evidence carries a
//! PCR quote when signed with a nonce, exactly as `posture report` does.
#![cfg(all(feature = "tpm", target_os = "linux"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../posture-agent/tests/tpm_support/mod.rs"]
#[allow(dead_code)]
mod tpm_support;

use posture::agent::{
    posture_evidence_sign, posture_key_free, posture_key_open, posture_key_public_jwk,
};
use posture::buf::{posture_buf_data, posture_buf_free, posture_buf_len};
use posture::posture_status;
use posture_core::verify::{Verifier, VerifyOptions};

fn buf_text(buf: *mut posture::posture_buf) -> String {
    // SAFETY: a live buffer from the library; data is valid for len bytes.
    let bytes = unsafe { std::slice::from_raw_parts(posture_buf_data(buf), posture_buf_len(buf)) };
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn the_c_agent_signs_with_the_tpm_key_and_quotes() {
    let swtpm = tpm_support::Swtpm::start();
    // This test binary runs alone in its process (nextest), so setting the TCTI the
    // library reads is safe.
    std::env::set_var("TCTI", swtpm.tcti());
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "[key]\nbackend = \"tpm\"\nquote_pcrs = [0, 7]\n\n[daemon]\nstate_dir = {:?}\n",
        state.path()
    );
    let mut key = std::ptr::null_mut();
    // SAFETY: valid buffers and out-pointer.
    let status = unsafe { posture_key_open(config.as_ptr(), config.len(), &mut key) };
    assert_eq!(status, posture_status::Ok);
    assert!(
        state.path().join("keys/tpm-device-key.json").exists(),
        "the key is a TPM-wrapped blob in the configured state directory"
    );

    let mut jwk = std::ptr::null_mut();
    // SAFETY: a live key and a valid out-pointer.
    let status = unsafe { posture_key_public_jwk(key, &mut jwk) };
    assert_eq!(status, posture_status::Ok);
    let jwk_text = buf_text(jwk);
    // SAFETY: freed once.
    unsafe { posture_buf_free(jwk) };

    let report = serde_json::to_vec(&posture_test_support::laptop_report()).unwrap();
    let nonce = b"c-agent-nonce-0001";
    let mut evidence = std::ptr::null_mut();
    // SAFETY: valid buffers and out-pointer; a live key.
    let status = unsafe {
        posture_evidence_sign(
            key,
            report.as_ptr(),
            report.len(),
            nonce.as_ptr(),
            nonce.len(),
            b"".as_ptr(),
            0,
            300,
            &mut evidence,
        )
    };
    assert_eq!(status, posture_status::Ok);
    let token = buf_text(evidence);
    // SAFETY: freed once each.
    unsafe {
        posture_buf_free(evidence);
        posture_key_free(key);
    }

    let verifier = Verifier::from_keys_text(&jwk_text).unwrap();
    let options = VerifyOptions {
        nonce: Some(String::from_utf8(nonce.to_vec()).unwrap()),
        ..VerifyOptions::default()
    };
    let verified = verifier.verify(token.as_bytes(), &options).unwrap();
    let tpm = verified.claims.tpm.as_ref().expect("the tpm claim");
    assert!(tpm.software_tpm, "swtpm is reported as a software TPM");
    let quote = tpm.quote.as_ref().expect("a PCR quote with the nonce");
    assert_eq!(
        quote.pcrs.sha256.keys().copied().collect::<Vec<_>>(),
        vec![0, 7]
    );
}
