//! The `[daemon]` table of the config file (where the socket and state live is resolved
//! by [`crate::paths`]).
//!
//! Unknown keys are errors (with line and column), like `[checks]`, so a typo never
//! silently turns delivery or the allow-list off.

use std::path::{Path, PathBuf};
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
    /// Connections of one uid served at once; more from that uid wait for one of its
    /// own slots, so no single user can hold every slot.
    pub max_connections_per_uid: usize,
    /// A request's head and body must arrive within this time (slow clients are cut
    /// off; signing the answer has `request_timeout`).
    #[serde(deserialize_with = "de_duration")]
    pub read_timeout: Duration,
    /// Which executables may ask for evidence, and for which audiences. Empty: every
    /// allowed caller, any audience. See docs/evidence.md, "Threat model".
    pub allowed_clients: Vec<AllowedClient>,
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
    /// posture-server's `GET /v1/challenge`: fetched before each delivery, so evidence is
    /// signed at delivery time, bound to a fresh single-use nonce and to the server's
    /// audience (the outbox keeps the report until then). Default: derived from a
    /// `server_url` ending in `/v1/evidence`; other receivers get evidence signed at
    /// collection time, as before.
    pub challenge_url: Option<String>,
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

/// One `[[daemon.allowed_clients]]` entry: a program that may ask for evidence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedClient {
    /// Absolute path of the executable (as `/proc/PID/exe` names it).
    pub exe: PathBuf,
    /// Audiences it may ask evidence for; `"*"` is any, and an empty list is none (a
    /// request without an audience is refused too).
    pub audiences: Vec<String>,
    /// Uids that may run it to ask; empty is any uid allowed to use the API.
    #[serde(default)]
    pub uids: Vec<u32>,
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
            max_connections_per_uid: 8,
            read_timeout: Duration::from_secs(2),
            allowed_clients: Vec::new(),
            max_request_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            evidence_ttl: Duration::from_secs(5 * 60),
            server_url: None,
            challenge_url: None,
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
    /// Where to fetch a nonce before each evidence delivery, if the receiver is a
    /// posture-server (`challenge_url`, else derived from `server_url`).
    pub fn challenge_url(&self) -> Option<String> {
        if let Some(url) = &self.challenge_url {
            return Some(url.clone());
        }
        self.server_url
            .as_deref()?
            .strip_suffix("/v1/evidence")
            .map(|base| format!("{base}/v1/challenge"))
    }

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
        if self.max_connections_per_uid == 0 || self.max_connections_per_uid > self.max_connections
        {
            return invalid(
                "max_connections_per_uid",
                "must be at least 1 and at most max_connections",
            );
        }
        if self.read_timeout.is_zero() {
            return invalid("read_timeout", "must be more than zero");
        }
        for client in &self.allowed_clients {
            if !client.exe.is_absolute() {
                return invalid("allowed_clients", "exe must be an absolute path");
            }
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
            ("challenge_url", &self.challenge_url),
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

    /// Whether a program (`exe` run by `uid`; `None`: it could not be told race-free) may
    /// ask for evidence for `audience`. With no `allowed_clients`, every caller may.
    pub fn client_may_request(&self, uid: u32, exe: Option<&Path>, audience: Option<&str>) -> bool {
        if self.allowed_clients.is_empty() {
            return true;
        }
        let Some(exe) = exe else {
            return false;
        };
        self.allowed_clients.iter().any(|client| {
            client.exe == exe
                && (client.uids.is_empty() || client.uids.contains(&uid))
                && audience.is_some_and(|aud| client.audiences.iter().any(|a| a == "*" || a == aud))
        })
    }
}

/// The gid of a group name from `/etc/group`.
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    parse_group_id(&text, name)
}

/// The groups of a user from the account database (`getpwuid_r` for the name and
/// primary group, then `getgrouplist`, through NSS as `id` does). Empty when the uid has no
/// account. This, not `/proc/PID/status`, is what a peer's groups are taken from: the uid
/// comes race-free from `SO_PEERCRED`, while a pid may already belong to another process.
pub fn account_groups(uid: u32) -> Vec<u32> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero `passwd` is a valid value (null pointers, zero ids); it is only
    // read after getpwuid_r reported success.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `entry` and `result` are live locals,
    // `buffer` is writable for `buffer.len()` bytes and outlives every use of `entry`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || entry.pw_name.is_null() {
        return Vec::new();
    }
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..4 {
        let mut count = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `entry.pw_name` is a NUL-terminated string inside `buffer` (alive);
        // `groups` is writable for `count` gids, and getgrouplist writes at most that many.
        let rc = unsafe {
            libc::getgrouplist(entry.pw_name, entry.pw_gid, groups.as_mut_ptr(), &mut count)
        };
        let count = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(count.min(groups.len()));
            return groups;
        }
        // Too small: `count` now holds the number needed.
        groups.resize(count.max(groups.len() * 2).min(65_536), 0);
    }
    Vec::new()
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
    fn account_groups_agree_with_id() {
        // `id -G nobody` asks the same account database (NSS) posture does.
        let output = std::process::Command::new("id")
            .args(["-G", "nobody"])
            .output()
            .expect("id (coreutils) is needed");
        assert!(output.status.success());
        let mut expected: Vec<u32> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        let mut groups = account_groups(65534);
        expected.sort_unstable();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(groups, expected);
        assert!(account_groups(4_000_000_000).is_empty());
    }

    #[test]
    fn allowed_clients_restrict_programs_and_audiences() {
        let open = DaemonConfig::default();
        assert!(open.client_may_request(1000, None, None));
        let config = DaemonConfig {
            allowed_clients: vec![AllowedClient {
                exe: "/usr/bin/posture-browser-helper".into(),
                audiences: vec!["https://idp.example".into()],
                uids: vec![],
            }],
            ..DaemonConfig::default()
        };
        let helper = Path::new("/usr/bin/posture-browser-helper");
        assert!(config.client_may_request(1000, Some(helper), Some("https://idp.example")));
        assert!(!config.client_may_request(1000, Some(helper), Some("https://evil.example")));
        assert!(!config.client_may_request(1000, Some(helper), None));
        assert!(!config.client_may_request(
            1000,
            Some(Path::new("/usr/bin/curl")),
            Some("https://idp.example")
        ));
        assert!(!config.client_may_request(1000, None, Some("https://idp.example")));
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
