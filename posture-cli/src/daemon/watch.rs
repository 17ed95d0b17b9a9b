//! System changes that make posture stale, and the checks each one affects.
//!
//! Linux: inotify on the package database and apt history, firewall configuration,
//! os-release and `/dev` (block devices appearing or leaving); logind's `PrepareForSleep`
//! signal on the system bus for resume from suspend (see [`super::sleep`]). Every watch
//! is on a directory, filtered by file name, so editors' and dpkg's write-and-rename
//! replacements are seen too. The task sleeps in the kernel until an event arrives.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::scheduler::Trigger;

/// One watched directory and the checks its changes affect (inotify: Linux only).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSpec {
    /// Absolute directory, below the configured root.
    pub dir: &'static str,
    /// File names that matter; empty means any entry.
    pub names: &'static [&'static str],
    /// Name prefixes that matter (for `/dev`: block devices only).
    pub prefixes: &'static [&'static str],
    /// The checks to re-collect.
    pub checks: &'static [&'static str],
    /// Only entries appearing or leaving matter, not writes. For `/dev`, where every
    /// write to `/dev/null` would otherwise wake the daemon.
    pub entries_only: bool,
    /// For the log.
    pub cause: &'static str,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const PACKAGES: &[&str] = &["os", "patch_level", "auto_updates", "edr", "firewall"];

/// What is watched on Linux.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub const LINUX_WATCHES: &[WatchSpec] = &[
    WatchSpec {
        dir: "/var/lib/dpkg",
        names: &["status"],
        prefixes: &[],
        checks: PACKAGES,
        entries_only: false,
        cause: "package database changed",
    },
    WatchSpec {
        dir: "/var/log/apt",
        names: &["history.log"],
        prefixes: &[],
        checks: &["patch_level", "auto_updates"],
        entries_only: false,
        cause: "apt history changed",
    },
    WatchSpec {
        dir: "/var/lib/rpm",
        names: &["rpmdb.sqlite", "Packages"],
        prefixes: &[],
        checks: PACKAGES,
        entries_only: false,
        cause: "package database changed",
    },
    WatchSpec {
        dir: "/etc",
        names: &["os-release", "nftables.conf"],
        prefixes: &[],
        checks: &["os", "firewall"],
        entries_only: false,
        cause: "/etc configuration changed",
    },
    WatchSpec {
        dir: "/usr/lib",
        names: &["os-release"],
        prefixes: &[],
        checks: &["os"],
        entries_only: false,
        cause: "os-release changed",
    },
    WatchSpec {
        dir: "/etc/apt/apt.conf.d",
        names: &[],
        prefixes: &[],
        checks: &["auto_updates"],
        entries_only: false,
        cause: "apt configuration changed",
    },
    WatchSpec {
        dir: "/etc/ufw",
        names: &[],
        prefixes: &[],
        checks: &["firewall"],
        entries_only: false,
        cause: "firewall configuration changed",
    },
    WatchSpec {
        dir: "/etc/firewalld",
        names: &[],
        prefixes: &[],
        checks: &["firewall"],
        entries_only: false,
        cause: "firewall configuration changed",
    },
    WatchSpec {
        dir: "/etc/iptables",
        names: &[],
        prefixes: &[],
        checks: &["firewall"],
        entries_only: false,
        cause: "firewall configuration changed",
    },
    WatchSpec {
        dir: "/dev",
        names: &[],
        prefixes: &["sd", "nvme", "mmcblk", "vd", "xvd", "dm-", "md", "loop"],
        checks: &["disk_encryption"],
        entries_only: true,
        cause: "block device added or removed",
    },
];

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl WatchSpec {
    /// Whether a change to `name` in this directory matters.
    pub fn matches(&self, name: &str) -> bool {
        if name.ends_with(".tmp") || name.ends_with('~') || name.starts_with(".#") {
            // Half-written temp files: the rename that completes them is what matters.
            return false;
        }
        if !self.names.is_empty() && !self.names.contains(&name) {
            return false;
        }
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| name.starts_with(p))
    }

    /// The directory below `root`.
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(self.dir.trim_start_matches('/'))
    }
}

