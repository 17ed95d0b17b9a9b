//! Consumer side: a verifier handle (trusted keys, policy, options), `posture_verify`, and
//! the result with its accessors.

use std::time::Duration;

use posture_core::evidence::MAX_EVIDENCE_BYTES;
use posture_core::policy::{Decision, Outcome, Policy, MAX_POLICY_BYTES};
use posture_core::verify::{VerifiedPosture, Verifier, VerifyError, VerifyOptions};

use crate::boundary::{
    borrow_handle, ffi_status, ffi_value, free_handle, input_bytes, input_text, into_handle,
    try_ffi, write_out,
};
use crate::buf::posture_buf;
use crate::status::posture_status;

/// Largest trusted-keys text accepted, in bytes.
pub const POSTURE_MAX_KEYS_BYTES: usize = 1024 * 1024;
/// Largest audience or nonce accepted, in bytes.
pub const POSTURE_MAX_NAME_BYTES: usize = 1024;
/// Largest evidence accepted, in bytes; larger evidence is refused before parsing.
pub const POSTURE_MAX_EVIDENCE_BYTES: usize = 64 * 1024;
/// The clock skew most verifiers should allow, in seconds.
pub const POSTURE_DEFAULT_SKEW_SECS: u32 = 60;

// The header's constant must be the verifier's limit.
const _: () = assert!(POSTURE_MAX_EVIDENCE_BYTES == MAX_EVIDENCE_BYTES);

/// A policy decision.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum posture_decision {
    /// Every policy rule holds. (Not 0, so zeroed memory never reads as allow.)
    Allow = 1,
    /// At least one rule failed; the reasons say which.
    Deny = 2,
}

/// Trusted device keys, a policy and verification options. Immutable once built: one
/// handle may be used by any number of threads at once (`posture_verify` takes it as
/// `const`). Free it with `posture_verifier_free` after every thread is done with it.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct posture_verifier {
    verifier: Verifier,
    /// `None`: every check in the report must pass (`Policy::every_check_of`).
    policy: Option<Policy>,
    audience: Option<String>,
    max_age: Option<Duration>,
    skew: Duration,
}

/// Evidence that verified, with the policy's decision on it. Read it with the
/// `posture_result_*` accessors; free it with `posture_result_free`.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct posture_result {
    verified: VerifiedPosture,
    decision: Decision,
}

fn verify_status(error: &VerifyError) -> posture_status {
    match error {
        VerifyError::TooLarge { .. } => posture_status::EvidenceTooLarge,
        VerifyError::Malformed(_)
        | VerifyError::Json { .. }
        | VerifyError::Critical
        | VerifyError::MissingKid => posture_status::EvidenceMalformed,
        VerifyError::Algorithm(_) => posture_status::EvidenceAlgorithm,
        VerifyError::Type { .. } => posture_status::EvidenceType,
        VerifyError::UnknownKid(_) => posture_status::EvidenceUnknownKey,
        VerifyError::Signature | VerifyError::KeyBinding => posture_status::EvidenceBadSignature,
        VerifyError::Expired { .. } => posture_status::EvidenceExpired,
        VerifyError::IssuedInFuture { .. } | VerifyError::NotYetValid { .. } => {
            posture_status::EvidenceNotYetValid
        }
        VerifyError::TooOld { .. } => posture_status::EvidenceTooOld,
        VerifyError::Lifetime { .. } => posture_status::EvidenceInvalidClaims,
        VerifyError::Nonce => posture_status::EvidenceNonceMismatch,
        VerifyError::Audience => posture_status::EvidenceAudienceMismatch,
        VerifyError::Claims(_) | VerifyError::Report(_) => posture_status::EvidenceInvalidClaims,
        VerifyError::Quote(_) => posture_status::EvidenceQuote,
    }
}

