//! Catalogue products on Windows from the service and process lists (WMI `Win32_Service`,
//! `Win32_Process`), with path checks (pure; every OS).
//!
//! A product is `installed` when one of its catalogue services exists. It is `running`
//! when a service of it runs whose binary (`PathName`) is below one of the product's
//! install directories, or a process with one of its names runs from below them
//! (`ExecutablePath`). The install directories are the catalogue's `paths` (a file's
//! directory for an `.exe`) and `exe_dirs`. A process or service with the right name
//! elsewhere (a copy named `CSFalconService.exe` in a user's Downloads) is `rejected` with
//! the reason; a process whose path Windows would not show (another user's process, read
//! without administrator rights) is rejected as unverified. Who may write to those
//! directories (their ACLs) is not checked.

use serde::Serialize;
use serde_json::Value;

use super::catalogue::OsEntry;
use crate::ps_json::{list, text, uint};

/// A service as `Win32_Service` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `Name`.
    pub name: String,
    /// `State`: `Running`, `Stopped`, ...
    pub state: String,
    /// `PathName`: the command line of its binary.
    pub path: String,
}

/// A process as `Win32_Process` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// `Name`, e.g. `CSFalconService.exe`.
    pub name: String,
    /// `ProcessId`.
    pub pid: u64,
    /// `ExecutablePath`, when Windows shows it.
    pub path: Option<String>,
}

/// Parses `{"Services": [...], "Processes": [...]}`.
pub fn parse(value: &Value) -> (Vec<Service>, Vec<Process>) {
    let services = list(value.get("Services").unwrap_or(&Value::Null))
        .into_iter()
        .map(|s| Service {
            name: text(s, "Name").unwrap_or_default(),
            state: text(s, "State").unwrap_or_default(),
            path: text(s, "PathName").unwrap_or_default(),
        })
        .collect();
    let processes = list(value.get("Processes").unwrap_or(&Value::Null))
        .into_iter()
        .map(|p| Process {
            name: text(p, "Name").unwrap_or_default(),
            pid: uint(p, "ProcessId").unwrap_or(0),
            path: text(p, "ExecutablePath").filter(|s| !s.is_empty()),
        })
        .collect();
    (services, processes)
}

/// A product's state on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductState {
    /// Catalogue id.
    pub id: String,
    /// Name for people.
    pub name: String,
    /// One of its services exists.
    pub installed: bool,
    /// A service or process of it runs from its install directories.
    pub running: bool,
    /// What was verified, as `service Name (path)` / `process Name (path)`.
    pub verified: Vec<String>,
    /// Same-named services/processes that do not count, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
}

/// The directories a product's binaries must be in (lower case, `\`-terminated).
pub fn install_dirs(entry: &OsEntry) -> Vec<String> {
    entry
        .paths
        .iter()
        .chain(&entry.exe_dirs)
        .map(|p| {
            let lower = p.to_ascii_lowercase().replace('/', "\\");
            let dir = if lower.ends_with(".exe") {
                lower
                    .rsplit_once('\\')
                    .map_or(lower.clone(), |(d, _)| d.to_owned())
            } else {
                lower
            };
            format!("{}\\", dir.trim_end_matches('\\'))
        })
        .collect()
}

/// The executable of a service's `PathName` (quoted or not, arguments dropped).
pub fn service_binary(path_name: &str) -> String {
    let p = path_name.trim();
    if let Some(rest) = p.strip_prefix('"') {
        rest.split('"').next().unwrap_or(rest).to_owned()
    } else {
        // Unquoted: up to and including `.exe`, else the first word.
        let lower = p.to_ascii_lowercase();
        match lower.find(".exe") {
            Some(i) => p.get(..i + 4).unwrap_or(p).to_owned(),
            None => p.split(' ').next().unwrap_or(p).to_owned(),
        }
    }
}

fn below(path: &str, dirs: &[String]) -> bool {
    let lower = path.to_ascii_lowercase().replace('/', "\\");
    // `\\?\` prefixes and `\SystemRoot\` forms of driver paths are not service binaries of
    // the products here; a plain prefix match on the normalised path is enough.
    dirs.iter().any(|d| lower.starts_with(d.as_str()))
}

/// The state of one product.
pub fn assess(
    id: &str,
    name: &str,
    entry: &OsEntry,
    services: &[Service],
    processes: &[Process],
) -> ProductState {
    let dirs = install_dirs(entry);
    let mut state = ProductState {
        id: id.to_owned(),
        name: name.to_owned(),
        installed: false,
        running: false,
        verified: Vec::new(),
        rejected: Vec::new(),
    };
    for service in services.iter().filter(|s| {
        entry
            .services
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&s.name))
    }) {
        state.installed = true;
        if !service.state.eq_ignore_ascii_case("running") {
            continue;
        }
        let binary = service_binary(&service.path);
        if below(&binary, &dirs) {
            state.running = true;
            state
                .verified
                .push(format!("service {} ({binary})", service.name));
        } else if binary.to_ascii_lowercase().ends_with(".sys") || binary.is_empty() {
            // A kernel driver service (CSAgent): running says nothing about the user-mode
            // sensor and its path is in System32\drivers; reported, not counted.
            state
                .verified
                .push(format!("driver service {} (running)", service.name));
        } else {
            state.rejected.push(format!(
                "service {} runs {binary}, outside the product's install directories",
                service.name
            ));
        }
    }
    for process in processes.iter().filter(|p| {
        entry
            .processes
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&p.name))
    }) {
        match &process.path {
            Some(path) if below(path, &dirs) => {
                state.running = true;
                state
                    .verified
                    .push(format!("process {} ({path})", process.name));
            }
            Some(path) => state.rejected.push(format!(
                "{} (pid {}): runs {path}, outside the product's install directories",
                process.name, process.pid
            )),
            None => state.rejected.push(format!(
                "{} (pid {}): its executable path is not visible (needs an administrator)",
                process.name, process.pid
            )),
        }
    }
    state
}
