//! macOS system extensions: `systemextensionsctl list` output.
//!
//! ```text
//! 2 extension(s)
//! --- com.apple.system_extension.endpoint_security
//! enabled    active    teamID    bundleID (version)    name    [state]
//! *    *    X9E956P446    com.crowdstrike.falcon.Agent (7.29/201.03)    Falcon Sensor    [activated enabled]
//! ```
//!
//! Columns are tab separated; `*` marks enabled / active. The team ID is Apple's code
//! signing team of the extension's developer, which another developer cannot sign as: a
//! catalogue match needs both the team ID and the bundle ID.

/// One system extension.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SystemExtension {
    /// The category header above it (`com.apple.system_extension.endpoint_security`).
    pub category: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// Active.
    pub active: bool,
    /// The developer's team ID.
    pub team_id: String,
    /// Its bundle ID.
    pub bundle_id: String,
    /// The version in parentheses after the bundle ID.
    pub version: Option<String>,
    /// Its name.
    pub name: String,
    /// The state in brackets (`activated enabled`, `activated waiting for user`,
    /// `terminated waiting to uninstall on reboot`...).
    pub state: String,
}

impl SystemExtension {
    /// Enabled, active, and its state says `activated enabled`.
    pub fn running(&self) -> bool {
        self.enabled && self.active && self.state == "activated enabled"
    }
}

/// Parses `systemextensionsctl list`. Lines that are not extension rows are skipped.
pub fn parse_list(text: &str) -> Vec<SystemExtension> {
    let mut out = Vec::new();
    let mut category = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("---") {
            let name = rest.split_whitespace().next().unwrap_or("");
            category = Some(name.trim_end_matches("---").to_owned()).filter(|c| !c.is_empty());
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 5 || cols[0].trim() == "enabled" {
            continue;
        }
        let team_id = cols[2].trim();
        let (bundle_id, version) = match cols[3].split_once(" (") {
            Some((id, v)) => (id.trim(), Some(v.trim_end_matches(')').to_owned())),
            None => (cols[3].trim(), None),
        };
        if team_id.is_empty() || bundle_id.is_empty() {
            continue;
        }
        let state = cols
            .get(5)
            .map(|s| {
                s.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()
            })
            .unwrap_or_default();
        out.push(SystemExtension {
            category: category.clone(),
            enabled: cols[0].trim() == "*",
            active: cols[1].trim() == "*",
            team_id: team_id.to_owned(),
            bundle_id: bundle_id.to_owned(),
            version,
            name: cols[4].trim().to_owned(),
            state,
        });
    }
    out
}
