//! How long security updates have been pending, remembered between runs.
//!
//! Package lists carry no publication dates, so the check remembers, in a small JSON file
//! in the context's state directory, when it first saw each pending security update
//! (package and candidate version) and when it last looked before that. An update first
//! seen at run *N* has been pending at least since that run and at most since run *N-1*:
//! its age is bounded on both sides. An update already pending at the very first run has
//! only a lower bound. The Release file `Date` of the security suite offering it is a
//! second lower bound (the archive carried it then).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The state file's name inside the state directory.
pub const FILE_NAME: &str = "patch_level.json";

/// What is remembered between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Unix time of the previous run.
    pub last_run: Option<u64>,
    /// Per pending security update (`name:arch=version`): when first seen, and the
    /// previous run before that (absent when it was already pending at the first run).
    pub updates: BTreeMap<String, Seen>,
}

/// When one pending update was first seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Unix time of the first run that saw it pending.
    pub first_seen: u64,
    /// Unix time of the run before, which did not see it; `None` if there was none.
    pub not_seen_at: Option<u64>,
}

/// The age of one pending security update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age {
    /// It has been pending at least this long.
    pub at_least: Duration,
    /// It has been pending at most this long, when known.
    pub at_most: Option<Duration>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn since(now: SystemTime, then_unix: u64) -> Duration {
    now.duration_since(UNIX_EPOCH + Duration::from_secs(then_unix))
        .unwrap_or_default()
}

