//! The Windows service's log file. Windows has no journal to take the daemon's stderr, so
//! the service appends to `daemon.log` in the state directory; this keeps that bounded:
//! when the file would pass [`MAX_BYTES`], it becomes `daemon.log.1` (replacing the one
//! before) and a new `daemon.log` starts. At most two files, about 2 × `MAX_BYTES`.
//!
//! Used only by the Windows service; plain `std::fs`, so it is tested on every OS.
#![cfg_attr(not(windows), allow(dead_code))]

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Size at which the log is rotated: weeks of `info` lines, little disk.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;

/// An append-only log file that rotates itself once.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    /// `None` only between closing and reopening during a rotation, or when reopening
    /// failed (retried on the next write).
    file: Option<File>,
    written: u64,
    max_bytes: u64,
}

impl RotatingLog {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_owned(),
            file: Some(file),
            written,
            max_bytes,
        })
    }

    /// The previous log's path: `daemon.log` → `daemon.log.1`.
    pub fn previous_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    /// Moves the current file aside and starts a new one. Windows cannot rename a file
    /// that is open without delete sharing, so the handle is closed first. When the rename
    /// fails (e.g. another program holds `daemon.log.1`), logging goes on in the same file
    /// and the next attempt waits for another `max_bytes`: nothing is lost, the file grows.
    fn rotate(&mut self) {
        self.file = None;
        // Whether or not the rename works, the next attempt is another max_bytes on.
        let _ = std::fs::rename(&self.path, self.previous_path());
        self.written = 0;
        // When reopening fails, `write` tries again and reports its error.
        self.file = open_append(&self.path).ok();
    }
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        if self.written > 0 && self.written.saturating_add(len) > self.max_bytes {
            self.rotate();
        }
        let file = match self.file.take() {
            Some(file) => file,
            None => open_append(&self.path)?,
        };
        let file = self.file.insert(file);
        // One write call per line: tracing hands a whole formatted line at once.
        file.write_all(buf)?;
        self.written = self.written.saturating_add(len);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn the_log_rotates_once_past_its_size_and_keeps_one_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        std::fs::write(&path, "from the last run\n").unwrap();
        let mut log = RotatingLog::open(&path, 40).unwrap();
        // Appends to what was there.
        log.write_all(b"line one\n").unwrap();
        assert_eq!(read(&path), "from the last run\nline one\n");
        // 27 + 20 > 40: the current file becomes .1 and the line starts a new one.
        log.write_all(b"line two is longer.\n").unwrap();
        assert_eq!(read(&log.previous_path()), "from the last run\nline one\n");
        assert_eq!(read(&path), "line two is longer.\n");
        log.write_all(b"line three is long.\n").unwrap();
        log.write_all(b"line four\n").unwrap();
        // The second rotation replaces the older .1.
        assert_eq!(
            read(&log.previous_path()),
            "line two is longer.\nline three is long.\n"
        );
        assert_eq!(read(&path), "line four\n");
        // No third file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        let mut log = RotatingLog::open(&path, 8).unwrap();
        log.write_all(b"a line of twenty-one\n").unwrap();
        assert_eq!(read(&path), "a line of twenty-one\n");
        log.write_all(b"next\n").unwrap();
        assert_eq!(read(&log.previous_path()), "a line of twenty-one\n");
        assert_eq!(read(&path), "next\n");
    }

    #[test]
    fn when_rotation_fails_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        let mut log = RotatingLog::open(&path, 16).unwrap();
        // A non-empty directory where daemon.log.1 goes: the rename cannot replace it.
        std::fs::create_dir(log.previous_path()).unwrap();
        std::fs::write(log.previous_path().join("x"), "").unwrap();
        for line in ["first line\n", "second line\n", "third line\n"] {
            log.write_all(line.as_bytes()).unwrap();
        }
        assert_eq!(read(&path), "first line\nsecond line\nthird line\n");
    }
}
