//! Per-replica caches on the hot paths, each correct across replicas by construction:
//!
//! - [`KeyCache`]: the parsed verifier of each device key. A device's id is its key's
//!   thumbprint, so the key behind an id never changes; what can change elsewhere
//!   (disabled, deleted, enrolled again with a new attestation key) is checked in the
//!   transaction that records the evidence, against the enrollment id cached with the
//!   verifier ([`crate::store::Store::ingest`]). Evidence is never accepted on the cache
//!   alone.
//! - [`CredentialCache`]: API tokens recently found valid, for at most
//!   [`CREDENTIAL_TTL`]. No API revokes an API token today (they do not expire either),
//!   so the cache answers what the database would; a token removed from the database by
//!   hand stops working within [`CREDENTIAL_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use posture_core::verify::Verifier;

use crate::store::Role;

/// How long a checked API token is trusted without asking the database again.
pub const CREDENTIAL_TTL: Duration = Duration::from_secs(30);

/// A device's verifier and the enrollment it was built from.
#[derive(Debug)]
pub struct CachedKey {
    /// Verifies the device's evidence (and its quotes, for TPM devices).
    pub verifier: Verifier,
    /// The enrollment id of the device row the verifier was built from.
    pub enrollment: String,
}

/// Device id → verifier, at most `capacity` entries (an arbitrary one is dropped beyond).
#[derive(Debug)]
pub struct KeyCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Arc<CachedKey>>>,
}

impl KeyCache {
    /// A cache of at most `capacity` devices (0: nothing is cached).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached verifier of `id`.
    pub fn get(&self, id: &str) -> Option<Arc<CachedKey>> {
        self.entries.lock().ok()?.get(id).cloned()
    }

    /// Caches `verifier` for `id` and returns it.
    pub fn insert(&self, id: &str, verifier: Verifier, enrollment: String) -> Arc<CachedKey> {
        let key = Arc::new(CachedKey {
            verifier,
            enrollment,
        });
        if self.capacity == 0 {
            return key;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(id) {
                let victim = entries.keys().next().cloned();
                if let Some(victim) = victim {
                    entries.remove(&victim);
                }
            }
            entries.insert(id.to_owned(), Arc::clone(&key));
        }
        key
    }

    /// Forgets `id` (refused as deleted, disabled or enrolled again).
    pub fn remove(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }

    /// How many devices are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Hash of an API token → its role, until a deadline.
#[derive(Debug, Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, (Role, Instant)>>,
}

/// Entries beyond this are dropped when they have expired (or all of them, if none has).
const CREDENTIALS_MAX: usize = 10_000;

impl CredentialCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The role of the token with this hash, if it was found valid recently.
    pub fn get(&self, hash: &str) -> Option<Role> {
        let entries = self.entries.lock().ok()?;
        let (role, until) = entries.get(hash)?;
        (Instant::now() < *until).then_some(*role)
    }

    /// Remembers a valid token until `CREDENTIAL_TTL` from now, or `expires_in` if sooner.
    pub fn insert(&self, hash: &str, role: Role, expires_in: Option<Duration>) {
        let ttl = expires_in.map_or(CREDENTIAL_TTL, |e| e.min(CREDENTIAL_TTL));
        let now = Instant::now();
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CREDENTIALS_MAX {
                entries.retain(|_, (_, until)| *until > now);
                if entries.len() >= CREDENTIALS_MAX {
                    entries.clear();
                }
            }
            entries.insert(hash.to_owned(), (role, now + ttl));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cache_stays_within_its_capacity_and_forgets() {
        let cache = KeyCache::new(2);
        for id in ["a", "b", "c"] {
            cache.insert(id, Verifier::new(), "e".into());
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("c").is_some());
        cache.remove("c");
        assert!(cache.get("c").is_none());
        let off = KeyCache::new(0);
        off.insert("a", Verifier::new(), "e".into());
        assert!(off.get("a").is_none());
    }

    #[test]
    fn credential_cache_expires() {
        let cache = CredentialCache::new();
        cache.insert("h", Role::Reader, Some(Duration::ZERO));
        assert_eq!(cache.get("h"), None);
        cache.insert("h", Role::Admin, None);
        assert_eq!(cache.get("h"), Some(Role::Admin));
    }
}
