//! Windows Defender Firewall per profile from `Get-NetFirewallProfile` (pure; every OS).
//!
//! Read as the script writes it: `[{"Name": "Domain", "Enabled": "True",
//! "DefaultInboundAction": "NotConfigured"}, ...]` (enums as their names, see
//! Microsoft Learn, "Get-NetFirewallProfile" and the `MSFT_NetFirewallProfile` class:
//! `Enabled` is a `GpoBoolean` — `True`, `False`, `NotConfigured`; `DefaultInboundAction`
//! is `NotConfigured`, `Allow` or `Block`). The profile cmdlet reports the effective
//! (policy store `ActiveStore`) values; `NotConfigured` inbound action means Windows'
//! default, which blocks.

use serde::Serialize;
use serde_json::Value;

use crate::ps_json::{list, text};

/// One profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// `Domain`, `Private` or `Public`.
    pub name: String,
    /// The firewall is on for this profile; `None` when not readable.
    pub enabled: Option<bool>,
    /// Unsolicited inbound connections are allowed by default.
    pub inbound_allowed: bool,
}

impl Profile {
    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        match self.enabled {
            Some(false) => Some(format!("the {} profile's firewall is off", self.name)),
            None => Some(format!("the {} profile's state is not known", self.name)),
            Some(true) if self.inbound_allowed => Some(format!(
                "the {} profile allows unsolicited inbound connections by default",
                self.name
            )),
            Some(true) => None,
        }
    }
}

fn gpo_bool(v: Option<String>) -> Option<bool> {
    match v?.to_ascii_lowercase().as_str() {
        // NotConfigured (2) means the local default, which is on.
        "true" | "1" | "notconfigured" | "2" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parses the profiles.
pub fn parse(value: &Value) -> Vec<Profile> {
    list(value)
        .into_iter()
        .map(|p| Profile {
            name: text(p, "Name").unwrap_or_default(),
            enabled: gpo_bool(text(p, "Enabled")),
            inbound_allowed: text(p, "DefaultInboundAction")
                .is_some_and(|a| a.eq_ignore_ascii_case("allow") || a == "2"),
        })
        .collect()
}
