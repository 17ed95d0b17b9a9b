//! Who may use the local API: on Unix the caller's uid from `SO_PEERCRED` and its groups
//! from the account database; on Windows the caller's token user SID and enabled group
//! SIDs (see `winpipe`). Checked against `[daemon]`'s allow-lists and `allowed_clients`.
//! Everything here is pure (apart from the account database lookups), so the Windows
//! rules are tested on Linux too.

use std::path::Path;

use posture_agent::daemon_config::DaemonConfig;

/// Who is on the other end of a local API connection, as the OS tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A Unix peer: the kernel's uid and gid, and the uid's groups from the account
    /// database (primary first).
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix {
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
        /// Its primary and supplementary gids.
        groups: Vec<u32>,
    },
    /// A Windows peer: its token's user SID and enabled (not deny-only) group SIDs.
    #[cfg_attr(not(windows), allow(dead_code))]
    Windows {
        /// The user SID (`S-1-5-21-...`, `S-1-5-18`).
        sid: String,
        /// Group SIDs.
        groups: Vec<String>,
    },
}

impl Identity {
    /// What connections are counted under for the per-user connection limit.
    pub fn user_key(&self) -> String {
        match self {
            Identity::Unix { uid, .. } => uid.to_string(),
            Identity::Windows { sid, .. } => sid.to_ascii_uppercase(),
        }
    }

    /// The uid for evidence's `requester` claim; `u32::MAX` (`(uid_t) -1`, no uid) for
    /// a Windows caller, which `requester.sid` names instead.
    pub fn uid(&self) -> u32 {
        match self {
            Identity::Unix { uid, .. } => *uid,
            Identity::Windows { .. } => u32::MAX,
        }
    }

    /// The user SID of a Windows caller.
    pub fn sid(&self) -> Option<&str> {
        match self {
            Identity::Unix { .. } => None,
            Identity::Windows { sid, .. } => Some(sid),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Unix { uid, gid, .. } => write!(f, "uid {uid} gid {gid}"),
            Identity::Windows { sid, .. } => write!(f, "sid {sid}"),
        }
    }
}

/// The daemon's own identity, what callers are compared with when no allow-list is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Own {
    /// Its effective uid.
    #[cfg_attr(not(unix), allow(dead_code))]
    Uid(u32),
    /// Its token's user SID.
    #[cfg_attr(not(windows), allow(dead_code))]
    Sid(String),
}

/// Whether a caller may use the local API, given the daemon's own identity.
pub fn allows_identity(config: &DaemonConfig, caller: &Identity, own: &Own) -> bool {
    match caller {
        #[cfg(unix)]
        Identity::Unix { uid, groups, .. } => allows(config, *uid, groups),
        #[cfg(not(unix))]
        Identity::Unix { .. } => false,
        Identity::Windows { sid, groups } => {
            let own = match own {
                Own::Sid(own) => Some(own.as_str()),
                Own::Uid(_) => None,
            };
            allows_sid(config, sid, groups, own)
        }
    }
}

/// Whether a Windows caller (user `sid`, enabled `groups`) may use the local API: its
/// user or one of its groups is in `allow_sids`; with no `allow_sids`, only the daemon's
/// own user (`own`) may. SIDs compare case-insensitively (`s-1-5-18` is `S-1-5-18`).
pub fn allows_sid(config: &DaemonConfig, sid: &str, groups: &[String], own: Option<&str>) -> bool {
    if config.allow_sids.is_empty() {
        return own.is_some_and(|own| own.eq_ignore_ascii_case(sid));
    }
    config.allow_sids.iter().any(|allowed| {
        allowed.eq_ignore_ascii_case(sid) || groups.iter().any(|g| allowed.eq_ignore_ascii_case(g))
    })
}

