//! The one seam between the daemon and evidence signing, policy and CAEP export: the
//! daemon's loops know only [`EvidenceSource`]; [`CoreEvidence`] implements it with
//! posture-core's device key, evidence, policy and CAEP code.

use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use posture_core::evidence::{EvidenceError, EvidenceOptions, Requester};
use posture_core::exports::caep::{self, ComplianceChange, ComplianceStatus, SetOptions};
use posture_core::keys::{Jwk, KeyError};
use posture_core::policy::{Policy, Reason};
use posture_core::Report;
use serde_json::Value;

use crate::device_key::DeviceKey;

/// Overall compliance of a report under the configured policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Whether the device is compliant.
    pub compliant: bool,
    /// Every failed rule (empty when compliant), with the finding and its remediation.
    pub reasons: Vec<Reason>,
}

/// Errors of the evidence seam.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The key could not be loaded, created or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Evidence or an event could not be made.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// Evidence could not be signed (the message has the cause, e.g. a TPM error).
    #[error("signing evidence: {0}")]
    Sign(String),
    /// The policy file could not be read or is invalid.
    #[error("policy {path}: {message}")]
    Policy {
        /// The file.
        path: String,
        /// What is wrong (with line and column).
        message: String,
    },
}

/// Signs evidence, evaluates compliance and makes compliance-change events.
pub trait EvidenceSource: Send + Sync + std::fmt::Debug {
    /// Freshly signed evidence of `report`, bound to the caller's nonce and audience.
    fn sign(
        &self,
        report: &Report,
        nonce: Option<&str>,
        audience: Option<&str>,
        requester: Option<&Requester>,
    ) -> Result<String, PortError>;
    /// Overall compliance of `report` under the policy.
    fn assess(&self, report: &Report) -> Assessment;
    /// A signed CAEP `device-compliance-change` SET.
    fn compliance_event(
        &self,
        report: &Report,
        previous: bool,
        current: &Assessment,
        audience: Option<&str>,
    ) -> Result<String, PortError>;
    /// The device key's public half, as a JWK (for `/v1/health` and enrollment).
    fn public_jwk(&self) -> Value;
    /// Replaces the policy (on SIGHUP).
    fn set_policy(&self, policy: Option<Policy>);
}

