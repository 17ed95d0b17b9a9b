//! Where posture keeps its files: system-wide when run as root, per user otherwise.

use std::path::PathBuf;

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The state directory: `/var/lib/posture` as root, else the user's data directory
/// (`~/.local/share/posture` on Linux). `POSTURE_STATE_DIR` overrides both (tests,
/// packaging). It holds caches and what checks remember between runs, never secrets.
pub fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("POSTURE_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if is_root() {
        return Some(PathBuf::from("/var/lib/posture"));
    }
    directories::ProjectDirs::from("", "", "posture").map(|d| d.data_local_dir().to_path_buf())
}
