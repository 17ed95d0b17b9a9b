//! Evaluating a [`Policy`] over a report: each rule either holds or yields a [`Reason`].
//!
//! Every rule fails closed: a rule that reads a finding holds only when that finding is
//! present with status `pass` *and* every fact the rule reads from it is present and
//! known (not `null`, of the expected type). A finding that failed or could not tell, a
//! check that did not run, or a missing fact each deny, with a reason naming the finding.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OsVersion, Policy};
use crate::keys::KeyAssurance;
use crate::verify::VerifiedPosture;
use crate::{Finding, Remediation, Report, Status};

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every rule holds.
    Allow,
    /// At least one rule failed.
    Deny,
}

/// One failed rule: what, why, the finding behind it and how to fix it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The policy rule, e.g. `required_checks` or `min_os_version`.
    pub rule: String,
    /// What is wrong, in plain words.
    pub message: String,
    /// The finding the rule looked at, by check id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// That finding's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// What the person at the device should do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<Remediation>,
}

/// A policy decision with every failed rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `allow` or `deny`.
    pub decision: Outcome,
    /// Every failed rule; empty when allowed.
    pub reasons: Vec<Reason>,
}

impl Decision {
    fn from_reasons(reasons: Vec<Reason>) -> Self {
        let decision = if reasons.is_empty() {
            Outcome::Allow
        } else {
            Outcome::Deny
        };
        Self { decision, reasons }
    }

    /// Whether access is allowed.
    pub fn is_allowed(&self) -> bool {
        self.decision == Outcome::Allow
    }
}

impl Policy {
    /// Decides on verified evidence, now.
    pub fn decide(&self, verified: &VerifiedPosture) -> Decision {
        self.decide_at(verified, SystemTime::now())
    }

    /// Decides on verified evidence at `now` (for the evidence-age rule).
    pub fn decide_at(&self, verified: &VerifiedPosture, now: SystemTime) -> Decision {
        let mut reasons = self.report_reasons(&verified.claims.report, verified.key_assurance);
        if !self.expected_pcrs.is_empty() {
            self.pcrs(verified, &mut reasons);
        }
        if let Some(max) = self.max_evidence_age {
            let age = now.duration_since(verified.issued_at()).unwrap_or_default();
            if age > max {
                reasons.push(Reason {
                    rule: "max_evidence_age".into(),
                    message: format!(
                        "the evidence is {} old; the policy accepts at most {}",
                        humantime::format_duration(std::time::Duration::from_secs(age.as_secs())),
                        humantime::format_duration(max)
                    ),
                    finding: None,
                    status: None,
                    remediation: Some(Remediation::new(
                        "Send fresh evidence: run `posture report` again.",
                    )),
                });
            }
        }
        Decision::from_reasons(reasons)
    }

    /// Decides on a local report before it is signed (a daemon deciding compliance), with
    /// the assurance of the key that will sign it. `max_evidence_age` does not apply.
    pub fn decide_report(&self, report: &Report, key_assurance: KeyAssurance) -> Decision {
        Decision::from_reasons(self.report_reasons(report, key_assurance))
    }

    fn report_reasons(&self, report: &Report, key_assurance: KeyAssurance) -> Vec<Reason> {
        let mut reasons = Vec::new();
        for id in &self.required_checks {
            required_check(report, id, &mut reasons);
        }
        self.os_version(report, &mut reasons);
        if let Some(max) = self.max_patch_age_days {
            patch_age(report, max, &mut reasons);
        }
        if !self.required_edr.is_empty() {
            edr(report, &self.required_edr, &mut reasons);
        }
        if let Some(required) = self.required_key_assurance {
            if key_assurance < required {
                reasons.push(Reason {
                    rule: "required_key_assurance".into(),
                    message: format!(
                        "the device key is a {} key; the policy requires a {} key",
                        key_assurance.as_str(),
                        required.as_str()
                    ),
                    finding: None,
                    status: None,
                    remediation: Some(Remediation::new(
                        "Enroll this device with its TPM so that its key cannot be copied: \
                         run `posture enroll request` and send the request to your verifier.",
                    )),
                });
            }
        }
        if self.require_secure_boot {
            secure_boot(report, &mut reasons);
        }
        reasons
    }

