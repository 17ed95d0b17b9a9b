//! CAEP `device-compliance-change` events, signed with the device key: the one builder
//! used by `posture export caep` and the daemon.

use std::time::SystemTime;

use posture_core::evidence::EvidenceError;
use posture_core::exports::caep::{self, ComplianceChange, ComplianceStatus, SetOptions};
use posture_core::Report;

use crate::compliance::Assessment;
use crate::key::DeviceKey;

/// A signed event and its `jti` (the receiver de-duplicates on it).
#[derive(Debug, Clone)]
pub struct SignedEvent {
    /// The SET, a compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
}

/// The CAEP status for a compliance verdict.
pub fn status(compliant: bool) -> ComplianceStatus {
    if compliant {
        ComplianceStatus::Compliant
    } else {
        ComplianceStatus::NotCompliant
    }
}

/// Signs a `device-compliance-change` SET for `report` moving from `previous` to the
/// verdict in `current`, with the failed rules as reasons.
pub fn compliance_change(
    key: &DeviceKey,
    report: &Report,
    previous: ComplianceStatus,
    current: &Assessment,
    options: &SetOptions,
) -> Result<SignedEvent, EvidenceError> {
    let change = ComplianceChange {
        device_id: report.device.id.clone(),
        previous,
        current: status(current.compliant),
        event_time: SystemTime::now(),
        reasons: current.reasons.clone(),
    };
    let claims = caep::set_claims(&change, key.signer.as_ref(), options, SystemTime::now())?;
    let jti = claims
        .get("jti")
        .and_then(|j| j.as_str())
        .unwrap_or_default()
        .to_owned();
    let token = caep::sign_set(&claims, key.signer.as_ref())?;
    Ok(SignedEvent { token, jti })
}
