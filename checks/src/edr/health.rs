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

/// Reads `sentinelctl control status`: healthy when `Agent state` is `Enabled` (the agent
/// is protecting), unhealthy when it names another state (`Disabled`, ...).
pub fn read_sentinelctl_control_status(output: &str) -> Option<bool> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Agent state")?;
        let value = rest.trim_start_matches([':', ' ', '\t']).trim();
        (!value.is_empty()).then(|| value.eq_ignore_ascii_case("enabled"))
    })
}

/// Reads `cytool runtime query` (Cortex XDR): a table of the agent's processes with a
/// `Status` column; healthy when every process is `Running`.
pub fn read_cytool_runtime_query(output: &str) -> Option<bool> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let status_column = header.iter().position(|h| *h == "Status")?;
    let mut rows = 0;
    for line in lines {
        let status = line.split_whitespace().nth(status_column)?;
        rows += 1;
        if status != "Running" {
            return Some(false);
        }
    }
    (rows > 0).then_some(true)
}

/// Reads `bduitool get ps` (Bitdefender GravityZone, BEST for Linux): healthy when
/// `Antimalware status: On`.
pub fn read_bduitool_protection_status(output: &str) -> Option<bool> {
    output.lines().find_map(|line| {
        let value = line
            .trim()
            .trim_start_matches("- ")
            .strip_prefix("Antimalware status:")?
            .trim();
        match value {
            "On" => Some(true),
            "Off" => Some(false),
            _ => None,
        }
    })
}

/// Reads ESET's `lic --status`: healthy when the product is `Activated` (a product that is
/// not activated gets no detection engine updates).
pub fn read_eset_license_status(output: &str) -> Option<bool> {
    output.lines().find_map(|line| {
        let value = line.trim().strip_prefix("Status:")?.trim();
        Some(value.eq_ignore_ascii_case("activated"))
    })
}

/// Reads a status command's output with the named reader.
pub fn read(reader: Reader, output: &str) -> Option<bool> {
    match reader {
        Reader::FalconctlRfmState => read_falconctl_rfm_state(output),
        Reader::MdatpHealthy => read_mdatp_healthy(output),
        Reader::WazuhControlStatus => read_wazuh_control_status(output),
        Reader::SentinelctlControlStatus => read_sentinelctl_control_status(output),
        Reader::CytoolRuntimeQuery => read_cytool_runtime_query(output),
        Reader::BduitoolProtectionStatus => read_bduitool_protection_status(output),
        Reader::EsetLicenseStatus => read_eset_license_status(output),
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

    /// Captured outputs (see `tests/fixtures/edr/README.md` for where each comes from).
    const SENTINELCTL: &str =
        include_str!("../../tests/fixtures/edr/status/sentinelctl-30.1.1.10.txt");
    const CYTOOL: &str =
        include_str!("../../tests/fixtures/edr/status/cytool-runtime-query-8.2.1.txt");
    const BDUITOOL: &str =
        include_str!("../../tests/fixtures/edr/status/bduitool-get-ps-7.0.3.2239.txt");
    const ESET_LIC: &str =
        include_str!("../../tests/fixtures/edr/status/eset-lic-status-12.0.13.0.txt");

    #[test]
    fn sentinelctl_outputs() {
        assert_eq!(read_sentinelctl_control_status(SENTINELCTL), Some(true));
        let disabled = SENTINELCTL.replace("Agent state      Enabled", "Agent state      Disabled");
        assert_eq!(read_sentinelctl_control_status(&disabled), Some(false));
        assert_eq!(
            read_sentinelctl_control_status("Agent version: 30.1.1.10\n"),
            None
        );
    }

    #[test]
    fn cytool_outputs() {
        assert_eq!(read_cytool_runtime_query(CYTOOL), Some(true));
        let stopped = CYTOOL.replacen("Running", "Stopped", 2);
        assert_eq!(read_cytool_runtime_query(&stopped), Some(false));
        assert_eq!(read_cytool_runtime_query("Error: must run as root\n"), None);
        let header_only = CYTOOL.lines().next().unwrap();
        assert_eq!(read_cytool_runtime_query(header_only), None);
    }

    #[test]
    fn bduitool_outputs() {
        assert_eq!(read_bduitool_protection_status(BDUITOOL), Some(true));
        let off = BDUITOOL.replace("Antimalware status: On", "Antimalware status: Off");
        assert_eq!(read_bduitool_protection_status(&off), Some(false));
        assert_eq!(
            read_bduitool_protection_status("Product version: 7\n"),
            None
        );
    }

    #[test]
    fn eset_license_outputs() {
        assert_eq!(read_eset_license_status(ESET_LIC), Some(true));
        let expired = ESET_LIC.replace("Status: Activated", "Status: Not activated");
        assert_eq!(read_eset_license_status(&expired), Some(false));
        assert_eq!(read_eset_license_status(""), None);
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
