//! macOS launchd jobs and processes: `launchctl list` and `ps -axo pid=,ruid=,uid=,comm=`
//! output.
//!
//! `launchctl list` (run as root it lists the system domain's jobs):
//! ```text
//! PID    Status    Label
//! 412    0    com.crowdstrike.falcond
//! -    0    com.apple.some.job
//! ```
//! A PID means the job runs now; `-` that it is loaded but not running.

/// A process as `ps` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MacProcess {
    /// Process id.
    pub pid: u32,
    /// Real user id.
    pub ruid: u32,
    /// Effective user id.
    pub uid: u32,
    /// The executable's path.
    pub exe: String,
    /// The executable's file name.
    pub name: String,
}

/// One launchd job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaunchdJob {
    /// Its label.
    pub label: String,
    /// Its PID when running.
    pub pid: Option<u32>,
    /// The last exit status (or the signal, negative).
    pub last_exit: Option<i64>,
}

/// Parses `launchctl list`.
pub fn parse_list(text: &str) -> Vec<LaunchdJob> {
    text.lines()
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let pid = cols.next()?.trim();
            let status = cols.next()?.trim();
            let label = cols.next()?.trim();
            if label.is_empty() || label == "Label" {
                return None;
            }
            Some(LaunchdJob {
                label: label.to_owned(),
                pid: pid.parse().ok(),
                last_exit: status.parse().ok(),
            })
        })
        .collect()
}

/// Parses `ps -axo pid=,ruid=,uid=,comm=`: the PID, the real and effective user ids and
/// the executable path (which may contain spaces: everything after the third column).
pub fn parse_ps(text: &str) -> Vec<MacProcess> {
    text.lines()
        .filter_map(|line| {
            let mut rest = line.trim_start();
            let mut numbers = [0u32; 3];
            for slot in &mut numbers {
                let (n, tail) = rest.split_once(char::is_whitespace)?;
                *slot = n.parse().ok()?;
                rest = tail.trim_start();
            }
            let exe = rest.trim_end();
            if exe.is_empty() {
                return None;
            }
            let name = exe.rsplit('/').next().unwrap_or(exe);
            Some(MacProcess {
                pid: numbers[0],
                ruid: numbers[1],
                uid: numbers[2],
                exe: exe.to_owned(),
                name: name.to_owned(),
            })
        })
        .collect()
}