/// The security descriptor (SDDL) of the daemon's named pipe: full control for SYSTEM,
/// Administrators and the daemon's own user (who create its instances), and for every
/// SID of `allow_sids` only read, write-data and attributes: never
/// `FILE_CREATE_PIPE_INSTANCE` (the same bit as `FILE_APPEND_DATA`, part of
/// `GENERIC_WRITE`), so no allowed caller can create an instance and answer in the
/// daemon's place. Protected (`P`): nothing inherited. Without `allow_sids` only the
/// daemon's own user (and SYSTEM and Administrators) may open it, as on Linux.
#[cfg_attr(not(windows), allow(dead_code))]
pub fn pipe_sddl(config: &DaemonConfig, own_sid: &str) -> String {
    // FILE_GENERIC_READ (0x120089) | FILE_WRITE_DATA (0x2) | FILE_WRITE_ATTRIBUTES (0x100).
    const CLIENT_RIGHTS: &str = "0x12018b";
    let mut sddl = format!("D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;{own_sid})");
    for sid in &config.allow_sids {
        sddl.push_str(&format!("(A;;{CLIENT_RIGHTS};;;{sid})"));
    }
    sddl
}

/// Whether the server end of the pipe may be trusted by a client running as `own_sid`:
/// it runs as SYSTEM (the service) or as the client's own user (a daemon the user
/// started). Anything else may be a process squatting the pipe's name.
#[cfg_attr(not(windows), allow(dead_code))]
pub fn trusted_server(server_sid: &str, own_sid: &str) -> bool {
    server_sid.eq_ignore_ascii_case("S-1-5-18") || server_sid.eq_ignore_ascii_case(own_sid)
}

/// Whether a Unix caller may use the local API. `groups` are the caller's primary and
/// supplementary gids. With no allow-list at all, only the daemon's own uid may.
#[cfg(unix)]
pub fn allows(config: &DaemonConfig, uid: u32, groups: &[u32]) -> bool {
    if config.allow_uids.is_empty()
        && config.allow_gids.is_empty()
        && config.allow_groups.is_empty()
    {
        return uid == posture_core::process::effective_uid();
    }
    if config.allow_uids.contains(&uid) || groups.iter().any(|g| config.allow_gids.contains(g)) {
        return true;
    }
    !config.allow_groups.is_empty()
        && config
            .allow_groups
            .iter()
            .filter_map(|name| group_id(name))
            .any(|gid| groups.contains(&gid))
}

/// Whether a program (`exe` run by `caller`; `None`: it could not be told race-free) may
/// ask for evidence for `audience`. With no `allowed_clients`, every caller may. A
/// Windows caller's executable path compares case-insensitively (as NTFS names do), and
/// its user against the entry's `sids`; a Unix caller's exactly, and its uid against
/// `uids`.
pub fn client_may_request(
    config: &DaemonConfig,
    caller: &Identity,
    exe: Option<&Path>,
    audience: Option<&str>,
) -> bool {
    if config.allowed_clients.is_empty() {
        return true;
    }
    let Some(exe) = exe else {
        return false;
    };
    config.allowed_clients.iter().any(|client| {
        let (same_exe, same_user) = match caller {
            Identity::Unix { uid, .. } => (
                client.exe == exe,
                client.uids.is_empty() || client.uids.contains(uid),
            ),
            Identity::Windows { sid, .. } => (
                client
                    .exe
                    .to_string_lossy()
                    .eq_ignore_ascii_case(&exe.to_string_lossy()),
                client.sids.is_empty() || client.sids.iter().any(|s| s.eq_ignore_ascii_case(sid)),
            ),
        };
        same_exe
            && same_user
            && audience.is_some_and(|aud| client.audiences.iter().any(|a| a == "*" || a == aud))
    })
}

/// The gid of a group name from `/etc/group`.
#[cfg(all(unix, not(target_vendor = "apple")))]
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    parse_group_id(&text, name)
}

/// The gid of a group name from the directory service (`getgrnam_r`): on macOS groups
/// made with `dscl` (as packaging/macos/README.md does) are not in `/etc/group`.
#[cfg(target_vendor = "apple")]
pub fn group_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero `group` is a valid value (null pointers, zero id); it is only
    // read after getgrnam_r reported success.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated and alive; `entry` and `result` are live locals;
    // `buffer` is writable for `buffer.len()` bytes and outlives every use of `entry`.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(entry.gr_gid)
}

