//! The `[daemon]` table of the config file (where the socket and state live is resolved
//! by [`crate::paths`]).
//!
//! Unknown keys are errors (with line and column), like `[checks]`, so a typo never
//! silently turns delivery or the allow-list off.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The `[daemon]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// The local API's unix socket. Default: `$RUNTIME_DIRECTORY/posture.sock` under
    /// systemd, `/run/posture/posture.sock` as root, else
    /// `$XDG_RUNTIME_DIR/posture/posture.sock`.
    pub socket: Option<PathBuf>,
    /// Group that may connect to the socket (mode 0660). Without it the socket is 0600.
    pub socket_group: Option<String>,
    /// Where the outbox, the device key and the last compliance state live. Default:
    /// `$STATE_DIRECTORY` under systemd, `/var/lib/posture` as root, else the user's
    /// state directory (`~/.local/state/posture`).
    pub state_dir: Option<PathBuf>,
    /// Time between full collections.
    #[serde(deserialize_with = "de_duration")]
    pub interval: Duration,
    /// Up to this much is added at random to each interval, so a fleet does not
    /// collect (and push) in lock step.
    #[serde(deserialize_with = "de_duration")]
    pub jitter: Duration,
    /// System changes closer together than this are collected once.
    #[serde(deserialize_with = "de_duration")]
    pub debounce: Duration,
    /// Uids allowed to use the local API. Empty (with `allow_gids` empty) means only
    /// the daemon's own uid.
    pub allow_uids: Vec<u32>,
    /// Gids allowed to use the local API (the caller's primary or supplementary groups).
    pub allow_gids: Vec<u32>,
    /// Group names allowed to use the local API, resolved through `/etc/group`.
    pub allow_groups: Vec<String>,
    /// Connections served at once; more wait in the socket's backlog.
    pub max_connections: usize,
    /// Largest request body accepted; larger requests get 413.
    pub max_request_bytes: usize,
    /// A connection that has not finished its request and response in this time is closed.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Lifetime of signed evidence.
    #[serde(deserialize_with = "de_duration")]
    pub evidence_ttl: Duration,
    /// Where signed evidence is POSTed after each collection (http or https).
    pub server_url: Option<String>,
    /// RFC 8935 push endpoint for CAEP `device-compliance-change` SETs.
    pub caep_receiver: Option<String>,
    /// `aud` of pushed evidence and events.
    pub audience: Option<String>,
    /// Policy file (TOML, or JSON; see docs/evidence.md) that decides compliance for
    /// compliance-change events. Without it, compliant means every check passed.
    pub policy: Option<PathBuf>,
    /// Most items kept in the outbox; the oldest are evicted (and logged) beyond it.
    pub outbox_max_items: usize,
    /// Most bytes kept in the outbox.
    pub outbox_max_bytes: u64,
    /// First retry delay after a failed delivery; it doubles up to `retry_max`.
    #[serde(deserialize_with = "de_duration")]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[serde(deserialize_with = "de_duration")]
    pub retry_max: Duration,
    /// Re-collect affected checks when the system changes (inotify, logind).
    pub watch: bool,
    /// Filesystem root the checks read below, for tests and image builds. When set,
    /// the checks see only that tree (no commands, no live OS state). Default `/`.
    pub root: Option<PathBuf>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            socket: None,
            socket_group: None,
            state_dir: None,
            interval: Duration::from_secs(15 * 60),
            jitter: Duration::from_secs(60),
            debounce: Duration::from_secs(2),
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            allow_groups: Vec::new(),
            max_connections: 64,
            max_request_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            evidence_ttl: Duration::from_secs(5 * 60),
            server_url: None,
            caep_receiver: None,
            audience: None,
            policy: None,
            outbox_max_items: 1000,
            outbox_max_bytes: 16 * 1024 * 1024,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(5 * 60),
            watch: true,
            root: None,
        }
    }
}

