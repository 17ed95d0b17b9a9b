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

/// Reads the state from `dir` (absent or unreadable: empty state).
pub fn load(dir: &Path) -> State {
    std::fs::read_to_string(dir.join(FILE_NAME))
        .map(|t| State::parse(&t))
        .unwrap_or_default()
}

/// Writes the state to `dir` atomically and owner-only, never through a symlink
/// ([`posture_core::files`]), creating `dir` (0700) if needed.
pub fn save(dir: &Path, state: &State) -> std::io::Result<()> {
    posture_core::files::create_private_dir(dir)?;
    let text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
    posture_core::files::write_private(&dir.join(FILE_NAME), text.as_bytes())
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
        save(&dir.path().join("sub"), &state).unwrap();
        assert_eq!(load(&dir.path().join("sub")), state);
        assert_eq!(State::parse("not json"), State::default());
    }
}
