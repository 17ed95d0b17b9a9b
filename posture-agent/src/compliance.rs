//! The one definition of "compliant" on the device: the configured policy
//! (`[compliance] policy`), else every check that ran must pass. `posture check`,
//! `posture status`, the daemon's events, the exports and the C agent all decide here, so
//! the person at the laptop sees the verdict the IdP gets.

use std::path::{Path, PathBuf};

use posture_core::keys::KeyAssurance;
use posture_core::policy::{Policy, Reason};
use posture_core::Report;

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("policy {path}: {message}")]
pub struct PolicyFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (with line and column where the parser gives them).
    pub message: String,
}

/// Loads a policy file (TOML, or JSON).
pub fn load_policy(path: &Path) -> Result<Policy, PolicyFileError> {
    let error = |message: String| PolicyFileError {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    Policy::from_str_auto(&text).map_err(|e| error(e.to_string()))
}

/// Overall compliance of a report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Assessment {
    /// Whether the device is compliant.
    pub compliant: bool,
    /// Every failed rule (empty when compliant), with the finding and its remediation.
    pub reasons: Vec<Reason>,
}

/// How compliance is decided: a configured policy, or "every check that ran passed".
#[derive(Debug, Clone, Default)]
pub struct Compliance {
    policy: Option<Policy>,
}

impl Compliance {
    /// Decides with `policy`; `None` means every check that ran must pass.
    pub fn new(policy: Option<Policy>) -> Self {
        Self { policy }
    }

    /// Loads the policy file, if one is configured.
    pub fn load(path: Option<&Path>) -> Result<Self, PolicyFileError> {
        Ok(Self::new(path.map(load_policy).transpose()?))
    }

    /// Whether the verdict depends on the device key's assurance (the policy requires one).
    pub fn needs_key_assurance(&self) -> bool {
        self.policy
            .as_ref()
            .is_some_and(|p| p.required_key_assurance.is_some())
    }

    /// Decides whether `report`, signed with a key of `assurance`, is compliant. A check
    /// that could not tell (`unknown`) never counts as a pass.
    pub fn assess(&self, report: &Report, assurance: KeyAssurance) -> Assessment {
        let decision = match &self.policy {
            Some(policy) => policy.decide_report(report, assurance),
            None => Policy::every_check_of(report).decide_report(report, assurance),
        };
        Assessment {
            compliant: decision.reasons.is_empty(),
            reasons: decision.reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::{Finding, Remediation};
    use posture_test_support::{healthy_report, laptop_report, report_with};

    #[test]
    fn without_policy_every_check_must_pass_and_unknown_is_not_a_pass() {
        let compliance = Compliance::default();
        let failing = compliance.assess(&laptop_report(), KeyAssurance::Software);
        assert!(!failing.compliant);
        assert_eq!(failing.reasons[0].finding.as_deref(), Some("firewall"));
        assert!(
            compliance
                .assess(&healthy_report(), KeyAssurance::Software)
                .compliant
        );
        let unknown = report_with(vec![Finding::unknown("screen_lock", "no session")]);
        assert!(
            !compliance
                .assess(&unknown, KeyAssurance::Software)
                .compliant
        );
    }

    #[test]
    fn a_policy_decides_instead() {
        let policy = Policy::from_toml_str("required_checks = [\"os\"]\n").unwrap();
        let compliance = Compliance::new(Some(policy));
        let mixed = report_with(vec![
            Finding::pass("os", "ok"),
            Finding::fail("firewall", "off", Remediation::new("sudo ufw enable")),
        ]);
        assert!(compliance.assess(&mixed, KeyAssurance::Software).compliant);
    }

    #[test]
    fn a_policy_file_with_a_typo_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "requird_checks = [\"os\"]\n").unwrap();
        let err = Compliance::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("policy.toml"), "{err}");
    }
}