impl State {
    /// Parses the state file; a damaged file is treated as absent (we then only know less).
    pub fn parse(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// Records this run's pending security updates (`key`, lower bound from the archive's
    /// Release date) and returns the next state and each update's age, in input order.
    /// Updates no longer pending are forgotten.
    pub fn observe(
        &self,
        pending: &[(String, Option<SystemTime>)],
        now: SystemTime,
    ) -> (State, Vec<Age>) {
        let now_unix = unix(now);
        let mut next = State {
            last_run: Some(now_unix),
            updates: BTreeMap::new(),
        };
        let mut ages = Vec::with_capacity(pending.len());
        for (key, available_since) in pending {
            let seen = self.updates.get(key).cloned().unwrap_or(Seen {
                first_seen: now_unix,
                not_seen_at: self.last_run,
            });
            let mut at_least = since(now, seen.first_seen);
            if let Some(date) = available_since {
                at_least = at_least.max(now.duration_since(*date).unwrap_or_default());
            }
            let at_most = seen.not_seen_at.map(|t| since(now, t).max(at_least));
            ages.push(Age { at_least, at_most });
            next.updates.insert(key.clone(), seen);
        }
        (next, ages)
    }
}

/// The file holding only the time of the last run (Unix seconds), beside [`FILE_NAME`].
pub const LAST_RUN_FILE_NAME: &str = "patch_level.last_run";

/// Reads the state from `dir` (absent or unreadable: empty state). The last run's time is
/// the later of the state file's and [`LAST_RUN_FILE_NAME`]'s.
pub fn load(dir: &Path) -> State {
    let mut state: State = std::fs::read_to_string(dir.join(FILE_NAME))
        .map(|t| State::parse(&t))
        .unwrap_or_default();
    let last_run = std::fs::read_to_string(dir.join(LAST_RUN_FILE_NAME))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    if let Some(t) = last_run {
        state.last_run = Some(state.last_run.map_or(t, |s| s.max(t)));
    }
    state
}

/// Writes the state to `dir` owner-only, never through a symlink ([`posture_core::files`]),
/// creating `dir` (0700) if needed.
///
/// The pending updates (what `at_least`, and so a failure, rests on) are written with
/// `fsync` whenever they differ from `previous`, the state loaded at the start of the run.
/// The run's time changes every run but only ever moves an upper bound (`at_most`): it goes
/// to [`LAST_RUN_FILE_NAME`] without `fsync`. Losing it in a power cut leaves an older time
/// or none, which makes `at_most` larger or unknown: less known, never a wrong pass.
pub fn save(dir: &Path, previous: &State, state: &State) -> std::io::Result<()> {
    posture_core::files::create_private_dir(dir)?;
    let main = dir.join(FILE_NAME);
    if state.updates != previous.updates || !main.exists() {
        let text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
        posture_core::files::write_private(&main, text.as_bytes())?;
    }
    // Fixed width, so a later run can overwrite it in place.
    let last_run = state
        .last_run
        .map(|t| format!("{t:020}\n"))
        .unwrap_or_default();
    let path = dir.join(LAST_RUN_FILE_NAME);
    if last_run.len() == 21 && overwrite_own_file(&path, last_run.as_bytes()) {
        return Ok(());
    }
    posture_core::files::write_private_unsynced(&path, last_run.as_bytes())
}

/// Overwrites an existing file in place, only when it is a regular file of the same
/// length, owned by this user and private (no group or other bits), opened without
/// following a symlink: a rename over it would make ext4 flush it (`auto_da_alloc`), the
/// cost this file exists to avoid. `false` when anything is otherwise: the caller then
/// writes a new file.
#[cfg(unix)]
fn overwrite_own_file(path: &Path, bytes: &[u8]) -> bool {
    use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let ours = meta.is_file()
        && meta.uid() == rustix::process::geteuid().as_raw()
        && meta.mode() & 0o077 == 0
        && meta.len() == bytes.len() as u64;
    ours && file.write_all_at(bytes, 0).is_ok()
}

#[cfg(not(unix))]
fn overwrite_own_file(_path: &Path, _bytes: &[u8]) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn t(days: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + days * DAY)
    }

    #[test]
    fn first_run_knows_only_a_lower_bound() {
        let (state, ages) = State::default().observe(&[("a".into(), None)], t(0));
        assert_eq!(ages[0].at_least, Duration::ZERO);
        assert_eq!(ages[0].at_most, None);
        // Still unbounded ten days later, but the lower bound grows.
        let (_, ages) = state.observe(&[("a".into(), None)], t(10));
        assert_eq!(ages[0].at_least, Duration::from_secs(10 * DAY));
        assert_eq!(ages[0].at_most, None);
    }

    #[test]
    fn update_appearing_between_runs_is_bounded_on_both_sides() {
        let (state, _) = State::default().observe(&[], t(0));
        let (state, _) = state.observe(&[("b".into(), None)], t(1));
        let (state, ages) = state.observe(&[("b".into(), None)], t(5));
        assert_eq!(ages[0].at_least, Duration::from_secs(4 * DAY));
        assert_eq!(ages[0].at_most, Some(Duration::from_secs(5 * DAY)));
        // Installed: forgotten.
        let (state, _) = state.observe(&[], t(6));
        assert!(state.updates.is_empty());
    }

    #[test]
    fn release_date_raises_the_lower_bound() {
        let (_, ages) = State::default().observe(&[("c".into(), Some(t(0)))], t(20));
        assert_eq!(ages[0].at_least, Duration::from_secs(20 * DAY));
    }

    #[test]
    fn round_trips_through_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _) = State::default().observe(&[("d".into(), None)], t(0));
        let sub = dir.path().join("sub");
        save(&sub, &State::default(), &state).unwrap();
        assert_eq!(load(&sub), state);
        assert_eq!(State::parse("not json"), State::default());
    }

    #[test]
    fn unchanged_updates_only_move_the_last_run() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = State::default().observe(&[("e".into(), None)], t(0));
        save(dir.path(), &State::default(), &first).unwrap();
        let main = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        // Same pending update a day later: the state file is left as it is, the run's
        // time goes to its own file, and loading sees the newer time.
        let (second, _) = load(dir.path()).observe(&[("e".into(), None)], t(1));
        save(dir.path(), &first, &second).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
            main
        );
        let loaded = load(dir.path());
        assert_eq!(loaded, second);
        // A new update is bounded by that newer time, not the older one in the state file.
        let (_, ages) = loaded.observe(&[("e".into(), None), ("f".into(), None)], t(3));
        assert_eq!(ages[1].at_most, Some(Duration::from_secs(2 * DAY)));
        // Saved again, the file is overwritten in place with the same content.
        save(dir.path(), &second, &second).unwrap();
        assert_eq!(load(dir.path()), second);
        // A damaged last-run file only loses the newer time.
        std::fs::write(dir.path().join(LAST_RUN_FILE_NAME), "garbage").unwrap();
        assert_eq!(load(dir.path()).last_run, first.last_run);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The damaged file has another length (and mode 0644 from `fs::write`): a
            // save replaces it with a new owner-only one.
            save(dir.path(), &second, &second).unwrap();
            let mode = std::fs::metadata(dir.path().join(LAST_RUN_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
