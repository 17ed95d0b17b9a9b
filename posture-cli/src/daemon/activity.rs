//! What the daemon has done since it started, for operators and tests (`GET /v1/health`):
//! collections by cause, the last one, failed deliveries, whether resume is watched.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// The daemon's activity since start.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Activity {
    /// Collections by cause (e.g. `start`, `interval`, `resumed from suspend`).
    pub collections: BTreeMap<String, u64>,
    /// The latest collection.
    pub last_collection: Option<Collection>,
    /// Delivery attempts that failed (the items stay queued and are retried).
    pub delivery_failures: u64,
    /// Whether logind's resume-from-suspend signal is subscribed to.
    pub watching_logind: bool,
}

/// One collection.
#[derive(Debug, Clone, Serialize)]
pub struct Collection {
    /// Why it ran.
    pub cause: String,
    /// The checks re-collected; empty for a full collection.
    pub checks: Vec<String>,
}

/// The shared record.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Activity>);

impl Recorder {
    fn update(&self, f: impl FnOnce(&mut Activity)) {
        let mut activity = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut activity);
    }

    /// A finished collection.
    pub fn collected(&self, cause: &str, checks: &[String]) {
        self.update(|a| {
            *a.collections.entry(cause.to_owned()).or_default() += 1;
            a.last_collection = Some(Collection {
                cause: cause.to_owned(),
                checks: checks.to_vec(),
            });
        });
    }

    /// A failed delivery attempt.
    pub fn delivery_failed(&self) {
        self.update(|a| a.delivery_failures += 1);
    }

    /// logind's resume signal is subscribed to (Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn watching_logind(&self) {
        self.update(|a| a.watching_logind = true);
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> Activity {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
