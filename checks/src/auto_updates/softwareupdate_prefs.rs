//! macOS automatic updates: the Software Update preferences
//! (`/Library/Preferences/com.apple.SoftwareUpdate.plist`, overridden by a configuration
//! profile's `/Library/Managed Preferences/com.apple.SoftwareUpdate.plist`) and the App
//! Store's `com.apple.commerce` `AutoUpdate`.
//!
//! The keys (Apple's `com.apple.SoftwareUpdate` payload documentation):
//! `AutomaticCheckEnabled` (check for updates), `AutomaticDownload` (download them),
//! `AutomaticallyInstallMacOSUpdates` (install macOS updates), `CriticalUpdateInstall`
//! (install Security Responses and system files), `ConfigDataInstall` (install the
//! background security data: XProtect, MRT). A key that is absent means the macOS default,
//! which System Settings shows as on for checking, downloading, security responses and
//! security data, and off for installing macOS updates.

use serde_json::Value;

use crate::plist::as_bool;

/// One automatic-update setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Its plist key.
    pub key: &'static str,
    /// What it does, for people.
    pub what: &'static str,
    /// Its value when no plist sets it.
    pub default: bool,
    /// Whether posture requires it on.
    pub required: bool,
}

/// The settings posture reads, in the order System Settings shows them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "AutomaticCheckEnabled",
        what: "check for updates",
        default: true,
        required: true,
    },
    Setting {
        key: "AutomaticDownload",
        what: "download new updates when available",
        default: true,
        required: true,
    },
    Setting {
        key: "CriticalUpdateInstall",
        what: "install Security Responses and system files",
        default: true,
        required: true,
    },
    Setting {
        key: "ConfigDataInstall",
        what: "install background security data (XProtect, MRT)",
        default: true,
        required: true,
    },
    Setting {
        key: "AutomaticallyInstallMacOSUpdates",
        what: "install macOS updates",
        default: false,
        required: false,
    },
];

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A configuration profile (managed preferences).
    Managed,
    /// The machine's preferences.
    Local,
    /// Neither sets it: the macOS default.
    Default,
}

/// A setting's effective value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    /// Plist key.
    pub key: &'static str,
    /// Effective value.
    pub enabled: bool,
    /// Where it came from.
    pub origin: Origin,
}

/// The effective value of every setting: managed over local over the default. A value
/// that is present but not a boolean is skipped (the next source decides).
pub fn effective(managed: Option<&Value>, local: Option<&Value>) -> Vec<Effective> {
    SETTINGS
        .iter()
        .map(|setting| {
            let from = |plist: Option<&Value>| plist?.get(setting.key).and_then(as_bool);
            let (enabled, origin) = if let Some(v) = from(managed) {
                (v, Origin::Managed)
            } else if let Some(v) = from(local) {
                (v, Origin::Local)
            } else {
                (setting.default, Origin::Default)
            };
            Effective {
                key: setting.key,
                enabled,
                origin,
            }
        })
        .collect()
}

/// The required settings that are off, for people (`check for updates`, ...).
pub fn problems(effective: &[Effective]) -> Vec<&'static str> {
    effective
        .iter()
        .filter(|e| !e.enabled)
        .filter_map(|e| SETTINGS.iter().find(|s| s.key == e.key))
        .filter(|s| s.required)
        .map(|s| s.what)
        .collect()
}

/// `softwareupdate --schedule` output: `Automatic check is on` / `... off`.
pub fn parse_schedule(text: &str) -> Option<bool> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("automatic check is on") {
        Some(true)
    } else if lower.contains("automatic check is off") {
        Some(false)
    } else {
        None
    }
}

/// The `auto_updates` finding on macOS (pure).
pub fn decide(effective: &[Effective], sources: &[String]) -> posture_core::Finding {
    use posture_core::{Finding, Remediation};
    let problems = problems(effective);
    let settings: serde_json::Map<String, Value> = effective
        .iter()
        .map(|e| {
            (
                e.key.to_owned(),
                serde_json::json!({ "enabled": e.enabled, "origin": e.origin }),
            )
        })
        .collect();
    let mut finding = if problems.is_empty() {
        Finding::pass(
            super::ID,
            "macOS checks for, downloads and installs security updates automatically",
        )
    } else {
        Finding::fail(
            super::ID,
            format!("automatic updates: macOS does not {}", problems.join(", ")),
            Remediation::new(format!(
                "Open System Settings > General > Software Update, click the (i) next to \
                 Automatic Updates and turn on: {}. If a setting is greyed out, a \
                 configuration profile sets it: ask your administrator.",
                problems.join("; ")
            ))
            .with_url("https://support.apple.com/en-us/108382"),
        )
    };
    finding = finding.observe("settings", Value::Object(settings));
    for s in sources {
        finding = finding.source(s.clone());
    }
    finding
}
