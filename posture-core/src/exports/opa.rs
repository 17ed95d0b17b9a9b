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
        "device": report.device,
        "os": report.os,
        "compliant": Policy::every_check_of(report)
            .decide_report(report, verified.key_assurance)
            .is_allowed(),
        "findings": findings,
        "claims": verified.claims,
    })
}
