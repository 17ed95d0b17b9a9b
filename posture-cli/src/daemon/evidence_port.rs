//! The daemon's device key and compliance policy, over the agent layer: signing evidence,
//! deciding compliance and making compliance-change events happen exactly as in
//! `posture report`, `posture check` and `posture export caep`.

use std::sync::RwLock;
use std::time::Duration;

use posture_agent::caep::{self, SignedEvent};
use posture_agent::sign::{sign_evidence, SignError, SignedEvidence};
use posture_agent::{Assessment, Compliance, DeviceKey};
use posture_core::evidence::{EvidenceError, EvidenceOptions, Requester};
use posture_core::exports::caep::SetOptions;
use posture_core::keys::Jwk;
use posture_core::Report;
use serde_json::Value;

/// Errors of signing.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Evidence could not be signed (the TPM, the claims).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// An event could not be made.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
}

/// The device key, the PCRs it quotes, the evidence lifetime and the compliance policy.
#[derive(Debug)]
pub struct DeviceEvidence {
    key: DeviceKey,
    /// PCRs quoted into evidence when the key is in a TPM and the caller gave a nonce.
    quote_pcrs: Vec<u32>,
    ttl: Duration,
    compliance: RwLock<Compliance>,
}

impl DeviceEvidence {
    /// Evidence signed by `key` (with PCR quotes of `quote_pcrs` when it is in a TPM),
    /// valid for `ttl`, judged by `compliance`.
    pub fn new(
        key: DeviceKey,
        quote_pcrs: Vec<u32>,
        ttl: Duration,
        compliance: Compliance,
    ) -> Self {
        Self {
            key,
            quote_pcrs,
            ttl,
            compliance: RwLock::new(compliance),
        }
    }

    /// Freshly signed evidence of `report`, bound to the caller's nonce and audience, naming
    /// the local process that asked for it (`requester`, from the socket credentials).
    pub fn sign(
        &self,
        report: &Report,
        nonce: Option<&str>,
        audience: Option<&str>,
        requester: Option<&Requester>,
    ) -> Result<SignedEvidence, PortError> {
        let options = EvidenceOptions {
            nonce: nonce.map(str::to_owned),
            audience: audience.map(str::to_owned),
            ttl: self.ttl,
        };
        Ok(sign_evidence(
            &self.key,
            report,
            &options,
            &self.quote_pcrs,
            requester,
        )?)
    }

    /// The device key's signer (device certificate requests).
    pub fn signer(&self) -> &dyn posture_core::keys::Signer {
        self.key.signer.as_ref()
    }

    /// Overall compliance of `report` under the policy.
    pub fn assess(&self, report: &Report) -> Assessment {
        let compliance = self
            .compliance
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        compliance.assess(report, self.key.assurance())
    }

    /// A signed CAEP `device-compliance-change` SET.
    pub fn compliance_event(
        &self,
        report: &Report,
        previous: bool,
        current: &Assessment,
        audience: Option<&str>,
    ) -> Result<SignedEvent, PortError> {
        let options = SetOptions {
            issuer: None,
            audience: audience.map(str::to_owned),
        };
        Ok(caep::compliance_change(
            &self.key,
            report,
            caep::status(previous),
            current,
            &options,
        )?)
    }

    /// The device key's public half, as a JWK (for `/v1/health` and enrollment).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = serde_json::to_value(Jwk::from_public_key(&self.key.signer.public_key()))
            .unwrap_or(Value::Null);
        if let Some(object) = jwk.as_object_mut() {
            object.insert("key_assurance".into(), self.key.assurance().as_str().into());
        }
        jwk
    }

    /// Replaces the policy (on SIGHUP).
    pub fn set_compliance(&self, compliance: Compliance) {
        let mut slot = self
            .compliance
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = compliance;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_agent::key::{open, Backend, KeyConfig};
    use posture_core::policy::Policy;
    use posture_core::verify::{Verifier, VerifyOptions};
    use posture_core::Finding;
    use posture_test_support::{healthy_report, laptop_report, report_with};

    fn source(dir: &std::path::Path, policy: Option<Policy>) -> DeviceEvidence {
        let config = KeyConfig {
            backend: Backend::Software,
            ..KeyConfig::default()
        };
        let key = open(&config, &dir.join("keys"), false).unwrap();
        DeviceEvidence::new(
            key,
            Vec::new(),
            Duration::from_secs(60),
            Compliance::new(policy),
        )
    }

    #[test]
    fn evidence_verifies_with_the_published_key() {
        let dir = tempfile::tempdir().unwrap();
        let source = source(dir.path(), None);
        let signed = source
            .sign(&laptop_report(), Some("n0nce-123"), Some("idp"), None)
            .unwrap();
        let jwk = serde_json::to_string(&source.public_jwk()).unwrap();
        let verifier = Verifier::from_keys_text(&jwk).unwrap();
        let options = VerifyOptions {
            nonce: Some("n0nce-123".into()),
            audience: Some("idp".into()),
            ..VerifyOptions::default()
        };
        let verified = verifier.verify(signed.token.as_bytes(), &options).unwrap();
        assert_eq!(verified.claims.jti, signed.jti);
    }

    #[test]
    fn policy_decides_and_can_be_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::from_toml_str("required_checks = [\"os\"]\n").unwrap();
        let source = source(dir.path(), Some(policy));
        assert!(
            source.assess(&laptop_report()).compliant,
            "only os is required"
        );
        source.set_compliance(Compliance::new(Some(
            Policy::from_toml_str("required_checks = [\"firewall\"]\n").unwrap(),
        )));
        assert!(!source.assess(&laptop_report()).compliant);
        source.set_compliance(Compliance::default());
        assert!(source.assess(&healthy_report()).compliant);
        let unknown = report_with(vec![Finding::unknown("tpm", "no TPM")]);
        assert!(!source.assess(&unknown).compliant);
    }
}
