//! Collections run in a short-lived child process: `posture collect`, the same executable.
//!
//! A collection runs every check's code on its own thread and parses tens of megabytes
//! of package lists. Done in the daemon, that code and those buffers stayed resident
//! between collections (the kernel maps code back in large folios, so even dropping the
//! pages did not keep the idle daemon small). In a child, all of it goes away when the
//! child exits: the daemon keeps the report (one line of JSON read from the child's
//! stdout), and its own memory is what serving the API needs. A check that hangs is
//! cut off by the runner's timeout inside the child, and the child itself is killed when
//! it overruns the collection's deadline.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use posture_core::Report;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// A report is a few tens of kilobytes; more than this is not a report.
const MAX_REPORT_BYTES: u64 = 8 * 1024 * 1024;

/// Killed children that have not exited yet (a thread stuck in the kernel, e.g. on a hung
/// network file system, keeps a process from dying). Past this many, no new collection
/// starts, so stuck processes cannot pile up one per collection.
const MAX_LINGERING: usize = 3;

/// How long a child that has printed its report gets to exit by itself before it is
/// killed (its runner may still be cutting off a timed-out check).
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A collection did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The child could not be started.
    #[error("cannot start the collection process {exe}: {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The child did not print a report before the deadline (it was killed).
    #[error("the collection did not finish within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The child ended without a report (its error is in the daemon's log, from its stderr).
    #[error("the collection process ended without a report ({0})")]
    NoReport(String),
    /// The report could not be read.
    #[error("cannot talk to the collection process: {0}")]
    Pipe(#[from] std::io::Error),
    /// The report is not a report.
    #[error("the collection's report is invalid: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Earlier collection processes are stuck and have not exited.
    #[error(
        "{0} earlier collection processes have not exited after being killed; not starting another"
    )]
    Stuck(usize),
}

/// Starts collections in child processes.
#[derive(Debug)]
pub struct Collector {
    exe: PathBuf,
    state_dir: PathBuf,
    lingering: Arc<AtomicUsize>,
}

impl Collector {
    /// A collector running this executable with the daemon's state directory.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            exe: own_executable(),
            state_dir,
            lingering: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Collects every enabled check, or `only`, within `deadline`, with the configuration
    /// parsed from `config_text` (the daemon's current one: a config file edited since
    /// the last reload does not apply until SIGHUP, as for everything else).
    pub async fn collect(
        &self,
        config_text: &str,
        only: &[String],
        deadline: Duration,
    ) -> Result<Report, CollectError> {
        let stuck = self.lingering.load(Ordering::Relaxed);
        if stuck >= MAX_LINGERING {
            return Err(CollectError::Stuck(stuck));
        }
        let mut command = Command::new(&self.exe);
        command
            .arg("--config")
            .arg("-")
            .arg("collect")
            .arg("--state-dir")
            .arg(&self.state_dir);
        for id in only {
            command.arg("--only").arg(id);
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The child's own error messages go where the daemon's log goes.
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| CollectError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            self.retire(child, true);
            return Err(CollectError::NoReport("no pipes to the child".to_owned()));
        };
        // The child reads its config to the end before it writes anything, so writing
        // all of it first cannot deadlock; closing stdin ends it.
        if let Err(e) = stdin.write_all(config_text.as_bytes()).await {
            self.retire(child, true);
            return Err(CollectError::Pipe(e));
        }
        drop(stdin);
        let mut line = Vec::new();
        let mut reader = BufReader::new(stdout.take(MAX_REPORT_BYTES));
        let read = tokio::time::timeout(deadline, reader.read_until(b'\n', &mut line)).await;
        drop(reader);
        match read {
            Err(_) => {
                self.retire(child, true);
                Err(CollectError::TimedOut(deadline))
            }
            Ok(Err(e)) => {
                self.retire(child, true);
                Err(CollectError::Pipe(e))
            }
            Ok(Ok(_)) if line.last() != Some(&b'\n') => {
                // End of output without a report: the child failed (or wrote too much).
                let status = match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
                    Ok(Ok(status)) => describe(status),
                    _ => {
                        self.retire(child, true);
                        "did not exit".to_owned()
                    }
                };
                Err(CollectError::NoReport(status))
            }
            Ok(Ok(_)) => {
                self.retire(child, false);
                Ok(serde_json::from_slice(&line)?)
            }
        }
    }

    /// Reaps `child` in the background (killing it now, or after the grace period), and
    /// counts it as lingering until it has exited.
    fn retire(&self, mut child: Child, kill_now: bool) {
        self.lingering.fetch_add(1, Ordering::Relaxed);
        let lingering = Arc::clone(&self.lingering);
        tokio::spawn(async move {
            let exited = !kill_now && tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok();
            if !exited {
                if let Err(e) = child.kill().await {
                    tracing::warn!(error = %e, "cannot kill the collection process");
                }
            }
            lingering.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("{status}"),
    }
}

/// This very executable, even if a package upgrade has replaced the file since the
/// daemon started: the child must speak the daemon's report format.
fn own_executable() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("posture"))
    }
}

#[cfg(test)]
#[cfg(unix)] // the misbehaving children are shell scripts
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A collector whose "child" is `script` (a real process that misbehaves on purpose).
    fn collector_running(dir: &std::path::Path, script: &str) -> Collector {
        let exe = dir.join("child.sh");
        std::fs::write(&exe, format!("#!/bin/sh\ncat >/dev/null\n{script}\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        Collector {
            exe,
            state_dir: dir.join("state"),
            lingering: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn lingering_drops_to_zero(collector: &Collector) {
        for _ in 0..500 {
            if collector.lingering.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the child was not reaped");
    }

    #[tokio::test]
    async fn a_report_line_is_the_report_and_the_child_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let report = posture_test_support::laptop_report();
        let json = serde_json::to_string(&report).unwrap();
        std::fs::write(dir.path().join("report.json"), format!("{json}\n")).unwrap();
        let collector = collector_running(
            dir.path(),
            &format!("cat {:?}", dir.path().join("report.json")),
        );
        let got = collector
            .collect("", &[], Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got, report);
        lingering_drops_to_zero(&collector).await;
    }

    #[tokio::test]
    async fn a_child_that_fails_gives_its_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let collector = collector_running(dir.path(), "echo 'posture: error: broken' >&2; exit 3");
        let err = collector
            .collect("", &[], Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::NoReport(s) if s == "exit status 3"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn garbage_is_not_a_report() {
        let dir = tempfile::tempdir().unwrap();
        let collector = collector_running(dir.path(), "echo '{\"findings\": 1}'");
        let err = collector
            .collect("", &[], Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(err, CollectError::Invalid(_)), "{err}");
    }

    #[tokio::test]
    async fn a_hung_child_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let collector = collector_running(dir.path(), "exec sleep 600");
        let err = collector
            .collect("", &[], Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, CollectError::TimedOut(_)), "{err}");
        // Killed and reaped: nothing lingers, so the next collection may start.
        lingering_drops_to_zero(&collector).await;
    }

    #[tokio::test]
    async fn the_config_text_reaches_the_child_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("child.sh");
        let seen = dir.path().join("seen.toml");
        std::fs::write(&exe, format!("#!/bin/sh\ncat >{seen:?}\nexit 1\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let collector = Collector {
            exe,
            state_dir: dir.path().join("state"),
            lingering: Arc::new(AtomicUsize::new(0)),
        };
        let config = "[checks]\ntimeout = \"3s\"\n";
        let _ = collector
            .collect(config, &[], Duration::from_secs(30))
            .await;
        assert_eq!(std::fs::read_to_string(seen).unwrap(), config);
    }
}
