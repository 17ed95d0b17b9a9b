//! Microsoft Intune custom compliance: the JSON a discovery script prints (one line of
//! `{"setting": value}`) and the rules file that judges it, with remediation strings.
//!
//! Settings: `posture_compliant` (Boolean), `os_version` (Version), `key_assurance`
//! (String) and one String setting per check id whose value is `pass`, `fail` or
//! `unknown`. Rules require each check to equal `pass` and, with a policy, the minimum
//! OS version and key assurance.

use serde_json::{json, Map, Value};

use crate::keys::KeyAssurance;
use crate::policy::Policy;
use crate::{Report, Status};

/// Where a rule's "more info" link points when a finding has no link of its own.
pub const DEFAULT_MORE_INFO_URL: &str = "https://example.invalid/posture/docs/remediation";

/// The single-line JSON a discovery script prints (`ConvertTo-Json -Compress` form).
/// `compliant` is the device's compliance as the agent decided it with its policy.
pub fn discovery_json(report: &Report, key_assurance: KeyAssurance, compliant: bool) -> String {
    let mut settings = Map::new();
    settings.insert("posture_compliant".into(), json!(compliant));
    if let Some(version) = &report.os.version_id {
        settings.insert("os_version".into(), json!(version));
    }
    settings.insert("key_assurance".into(), json!(key_assurance.as_str()));
    for finding in &report.findings {
        settings.insert(finding.id.clone(), json!(finding.status.as_str()));
    }
    Value::Object(settings).to_string()
}

fn rule(
    setting: &str,
    operator: &str,
    data_type: &str,
    operand: &str,
    url: &str,
    title: &str,
    description: &str,
) -> Value {
    json!({
        "SettingName": setting,
        "Operator": operator,
        "DataType": data_type,
        "Operand": operand,
        "MoreInfoUrl": url,
        "RemediationStrings": [
            { "Language": "en_US", "Title": title, "Description": description }
        ]
    })
}

/// The rules file (`{"Rules": [...]}`) for this report's checks: with a policy, for its
/// required checks, minimum OS version and key assurance; without one, every check must
/// pass.
pub fn rules(report: &Report, policy: Option<&Policy>) -> Value {
    let mut rules = Vec::new();
    let ids: Vec<&str> = match policy {
        Some(policy) => policy.required_checks.iter().map(String::as_str).collect(),
        None => report.findings.iter().map(|f| f.id.as_str()).collect(),
    };
    for id in ids {
        let finding = report.finding(id);
        let remediation = finding.and_then(|f| f.remediation.as_ref());
        let url = remediation
            .and_then(|r| r.url.as_deref())
            .unwrap_or(DEFAULT_MORE_INFO_URL);
        let description = match (remediation, finding) {
            (Some(r), _) => r.text.clone(),
            (None, Some(f)) if f.status != Status::Pass => f.summary.clone(),
            _ => format!("Run `posture check` to see how to make the `{id}` check pass."),
        };
        rules.push(rule(
            id,
            "IsEquals",
            "String",
            "pass",
            url,
            &format!("The {id} check does not pass"),
            &description,
        ));
    }
    if let Some(policy) = policy {
        let os = &report.os;
        let min = policy
            .min_os_version
            .get(&os.id)
            .or_else(|| policy.min_os_version.get(&os.family));
        if let Some(min) = min {
            rules.push(rule(
                "os_version",
                "GreaterEquals",
                "Version",
                &min.to_string(),
                DEFAULT_MORE_INFO_URL,
                "The operating system is too old",
                &format!("Upgrade {} to version {min} or later.", os.name),
            ));
        }
        if policy
            .required_key_assurance
            .is_some_and(|a| a >= KeyAssurance::TpmUnverified)
        {
            rules.push(rule(
                "key_assurance",
                "IsEquals",
                "String",
                "tpm",
                DEFAULT_MORE_INFO_URL,
                "The device key is not protected by the TPM",
                "Enroll this device with its TPM: run `sudo posture enroll`.",
            ));
        }
    }
    json!({ "Rules": rules })
}
