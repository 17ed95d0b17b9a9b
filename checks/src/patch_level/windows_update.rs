//! Windows Update's view (pure; every OS): the updates its last scan found and not yet
//! installed (`Microsoft.Update.Session` searcher, `IsInstalled=0 and IsHidden=0`, run
//! offline against the last online scan's cache), whether a reboot is pending, and when it
//! last searched and installed successfully (`Microsoft.Update.AutoUpdate`'s `Results`).
//!
//! The shape read is the one `windows.rs`' script writes with `ConvertTo-Json`:
//! `{"Pending": [{"Title", "KB", "Security", "Severity"}], "RebootRequired",
//! "LastSearchSuccess", "LastInstallSuccess"}` (dates as ISO 8601 strings).

use serde_json::Value;

use crate::ps_json::{boolean, list, text};

/// One pending update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    /// Its title.
    pub title: String,
    /// Its KB article ids, comma-separated.
    pub kb: String,
    /// In the "Security Updates" category, or with an MSRC severity.
    pub security: bool,
}

/// What Windows Update says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateState {
    /// Updates found and not installed.
    pub pending: Vec<PendingUpdate>,
    /// Whether an installed update waits for a reboot.
    pub reboot_required: Option<bool>,
    /// The last successful search (`YYYY-MM-DD...`), if any.
    pub last_search_success: Option<String>,
    /// The last successful installation, if any.
    pub last_install_success: Option<String>,
}

impl UpdateState {
    /// The pending security updates.
    pub fn security_pending(&self) -> usize {
        self.pending.iter().filter(|u| u.security).count()
    }
}

/// Parses the script's JSON.
pub fn parse(value: &Value) -> Result<UpdateState, String> {
    if !value.is_object() {
        return Err("Windows Update's answer is not an object".to_owned());
    }
    let pending = list(value.get("Pending").unwrap_or(&Value::Null))
        .into_iter()
        .map(|u| PendingUpdate {
            title: text(u, "Title").unwrap_or_default(),
            kb: text(u, "KB").unwrap_or_default(),
            security: boolean(u, "Security").unwrap_or(false)
                || text(u, "Severity").is_some_and(|s| !s.is_empty()),
        })
        .collect();
    Ok(UpdateState {
        pending,
        reboot_required: boolean(value, "RebootRequired"),
        last_search_success: text(value, "LastSearchSuccess").filter(|s| !s.is_empty()),
        last_install_success: text(value, "LastInstallSuccess").filter(|s| !s.is_empty()),
    })
}
