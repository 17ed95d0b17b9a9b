//! Verified evidence as an Open Policy Agent input document.
//!
//! The document is what `opa eval --input FILE` takes (wrap it as `{"input": ...}` for
//! OPA's REST API). Findings are also indexed by check id so that Rego stays short:
//!
//! ```rego
//! allow if input.findings.disk_encryption.status == "pass"
//! ```

use serde_json::{json, Map, Value};

use crate::policy::Policy;
use crate::verify::VerifiedPosture;

/// The input document for verified evidence.
///
/// `key_assurance` is the level the verifier proved (`software`, `tpm-unverified`,
/// `tpm`), with `ek_trust` for enrolled TPM keys; the device's own claim is only
/// `claimed_key_assurance`, and `claims` does not carry it, so a policy reading
/// `input.key_assurance` or anything under `input.claims` cannot be fooled by it.
pub fn input_document(verified: &VerifiedPosture) -> Value {
    let report = &verified.claims.report;
    let findings: Map<String, Value> = report
        .findings
        .iter()
        .map(|f| (f.id.clone(), serde_json::to_value(f).unwrap_or(Value::Null)))
        .collect();
    json!({
        "verified": true,
        "kid": verified.kid,
        "key_assurance": verified.key_assurance,
        "claimed_key_assurance": verified.claims.key_assurance,
        "ek_trust": verified.ek_trust,
        "attested_pcrs": verified.attested_pcrs,
        "quote_clock": verified.quote_clock,
        "device": report.device,
        "os": report.os,
        "compliant": Policy::every_check_of(report)
            .decide_report(report, verified.key_assurance)
            .is_allowed(),
        "findings": findings,
        "claims": verified.consumer_claims().unwrap_or(Value::Null),
    })
}
