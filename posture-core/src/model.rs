//! The posture model: a [`Report`] of tri-state [`Finding`]s with their provenance.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Timestamp;

/// Version of the report's JSON form. Bumped on any incompatible change; the schema in
/// `schemas/report.schema.json` describes this version.
pub const REPORT_VERSION: u32 = 1;

/// The outcome of one check. `Unknown` is never a pass: it means the check could not tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The device meets the check.
    Pass,
    /// The device does not meet the check; a remediation says what to do.
    Fail,
    /// The check could not tell; a reason says why.
    Unknown,
}

impl Status {
    /// The lowercase wire name (`pass`, `fail`, `unknown`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// The privilege a collection ran with. Some facts (firewall rules, other users'
/// settings) are only visible to root, so a consumer needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// Effective uid 0 (or an administrator on other systems).
    Root,
    /// An unprivileged user.
    User,
}

/// What the person at the device should do to fix a failing check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    /// Plain words, for this device's OS, e.g. "Enable the firewall: sudo ufw enable".
    pub text: String,
    /// A page with more detail, where one helps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Remediation {
    /// A remediation in plain words.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            url: None,
        }
    }

    /// Adds a link for more detail.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
}

/// The result of one check, with the facts behind it and where they came from.
///
/// Invariants (checked by [`Finding::check_invariants`] and the JSON Schema):
/// `unknown` carries a `reason`, `fail` carries a `remediation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {"if": {"properties": {"status": {"const": "unknown"}}}, "then": {"required": ["reason"]}},
    {"if": {"properties": {"status": {"const": "fail"}}}, "then": {"required": ["remediation"]}}
]))]
pub struct Finding {
    /// Stable check id, e.g. `disk_encryption`.
    pub id: String,
    /// Pass, fail or unknown.
    pub status: Status,
    /// The facts in one line, for people.
    pub summary: String,
    /// The facts, for programs (e.g. `{"volumes": [...]}`).
    #[serde(default)]
    pub observed: Map<String, Value>,
    /// Where the facts came from: files, sysfs paths, commands, APIs.
    #[serde(default)]
    pub source: Vec<String>,
    /// Why the check could not tell. Required when `status` is `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What to do about it. Required when `status` is `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<Remediation>,
    /// When the check ran.
    pub collected_at: Timestamp,
    /// The privilege it ran with.
    pub privilege: Privilege,
}

/// A finding that breaks the model's invariants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantError {
    /// `unknown` without a reason.
    #[error("finding `{0}` is unknown but gives no reason")]
    UnknownWithoutReason(String),
    /// `fail` without a remediation.
    #[error("finding `{0}` fails but gives no remediation")]
    FailWithoutRemediation(String),
    /// The same check id appears twice.
    #[error("finding `{0}` appears more than once")]
    DuplicateId(String),
    /// A report version this code does not understand.
    #[error("report version {0} is not supported (expected {REPORT_VERSION})")]
    UnsupportedVersion(u32),
}

