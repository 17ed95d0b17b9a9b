//! macOS application firewall: `/usr/libexec/ApplicationFirewall/socketfilterfw
//! --getglobalstate --getstealthmode --getblockall` output, and the older
//! `/Library/Preferences/com.apple.alf.plist` (`globalstate`, `stealthenabled`), which macOS
//! 15 no longer keeps up to date.
//!
//! `--getglobalstate` prints `Firewall is enabled. (State = 1)`, `Firewall is disabled.
//! (State = 0)` or, with "Block all incoming connections", `(State = 2)`. Stealth mode is
//! `Firewall stealth mode is on|off` on macOS 15 and later, `Stealth mode enabled|disabled`
//! before. `--getblockall`: `Firewall has block all state set to enabled|disabled.` (or
//! `Block all DISABLED!` on older releases).

use serde_json::Value;

use crate::plist::{as_bool, as_i64};

/// The application firewall's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppFirewall {
    /// Global state: 0 off, 1 on, 2 on and blocking all incoming connections.
    pub global_state: Option<u8>,
    /// Stealth mode (no answer to probes such as ICMP echo).
    pub stealth: Option<bool>,
    /// "Block all incoming connections".
    pub block_all: Option<bool>,
}

impl AppFirewall {
    /// Whether the firewall filters incoming connections.
    pub fn enabled(&self) -> Option<bool> {
        self.global_state.map(|s| s >= 1)
    }
}

/// Parses `socketfilterfw` output (any of its `--get...` answers, in any order).
pub fn parse(text: &str) -> AppFirewall {
    let mut fw = AppFirewall::default();
    for line in text.lines() {
        let lower = line.trim().to_ascii_lowercase();
        if let Some(at) = lower.find("(state = ") {
            let digits: String = lower[at + 9..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(state) = digits.parse::<u8>() {
                fw.global_state = Some(state);
                if state == 2 {
                    fw.block_all = Some(true);
                }
            }
        } else if lower.starts_with("firewall is enabled") {
            fw.global_state.get_or_insert(1);
        } else if lower.starts_with("firewall is disabled") {
            fw.global_state = Some(0);
        } else if lower.contains("stealth mode") {
            if lower.ends_with("is on") || lower.contains("stealth mode enabled") {
                fw.stealth = Some(true);
            } else if lower.ends_with("is off") || lower.contains("stealth mode disabled") {
                fw.stealth = Some(false);
            }
        } else if lower.contains("block all") {
            if lower.contains("set to enabled") || lower.contains("block all enabled") {
                fw.block_all = Some(true);
            } else if lower.contains("set to disabled") || lower.contains("block all disabled") {
                fw.block_all = Some(false);
            }
        }
    }
    fw
}

/// Reads the parsed `com.apple.alf.plist`.
pub fn from_alf_plist(plist: &Value) -> AppFirewall {
    let state = plist
        .get("globalstate")
        .and_then(as_i64)
        .and_then(|s| u8::try_from(s).ok());
    AppFirewall {
        global_state: state,
        stealth: plist.get("stealthenabled").and_then(as_bool),
        block_all: state.map(|s| s == 2),
    }
}

/// The `firewall` finding on macOS (pure): the application firewall must be on and in
/// stealth mode (CIS Apple macOS benchmark 2.2.1 and 2.2.2).
pub fn decide(fw: &AppFirewall, source: &str) -> posture_core::Finding {
    use posture_core::{Finding, Remediation};
    let url = "https://support.apple.com/guide/mac-help/mh34041/mac";
    let finding = match (fw.enabled(), fw.stealth) {
        (None, _) => Finding::unknown(
            super::ID,
            format!("application firewall state not understood from {source}"),
        ),
        (Some(false), _) => Finding::fail(
            super::ID,
            "the macOS application firewall is off",
            Remediation::new(
                "Turn on the firewall: open System Settings > Network > Firewall and switch it \
                 on, then under Options turn on \"Enable stealth mode\" (or run `sudo \
                 /usr/libexec/ApplicationFirewall/socketfilterfw --setglobalstate on \
                 --setstealthmode on`).",
            )
            .with_url(url),
        ),
        (Some(true), Some(false)) => Finding::fail(
            super::ID,
            "the macOS application firewall is on but not in stealth mode",
            Remediation::new(
                "Turn on stealth mode: open System Settings > Network > Firewall > Options and \
                 turn on \"Enable stealth mode\" (or run `sudo \
                 /usr/libexec/ApplicationFirewall/socketfilterfw --setstealthmode on`).",
            )
            .with_url(url),
        ),
        (Some(true), None) => Finding::unknown(
            super::ID,
            format!("the application firewall is on; stealth mode not understood from {source}"),
        ),
        (Some(true), Some(true)) => Finding::pass(
            super::ID,
            if fw.block_all == Some(true) {
                "application firewall on, blocking all incoming connections, stealth mode on"
            } else {
                "application firewall on, stealth mode on"
            },
        ),
    };
    finding
        .observe("global_state", fw.global_state)
        .observe("stealth", fw.stealth)
        .observe("block_all", fw.block_all)
        .source(source)
}
