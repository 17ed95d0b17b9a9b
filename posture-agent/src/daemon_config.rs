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
    /// `$XDG_RUNTIME_DIR/posture/posture.sock`. On Windows the local API's named pipe,
    /// `\\.\pipe\<name>` (default `\\.\pipe\posture`).
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
    /// Windows: SIDs (users or groups, e.g. `S-1-5-32-544` for Administrators) allowed
    /// to use the local API, matched against the caller's token user and its enabled
    /// groups. Empty means only the daemon's own user, as `allow_uids` does on Unix
    /// (where this list is not used; `allow_uids`, `allow_gids` and `allow_groups` are
    /// not used on Windows).
    pub allow_sids: Vec<String>,
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
    /// Absolute path of the executable (as `/proc/PID/exe` names it; on Windows as
    /// `QueryFullProcessImageNameW` does, compared case-insensitively).
    pub exe: PathBuf,
    /// Audiences it may ask evidence for; `"*"` is any, and an empty list is none (a
    /// request without an audience is refused too).
    pub audiences: Vec<String>,
    /// Uids that may run it to ask; empty is any uid allowed to use the API (Unix).
    #[serde(default)]
    pub uids: Vec<u32>,
    /// Windows: user SIDs that may run it to ask; empty is any user allowed to use the
    /// API.
    #[serde(default)]
    pub sids: Vec<String>,
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
            allow_sids: Vec::new(),
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
            if let Some(bad) = client.sids.iter().find(|s| !is_sid(s)) {
                return invalid(
                    "allowed_clients",
                    &format!("{bad:?} is not a SID (S-1-5-21-...)"),
                );
            }
        }
        if let Some(bad) = self.allow_sids.iter().find(|s| !is_sid(s)) {
            return invalid(
                "allow_sids",
                &format!(
                    "{bad:?} is not a SID (S-1-<authority>-<sub-authority>..., e.g. S-1-5-32-544)"
                ),
            );
        }
        #[cfg(windows)]
        if let Some(socket) = &self.socket {
            if pipe_name(socket).is_none() {
                return invalid(
                    "socket",
                    "on Windows this is the named pipe, \\\\.\\pipe\\<name>",
                );
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
}

/// Whether `text` is a SID in string form (`S-1-<authority>-<sub-authority>...`, as
/// `ConvertSidToStringSidW` writes it; at most 15 sub-authorities of 32 bits). SDDL
/// aliases (`BA`, `SY`) are not accepted: the allow-list names SIDs exactly.
pub fn is_sid(text: &str) -> bool {
    let mut parts = text.split('-');
    if !parts.next().is_some_and(|s| s.eq_ignore_ascii_case("S")) || parts.next() != Some("1") {
        return false;
    }
    let Some(authority) = parts.next() else {
        return false;
    };
    // The identifier authority: 48 bits, decimal (or hex `0x...` above 2^32).
    let authority_ok = match authority.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).is_ok_and(|a| a < 1 << 48),
        None => authority.parse::<u64>().is_ok_and(|a| a < 1 << 48),
    };
    let subs: Vec<&str> = parts.collect();
    authority_ok
        && (1..=15).contains(&subs.len())
        && subs.iter().all(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok()
        })
}

/// The name of a Windows named pipe path (`\\.\pipe\<name>`, case-insensitive), or
/// `None` when `path` is not one.
pub fn pipe_name(path: &std::path::Path) -> Option<&str> {
    let text = path.to_str()?;
    let prefix = text.get(..9)?;
    let name = text.get(9..)?;
    (prefix.eq_ignore_ascii_case("\\\\.\\pipe\\") && !name.is_empty() && !name.contains('\\'))
        .then_some(name)
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
    fn sids_are_checked_for_their_string_form() {
        for good in [
            "S-1-5-18",
            "S-1-5-32-544",
            "s-1-5-21-3623811015-3361044348-30300820-1013",
            "S-1-0x123456789ABC-1",
            "S-1-5-21-0-0-0-1000",
        ] {
            assert!(is_sid(good), "{good}");
        }
        for bad in [
            "",
            "BA",
            "SY",
            "S-1",
            "S-1-5",
            "S-2-5-18",
            "S-1-5-",
            "S-1-5--18",
            "S-1-5-18 ",
            "S-1-5-4294967296",
            "S-1-281474976710656-1",
            "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
        ] {
            assert!(!is_sid(bad), "{bad}");
        }
        let config: DaemonConfig =
            toml::from_str("allow_sids = [\"S-1-5-32-544\", \"S-1-5-21-1-2-3-1001\"]\n").unwrap();
        assert_eq!(config.allow_sids.len(), 2);
        config.validate().unwrap();
        let config: DaemonConfig = toml::from_str("allow_sids = [\"Administrators\"]\n").unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("allow_sids") && error.contains("Administrators"),
            "{error}"
        );
        let config: DaemonConfig = toml::from_str(
            "[[allowed_clients]]\nexe = \"/usr/bin/x\"\naudiences = []\nsids = [\"S-1-5\"]\n",
        )
        .unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("allowed_clients"));
    }

    #[test]
    fn the_packaged_windows_config_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/windows/config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = crate::config::Config::parse(&text, &path).unwrap();
        config.daemon.validate().unwrap();
        assert_eq!(config.daemon.allow_sids, ["S-1-5-32-544", "S-1-5-4"]);
        let socket = config.daemon.socket.as_deref().unwrap();
        assert_eq!(pipe_name(socket), Some("posture"));
    }

    #[test]
    fn pipe_names() {
        use std::path::Path;
        assert_eq!(pipe_name(Path::new(r"\\.\pipe\posture")), Some("posture"));
        assert_eq!(
            pipe_name(Path::new(r"\\.\PIPE\posture-test")),
            Some("posture-test")
        );
        assert_eq!(pipe_name(Path::new(r"\\.\pipe\")), None);
        assert_eq!(pipe_name(Path::new(r"\\server\pipe\posture")), None);
        assert_eq!(pipe_name(Path::new(r"\\.\pipe\a\b")), None);
        assert_eq!(pipe_name(Path::new("/run/posture/posture.sock")), None);
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