impl Finding {
    fn new(id: &str, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id: id.to_owned(),
            status,
            summary: summary.into(),
            observed: Map::new(),
            source: Vec::new(),
            reason: None,
            remediation: None,
            collected_at: Timestamp::now(),
            // The lesser claim until the runner, which knows, stamps the real one.
            privilege: Privilege::User,
        }
    }

    /// A passing finding.
    pub fn pass(id: &str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Pass, summary)
    }

    /// A failing finding; a failure always says how to fix it.
    pub fn fail(id: &str, summary: impl Into<String>, remediation: Remediation) -> Self {
        let mut finding = Self::new(id, Status::Fail, summary);
        finding.remediation = Some(remediation);
        finding
    }

    /// A finding that could not tell; it always says why.
    pub fn unknown(id: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let mut finding = Self::new(id, Status::Unknown, format!("could not tell: {reason}"));
        finding.reason = Some(reason);
        finding
    }

    /// Records an observed fact.
    pub fn observe(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.observed.insert(key.to_owned(), value.into());
        self
    }

    /// Records where a fact came from.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        let source = source.into();
        if !self.source.contains(&source) {
            self.source.push(source);
        }
        self
    }

    /// Adds a remediation (also useful on `unknown`, e.g. "run as root").
    pub fn remediation(mut self, remediation: Remediation) -> Self {
        self.remediation = Some(remediation);
        self
    }

    /// Checks that `unknown` has a reason and `fail` has a remediation.
    pub fn check_invariants(&self) -> Result<(), InvariantError> {
        match self.status {
            Status::Unknown if self.reason.as_deref().is_none_or(str::is_empty) => {
                Err(InvariantError::UnknownWithoutReason(self.id.clone()))
            }
            Status::Fail if self.remediation.is_none() => {
                Err(InvariantError::FailWithoutRemediation(self.id.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// The device the report describes. The id is a hash, never the raw machine id or serial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Stable device id: hex SHA-256 over a domain-separated machine id.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// Hardware vendor (DMI `sys_vendor`) where readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Hardware model (DMI `product_name`) where readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Hardware serial number (DMI `product_serial`, readable by root only) where it was
    /// readable and not a firmware placeholder; absent otherwise, never guessed. Servers
    /// use it to map the device to other systems' records (Cloudflare Zero Trust).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// Facts about the operating system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OsFacts {
    /// `linux`, `macos` or `windows`.
    pub family: String,
    /// Distribution or product id, e.g. `debian`, `ubuntu`, `fedora` (os-release `ID`).
    pub id: String,
    /// Human name, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub name: String,
    /// Version, e.g. `12` or `24.04` (os-release `VERSION_ID`); absent on rolling releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Kernel release, e.g. `6.1.0-26-amd64`.
    pub kernel: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
}

/// The agent that collected the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Always `posture` for this implementation.
    pub name: String,
    /// The agent's version.
    pub version: String,
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            name: "posture".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Counts of findings by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Findings that pass.
    pub pass: usize,
    /// Findings that fail.
    pub fail: usize,
    /// Findings that could not tell.
    pub unknown: usize,
}

/// A device's posture at one moment: who it is, what it runs, and every finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The version of this JSON form ([`REPORT_VERSION`]).
    pub report_version: u32,
    /// The device.
    pub device: Device,
    /// The operating system.
    pub os: OsFacts,
    /// The agent that collected it.
    pub agent: Agent,
    /// When collection started.
    pub collected_at: Timestamp,
    /// The privilege collection ran with.
    pub privilege: Privilege,
    /// Counts by status.
    pub summary: Summary,
    /// One finding per check that ran, in a stable order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Assembles a report and computes its summary.
    pub fn new(
        device: Device,
        os: OsFacts,
        collected_at: Timestamp,
        findings: Vec<Finding>,
    ) -> Self {
        let summary = summarize(&findings);
        Self {
            report_version: REPORT_VERSION,
            device,
            os,
            agent: Agent::default(),
            collected_at,
            privilege: Privilege::User,
            summary,
            findings,
        }
    }

    /// The finding with this id, if that check ran.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    /// Records the privilege the collection ran with, on the report and on every finding.
    /// The collector knows it; this crate never probes the running system.
    pub fn with_privilege(mut self, privilege: Privilege) -> Self {
        self.privilege = privilege;
        for finding in &mut self.findings {
            finding.privilege = privilege;
        }
        self
    }

    /// Checks every finding's invariants, unique ids and the version.
    pub fn check_invariants(&self) -> Result<(), InvariantError> {
        if self.report_version != REPORT_VERSION {
            return Err(InvariantError::UnsupportedVersion(self.report_version));
        }
        let mut seen = std::collections::HashSet::new();
        for finding in &self.findings {
            finding.check_invariants()?;
            if !seen.insert(finding.id.as_str()) {
                return Err(InvariantError::DuplicateId(finding.id.clone()));
            }
        }
        Ok(())
    }
}

fn summarize(findings: &[Finding]) -> Summary {
    let mut summary = Summary::default();
    for finding in findings {
        match finding.status {
            Status::Pass => summary.pass += 1,
            Status::Fail => summary.fail += 1,
            Status::Unknown => summary.unknown += 1,
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            id: "ab".repeat(32),
            hostname: "laptop".into(),
            vendor: None,
            model: None,
            serial_number: None,
        }
    }

    #[test]
    fn unknown_always_has_a_reason() {
        let f = Finding::unknown("tpm", "needs root");
        assert_eq!(f.reason.as_deref(), Some("needs root"));
        assert!(f.check_invariants().is_ok());
    }

    #[test]
    fn deserialized_fail_without_remediation_breaks_invariants() {
        let mut f = Finding::fail("firewall", "off", Remediation::new("turn it on"));
        f.remediation = None;
        let json = serde_json::to_string(&f).unwrap();
        let back: Finding = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.check_invariants(),
            Err(InvariantError::FailWithoutRemediation("firewall".into()))
        );
    }

    #[test]
    fn summary_counts_each_status() {
        let report = Report::new(
            device(),
            OsFacts::default(),
            Timestamp::now(),
            vec![
                Finding::pass("os", "Debian 12"),
                Finding::unknown("screen_lock", "no user session"),
            ],
        );
        assert_eq!(
            report.summary,
            Summary {
                pass: 1,
                fail: 0,
                unknown: 1
            }
        );
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let report = Report::new(
            device(),
            OsFacts::default(),
            Timestamp::now(),
            vec![Finding::pass("os", "a"), Finding::pass("os", "b")],
        );
        assert_eq!(
            report.check_invariants(),
            Err(InvariantError::DuplicateId("os".into()))
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let mut value = serde_json::to_value(Finding::pass("os", "x")).unwrap();
        value["statsu"] = "pass".into();
        assert!(serde_json::from_value::<Finding>(value).is_err());
    }
}