/// Builds a verifier.
///
/// - `keys`: the trusted device keys: a JWK, a JWK Set (`{"keys": [...]}`) or a PEM
///   public key (`BEGIN PUBLIC KEY`), all EC P-256.
/// - `policy`: policy text, TOML or JSON (`{` first means JSON). Empty (or blank) text
///   means the default, which fails closed: every check in the report must pass. To
///   allow any valid evidence whatever its posture, say so: pass the policy `{}`.
/// - `audience`: this verifier's name, which the evidence's `aud` must contain; length 0
///   means none (evidence naming an audience is then refused).
/// - `max_age_secs`: refuse evidence issued longer ago than this; 0 means the default
///   maximum age (24 h). Evidence whose lifetime (`exp - iat`) exceeds 24 h is refused
///   (`POSTURE_STATUS_EVIDENCE_INVALID_CLAIMS`).
/// - `skew_secs`: clock skew tolerated on `iat`/`exp` (`POSTURE_DEFAULT_SKEW_SECS`).
///
/// # Safety
/// Each pointer must be valid for reads of its length; `out` valid for one pointer.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn posture_verifier_new(
    keys: *const u8,
    keys_len: usize,
    policy: *const u8,
    policy_len: usize,
    audience: *const u8,
    audience_len: usize,
    max_age_secs: u32,
    skew_secs: u32,
    out: *mut *mut posture_verifier,
) -> posture_status {
    ffi_status(|| {
        if keys.is_null() || policy.is_null() || audience.is_null() || out.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises each length of readable bytes.
        let (keys, policy, audience) = unsafe {
            (
                try_ffi!(input_text(keys, keys_len, POSTURE_MAX_KEYS_BYTES)),
                try_ffi!(input_text(policy, policy_len, MAX_POLICY_BYTES)),
                try_ffi!(input_text(audience, audience_len, POSTURE_MAX_NAME_BYTES)),
            )
        };
        let Ok(verifier) = Verifier::from_keys_text(keys) else {
            return posture_status::InvalidKey;
        };
        if verifier.key_ids().next().is_none() {
            return posture_status::InvalidKey;
        }
        let policy = if policy.trim().is_empty() {
            None
        } else {
            let Ok(policy) = Policy::from_str_auto(policy) else {
                return posture_status::InvalidPolicy;
            };
            Some(policy)
        };
        let handle = posture_verifier {
            verifier,
            policy,
            audience: (!audience.is_empty()).then(|| audience.to_owned()),
            max_age: (max_age_secs > 0).then(|| Duration::from_secs(u64::from(max_age_secs))),
            skew: Duration::from_secs(u64::from(skew_secs)),
        };
        // SAFETY: `out` is non-NULL and the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(handle)) };
        posture_status::Ok
    })
}

/// Frees a verifier. NULL is accepted and ignored. No thread may use it afterwards.
///
/// # Safety
/// `verifier` must be NULL or a verifier from `posture_verifier_new` not freed before.
#[no_mangle]
pub unsafe extern "C" fn posture_verifier_free(verifier: *mut posture_verifier) {
    // SAFETY: the caller promises NULL or a live verifier freed once.
    ffi_value((), || unsafe { free_handle(verifier) })
}

/// Verifies compact-JWS `evidence` and decides on it with the verifier's policy.
///
/// `nonce` is the challenge this verifier issued for this evidence; length 0 means no
/// nonce is required (rely on `max_age_secs` for freshness then). On success `*result`
/// receives a new result, whose decision may still be deny; free it with
/// `posture_result_free`. Evidence that fails verification returns a
/// `POSTURE_STATUS_EVIDENCE_*` code and no result. Safe to call from many threads at once
/// with the same verifier.
///
/// # Safety
/// `verifier` must be a live verifier; `evidence` and `nonce` valid for reads of their
/// lengths; `result` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn posture_verify(
    verifier: *const posture_verifier,
    evidence: *const u8,
    evidence_len: usize,
    nonce: *const u8,
    nonce_len: usize,
    result: *mut *mut posture_result,
) -> posture_status {
    ffi_status(|| {
        if verifier.is_null() || evidence.is_null() || nonce.is_null() || result.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises a live verifier.
        let verifier = try_ffi!(unsafe { borrow_handle(verifier) });
        // SAFETY: non-NULL; the caller promises `evidence_len` readable bytes.
        let evidence = match unsafe { input_bytes(evidence, evidence_len, MAX_EVIDENCE_BYTES) } {
            Ok(evidence) => evidence,
            Err(posture_status::InputTooLarge) => return posture_status::EvidenceTooLarge,
            Err(status) => return status,
        };
        // SAFETY: non-NULL; the caller promises `nonce_len` readable bytes.
        let nonce = try_ffi!(unsafe { input_text(nonce, nonce_len, POSTURE_MAX_NAME_BYTES) });
        let options = VerifyOptions {
            nonce: (!nonce.is_empty()).then(|| nonce.to_owned()),
            audience: verifier.audience.clone(),
            max_age: verifier.max_age,
            skew: verifier.skew,
            ..VerifyOptions::default()
        };
        let verified = match verifier.verifier.verify(evidence, &options) {
            Ok(verified) => verified,
            Err(error) => return verify_status(&error),
        };
        let decision = match &verifier.policy {
            Some(policy) => policy.decide(&verified),
            None => Policy::every_check_of(&verified.claims.report).decide(&verified),
        };
        // SAFETY: `result` is non-NULL and the caller promises it is valid for writes.
        unsafe { write_out(result, into_handle(posture_result { verified, decision })) };
        posture_status::Ok
    })
}

/// Frees a result. NULL is accepted and ignored.
///
/// # Safety
/// `result` must be NULL or a result from `posture_verify` not freed before.
#[no_mangle]
pub unsafe extern "C" fn posture_result_free(result: *mut posture_result) {
    // SAFETY: the caller promises NULL or a live result freed once.
    ffi_value((), || unsafe { free_handle(result) })
}

