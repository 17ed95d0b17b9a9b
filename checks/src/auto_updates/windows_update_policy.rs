//! Automatic updates on Windows (pure; every OS), as the script writes them:
//! `{"Policy": {"NoAutoUpdate", "AUOptions"}, "ServiceStart": "Manual", "PauseExpiry": "..."}`.
//!
//! - Group Policy `HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU`
//!   (Microsoft Learn, "Configure Automatic Updates" / "Manage additional Windows Update
//!   settings"): `NoAutoUpdate` 1 turns automatic updates off; `AUOptions` 2 = notify
//!   before downloading, 3 = download automatically and notify to install, 4 = download
//!   and schedule the install, 5 = local admin chooses, 7 = notify to install and restart.
//! - The Windows Update service `wuauserv`: start type `Disabled` stops all updating.
//! - A pause (`HKLM\SOFTWARE\Microsoft\WindowsUpdate\UX\Settings\PauseUpdatesExpiryTime`,
//!   ISO 8601): updates are off until then.
//!
//! With no policy, Windows 10 and 11 download and install updates by themselves.

use serde_json::Value;

use crate::ps_json::{text, uint};

/// What is wrong, in plain words (empty: updates install automatically), and the
/// `AUOptions` value in force.
pub fn problems(value: &Value, now_iso: &str) -> (Vec<String>, Option<u64>) {
    let policy = value.get("Policy").unwrap_or(&Value::Null);
    let mut out = Vec::new();
    if uint(policy, "NoAutoUpdate") == Some(1) {
        out.push("Group Policy turns automatic updates off (NoAutoUpdate = 1)".to_owned());
    }
    let options = uint(policy, "AUOptions");
    if options == Some(2) {
        out.push(
            "Group Policy only notifies before downloading updates (AUOptions = 2)".to_owned(),
        );
    }
    if text(value, "ServiceStart").is_some_and(|s| s.eq_ignore_ascii_case("disabled")) {
        out.push("the Windows Update service (wuauserv) is disabled".to_owned());
    }
    if let Some(until) = text(value, "PauseExpiry").filter(|s| !s.is_empty()) {
        // ISO 8601 in UTC compares as text.
        if until.as_str() > now_iso {
            out.push(format!("updates are paused until {until}"));
        }
    }
    (out, options)
}
