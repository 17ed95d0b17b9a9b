//! Giving memory back once work is done, so an idle daemon holds only what idling needs.
//!
//! Collections run in a child process (see `collector`), but serving the API and handling
//! a collection's result still leave two kinds of memory resident that nothing idle uses:
//! - freed heap that glibc keeps in its arenas: `malloc_trim` returns it;
//! - the code pages of the daemon's executable and of the libraries it loaded (libc,
//!   libcrypto, NSS modules) that the work ran: several MiB, because the kernel maps
//!   large folios and fault-around neighbours on every fault. They are file-backed pages
//!   of the page cache, so `MADV_DONTNEED` drops them from this process, and what runs
//!   next faults back in from the page cache (minor faults, no disk I/O). Only read-only
//!   mappings of files with no copied-on-write page are dropped, so no data can be lost:
//!   relocated, writable and anonymous mappings stay.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::stopped;

/// How long the local API must be quiet before the daemon gives back what serving it used.
pub const API_QUIET: Duration = Duration::from_secs(5);

/// Waits for local API activity (`activity` is notified per connection), then for the
/// API to be quiet for [`API_QUIET`], and releases memory: one wake-up after a burst of
/// requests, none while nothing happens.
pub async fn release_when_api_is_quiet(activity: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = activity.notified() => {}
            () = stopped(&mut shutdown) => return,
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(API_QUIET) => break,
                () = activity.notified() => {}
                () = stopped(&mut shutdown) => return,
            }
        }
        release_unused();
    }
}

/// Returns freed heap and clean code pages to the OS. Best effort: failures change
/// nothing but the resident size.
pub fn release_unused() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    drop_clean_executable_pages();
}

#[cfg(target_os = "linux")]
fn drop_clean_executable_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mappings = clean_read_only_mappings(&smaps);
    let mut refused = 0;
    for mapping in &mappings {
        // SAFETY: the range is a whole read-only mapping of a file with no copied-on-write
        // (anonymous) or swapped page: every page in it is the file's page-cache page, so
        // dropping it discards nothing that cannot be read back from the file, and the kernel faults pages in again on the next
        // access with identical contents, so no reference into it is invalidated.
        unsafe {
            let (start, len) = (
                mapping.start as *mut libc::c_void,
                mapping.end - mapping.start,
            );
            if libc::madvise(start, len, libc::MADV_DONTNEED) != 0 {
                refused += 1;
            }
        }
    }
    tracing::debug!(
        mappings = mappings.len(),
        refused,
        "dropped clean file-backed pages"
    );
}

/// One mapping of `/proc/self/smaps`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
}

/// The mappings of files that are readable, not writable, and have no anonymous (copied on
/// write) or swapped page, so every page in them is the file's own page-cache page.
///
/// Dirty page-cache pages (`Private_Dirty` without `Anonymous`: an executable the linker
/// or dpkg has just written and the kernel has not written back yet) belong to the file:
/// unmapping them loses nothing, the page cache keeps and writes them.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn clean_read_only_mappings(smaps: &str) -> Vec<Mapping> {
    let mut found = Vec::new();
    let mut current: Option<(Mapping, bool)> = None;
    let mut dirty = false;
    let mut finish = |current: &mut Option<(Mapping, bool)>, dirty: bool| {
        if let Some((mapping, candidate)) = current.take() {
            if candidate && !dirty {
                found.push(mapping);
            }
        }
    };
    for line in smaps.lines() {
        if let Some((mapping, perms, name)) = header(line) {
            finish(&mut current, dirty);
            dirty = false;
            let candidate =
                name.starts_with('/') && perms.starts_with('r') && perms.get(1..2) == Some("-");
            current = Some((mapping, candidate));
        } else if let Some((key, kib)) = field(line) {
            if matches!(key, "Anonymous" | "Swap") && kib != 0 {
                dirty = true;
            }
        }
    }
    finish(&mut current, dirty);
    found
}

/// `start-end perms offset dev inode path` lines start a mapping.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn header(line: &str) -> Option<(Mapping, &str, &str)> {
    let mut parts = line.split_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?;
    let (_offset, _dev, _inode) = (parts.next()?, parts.next()?, parts.next()?);
    let name = parts.next().unwrap_or("");
    (end > start && perms.len() == 4).then_some((Mapping { start, end }, perms, name))
}

/// `Key:   N kB` lines describe the current mapping.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn field(line: &str) -> Option<(&str, u64)> {
    let (key, rest) = line.split_once(':')?;
    let kib = rest.trim().strip_suffix(" kB")?.trim().parse().ok()?;
    Some((key, kib))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mappings of a PIE executable as Linux 6.1 writes them in /proc/PID/smaps
    /// (abridged to the fields that matter).
    const SMAPS: &str = "\
555e757e7000-555e75af8000 r--p 00000000 fe:00 12558894                   /usr/bin/posture
Rss:                1124 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
555e75af8000-555e76371000 r-xp 00310000 fe:00 12558894                   /usr/bin/posture
Rss:                6468 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
555e76371000-555e763e2000 r--p 00b88000 fe:00 12558894                   /usr/bin/posture
Rss:                 452 kB
Private_Dirty:       448 kB
Anonymous:           448 kB
Swap:                  0 kB
555e763e2000-555e763e5000 rw-p 00bf8000 fe:00 12558894                   /usr/bin/posture
Rss:                  12 kB
Private_Dirty:        12 kB
Anonymous:            12 kB
Swap:                  0 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 777                        /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1672 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000200000-7f0000300000 r-xp 00000000 fe:00 778                        /usr/lib/just-written.so
Rss:                 512 kB
Private_Dirty:       512 kB
Anonymous:             0 kB
Swap:                  0 kB
7ffc65293000-7ffc652b4000 rw-p 00000000 00:00 0                          [stack]
Rss:                  24 kB
Private_Dirty:        24 kB
Anonymous:            24 kB
";

    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let found = clean_read_only_mappings(SMAPS);
        assert_eq!(
            found,
            vec![
                Mapping {
                    start: 0x555e_757e_7000,
                    end: 0x555e_75af_8000
                },
                Mapping {
                    start: 0x555e_75af_8000,
                    end: 0x555e_7637_1000
                },
                Mapping {
                    start: 0x7f00_0000_0000,
                    end: 0x7f00_0010_0000
                },
                Mapping {
                    start: 0x7f00_0020_0000,
                    end: 0x7f00_0030_0000
                },
            ],
            "not the relocated (copied-on-write) read-only mapping, not the data, not the \
             stack; the just-written file's dirty page-cache pages are the file's"
        );
        assert!(clean_read_only_mappings("garbage\n").is_empty());
    }

    #[test]
    fn the_running_daemon_survives_dropping_its_code_pages() {
        // Drops this test binary's clean pages, then runs code and reads constants again.
        release_unused();
        let text: String = ["still", "running"].join(" ");
        assert_eq!(text, "still running");
        assert_eq!(
            format!("{:?}", Mapping { start: 1, end: 2 }),
            "Mapping { start: 1, end: 2 }"
        );
    }
}