/// Writes the policy's decision into `*decision`.
///
/// # Safety
/// `result` must be a live result; `decision` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn posture_result_decision(
    result: *const posture_result,
    decision: *mut posture_decision,
) -> posture_status {
    ffi_status(|| {
        if result.is_null() || decision.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises a live result.
        let result = try_ffi!(unsafe { borrow_handle(result) });
        let value = match result.decision.decision {
            Outcome::Allow => posture_decision::Allow,
            Outcome::Deny => posture_decision::Deny,
        };
        // SAFETY: non-NULL; the caller promises it is valid for writes.
        unsafe { write_out(decision, value) };
        posture_status::Ok
    })
}

/// Writes a JSON rendering of part of a result into a new buffer at `*out`.
///
/// # Safety
/// `result` NULL or live; `out` NULL or valid for writes.
unsafe fn result_json(
    result: *const posture_result,
    out: *mut *mut posture_buf,
    render: impl FnOnce(&posture_result) -> serde_json::Result<Vec<u8>>,
) -> posture_status {
    ffi_status(|| {
        if result.is_null() || out.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises a live result.
        let result = try_ffi!(unsafe { borrow_handle(result) });
        let Ok(json) = render(result) else {
            return posture_status::Panic;
        };
        // SAFETY: non-NULL; the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(posture_buf::new(json))) };
        posture_status::Ok
    })
}

/// The reasons for the decision as a JSON array (empty when allowed) in a new buffer at
/// `*out`. Each reason has `rule`, `message` and, where they apply, `finding`, `status`
/// and `remediation` (`{"text": ..., "url": ...}`). Free it with `posture_buf_free`.
///
/// # Safety
/// `result` must be a live result; `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn posture_result_reasons_json(
    result: *const posture_result,
    out: *mut *mut posture_buf,
) -> posture_status {
    // SAFETY: forwarded from the caller.
    unsafe { result_json(result, out, |r| serde_json::to_vec(&r.decision.reasons)) }
}

/// The verified claims as a JSON object in a new buffer at `*out`: `kid` (the signing
/// key's RFC 7638 thumbprint), `key_assurance` (the level the verifier proved:
/// `software`, `tpm-unverified` or `tpm`), `claimed_key_assurance` (what the device
/// claimed; never rely on it), `ek_trust` (`ca` or `unverified`, enrolled TPM keys only),
/// `attested_pcrs` and `quote_clock` (a verified quote only) and `claims` (the evidence
/// claims with the full posture `report`, without the device's `key_assurance`). Free it
/// with `posture_buf_free`.
///
/// # Safety
/// `result` must be a live result; `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn posture_result_claims_json(
    result: *const posture_result,
    out: *mut *mut posture_buf,
) -> posture_status {
    // SAFETY: forwarded from the caller.
    unsafe { result_json(result, out, |r| serde_json::to_vec(&r.verified)) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use posture_core::evidence::{sign_evidence, EvidenceOptions};
    use posture_core::keys::software::SoftwareKey;
    use posture_core::keys::Signer;
    use posture_core::{Finding, Remediation};

    fn decide(keys: &str, policy: &str, token: &str) -> posture_decision {
        let mut verifier: *mut posture_verifier = std::ptr::null_mut();
        // SAFETY: every pointer is valid for its length; `verifier` for one write.
        let status = unsafe {
            posture_verifier_new(
                keys.as_ptr(),
                keys.len(),
                policy.as_ptr(),
                policy.len(),
                "".as_ptr(),
                0,
                0,
                60,
                &mut verifier,
            )
        };
        assert_eq!(status, posture_status::Ok);
        let mut result: *mut posture_result = std::ptr::null_mut();
        // SAFETY: live verifier; valid input buffers; `result` valid for one write.
        let status = unsafe {
            posture_verify(
                verifier,
                token.as_ptr(),
                token.len(),
                "".as_ptr(),
                0,
                &mut result,
            )
        };
        assert_eq!(status, posture_status::Ok);
        let mut decision = posture_decision::Allow;
        // SAFETY: live result; `decision` valid for writes.
        let status = unsafe { posture_result_decision(result, &mut decision) };
        assert_eq!(status, posture_status::Ok);
        // SAFETY: each freed once, after use.
        unsafe {
            posture_result_free(result);
            posture_verifier_free(verifier);
        }
        decision
    }

    /// Issue 10, item 3: a verifier built with an empty policy fails closed (every check
    /// must pass); allowing any posture takes an explicit policy (`{}`).
    #[test]
    fn an_empty_policy_means_every_check_must_pass_issue_10() {
        let dir = tempfile::tempdir().unwrap();
        let key = SoftwareKey::load_or_create(&dir.path().join("keys")).unwrap();
        let keys =
            serde_json::to_string(&posture_core::jose::Jwk::from_public_key(&key.public_key()))
                .unwrap();
        let report = posture_test_support::report_with(vec![
            Finding::pass("os", "Debian 12"),
            Finding::fail("firewall", "off", Remediation::new("ufw enable")),
        ]);
        let token = sign_evidence(&report, &key, &EvidenceOptions::default()).unwrap();
        assert_eq!(decide(&keys, "", &token), posture_decision::Deny);
        assert_eq!(decide(&keys, "  \n", &token), posture_decision::Deny);
        assert_eq!(decide(&keys, "{}", &token), posture_decision::Allow);
    }
}
