//! A durable outbox: one file per queued item, written atomically and fsynced, so queued
//! evidence and events survive a crash, `kill -9` and a reboot.
//!
//! An item is written to `NNN.tmp`, fsynced, renamed to `NNN.json` and the directory
//! fsynced; it is removed (and the directory fsynced) only after delivery. A crash
//! between delivery and removal delivers the item again with the same `jti`, so
//! receivers de-duplicate. The outbox is bounded; the oldest items are evicted first,
//! and every eviction is logged.
//!
//! The methods do blocking file I/O; call them from `spawn_blocking`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One queued delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The `jti` of the token in `body`; the same on every delivery attempt.
    pub jti: String,
    /// `evidence` or `caep`.
    pub kind: String,
    /// Where it goes.
    pub url: String,
    /// Its media type (`application/secevent+jwt` for SETs).
    pub content_type: String,
    /// The token.
    pub body: String,
    /// When it was queued (RFC 3339).
    pub queued_at: String,
}

/// Errors of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file could not be read, written or removed.
    #[error("outbox {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An item larger than the whole outbox.
    #[error("item {jti} ({size} bytes) is larger than the outbox ({max} bytes)")]
    TooLarge {
        /// The item's jti.
        jti: String,
        /// Its size.
        size: u64,
        /// The outbox's limit.
        max: u64,
    },
    /// An item could not be encoded.
    #[error("outbox item: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A queued item's place on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Queue order.
    pub seq: u64,
    /// The item's jti.
    pub jti: String,
    /// Bytes on disk.
    pub size: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: VecDeque<Entry>,
    bytes: u64,
    next_seq: u64,
}