/// The groups of a user from the account database (`getpwuid_r` for the name and
/// primary group, then `getgrouplist`, through NSS as `id` does). Empty when the uid has no
/// account. This, not `/proc/PID/status`, is what a peer's groups are taken from: the uid
/// comes race-free from `SO_PEERCRED`, while a pid may already belong to another process.
// The casts between `gid_t` and `ListGid` are no-ops except on Apple (int).
#[allow(clippy::unnecessary_cast)]
#[cfg(unix)]
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
    let mut groups: Vec<ListGid> = vec![0; 64];
    for _ in 0..4 {
        let mut count = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `entry.pw_name` is a NUL-terminated string inside `buffer` (alive);
        // `groups` is writable for `count` gids, and getgrouplist writes at most that many.
        let rc = unsafe {
            libc::getgrouplist(
                entry.pw_name,
                entry.pw_gid as ListGid,
                groups.as_mut_ptr(),
                &mut count,
            )
        };
        let count = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(count.min(groups.len()));
            // Apple's getgrouplist takes gids as int: the same 32 bits.
            return groups.into_iter().map(|g| g as u32).collect();
        }
        // Too small: `count` now holds the number needed.
        groups.resize(count.max(groups.len() * 2).min(65_536), 0);
    }
    Vec::new()
}

/// The gid type of `getgrouplist`: `gid_t`, but `int` on Apple's (BSD) declaration.
#[cfg(all(unix, not(target_vendor = "apple")))]
type ListGid = libc::gid_t;
#[cfg(target_vendor = "apple")]
type ListGid = libc::c_int;