/// A `[daemon]` value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value out of range.
    #[error("daemon.{key}: {problem}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl DaemonConfig {
    /// Checks ranges and URLs.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, problem: &str| {
            Err(SettingsError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.interval < Duration::from_secs(1) {
            return invalid("interval", "must be at least 1s");
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if !(64..=1024 * 1024).contains(&self.max_request_bytes) {
            return invalid("max_request_bytes", "must be between 64 and 1048576");
        }
        if self.request_timeout.is_zero() || self.evidence_ttl.is_zero() {
            return invalid("request_timeout", "timeouts must be more than zero");
        }
        if self.outbox_max_items == 0 || self.outbox_max_bytes < 4096 {
            return invalid("outbox_max_items", "the outbox needs room for one item");
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            return invalid(
                "retry_max",
                "retry delays must be positive and max >= initial",
            );
        }
        for (key, url) in [
            ("server_url", &self.server_url),
            ("caep_receiver", &self.caep_receiver),
        ] {
            if let Some(url) = url {
                match url::Url::parse(url) {
                    Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                    Ok(_) => return invalid(key, "must be an http or https URL"),
                    Err(e) => return invalid(key, &e.to_string()),
                }
            }
        }
        Ok(())
    }

    /// Whether a caller may use the local API. `groups` are the caller's primary and
    /// supplementary gids. With no allow-list at all, only the daemon's own uid may.
    pub fn allows(&self, uid: u32, groups: &[u32]) -> bool {
        if self.allow_uids.is_empty() && self.allow_gids.is_empty() && self.allow_groups.is_empty()
        {
            return uid == posture_core::process::effective_uid();
        }
        if self.allow_uids.contains(&uid) || groups.iter().any(|g| self.allow_gids.contains(g)) {
            return true;
        }
        !self.allow_groups.is_empty()
            && self
                .allow_groups
                .iter()
                .filter_map(|name| group_id(name))
                .any(|gid| groups.contains(&gid))
    }
}

/// The gid of a group name from `/etc/group`.
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    parse_group_id(&text, name)
}

/// The supplementary groups of a process, from `/proc/PID/status` (`Groups:` line).
pub fn process_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|status| parse_groups(&status))
        .unwrap_or_default()
}

fn parse_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn parse_group_id(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.parse().ok()
    })
}

/// Deserializes a human duration such as `15m`, `500ms` or `2s`.
fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_id_from_etc_group() {
        // Lines as Debian 12 writes them.
        let text = "root:x:0:\nsudo:x:27:alice\nposture:x:998:\n";
        assert_eq!(parse_group_id(text, "posture"), Some(998));
        assert_eq!(parse_group_id(text, "nope"), None);
    }

    #[test]
    fn explicit_allow_list_replaces_own_uid() {
        let config = DaemonConfig {
            allow_uids: vec![4242],
            ..DaemonConfig::default()
        };
        assert!(config.allows(4242, &[1]));
        assert!(!config.allows(4243, &[1]));
        let config = DaemonConfig {
            allow_gids: vec![998],
            ..DaemonConfig::default()
        };
        assert!(config.allows(1000, &[1000, 998]));
        assert!(!config.allows(1000, &[1000]));
    }

    #[test]
    fn supplementary_groups_from_proc_status() {
        // Lines of /proc/PID/status as Linux 6.1 writes them.
        let status = "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t24 27 998 1000 \n";
        assert_eq!(parse_groups(status), vec![24, 27, 998, 1000]);
        assert_eq!(parse_groups("Groups:\t\n"), Vec::<u32>::new());
    }

    #[test]
    fn bad_url_and_zero_interval_are_rejected() {
        let mut config = DaemonConfig {
            server_url: Some("ftp://x".into()),
            ..DaemonConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("server_url"));
        config.server_url = None;
        config.interval = Duration::ZERO;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("interval"));
        assert!(DaemonConfig::default().validate().is_ok());
    }
}