/// The outbox directory and its in-memory index (no item bodies are kept in memory).
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    max_items: usize,
    max_bytes: u64,
    index: Mutex<Index>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Outbox {
    /// Opens (creating) the outbox in `dir`, loading what a previous run left queued.
    /// Half-written `.tmp` files are removed; unreadable items are set aside as `.bad`.
    pub fn open(dir: &Path, max_items: usize, max_bytes: u64) -> Result<Self, OutboxError> {
        posture_core::files::create_private_dir(dir).map_err(io_err(dir))?;
        let mut entries = Vec::new();
        for dirent in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let dirent = dirent.map_err(io_err(dir))?;
            let path = dirent.path();
            let name = dirent.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                tracing::warn!(path = %path.display(), "outbox: removing a half-written item");
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            match read_item(&path) {
                Ok((item, size)) => entries.push(Entry {
                    seq,
                    jti: item.jti,
                    size,
                }),
                Err(e) => {
                    tracing::error!(error = %e, "outbox: setting aside an unreadable item");
                    let bad = path.with_extension("bad");
                    std::fs::rename(&path, &bad).map_err(io_err(&path))?;
                }
            }
        }
        entries.sort_by_key(|e| e.seq);
        let index = Index {
            bytes: entries.iter().map(|e| e.size).sum(),
            next_seq: entries.last().map_or(0, |e| e.seq + 1),
            entries: entries.into(),
        };
        if !index.entries.is_empty() {
            tracing::info!(
                items = index.entries.len(),
                "outbox: found items queued by a previous run"
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_items,
            max_bytes,
            index: Mutex::new(index),
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated in a way
        // that matters: the files on disk are the truth, so keep going.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item durably; evicts the oldest items (logged) to stay within bounds.
    pub fn push(&self, item: &Item) -> Result<Entry, OutboxError> {
        let bytes = serde_json::to_vec(item)?;
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Err(OutboxError::TooLarge {
                jti: item.jti.clone(),
                size,
                max: self.max_bytes,
            });
        }
        let mut index = self.lock();
        while !index.entries.is_empty()
            && (index.entries.len() >= self.max_items || index.bytes + size > self.max_bytes)
        {
            if let Some(old) = index.entries.pop_front() {
                index.bytes -= old.size;
                tracing::warn!(
                    jti = %old.jti,
                    seq = old.seq,
                    "outbox full: evicted the oldest undelivered item"
                );
                let path = self.path(old.seq);
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::error!(path = %path.display(), error = %e, "outbox: cannot remove evicted item");
                }
            }
        }
        let seq = index.next_seq;
        let path = self.path(seq);
        write_atomically(&path, &bytes)?;
        index.next_seq += 1;
        index.bytes += size;
        let entry = Entry {
            seq,
            jti: item.jti.clone(),
            size,
        };
        index.entries.push_back(entry.clone());
        Ok(entry)
    }

    /// The oldest queued item, read from disk.
    pub fn peek(&self) -> Result<Option<(Entry, Item)>, OutboxError> {
        let Some(entry) = self.lock().entries.front().cloned() else {
            return Ok(None);
        };
        let (item, _) = read_item(&self.path(entry.seq))?;
        Ok(Some((entry, item)))
    }

    /// Removes a delivered (or permanently rejected) item, durably.
    pub fn remove(&self, seq: u64) -> Result<(), OutboxError> {
        let mut index = self.lock();
        let Some(position) = index.entries.iter().position(|e| e.seq == seq) else {
            return Ok(()); // already evicted
        };
        let path = self.path(seq);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        posture_core::files::sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        if let Some(old) = index.entries.remove(position) {
            index.bytes -= old.size;
        }
        Ok(())
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

fn read_item(path: &Path) -> Result<(Item, u64), OutboxError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let item = serde_json::from_slice(&bytes)?;
    Ok((item, bytes.len() as u64))
}

/// Writes `bytes` to `path` so that after a crash the file is either absent or complete,
/// owner-only and never through a symlink ([`posture_core::files::write_private`]: temp
/// file, fsync, rename, fsync of the directory).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutboxError> {
    posture_core::files::write_private(path, bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(jti: &str, body: &str) -> Item {
        Item {
            jti: jti.into(),
            kind: "evidence".into(),
            url: "http://127.0.0.1:1/e".into(),
            content_type: "application/jwt".into(),
            body: body.into(),
            queued_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn items_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 10, 1 << 20).unwrap();
        outbox.push(&item("a", "1")).unwrap();
        outbox.push(&item("b", "2")).unwrap();
        drop(outbox);
        std::fs::write(dir.path().join("00000000000000000009.tmp"), b"{half").unwrap();
        let outbox = Outbox::open(dir.path(), 10, 1 << 20).unwrap();
        assert_eq!(outbox.len(), 2);
        let (entry, first) = outbox.peek().unwrap().unwrap();
        assert_eq!(first, item("a", "1"));
        outbox.remove(entry.seq).unwrap();
        let (_, second) = outbox.peek().unwrap().unwrap();
        assert_eq!(second.jti, "b");
        assert!(!dir.path().join("00000000000000000009.tmp").exists());
        // New items continue after the ones found on disk.
        assert_eq!(outbox.push(&item("c", "3")).unwrap().seq, 2);
    }

    #[test]
    fn oldest_items_are_evicted_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 2, 1 << 20).unwrap();
        for jti in ["a", "b", "c"] {
            outbox.push(&item(jti, "x")).unwrap();
        }
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.peek().unwrap().unwrap().1.jti, "b");
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2);
    }

    #[test]
    fn byte_bound_evicts_and_oversized_item_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 100, 600).unwrap();
        outbox.push(&item("a", &"x".repeat(200))).unwrap();
        outbox.push(&item("b", &"x".repeat(200))).unwrap();
        assert_eq!(outbox.len(), 1);
        assert!(matches!(
            outbox.push(&item("c", &"x".repeat(1000))),
            Err(OutboxError::TooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_item_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000000003.json"), b"not json").unwrap();
        let outbox = Outbox::open(dir.path(), 10, 1 << 20).unwrap();
        assert_eq!(outbox.len(), 0);
        assert!(dir.path().join("00000000000000000003.bad").exists());
    }
}
