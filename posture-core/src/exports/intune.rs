//! Microsoft Intune custom compliance (Linux): the JSON a discovery script prints (one
//! line of `{"setting": value}`) and the rules file that judges it, with remediation
//! strings (`SettingName`, `Operator`, `DataType`, `Operand`, `MoreInfoUrl`,
//! `RemediationStrings` with an `en_US` entry, as Intune's custom compliance JSON
//! requires).
//!
//! Settings of the discovery JSON:
//! - `posture_daemon` (String): `running` when the answer came from the posture daemon
//!   (which collects as root), `unreachable` when the daemon could not be asked,
//!   `not_used` when the posture was collected by the calling user (then root-only checks
//!   such as `firewall` are `unknown`).
//! - `posture_compliant` (Boolean): the device's compliance as the agent decided it with
//!   its policy.
//! - `os_version` (Version), `key_assurance` (String: `software`, `tpm-unverified`,
//!   `tpm`, or `unknown`).
//! - one String setting per check id: `pass`, `fail` or `unknown`.
//!
//! The rules file is generic: it names checks and their documentation, never what one
//! machine found (a rules file is uploaded once for a whole fleet). Every `MoreInfoUrl`
//! is `DOCS_URL#<setting>`, where `DOCS_URL` is where the organisation publishes
//! posture's `docs/remediation.md`, which has a section per setting.

use serde_json::{json, Map, Value};

use crate::keys::KeyAssurance;
use crate::policy::Policy;
use crate::Report;

/// `posture_daemon` when the answer came from the daemon.
pub const DAEMON_RUNNING: &str = "running";
/// `posture_daemon` when the daemon could not be asked.
pub const DAEMON_UNREACHABLE: &str = "unreachable";
/// `posture_daemon` when the calling user collected the posture.
pub const DAEMON_NOT_USED: &str = "not_used";

/// The single-line JSON a discovery script prints. `compliant` is the device's
/// compliance as the agent decided it with its policy; `daemon` one of
/// [`DAEMON_RUNNING`] and [`DAEMON_NOT_USED`].
pub fn discovery_json(
    report: &Report,
    key_assurance: KeyAssurance,
    compliant: bool,
    daemon: &str,
) -> String {
    let mut settings = Map::new();
    settings.insert("posture_daemon".into(), json!(daemon));
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

/// The discovery JSON when the daemon could not be asked: not compliant, every check
/// `unknown`, so every rule has a value to judge and the `posture_daemon` rule tells the
/// person what to do.
pub fn unreachable_json(check_ids: &[&str]) -> String {
    let mut settings = Map::new();
    settings.insert("posture_daemon".into(), json!(DAEMON_UNREACHABLE));
    settings.insert("posture_compliant".into(), json!(false));
    settings.insert("key_assurance".into(), json!("unknown"));
    for id in check_ids {
        settings.insert((*id).to_owned(), json!("unknown"));
    }
    Value::Object(settings).to_string()
}

fn rule(
    setting: &str,
    operator: &str,
    data_type: &str,
    operand: Value,
    docs_url: &str,
    title: &str,
    description: &str,
) -> Value {
    json!({
        "SettingName": setting,
        "Operator": operator,
        "DataType": data_type,
        "Operand": operand,
        "MoreInfoUrl": format!("{}#{setting}", docs_url.trim_end_matches('#')),
        "RemediationStrings": [
            { "Language": "en_US", "Title": title, "Description": description }
        ]
    })
}

/// The rules file (`{"Rules": [...]}`) and notes for the person generating it.
///
/// `checks` are `(id, title)` of the checks to require when there is no policy (with a
/// policy: its `required_checks`, titled from `checks` where listed). Always: the
/// daemon must have answered and found the device compliant. With a policy: its minimum
/// OS version (when it names exactly one; Intune rules cannot tell distributions apart,
/// so with several the `posture_compliant` rule, decided by the daemon with the same
/// policy, covers them and a note says so) and its key assurance.
pub fn rules(
    checks: &[(&str, &str)],
    policy: Option<&Policy>,
    docs_url: &str,
) -> (Value, Vec<String>) {
    let mut rules = vec![
        rule(
            "posture_daemon",
            "IsEquals",
            "String",
            json!(DAEMON_RUNNING),
            docs_url,
            "The posture service could not be asked",
            "Start the posture service: sudo systemctl enable --now posture. Your account \
             must be in the posture group: sudo usermod -aG posture \"$USER\", then log out \
             and in again.",
        ),
        rule(
            "posture_compliant",
            "IsEquals",
            "Boolean",
            json!(true),
            docs_url,
            "This device does not meet the security policy",
            "Run posture check in a terminal: it lists what fails on this device and how \
             to fix each item.",
        ),
    ];
    let mut notes = Vec::new();
    let ids: Vec<&str> = match policy {
        Some(policy) => policy.required_checks.iter().map(String::as_str).collect(),
        None => checks.iter().map(|(id, _)| *id).collect(),
    };
    for id in ids {
        let title = checks
            .iter()
            .find(|(c, _)| *c == id)
            .map_or(id, |(_, title)| *title);
        rules.push(rule(
            id,
            "IsEquals",
            "String",
            json!("pass"),
            docs_url,
            &format!("{title}: the check does not pass"),
            &format!(
                "Run posture check --only {id} in a terminal: it says what it found on this \
                 device and how to fix it."
            ),
        ));
    }
    if let Some(policy) = policy {
        let mut mins = policy.min_os_version.iter();
        match (mins.next(), mins.next()) {
            (Some((os, min)), None) => rules.push(rule(
                "os_version",
                "GreaterEquals",
                "Version",
                json!(min.to_string()),
                docs_url,
                "The operating system is too old",
                &format!("Upgrade the operating system ({os}) to version {min} or later."),
            )),
            (Some(_), Some(_)) => notes.push(format!(
                "the policy's min_os_version names {} systems; an Intune rule cannot tell \
                 them apart, so no os_version rule was written (the posture_compliant rule \
                 covers it: the daemon decides with the same policy)",
                policy.min_os_version.len()
            )),
            _ => {}
        }
        if let Some(required) = policy
            .required_key_assurance
            .filter(|a| *a >= KeyAssurance::TpmUnverified)
        {
            rules.push(rule(
                "key_assurance",
                "IsEquals",
                "String",
                json!(KeyAssurance::Tpm.as_str()),
                docs_url,
                "The device key is not protected by the TPM",
                "Enrol this device with its TPM: sudo posture enroll --server URL --token \
                 TOKEN, with the server URL and the enrollment token your IT team gives you.",
            ));
            if required == KeyAssurance::TpmUnverified {
                notes.push(
                    "the policy accepts tpm-unverified keys; the key_assurance rule requires \
                     tpm (Intune's String rules compare one value)"
                        .into(),
                );
            }
        }
    }
    (json!({ "Rules": rules }), notes)
}