#[cfg_attr(not(all(unix, not(target_vendor = "apple"))), allow(dead_code))]
fn parse_group_id(etc_group: &str, name: &str) -> Option<u32> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_agent::daemon_config::AllowedClient;

    #[test]
    fn group_id_from_etc_group() {
        // Lines as Debian 12 writes them.
        let text = "root:x:0:\nsudo:x:27:alice\nposture:x:998:\n";
        assert_eq!(parse_group_id(text, "posture"), Some(998));
        assert_eq!(parse_group_id(text, "nope"), None);
    }

    fn unix(uid: u32) -> Identity {
        Identity::Unix {
            uid,
            gid: uid,
            groups: vec![uid],
        }
    }

    fn windows(sid: &str, groups: &[&str]) -> Identity {
        Identity::Windows {
            sid: sid.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    // Wine's user, and groups as Wine's default token has them.
    const WINE_USER: &str = "S-1-5-21-0-0-0-1000";
    const WINE_GROUPS: &[&str] = &["S-1-1-0", "S-1-5-32-545", "S-1-5-32-544", "S-1-5-11"];

    #[test]
    fn without_allow_sids_only_the_daemons_own_sid_may() {
        let config = DaemonConfig::default();
        let own = Own::Sid(WINE_USER.into());
        assert!(allows_identity(
            &config,
            &windows(WINE_USER, WINE_GROUPS),
            &own
        ));
        assert!(allows_identity(
            &config,
            &windows("s-1-5-21-0-0-0-1000", &[]),
            &own
        ));
        // Administrators membership alone is not the daemon's user.
        assert!(!allows_identity(
            &config,
            &windows("S-1-5-21-0-0-0-1001", WINE_GROUPS),
            &own
        ));
        // A Unix-style allow-list does not apply to Windows callers.
        let config = DaemonConfig {
            allow_uids: vec![1000],
            ..DaemonConfig::default()
        };
        assert!(!allows_identity(
            &config,
            &windows("S-1-5-21-0-0-0-1001", &[]),
            &own
        ));
    }

    #[test]
    fn allow_sids_name_users_or_groups() {
        let own = Own::Sid("S-1-5-18".into());
        let config = DaemonConfig {
            allow_sids: vec!["S-1-5-32-544".into(), "S-1-5-21-1-2-3-1001".into()],
            ..DaemonConfig::default()
        };
        assert!(allows_identity(
            &config,
            &windows("S-1-5-21-1-2-3-1001", &[]),
            &own
        ));
        assert!(allows_identity(
            &config,
            &windows("S-1-5-21-1-2-3-1002", &["S-1-5-32-544"]),
            &own
        ));
        assert!(!allows_identity(
            &config,
            &windows("S-1-5-21-1-2-3-1002", &["S-1-5-32-545"]),
            &own
        ));
        // The daemon's own user is not implicitly allowed once there is a list.
        assert!(!allows_identity(&config, &windows("S-1-5-18", &[]), &own));
    }

    #[test]
    fn pipe_sddl_never_lets_callers_create_instances() {
        let config = DaemonConfig {
            allow_sids: vec!["S-1-5-32-545".into()],
            ..DaemonConfig::default()
        };
        let sddl = pipe_sddl(&config, WINE_USER);
        assert_eq!(
            sddl,
            "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;S-1-5-21-0-0-0-1000)(A;;0x12018b;;;S-1-5-32-545)"
        );
        // FILE_CREATE_PIPE_INSTANCE (0x4) is not in the callers' rights.
        assert_eq!(0x12018b & 0x4, 0);
        // The owner-only check of posture-core agrees that only the trusted and the
        // daemon's user hold rights without an allow-list.
        let private = pipe_sddl(&DaemonConfig::default(), WINE_USER);
        assert_eq!(
            posture_core::sddl::private_problem(&format!("O:{WINE_USER}{private}"), WINE_USER),
            None
        );
    }

    #[test]
    fn a_client_trusts_a_system_or_own_server_only() {
        assert!(trusted_server("S-1-5-18", WINE_USER));
        assert!(trusted_server(WINE_USER, WINE_USER));
        assert!(!trusted_server("S-1-5-21-0-0-0-1001", WINE_USER));
        assert!(!trusted_server("S-1-5-19", WINE_USER)); // LOCAL SERVICE
    }

    #[test]
    fn allowed_clients_on_windows_compare_paths_case_insensitively() {
        let config = DaemonConfig {
            allowed_clients: vec![AllowedClient {
                exe: r"C:\Program Files\Helper\helper.exe".into(),
                audiences: vec!["*".into()],
                uids: vec![],
                sids: vec!["S-1-5-21-1-2-3-1001".into()],
            }],
            ..DaemonConfig::default()
        };
        let exe = Path::new(r"c:\program files\helper\HELPER.EXE");
        let user = windows("S-1-5-21-1-2-3-1001", &[]);
        assert!(client_may_request(&config, &user, Some(exe), Some("a")));
        let other = windows("S-1-5-21-1-2-3-1002", &[]);
        assert!(!client_may_request(&config, &other, Some(exe), Some("a")));
        assert!(!client_may_request(&config, &user, None, Some("a")));
        // The `uids` of an entry do not match Windows callers' fake uid.
        assert_eq!(user.uid(), u32::MAX);
        assert_eq!(user.user_key(), "S-1-5-21-1-2-3-1001");
    }

    #[cfg(unix)]
    #[test]
    fn explicit_allow_list_replaces_own_uid() {
        let config = DaemonConfig {
            allow_uids: vec![4242],
            ..DaemonConfig::default()
        };
        assert!(allows(&config, 4242, &[1]));
        assert!(!allows(&config, 4243, &[1]));
        let config = DaemonConfig {
            allow_gids: vec![998],
            ..DaemonConfig::default()
        };
        assert!(allows(&config, 1000, &[1000, 998]));
        assert!(!allows(&config, 1000, &[1000]));
    }

    #[cfg(unix)]
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
        assert!(client_may_request(&open, &unix(1000), None, None));
        let config = DaemonConfig {
            allowed_clients: vec![AllowedClient {
                exe: "/usr/bin/posture-browser-helper".into(),
                audiences: vec!["https://idp.example".into()],
                uids: vec![],
                sids: vec![],
            }],
            ..DaemonConfig::default()
        };
        let helper = Path::new("/usr/bin/posture-browser-helper");
        assert!(client_may_request(
            &config,
            &unix(1000),
            Some(helper),
            Some("https://idp.example")
        ));
        assert!(!client_may_request(
            &config,
            &unix(1000),
            Some(helper),
            Some("https://evil.example")
        ));
        assert!(!client_may_request(
            &config,
            &unix(1000),
            Some(helper),
            None
        ));
        assert!(!client_may_request(
            &config,
            &unix(1000),
            Some(Path::new("/usr/bin/curl")),
            Some("https://idp.example")
        ));
        assert!(!client_may_request(
            &config,
            &unix(1000),
            None,
            Some("https://idp.example")
        ));
    }
}
