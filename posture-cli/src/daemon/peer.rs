//! Who may use the local API: the caller's uid from `SO_PEERCRED`, its groups from the
//! account database, checked against `[daemon]`'s allow-lists and `allowed_clients`.

use std::path::Path;

use posture_agent::daemon_config::DaemonConfig;

/// Whether a caller may use the local API. `groups` are the caller's primary and
/// supplementary gids. With no allow-list at all, only the daemon's own uid may.
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

/// Whether a program (`exe` run by `uid`; `None`: it could not be told race-free) may
/// ask for evidence for `audience`. With no `allowed_clients`, every caller may.
pub fn client_may_request(
    config: &DaemonConfig,
    uid: u32,
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
        client.exe == exe
            && (client.uids.is_empty() || client.uids.contains(&uid))
            && audience.is_some_and(|aud| client.audiences.iter().any(|a| a == "*" || a == aud))
    })
}

/// The gid of a group name from `/etc/group`.
#[cfg(not(target_vendor = "apple"))]
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
#[cfg(not(target_vendor = "apple"))]
type ListGid = libc::gid_t;
#[cfg(target_vendor = "apple")]
type ListGid = libc::c_int;

#[cfg_attr(target_vendor = "apple", allow(dead_code))]
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
        assert!(client_may_request(&open, 1000, None, None));
        let config = DaemonConfig {
            allowed_clients: vec![AllowedClient {
                exe: "/usr/bin/posture-browser-helper".into(),
                audiences: vec!["https://idp.example".into()],
                uids: vec![],
            }],
            ..DaemonConfig::default()
        };
        let helper = Path::new("/usr/bin/posture-browser-helper");
        assert!(client_may_request(
            &config,
            1000,
            Some(helper),
            Some("https://idp.example")
        ));
        assert!(!client_may_request(
            &config,
            1000,
            Some(helper),
            Some("https://evil.example")
        ));
        assert!(!client_may_request(&config, 1000, Some(helper), None));
        assert!(!client_may_request(
            &config,
            1000,
            Some(Path::new("/usr/bin/curl")),
            Some("https://idp.example")
        ));
        assert!(!client_may_request(
            &config,
            1000,
            None,
            Some("https://idp.example")
        ));
    }
}