/// Loads a policy file (TOML, or JSON).
pub fn load_policy(path: &Path) -> Result<Policy, PortError> {
    let error = |message: String| PortError::Policy {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    Policy::from_str_auto(&text).map_err(|e| error(e.to_string()))
}

/// The device key, posture-core's evidence and CAEP export, and the configured policy.
#[derive(Debug)]
pub struct CoreEvidence {
    key: DeviceKey,
    /// PCRs quoted into evidence when the key is in a TPM and the caller gave a nonce.
    quote_pcrs: Vec<u32>,
    ttl: Duration,
    /// `None`: compliant means every check that ran passed.
    policy: RwLock<Option<Policy>>,
}

impl CoreEvidence {
    /// Evidence signed by `key` (with PCR quotes of `quote_pcrs` when it is in a TPM),
    /// valid for `ttl`, judged by `policy`.
    pub fn new(
        key: DeviceKey,
        quote_pcrs: Vec<u32>,
        ttl: Duration,
        policy: Option<Policy>,
    ) -> Self {
        Self {
            key,
            quote_pcrs,
            ttl,
            policy: RwLock::new(policy),
        }
    }
}

impl EvidenceSource for CoreEvidence {
    fn sign(
        &self,
        report: &Report,
        nonce: Option<&str>,
        audience: Option<&str>,
        requester: Option<&Requester>,
    ) -> Result<String, PortError> {
        let options = EvidenceOptions {
            nonce: nonce.map(str::to_owned),
            audience: audience.map(str::to_owned),
            ttl: self.ttl,
        };
        // Same code path as `posture report`: TPM quote bound to nonce and report, and the
        // fallback reason when a software key stands in for the TPM.
        crate::cmd_report::sign(&self.key, report, &options, &self.quote_pcrs, requester)
            .map_err(|e| PortError::Sign(format!("{e:#}")))
    }

    fn assess(&self, report: &Report) -> Assessment {
        let policy = self
            .policy
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let reasons = match policy.as_ref() {
            Some(policy) => policy.decide_report(report, self.key.assurance()).reasons,
            None => {
                Policy::every_check_of(report)
                    .decide_report(report, self.key.assurance())
                    .reasons
            }
        };
        Assessment {
            compliant: reasons.is_empty(),
            reasons,
        }
    }

    fn compliance_event(
        &self,
        report: &Report,
        previous: bool,
        current: &Assessment,
        audience: Option<&str>,
    ) -> Result<String, PortError> {
        let status = |compliant: bool| {
            if compliant {
                ComplianceStatus::Compliant
            } else {
                ComplianceStatus::NotCompliant
            }
        };
        let change = ComplianceChange {
            device_id: report.device.id.clone(),
            previous: status(previous),
            current: status(current.compliant),
            event_time: SystemTime::now(),
            reasons: current.reasons.clone(),
        };
        let options = SetOptions {
            issuer: None,
            audience: audience.map(str::to_owned),
        };
        Ok(caep::compliance_change(
            &change,
            self.key.signer.as_ref(),
            &options,
        )?)
    }

    fn public_jwk(&self) -> Value {
        let mut jwk = serde_json::to_value(Jwk::from_public_key(&self.key.signer.public_key()))
            .unwrap_or(Value::Null);
        if let Some(object) = jwk.as_object_mut() {
            object.insert("key_assurance".into(), self.key.assurance().as_str().into());
        }
        jwk
    }

    fn set_policy(&self, policy: Option<Policy>) {
        let mut slot = self
            .policy
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = policy;
    }
}

/// A fresh random `jti` (128 bits, hex).
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only without any OS entropy source; a time-based id is then
    // still unique enough for de-duplication and never a secret.
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::verify::{Verifier, VerifyOptions};
    use posture_core::{Finding, Remediation};

    fn report(findings: Vec<Finding>) -> Report {
        let device = posture_core::Device {
            id: "ab".repeat(32),
            hostname: "laptop".into(),
            vendor: None,
            model: None,
        };
        Report::new(
            device,
            posture_core::OsFacts::default(),
            posture_core::Timestamp::now(),
            findings,
        )
    }

    fn source(dir: &Path, policy: Option<Policy>) -> CoreEvidence {
        let config = crate::device_key::KeyConfig {
            backend: crate::device_key::Backend::Software,
            ..crate::device_key::KeyConfig::default()
        };
        let key = crate::device_key::open(&config, &dir.join("keys"), false).unwrap();
        CoreEvidence::new(key, Vec::new(), Duration::from_secs(60), policy)
    }

    #[test]
    fn evidence_verifies_with_the_published_key() {
        let dir = tempfile::tempdir().unwrap();
        let source = source(dir.path(), None);
        let jws = source
            .sign(
                &report(vec![Finding::pass("os", "Debian 12")]),
                Some("n0nce-123"),
                Some("idp"),
                None,
            )
            .unwrap();
        let jwk = serde_json::to_string(&source.public_jwk()).unwrap();
        let verifier = Verifier::from_keys_text(&jwk).unwrap();
        let options = VerifyOptions {
            nonce: Some("n0nce-123".into()),
            audience: Some("idp".into()),
            ..VerifyOptions::default()
        };
        let verified = verifier.verify(jws.as_bytes(), &options).unwrap();
        assert_eq!(verified.claims.report.findings[0].id, "os");
    }

    #[test]
    fn without_policy_every_check_must_pass() {
        let dir = tempfile::tempdir().unwrap();
        let source = source(dir.path(), None);
        let failing = report(vec![Finding::fail(
            "firewall",
            "off",
            Remediation::new("sudo ufw enable"),
        )]);
        let assessment = source.assess(&failing);
        assert!(!assessment.compliant);
        assert_eq!(assessment.reasons[0].finding.as_deref(), Some("firewall"));
        assert!(
            source
                .assess(&report(vec![Finding::pass("os", "ok")]))
                .compliant
        );
    }

    #[test]
    fn policy_decides_and_can_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::from_toml_str("required_checks = [\"os\"]\n").unwrap();
        let source = source(dir.path(), Some(policy));
        let mixed = report(vec![
            Finding::pass("os", "ok"),
            Finding::fail("firewall", "off", Remediation::new("sudo ufw enable")),
        ]);
        assert!(source.assess(&mixed).compliant, "only os is required");
        source.set_policy(Some(
            Policy::from_toml_str("required_checks = [\"firewall\"]\n").unwrap(),
        ));
        assert!(!source.assess(&mixed).compliant);
    }
}
