//! What a check runs against: a filesystem root, the config and the time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::ChecksConfig;

/// What a check runs against.
///
/// `root` is `/` in production; tests point it at a directory tree that has the same
/// layout (`etc/`, `sys/`, `proc/`, `var/lib/dpkg/`, ...) so the real check code runs on it.
#[derive(Debug, Clone)]
pub struct Context {
    /// Filesystem root that every path is read below.
    pub root: PathBuf,
    /// The checks' configuration.
    pub config: ChecksConfig,
    /// "Now", for age computations (fixed in tests).
    pub now: SystemTime,
    /// Whether checks may run commands and query live OS state that is not below `root`
    /// (processes, D-Bus, netlink). True in production; false when `root` is a fixture tree,
    /// so a test never mixes the fixture with this machine's state.
    pub live: bool,
    /// A directory where checks may keep small state between runs (e.g. when `patch_level`
    /// first saw a pending security update). `None`: checks keep no state and say what
    /// they therefore cannot tell.
    pub state_dir: Option<PathBuf>,
    /// Set by the runner when this collection's timeout has passed: a check still running
    /// is no longer wanted. Long loops and parsers look at [`Context::cancelled`] and stop;
    /// commands started through [`run_command`](crate::source::run_command) are killed.
    pub cancel: Cancel,
    /// Files that several checks read, read once per collection (the runner starts a
    /// fresh one for every collection, as it does the cancellation flag).
    pub(crate) shared: SharedReads,
}

/// The contents of files more than one check reads, shared by every clone of one
/// collection's [`Context`]: dpkg's status file (≈ 1 MB here), which both `patch_level`
/// and `auto_updates` read — once instead of twice (issue 17's 10 ms budget; reading it
/// costs page faults and a copy, not just parsing).
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedReads(Arc<SharedFiles>);

#[derive(Debug, Default)]
struct SharedFiles {
    /// `Err` holds the reason, worded as the error of the read itself.
    dpkg_status: OnceLock<Result<Arc<String>, String>>,
}

impl SharedReads {
    /// The file, read by the first check that asks (a second one waits for that read).
    pub(crate) fn dpkg_status(
        &self,
        read: impl FnOnce() -> Result<Arc<String>, String>,
    ) -> Result<Arc<String>, String> {
        self.0.dpkg_status.get_or_init(read).clone()
    }
}

/// A cancellation flag shared by every clone of one collection's [`Context`].
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Context {
    /// A context for this machine.
    pub fn system(config: ChecksConfig) -> Self {
        Self {
            root: PathBuf::from("/"),
            config,
            now: SystemTime::now(),
            live: true,
            state_dir: None,
            cancel: Cancel::new(),
            shared: SharedReads::default(),
        }
    }

    /// A context over a fixture tree; no commands and no live state.
    pub fn fixture(root: impl Into<PathBuf>, config: ChecksConfig, now: SystemTime) -> Self {
        Self {
            root: root.into(),
            config,
            now,
            live: false,
            state_dir: None,
            cancel: Cancel::new(),
            shared: SharedReads::default(),
        }
    }

    /// The same context with a state directory.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Whether the runner has given up on this collection (its timeout passed): a check
    /// still running should return whatever it has (`unknown`, reason `timeout`).
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The path of an absolute system path below the root: `path("/etc/os-release")`.
    pub fn path(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let absolute = absolute.as_ref();
        let relative = absolute.strip_prefix("/").unwrap_or(absolute);
        self.root.join(relative)
    }
}
