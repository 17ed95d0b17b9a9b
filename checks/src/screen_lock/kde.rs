//! KDE Plasma: `kscreenlockerrc`, group `[Daemon]`.
//!
//! KConfig cascades the system file (`/etc/xdg/kscreenlockerrc`) under the user's
//! (`~/.config/kscreenlockerrc`); a group or key marked `[$i]` in the system file is
//! immutable and the user's value is ignored. Defaults (kscreenlocker's `kscreensaversettings.kcfg`):
//! `Autolock=true`, `Timeout=5` (minutes), `LockGrace=5` (seconds during which the
//! screen can be unlocked without a password), `LockOnResume=true`.

use std::collections::BTreeMap;

use serde_json::json;

use super::LockSettings;
use crate::source::{read_bytes, read_user_file, SourceError};
use crate::Context;

/// One value of a KConfig file, and whether it is immutable (`[$i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The raw value.
    pub value: String,
    /// Marked `[$i]` (on the key or its group).
    pub immutable: bool,
}

/// Parses the `[Daemon]` group of a KConfig INI file. Localised keys (`Key[de]`) are
/// skipped; `$e`-style expansion is not done (the keys read here are plain).
pub fn parse_daemon_group(text: &str) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut in_daemon = false;
    let mut group_immutable = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            // `[Daemon]`, `[Daemon][$i]`; nested groups `[A][B]` are other groups.
            let (name, immutable) = match line.strip_suffix("[$i]") {
                Some(rest) => (rest, true),
                None => (line, false),
            };
            in_daemon = name == "[Daemon]";
            group_immutable = immutable;
            continue;
        }
        if !in_daemon {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let (key, immutable) = match key.strip_suffix("[$i]") {
            Some(k) => (k.trim(), true),
            None => (key, false),
        };
        if key.contains('[') {
            continue;
        }
        out.insert(
            key.to_owned(),
            Entry {
                value: value.trim().to_owned(),
                immutable: immutable || group_immutable,
            },
        );
    }
    out
}

/// Layers the user's entries over the system's, except where the system's are immutable.
pub fn cascade(
    system: BTreeMap<String, Entry>,
    user: BTreeMap<String, Entry>,
) -> BTreeMap<String, Entry> {
    let mut merged = system;
    for (key, entry) in user {
        if merged.get(&key).is_some_and(|e| e.immutable) {
            continue;
        }
        merged.insert(key, entry);
    }
    merged
}

/// KConfig's boolean spellings.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Turns the merged `[Daemon]` entries into the settings the check evaluates. A value
/// that cannot be parsed is a reason: KConfig would use the default, but a typo in a
/// security setting deserves a look rather than a silent default.
pub fn settings(entries: &BTreeMap<String, Entry>) -> Result<LockSettings, String> {
    let boolean = |key: &str, default: bool| match entries.get(key) {
        None => Ok(default),
        Some(e) => parse_bool(&e.value)
            .ok_or_else(|| format!("kscreenlockerrc: {key}={} is not a boolean", e.value)),
    };
    let number = |key: &str, default: u64| match entries.get(key) {
        None => Ok(default),
        Some(e) => e
            .value
            .parse::<u64>()
            .map_err(|_| format!("kscreenlockerrc: {key}={} is not a number", e.value)),
    };
    let autolock = boolean("Autolock", true)?;
    let timeout_minutes = number("Timeout", 5)?;
    let grace_seconds = number("LockGrace", 5)?;
    let lock_on_resume = boolean("LockOnResume", true)?;
    Ok(LockSettings {
        desktop: "kde",
        lock_enabled: autolock,
        // Timeout 0 never locks on idle.
        lock_after_seconds: (timeout_minutes > 0).then(|| {
            timeout_minutes
                .saturating_mul(60)
                .saturating_add(grace_seconds)
        }),
        lock_on_resume: Some(lock_on_resume),
        settings: json!({
            "autolock": autolock,
            "timeout_minutes": timeout_minutes,
            "lock_grace_seconds": grace_seconds,
            "lock_on_resume": lock_on_resume,
        }),
    })
}

/// Reads the user's KDE lock settings.
pub fn read(ctx: &Context, home: &str, sources: &mut Vec<String>) -> Result<LockSettings, String> {
    let mut layer = |path: String,
                     read: Result<Vec<u8>, SourceError>|
     -> Result<BTreeMap<String, Entry>, String> {
        match read {
            Ok(bytes) => {
                sources.push(path);
                Ok(parse_daemon_group(&String::from_utf8_lossy(&bytes)))
            }
            Err(e) if e.is_not_found() => Ok(BTreeMap::new()),
            Err(e) => Err(e.to_string()),
        }
    };
    const SYSTEM: &str = "/etc/xdg/kscreenlockerrc";
    let system = layer(SYSTEM.to_owned(), read_bytes(ctx, SYSTEM))?;
    // The user's file is the user's: read without following links, regular files only.
    let user = layer(
        format!("{home}/.config/kscreenlockerrc"),
        read_user_file(ctx, home, ".config/kscreenlockerrc"),
    )?;
    settings(&cascade(system, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_system_keys_win() {
        let system = parse_daemon_group("[Daemon][$i]\nTimeout=10\n");
        let user = parse_daemon_group("[Daemon]\nTimeout=60\nAutolock=false\n");
        let merged = cascade(system, user);
        assert_eq!(merged["Timeout"].value, "10");
        assert_eq!(merged["Autolock"].value, "false");
    }

    #[test]
    fn other_groups_and_localised_keys_are_ignored() {
        let parsed = parse_daemon_group(
            "[Greeter]\nTimeout=99\n[Daemon][Extra]\nTimeout=98\n[Daemon]\nTimeout[de]=97\nTimeout=3\n",
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed["Timeout"].value, "3");
    }
}