    /// PCR values are public measurements, not secrets: a plain comparison is fine.
    fn pcrs(&self, verified: &VerifiedPosture, reasons: &mut Vec<Reason>) {
        let reason = |message: String, fix: &str| Reason {
            rule: "expected_pcrs".into(),
            message,
            finding: None,
            status: None,
            remediation: Some(Remediation::new(fix)),
        };
        let Some(quoted) = &verified.attested_pcrs else {
            reasons.push(reason(
                "the evidence has no TPM quote verified with an enrolled attestation key"
                    .into(),
                "Enroll this device (`posture enroll request`), and send evidence made with                  the verifier's nonce: `posture report --nonce N`.",
            ));
            return;
        };
        for (pcr, want) in &self.expected_pcrs {
            let want = crate::attestation::to_hex(want);
            match quoted.get(pcr) {
                Some(got) if *got == want => {}
                Some(got) => reasons.push(reason(
                    format!("PCR {pcr} is {got}; the policy expects {want}"),
                    "The boot chain differs from the approved one (firmware, boot loader or \
                     Secure Boot settings changed). Restore them, or have the policy updated.",
                )),
                None => reasons.push(reason(
                    format!("PCR {pcr} is not in the quote; the policy expects {want}"),
                    "Quote the PCRs the policy checks: add them to `quote_pcrs` in the `[key]` \
                     section of posture's configuration.",
                )),
            }
        }
    }

    fn os_version(&self, report: &Report, reasons: &mut Vec<Reason>) {
        let os = &report.os;
        let Some((key, min)) = self
            .min_os_version
            .get_key_value(&os.id)
            .or_else(|| self.min_os_version.get_key_value(&os.family))
        else {
            return;
        };
        if passing(report, "min_os_version", "os", reasons).is_none() {
            return;
        }
        let name = if os.name.is_empty() { key } else { &os.name };
        let upgrade = Remediation::new(format!("Upgrade {name} to version {min} or later."));
        let reason = |message: String| Reason {
            rule: "min_os_version".into(),
            message,
            finding: Some("os".into()),
            status: report.finding("os").map(|f| f.status),
            remediation: Some(upgrade.clone()),
        };
        match os.version_id.as_deref().map(str::parse::<OsVersion>) {
            None => reasons.push(reason(format!(
                "{name} does not report a version; the policy requires {key} {min} or later"
            ))),
            Some(Err(e)) => reasons.push(reason(format!(
                "cannot compare the OS version: {e}; the policy requires {key} {min} or later"
            ))),
            Some(Ok(version)) if &version < min => reasons.push(reason(format!(
                "{key} {version} is older than the required {min}"
            ))),
            Some(Ok(_)) => {}
        }
    }
}

fn finding_reason(rule: &str, finding: &Finding, message: String) -> Reason {
    Reason {
        rule: rule.into(),
        message,
        finding: Some(finding.id.clone()),
        status: Some(finding.status),
        remediation: finding.remediation.clone(),
    }
}

fn missing(rule: &str, id: &str) -> Reason {
    Reason {
        rule: rule.into(),
        message: format!("the `{id}` check did not run, so the policy cannot be met"),
        finding: Some(id.into()),
        status: None,
        remediation: Some(Remediation::new(format!(
            "Make sure the `{id}` check is enabled in posture's configuration and run \
             `posture check`."
        ))),
    }
}

/// The reason text of a finding that could not tell.
fn could_not_tell(finding: &Finding) -> String {
    format!(
        "the `{}` check could not tell: {}",
        finding.id,
        finding.reason.as_deref().unwrap_or("no reason given")
    )
}

fn required_check(report: &Report, id: &str, reasons: &mut Vec<Reason>) {
    passing(report, "required_checks", id, reasons);
}

