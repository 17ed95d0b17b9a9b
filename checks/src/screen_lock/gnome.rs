//! GNOME: the dconf databases of the user's profile, resolved the way dconf does, with
//! GNOME's schema defaults for keys no database sets.
//!
//! The profile (`/etc/dconf/profile/user`, else `/usr/share/dconf/profile/user`, else
//! just `user-db:user`) lists databases from highest to lowest priority: the user's
//! `~/.config/dconf/<name>` and the system's `/etc/dconf/db/<name>`. A key locked by a
//! system database (its `.locks` table) is read from that database and below, so the
//! user cannot override it. A value of the wrong type is ignored, as GSettings does.
//!
//! Not read: a `DCONF_PROFILE` set in the session's environment, and distribution
//! overrides of schema defaults (`gschemas.compiled`); GNOME's upstream defaults apply.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::gvdb::{self, GValue, Table};
use super::LockSettings;
use crate::source::{read_bytes, read_text, read_user_file};
use crate::Context;

/// `org.gnome.desktop.screensaver lock-enabled` (b, default true).
pub const LOCK_ENABLED: &str = "/org/gnome/desktop/screensaver/lock-enabled";
/// `org.gnome.desktop.screensaver lock-delay` (u seconds after the screen blanks, default 0).
pub const LOCK_DELAY: &str = "/org/gnome/desktop/screensaver/lock-delay";
/// `org.gnome.desktop.session idle-delay` (u seconds, 0 = never idle, default 300).
pub const IDLE_DELAY: &str = "/org/gnome/desktop/session/idle-delay";
/// `org.gnome.desktop.lockdown disable-lock-screen` (b, default false).
pub const DISABLE_LOCK_SCREEN: &str = "/org/gnome/desktop/lockdown/disable-lock-screen";

/// One database named by a dconf profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbRef {
    /// `user-db:NAME`: `~/.config/dconf/NAME`.
    User(String),
    /// `system-db:NAME`: `/etc/dconf/db/NAME`.
    System(String),
    /// `file-db:PATH`: an absolute path.
    File(String),
}

/// Parses a dconf profile (one `type:name` a line, `#` comments). `service-db` lines
/// (keyfile-backed databases) are skipped: their binary form is not on disk.
pub fn parse_profile(text: &str) -> Vec<DbRef> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter_map(|line| {
            let (kind, name) = line.split_once(':')?;
            let name = name.trim().to_owned();
            if name.is_empty() || name.contains("..") {
                return None;
            }
            match kind.trim() {
                "user-db" if !name.contains('/') => Some(DbRef::User(name)),
                "system-db" if !name.contains('/') => Some(DbRef::System(name)),
                "file-db" if name.starts_with('/') => Some(DbRef::File(name)),
                _ => None,
            }
        })
        .collect()
}

/// A loaded database: where it came from and its root table (empty when the file is absent).
#[derive(Debug, Clone)]
pub struct Db {
    /// The file.
    pub path: String,
    /// Whether it is a system (lock-capable) database.
    pub system: bool,
    /// Its contents.
    pub table: Table,
}

/// Looks a key up across databases in profile order, honouring system locks. Returns the
/// value and the database it came from.
pub fn lookup<'a>(dbs: &'a [Db], key: &str) -> Option<(&'a GValue, &'a str)> {
    let locked_at = dbs.iter().position(|db| {
        db.system
            && db
                .table
                .tables
                .get(".locks")
                .is_some_and(|locks| locks.values.contains_key(key))
    });
    dbs.iter()
        .skip(locked_at.unwrap_or(0))
        .find_map(|db| db.table.values.get(key).map(|v| (v, db.path.as_str())))
}

/// The GNOME settings that decide screen locking, after defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GnomeLock {
    /// `lock-enabled`.
    pub lock_enabled: bool,
    /// `lock-delay`, seconds.
    pub lock_delay: u64,
    /// `idle-delay`, seconds; 0 never blanks (so never locks on idle).
    pub idle_delay: u64,
    /// `disable-lock-screen`.
    pub disable_lock_screen: bool,
}

/// Resolves the settings from the databases; also returns where each value came from.
pub fn resolve(dbs: &[Db]) -> (GnomeLock, Map<String, Value>) {
    let mut origins = Map::new();
    let mut bool_key = |key: &str, default: bool| {
        let found = lookup(dbs, key).and_then(|(v, path)| match v {
            GValue::Bool(b) => Some((*b, path)),
            _ => None,
        });
        origins.insert(key.to_owned(), json!(found.map_or("default", |(_, p)| p)));
        found.map_or(default, |(b, _)| b)
    };
    let lock_enabled = bool_key(LOCK_ENABLED, true);
    let disable_lock_screen = bool_key(DISABLE_LOCK_SCREEN, false);
    let mut uint_key = |key: &str, default: u64| {
        // The schema types are `u`; anything else is ignored like GSettings does.
        let found = lookup(dbs, key).and_then(|(v, path)| match v {
            GValue::Int(i) => u32::try_from(*i).ok().map(|u| (u64::from(u), path)),
            _ => None,
        });
        origins.insert(key.to_owned(), json!(found.map_or("default", |(_, p)| p)));
        found.map_or(default, |(u, _)| u)
    };
    let lock_delay = uint_key(LOCK_DELAY, 0);
    let idle_delay = uint_key(IDLE_DELAY, 300);
    (
        GnomeLock {
            lock_enabled,
            lock_delay,
            idle_delay,
            disable_lock_screen,
        },
        origins,
    )
}

