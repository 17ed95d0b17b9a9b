//! A cache of what apt's package lists offer for the installed packages, kept in the
//! state directory and keyed by the files' identities (size, mtime, inode).
//!
//! Why: the Debian main list is ~50 MB once decompressed, and reading it is most of
//! `posture check`'s time. It changes only when apt updates its lists or dpkg installs
//! something, so an unchanged list is answered from the cache. Any change to dpkg's
//! status file or to a list's identity reads that list again; a cache that cannot be
//! read or written is simply not used.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::apt::ListContents;

const FILE_NAME: &str = "apt-lists-cache.json";
/// Bumped whenever what is cached, or how it is computed, changes.
const FORMAT: u32 = 1;

/// The identity of a file: changes whenever apt or dpkg rewrites it.
pub fn fingerprint(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}.{}",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CachedList {
    fingerprint: String,
    /// (name, arch, newest version)
    newest: Vec<(String, String, String)>,
    /// (name, arch)
    carries_installed: Vec<(String, String)>,
}

/// The cache for one dpkg status.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListCache {
    format: u32,
    status_fingerprint: String,
    lists: BTreeMap<String, CachedList>,
    #[serde(skip)]
    changed: bool,
}

impl ListCache {
    /// Loads the cache for this dpkg status, or an empty one.
    pub fn load(state_dir: Option<&Path>, status_fingerprint: &str) -> Self {
        let cached = state_dir
            .and_then(|dir| std::fs::read_to_string(dir.join(FILE_NAME)).ok())
            .and_then(|text| serde_json::from_str::<ListCache>(&text).ok())
            .filter(|c| c.format == FORMAT && c.status_fingerprint == status_fingerprint);
        cached.unwrap_or_else(|| ListCache {
            format: FORMAT,
            status_fingerprint: status_fingerprint.to_owned(),
            lists: BTreeMap::new(),
            changed: true,
        })
    }

    /// What a list offered when it had this fingerprint.
    pub fn get(&self, file: &str, fingerprint: &str) -> Option<ListContents> {
        let cached = self
            .lists
            .get(file)
            .filter(|c| c.fingerprint == fingerprint)?;
        Some(ListContents {
            newest: cached
                .newest
                .iter()
                .map(|(n, a, v)| ((n.clone(), a.clone()), v.clone()))
                .collect::<HashMap<_, _>>(),
            carries_installed: cached
                .carries_installed
                .iter()
                .cloned()
                .collect::<HashSet<_>>(),
        })
    }

    /// Remembers what a list offers.
    pub fn put(&mut self, file: &str, fingerprint: String, contents: &ListContents) {
        let mut newest: Vec<_> = contents
            .newest
            .iter()
            .map(|((n, a), v)| (n.clone(), a.clone(), v.clone()))
            .collect();
        newest.sort();
        let mut carries_installed: Vec<_> = contents.carries_installed.iter().cloned().collect();
        carries_installed.sort();
        self.lists.insert(
            file.to_owned(),
            CachedList {
                fingerprint,
                newest,
                carries_installed,
            },
        );
        self.changed = true;
    }

    /// Drops lists that no longer exist, and writes the cache if it changed (atomically).
    pub fn save(mut self, state_dir: Option<&Path>, present: &[String]) -> std::io::Result<()> {
        let before = self.lists.len();
        self.lists.retain(|file, _| present.contains(file));
        let Some(dir) = state_dir else {
            return Ok(());
        };
        if !self.changed && before == self.lists.len() {
            return Ok(());
        }
        posture_core::files::create_private_dir(dir)?;
        let text = serde_json::to_string(&self).map_err(std::io::Error::other)?;
        posture_core::files::write_private(&dir.join(FILE_NAME), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> ListContents {
        let mut c = ListContents::default();
        c.newest.insert(
            ("openssl".into(), "amd64".into()),
            "3.0.15-1~deb12u1".into(),
        );
        c.carries_installed
            .insert(("openssl".into(), "amd64".into()));
        c
    }

    #[test]
    fn hit_only_for_same_status_and_list_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = ListCache::load(Some(dir.path()), "status-1");
        assert!(cache.get("main_Packages", "fp-1").is_none());
        cache.put("main_Packages", "fp-1".into(), &contents());
        cache
            .save(Some(dir.path()), &["main_Packages".into()])
            .unwrap();

        let cache = ListCache::load(Some(dir.path()), "status-1");
        let hit = cache.get("main_Packages", "fp-1").unwrap();
        assert_eq!(hit.newest, contents().newest);
        assert_eq!(hit.carries_installed, contents().carries_installed);
        assert!(cache.get("main_Packages", "fp-2").is_none(), "list changed");

        let other_status = ListCache::load(Some(dir.path()), "status-2");
        assert!(
            other_status.get("main_Packages", "fp-1").is_none(),
            "dpkg changed"
        );
    }

    #[test]
    fn corrupt_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{ truncated").unwrap();
        let cache = ListCache::load(Some(dir.path()), "status-1");
        assert!(cache.get("main_Packages", "fp-1").is_none());
    }
}