/// The finding `id` when it passed; otherwise a reason naming it (did not run, failed, or
/// could not tell) is pushed and `None` returned. Every rule that reads a finding goes
/// through here: a rule never holds on a finding that is not `pass`.
fn passing<'a>(
    report: &'a Report,
    rule: &str,
    id: &str,
    reasons: &mut Vec<Reason>,
) -> Option<&'a Finding> {
    let Some(finding) = report.finding(id) else {
        reasons.push(missing(rule, id));
        return None;
    };
    match finding.status {
        Status::Pass => Some(finding),
        Status::Fail => {
            reasons.push(finding_reason(
                rule,
                finding,
                format!("`{id}` failed: {}", finding.summary),
            ));
            None
        }
        Status::Unknown => {
            reasons.push(finding_reason(rule, finding, could_not_tell(finding)));
            None
        }
    }
}

/// A fact the rule needs that the finding does not report (absent, `null` or of the wrong
/// type): the rule cannot hold.
fn unknown_fact(rule: &str, finding: &Finding, fact: &str) -> Reason {
    Reason {
        remediation: finding.remediation.clone().or_else(|| {
            Some(Remediation::new(format!(
                "Run `posture check --only {}` and make sure it can read `{fact}` (some \
                 facts are only visible to root).",
                finding.id
            )))
        }),
        ..finding_reason(
            rule,
            finding,
            format!(
                "the `{}` check does not report `{fact}`, so the policy cannot be met",
                finding.id
            ),
        )
    }
}

fn patch_age(report: &Report, max_days: u32, reasons: &mut Vec<Reason>) {
    const RULE: &str = "max_patch_age_days";
    const FACT: &str = "oldest_security_pending_days";
    let Some(finding) = passing(report, RULE, "patch_level", reasons) else {
        return;
    };
    // `null` means the age is not known (an update already pending at the first run has
    // only a lower bound), never "nothing pending": that is 0.
    match finding.observed.get(FACT).and_then(Value::as_u64) {
        Some(days) if days <= u64::from(max_days) => {}
        Some(days) => reasons.push(Reason {
            remediation: finding.remediation.clone().or_else(|| {
                Some(Remediation::new(
                    "Install the pending security updates and restart if asked.",
                ))
            }),
            ..finding_reason(
                RULE,
                finding,
                format!(
                    "a security update has been pending for {days} days; the policy \
                     allows {max_days}"
                ),
            )
        }),
        None => reasons.push(unknown_fact(RULE, finding, FACT)),
    }
}

fn edr(report: &Report, required: &[String], reasons: &mut Vec<Reason>) {
    const RULE: &str = "required_edr";
    let Some(finding) = passing(report, RULE, "edr", reasons) else {
        return;
    };
    let Some(running) = finding
        .observed
        .get("running")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<&str>>())
    else {
        reasons.push(unknown_fact(RULE, finding, "running"));
        return;
    };
    if running.iter().any(|r| required.iter().any(|q| q == r)) {
        return;
    }
    let running_text = if running.is_empty() {
        "none".to_owned()
    } else {
        running.join(", ")
    };
    reasons.push(Reason {
        remediation: Some(Remediation::new(format!(
            "Install and start one of these security agents: {}. Ask your IT team if \
             you do not have it.",
            required.join(", ")
        ))),
        ..finding_reason(
            RULE,
            finding,
            format!(
                "none of the required EDR products is running (required any of: {}; \
                 running: {running_text})",
                required.join(", ")
            ),
        )
    });
}

fn secure_boot(report: &Report, reasons: &mut Vec<Reason>) {
    const RULE: &str = "require_secure_boot";
    let Some(finding) = passing(report, RULE, "secure_boot", reasons) else {
        return;
    };
    let fact = |name: &str| finding.observed.get(name).and_then(Value::as_bool);
    match (fact("enabled"), fact("setup_mode")) {
        (Some(true), Some(false)) => {}
        (Some(false), _) => reasons.push(Reason {
            remediation: finding.remediation.clone().or_else(|| {
                Some(Remediation::new(
                    "Turn on Secure Boot in the firmware (UEFI) settings.",
                ))
            }),
            ..finding_reason(RULE, finding, "Secure Boot is disabled".into())
        }),
        (_, Some(true)) => reasons.push(finding_reason(
            RULE,
            finding,
            "Secure Boot is in Setup Mode: no platform key is enrolled, nothing is verified".into(),
        )),
        (None, _) => reasons.push(unknown_fact(RULE, finding, "enabled")),
        (_, None) => reasons.push(unknown_fact(RULE, finding, "setup_mode")),
    }
}
