//! A product's health from its own cheap status source: readers are pure functions over the
//! command's output; sources run the command (live only) or read file times.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::catalogue::{Health, Reader};
use crate::source::{list_dir, run_command};
use crate::Context;

/// Status commands get this long; they are meant to answer at once.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

const DAY: u64 = 24 * 60 * 60;

/// What a health source said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// `Some(true)` healthy, `Some(false)` unhealthy, `None` could not tell.
    pub healthy: Option<bool>,
    /// The command or files it came from.
    pub source: String,
    /// Detail for people: the product's own words, an age, or why it could not tell.
    pub detail: String,
}

/// Reads `falconctl -g --rfm-state` (`rfm-state=false.`): healthy when the sensor is not in
/// Reduced Functionality Mode.
pub fn read_falconctl_rfm_state(output: &str) -> Option<bool> {
    let (_, rest) = output.split_once("rfm-state=")?;
    let value: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    match value.as_str() {
        "false" => Some(true),
        "true" => Some(false),
        _ => None,
    }
}

/// Reads `mdatp health --field healthy`: its last line is `true`/`false` (older releases
/// print `1`/`0`); notices such as "ATTENTION: No license found" may come before it.
pub fn read_mdatp_healthy(output: &str) -> Option<bool> {
    let last = output.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    match last {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Reads `wazuh-control status`: healthy when `wazuh-agentd is running...`.
pub fn read_wazuh_control_status(output: &str) -> Option<bool> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("wazuh-agentd "))
        .find_map(|l| {
            if l.contains("not running") {
                Some(false)
            } else if l.contains("is running") {
                Some(true)
            } else {
                None
            }
        })
}

/// Reads a status command's output with the named reader.
pub fn read(reader: Reader, output: &str) -> Option<bool> {
    match reader {
        Reader::FalconctlRfmState => read_falconctl_rfm_state(output),
        Reader::MdatpHealthy => read_mdatp_healthy(output),
        Reader::WazuhControlStatus => read_wazuh_control_status(output),
    }
}

/// Health from the newest signature file's time: `(healthy, age in whole days)`.
pub fn signature_health(
    newest: Option<SystemTime>,
    now: SystemTime,
    max_age_days: u64,
) -> (bool, Option<u64>) {
    match newest {
        None => (false, None),
        Some(time) => {
            // A file time in the future counts as fresh.
            let age_days = now.duration_since(time).map_or(0, |d| d.as_secs() / DAY);
            (age_days <= max_age_days, Some(age_days))
        }
    }
}

/// Evaluates a health source. Commands run only in a live context and only for a running
/// product (a stopped product has no status to ask for).
pub fn evaluate(ctx: &Context, health: &Health, running: bool) -> Option<HealthReport> {
    match health {
        Health::Command { command, reader } => {
            let (program, args) = command.split_first()?;
            let line = command.join(" ");
            if !ctx.live || !running {
                return None;
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Some(match run_command(ctx, program, &args, COMMAND_TIMEOUT) {
                Ok(output) => {
                    let healthy = read(*reader, &output.stdout);
                    let detail = match healthy {
                        Some(_) => output.stdout.trim().lines().last().unwrap_or("").to_owned(),
                        None => format!(
                            "unrecognised output (exit {}): {}",
                            output.code.map_or("signal".to_owned(), |c| c.to_string()),
                            first_line(&output.stdout, &output.stderr)
                        ),
                    };
                    HealthReport {
                        healthy,
                        source: line,
                        detail,
                    }
                }
                Err(e) => HealthReport {
                    healthy: None,
                    source: line,
                    detail: e.to_string(),
                },
            })
        }
        Health::SignatureAge {
            dirs,
            extensions,
            max_age_days,
        } => {
            let mut newest: Option<(SystemTime, String)> = None;
            let mut read_any = false;
            for dir in dirs {
                let Ok(names) = list_dir(ctx, dir) else {
                    continue;
                };
                read_any = true;
                for name in names {
                    let is_signature = Path::new(&name)
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| extensions.iter().any(|x| x == e));
                    if !is_signature {
                        continue;
                    }
                    let path = format!("{}/{name}", dir.trim_end_matches('/'));
                    let modified = std::fs::metadata(ctx.path(&path)).and_then(|m| m.modified());
                    if let Ok(time) = modified {
                        if newest.as_ref().is_none_or(|(t, _)| time > *t) {
                            newest = Some((time, path));
                        }
                    }
                }
            }
            if !read_any {
                return None;
            }
            let (healthy, age_days) =
                signature_health(newest.as_ref().map(|(t, _)| *t), ctx.now, *max_age_days);
            let detail = match (&newest, age_days) {
                (Some((_, path)), Some(age)) => {
                    format!("newest signatures {path} are {age} day(s) old (limit {max_age_days})")
                }
                _ => format!("no signature files in {}", dirs.join(", ")),
            };
            Some(HealthReport {
                healthy: Some(healthy),
                source: dirs.join(", "),
                detail,
            })
        }
    }
}

