//! The `edr` decision over the products' states, shared by every OS (pure): each OS's
//! implementation finds which catalogue products are installed and running, this decides.

use posture_core::{Finding, Remediation};
use serde::Serialize;

use super::health::HealthReport;
use super::ID;

/// One product's state on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductState {
    /// Catalogue id.
    pub id: String,
    /// Name for people.
    pub name: String,
    /// A service unit or install path exists.
    pub installed: bool,
    /// One of its processes runs; `None` when the process list was not read.
    pub running: Option<bool>,
    /// Its own health verdict, when it has a source and the source could tell.
    pub healthy: Option<bool>,
    /// The unit files and install paths found.
    pub sources: Vec<String>,
    /// The processes verified to be the product, as `name (exe)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
    /// Processes with one of the product's names that do not count as the product, and
    /// why (`name (pid N): reason`): another user's process, a copy outside the install
    /// directories, a deleted executable, outside its service unit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
    /// The health source and what it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
}

/// The decision over the products' states (pure).
pub fn decide(states: &[ProductState], required: &[String], processes_known: bool) -> Finding {
    let candidates: Vec<&ProductState> = states
        .iter()
        .filter(|s| required.is_empty() || required.contains(&s.id))
        .collect();
    let names = |list: &[&ProductState]| {
        list.iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let running: Vec<&ProductState> = candidates
        .iter()
        .copied()
        .filter(|s| s.running == Some(true))
        .collect();
    let healthy_running: Vec<&ProductState> = running
        .iter()
        .copied()
        .filter(|s| s.healthy != Some(false))
        .collect();
    let installed: Vec<&ProductState> =
        candidates.iter().copied().filter(|s| s.installed).collect();

    if !healthy_running.is_empty() {
        let health = |s: &ProductState| match s.healthy {
            Some(true) => " (healthy)",
            _ => "",
        };
        let list = healthy_running
            .iter()
            .map(|s| format!("{}{}", s.name, health(s)))
            .collect::<Vec<_>>()
            .join(", ");
        return Finding::pass(ID, format!("running: {list}"));
    }
    if !running.is_empty() {
        let detail = running
            .iter()
            .filter_map(|s| {
                s.health
                    .as_ref()
                    .map(|h| format!("{}: {}", s.name, h.detail))
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Finding::fail(
            ID,
            format!(
                "{} is running but reports it is not healthy ({detail})",
                names(&running)
            ),
            Remediation::new(format!(
                "{} reports a problem and may not be protecting this device. Restart the device; \
                 if that does not help, contact IT with this message.",
                names(&running)
            )),
        );
    }
    if !processes_known {
        let what = if installed.is_empty() {
            "no catalogued EDR product is installed".to_owned()
        } else {
            format!("installed: {}", names(&installed))
        };
        return Finding::unknown(
            ID,
            format!("the process list is live state and is not read from a fixture root ({what})"),
        );
    }
    if !installed.is_empty() {
        return Finding::fail(
            ID,
            format!("{} is installed but not running", names(&installed)),
            Remediation::new(format!(
                "Start {} (on Linux: `sudo systemctl start` its service), or restart the device. \
                 If it keeps stopping, contact IT.",
                names(&installed)
            )),
        );
    }
    if required.is_empty() {
        Finding::fail(
            ID,
            "no EDR or antivirus product is running",
            Remediation::new(
                "Install your organisation's endpoint security (EDR/antivirus) agent. \
                 Contact IT for the installer and enrolment instructions.",
            ),
        )
    } else {
        Finding::fail(
            ID,
            format!("required EDR product not found: {}", names(&candidates)),
            Remediation::new(format!(
                "Your organisation requires {} on this device. Contact IT to install it.",
                names(&candidates)
            )),
        )
    }
}
