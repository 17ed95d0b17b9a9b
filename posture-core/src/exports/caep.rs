//! OpenID CAEP `device-compliance-change` events as signed Security Event Tokens
//! (RFC 8417, OpenID CAEP 1.0 §3.5), signed with the device key.
//!
//! The subject is the device (`sub_id` of format `opaque` with the report's device id); the
//! issuer defaults to the RFC 9278 JWK thumbprint URI of the device key.

use std::time::{SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::evidence::EvidenceError;
use crate::jose;
use crate::keys::Signer;
use crate::policy::Reason;

/// The JWS `typ` of Security Event Tokens (RFC 8417 §2.3).
pub const SET_TYP: &str = "secevent+jwt";

/// The CAEP event type URI.
pub const DEVICE_COMPLIANCE_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

/// A device's compliance status in CAEP terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComplianceStatus {
    /// `compliant`
    Compliant,
    /// `not-compliant`
    NotCompliant,
}

impl ComplianceStatus {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ComplianceStatus::Compliant => "compliant",
            ComplianceStatus::NotCompliant => "not-compliant",
        }
    }
}

impl std::str::FromStr for ComplianceStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "compliant" => Ok(Self::Compliant),
            "not-compliant" => Ok(Self::NotCompliant),
            other => Err(format!(
                "unknown compliance status {other:?} (expected compliant or not-compliant)"
            )),
        }
    }
}

/// One compliance change of a device.
#[derive(Clone, Debug, PartialEq)]
pub struct ComplianceChange {
    /// The device id (the report's `device.id`).
    pub device_id: String,
    /// The status before.
    pub previous: ComplianceStatus,
    /// The status now.
    pub current: ComplianceStatus,
    /// When the change happened.
    pub event_time: SystemTime,
    /// Why the device is not compliant (the policy's failed rules); empty when compliant.
    pub reasons: Vec<Reason>,
}

/// Who issues the event and for whom.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// `iss`; `None` means the device key's JWK thumbprint URI (RFC 9278).
    pub issuer: Option<String>,
    /// `aud`, the receiver.
    pub audience: Option<String>,
}

/// The SET claims for `change` (unsigned), issued at `now`.
pub fn set_claims(
    change: &ComplianceChange,
    signer: &dyn Signer,
    options: &SetOptions,
    now: SystemTime,
) -> Result<Value, EvidenceError> {
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| EvidenceError::Clock)
    };
    let issuer = options.issuer.clone().unwrap_or_else(|| {
        format!(
            "urn:ietf:params:oauth:jwk-thumbprint:sha-256:{}",
            jose::key_id(&signer.public_key())
        )
    });
    let mut jti = [0u8; 16];
    OsRng.fill_bytes(&mut jti);
    let mut event = json!({
        "previous_status": change.previous,
        "current_status": change.current,
        "event_timestamp": secs(change.event_time)?,
    });
    if !change.reasons.is_empty() {
        let admin: Vec<&str> = change.reasons.iter().map(|r| r.message.as_str()).collect();
        let mut user: Vec<&str> = change
            .reasons
            .iter()
            .filter_map(|r| r.remediation.as_ref().map(|m| m.text.as_str()))
            .collect();
        user.dedup();
        event["reason_admin"] = json!({ "en": admin.join("; ") });
        if !user.is_empty() {
            event["reason_user"] = json!({ "en": user.join(" ") });
        }
        // The structured reasons, for receivers that understand posture.
        event["posture_reasons"] =
            serde_json::to_value(&change.reasons).map_err(EvidenceError::Json)?;
    }
    let mut claims = json!({
        "iss": issuer,
        "iat": secs(now)?,
        "jti": jose::b64url_encode(&jti),
        "sub_id": { "format": "opaque", "id": change.device_id },
        "events": { DEVICE_COMPLIANCE_CHANGE: event },
    });
    if let Some(aud) = &options.audience {
        claims["aud"] = json!(aud);
    }
    Ok(claims)
}

/// A signed `device-compliance-change` SET (compact JWS, `typ: secevent+jwt`, ES256).
pub fn compliance_change(
    change: &ComplianceChange,
    signer: &dyn Signer,
    options: &SetOptions,
) -> Result<String, EvidenceError> {
    let claims = set_claims(change, signer, options, SystemTime::now())?;
    sign_set(&claims, signer)
}

/// Signs SET claims made by [`set_claims`] (compact JWS, `typ: secevent+jwt`, ES256).
pub fn sign_set(claims: &Value, signer: &dyn Signer) -> Result<String, EvidenceError> {
    Ok(jose::sign_compact(SET_TYP, claims, signer)?)
}