impl GnomeLock {
    /// The common shape the check evaluates.
    pub fn settings(&self, origins: Map<String, Value>) -> LockSettings {
        let lock_enabled = self.lock_enabled && !self.disable_lock_screen;
        LockSettings {
            desktop: "gnome",
            lock_enabled,
            lock_after_seconds: (self.idle_delay > 0)
                .then(|| self.idle_delay.saturating_add(self.lock_delay)),
            lock_on_resume: None,
            settings: json!({
                "lock_enabled": self.lock_enabled,
                "lock_delay_seconds": self.lock_delay,
                "idle_delay_seconds": self.idle_delay,
                "disable_lock_screen": self.disable_lock_screen,
                "origin": origins,
            }),
        }
    }
}

fn profile(ctx: &Context) -> (Vec<DbRef>, String) {
    for path in ["/etc/dconf/profile/user", "/usr/share/dconf/profile/user"] {
        if let Ok(text) = read_text(ctx, path) {
            return (parse_profile(&text), path.to_owned());
        }
    }
    (
        vec![DbRef::User("user".to_owned())],
        "built-in profile (user-db:user)".to_owned(),
    )
}

/// Reads the user's GNOME lock settings. `home` is the user's home directory (a system
/// path). An unreadable or corrupt database is a reason, never a guess.
pub fn read(ctx: &Context, home: &str, sources: &mut Vec<String>) -> Result<LockSettings, String> {
    let dbs = load(ctx, home, sources)?;
    let (lock, origins) = resolve(&dbs);
    Ok(lock.settings(origins))
}

/// Loads the user's dconf databases in profile order (shared by every desktop that keeps
/// its settings in dconf: GNOME, Cinnamon, MATE, light-locker).
pub fn load(ctx: &Context, home: &str, sources: &mut Vec<String>) -> Result<Vec<Db>, String> {
    let (profile, profile_source) = profile(ctx);
    sources.push(profile_source);
    let mut dbs = Vec::new();
    for db in profile {
        let (path, system) = match &db {
            DbRef::User(name) => (PathBuf::from(home).join(".config/dconf").join(name), false),
            DbRef::System(name) => (PathBuf::from("/etc/dconf/db").join(name), true),
            DbRef::File(path) => (PathBuf::from(path), true),
        };
        let shown = path.display().to_string();
        // The user's database is the user's file: read without following links, regular
        // files only, size-capped.
        let bytes = match &db {
            DbRef::User(name) => read_user_file(ctx, home, &format!(".config/dconf/{name}")),
            _ => read_bytes(ctx, &path),
        };
        let table = match bytes {
            Ok(bytes) => gvdb::parse(&bytes).map_err(|e| format!("{shown}: {e}"))?,
            // dconf treats a missing database as empty.
            Err(e) if e.is_not_found() => Table::default(),
            Err(e) => return Err(e.to_string()),
        };
        sources.push(shown.clone());
        dbs.push(Db {
            path: shown,
            system,
            table,
        });
    }
    Ok(dbs)
}

/// A boolean key (wrong types ignored, as GSettings does), with its origin recorded.
pub fn bool_key(dbs: &[Db], key: &str, default: bool, origins: &mut Map<String, Value>) -> bool {
    let found = lookup(dbs, key).and_then(|(v, path)| match v {
        GValue::Bool(b) => Some((*b, path)),
        _ => None,
    });
    origins.insert(key.to_owned(), json!(found.map_or("default", |(_, p)| p)));
    found.map_or(default, |(b, _)| b)
}

/// A non-negative integer key (`u` or `i`), with its origin recorded.
pub fn uint_key(dbs: &[Db], key: &str, default: u64, origins: &mut Map<String, Value>) -> u64 {
    let found = lookup(dbs, key).and_then(|(v, path)| match v {
        GValue::Int(i) => u64::try_from(*i).ok().map(|u| (u, path)),
        _ => None,
    });
    origins.insert(key.to_owned(), json!(found.map_or("default", |(_, p)| p)));
    found.map_or(default, |(u, _)| u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_lines() {
        let text = "# comment\nuser-db:user\nsystem-db:local\nservice-db:keyfile/user\n\
                    system-db:../evil\nfile-db:/var/lib/x\nfile-db:relative\n";
        assert_eq!(
            parse_profile(text),
            vec![
                DbRef::User("user".into()),
                DbRef::System("local".into()),
                DbRef::File("/var/lib/x".into()),
            ]
        );
    }
}