/// Watches [`LINUX_WATCHES`] below `root` and sends a trigger per relevant change.
/// Returns when the trigger channel closes; logs and returns early if inotify is unusable.
#[cfg(target_os = "linux")]
pub async fn run(root: PathBuf, triggers: mpsc::Sender<Trigger>) {
    use inotify::{Inotify, WatchMask};
    use tokio::io::unix::AsyncFd;

    let inotify = match Inotify::init() {
        Ok(inotify) => inotify,
        Err(e) => {
            tracing::warn!(error = %e, "inotify unavailable: changes are seen at the next interval");
            return;
        }
    };
    let entries =
        WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::CREATE | WatchMask::DELETE;
    let mut watched = Vec::new();
    for spec in LINUX_WATCHES {
        let dir = spec.path(&root);
        let mask = if spec.entries_only {
            entries
        } else {
            entries | WatchMask::CLOSE_WRITE
        };
        match inotify.watches().add(&dir, mask) {
            Ok(wd) => watched.push((wd, spec)),
            Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "not watched"),
        }
    }
    tracing::info!(directories = watched.len(), "watching for system changes");
    // SAFETY: `Inotify` owns a valid, non-blocking (IN_NONBLOCK) file descriptor, and
    // it is neither closed nor replaced while the `AsyncFd` owns it.
    let registered = unsafe { AsyncFd::register(inotify) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(error = %e, "inotify unusable with the runtime");
            return;
        }
    };
    let mut buffer = [0u8; 4096];
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!(error = %e, "inotify failed; changes are seen at the next interval");
                return;
            }
        };
        let mut fired: Vec<&WatchSpec> = Vec::new();
        match guard.try_io(|inner| {
            inner.get_mut().read_events(&mut buffer).map(|events| {
                for event in events {
                    let Some(name) = event.name.and_then(|n| n.to_str()) else {
                        continue;
                    };
                    if let Some((_, spec)) = watched.iter().find(|(wd, _)| *wd == event.wd) {
                        tracing::trace!(dir = spec.dir, name, mask = ?event.mask, "inotify event");
                        if spec.matches(name) && !fired.contains(spec) {
                            fired.push(spec);
                        }
                    }
                }
            })
        }) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading inotify events failed");
                return;
            }
            Err(_would_block) => continue,
        }
        for spec in fired {
            let trigger = Trigger {
                checks: spec.checks.to_vec(),
                cause: spec.cause.to_owned(),
            };
            if triggers.send(trigger).await.is_err() {
                return;
            }
        }
    }
}

/// No file watching on this OS yet: changes are seen at the next interval.
#[cfg(not(target_os = "linux"))]
pub async fn run(_root: PathBuf, _triggers: mpsc::Sender<Trigger>) {
    tracing::info!("watching for system changes is not supported on this OS");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &str) -> &'static WatchSpec {
        LINUX_WATCHES.iter().find(|s| s.dir == dir).unwrap()
    }

    #[test]
    fn dpkg_status_matters_but_its_backup_does_not() {
        let dpkg = spec("/var/lib/dpkg");
        assert!(dpkg.matches("status"));
        assert!(!dpkg.matches("status-old"));
        assert!(!dpkg.matches("lock-frontend"));
    }

    #[test]
    fn only_block_devices_in_dev() {
        let dev = spec("/dev");
        assert!(dev.matches("sdb"));
        assert!(dev.matches("nvme1n1p2"));
        assert!(!dev.matches("tty7"));
        assert!(!dev.matches("pts"));
    }

    #[test]
    fn any_file_in_ufw_except_temp_files() {
        let ufw = spec("/etc/ufw");
        assert!(ufw.matches("ufw.conf"));
        assert!(!ufw.matches("ufw.conf~"));
        assert!(!ufw.matches("user.rules.tmp"));
        assert_eq!(
            ufw.path(Path::new("/tmp/root")),
            Path::new("/tmp/root/etc/ufw")
        );
    }
}