fn first_line(stdout: &str, stderr: &str) -> String {
    stderr
        .lines()
        .chain(stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falconctl_outputs() {
        // As printed by falconctl 6.x/7.x (one setting per line, trailing period).
        assert_eq!(read_falconctl_rfm_state("rfm-state=false.\n"), Some(true));
        assert_eq!(
            read_falconctl_rfm_state(
                "rfm-state=true.\nrfm-reason=Modules file was not found, code=0xC0000034.\n"
            ),
            Some(false)
        );
        // Several settings on one line, comma separated.
        assert_eq!(
            read_falconctl_rfm_state("aid is not set, rfm-state=false, rfm-reason=None, code=0x0, version = 6.24.12104.0"),
            Some(true)
        );
        assert_eq!(read_falconctl_rfm_state("rfm-state is not set.\n"), None);
        assert_eq!(
            read_falconctl_rfm_state("Error: must be run as root\n"),
            None
        );
    }

    #[test]
    fn mdatp_outputs() {
        assert_eq!(read_mdatp_healthy("true\n"), Some(true));
        assert_eq!(read_mdatp_healthy("1\n"), Some(true));
        assert_eq!(
            read_mdatp_healthy(
                "ATTENTION: No license found. Contact your administrator for help.\nfalse\n"
            ),
            Some(false)
        );
        assert_eq!(read_mdatp_healthy("ERROR: daemon not running\n"), None);
        assert_eq!(read_mdatp_healthy(""), None);
    }

    #[test]
    fn wazuh_outputs() {
        let running = "wazuh-modulesd is running...\nwazuh-logcollector is running...\nwazuh-syscheckd is running...\nwazuh-agentd is running...\nwazuh-execd is running...\n";
        assert_eq!(read_wazuh_control_status(running), Some(true));
        let stopped = "wazuh-modulesd not running...\nwazuh-logcollector not running...\nwazuh-syscheckd not running...\nwazuh-agentd not running...\nwazuh-execd not running...\n";
        assert_eq!(read_wazuh_control_status(stopped), Some(false));
        assert_eq!(
            read_wazuh_control_status("wazuh-execd is running...\n"),
            None
        );
    }

    #[test]
    fn signature_age_limits() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100 * DAY);
        let fresh = now - Duration::from_secs(7 * DAY);
        let stale = now - Duration::from_secs(8 * DAY);
        assert_eq!(signature_health(Some(fresh), now, 7), (true, Some(7)));
        assert_eq!(signature_health(Some(stale), now, 7), (false, Some(8)));
        assert_eq!(signature_health(None, now, 7), (false, None));
        let future = now + Duration::from_secs(DAY);
        assert_eq!(signature_health(Some(future), now, 7), (true, Some(0)));
    }
}
