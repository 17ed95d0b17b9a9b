//! macOS: which catalogue products run, from the system extensions, the launchd jobs and
//! the processes (pure; the sources are read in `macos.rs`).
//!
//! A product counts as running when any one of these holds:
//! - one of its system extensions is `[activated enabled]`, enabled and active, signed by
//!   its team ID (Apple-issued; nobody else can sign as it);
//! - one of its launchd jobs (system domain, so root-owned plists) runs with a PID, and a
//!   root process with one of its names runs;
//! - a root process with one of its names runs an executable below one of its install
//!   paths, `/Library/` or `/Applications/` (SIP-protected or admin-writable only).
//!
//! A user's process that merely has a product's name is rejected, with the reason.

use super::catalogue::{Catalogue, OsEntry, Product};
use super::launchctl::{LaunchdJob, MacProcess};
use super::systemextensionsctl::SystemExtension;
use super::ProductState;

/// What was read on the device; `None` where the source could not be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed<'a> {
    /// `systemextensionsctl list`.
    pub extensions: Option<&'a [SystemExtension]>,
    /// `launchctl list` (as root: the system domain).
    pub jobs: Option<&'a [LaunchdJob]>,
    /// `ps`.
    pub processes: Option<&'a [MacProcess]>,
}

impl Observed<'_> {
    /// Whether anything that can show a running product was read.
    pub fn any(&self) -> bool {
        self.extensions.is_some() || self.processes.is_some()
    }
}

fn trusted_location(entry: &OsEntry, exe: &str) -> bool {
    entry
        .paths
        .iter()
        .any(|p| exe.starts_with(p.trim_end_matches('/')))
        || exe.starts_with("/Library/")
        || exe.starts_with("/Applications/")
        || exe.starts_with("/System/")
}

/// The states of every product with a macOS entry. `installed(entry)` lists the install
/// paths and launchd plists found for it.
pub fn product_states(
    catalogue: &Catalogue,
    observed: Observed<'_>,
    installed: impl Fn(&OsEntry) -> Vec<String>,
) -> Vec<ProductState> {
    catalogue
        .products
        .iter()
        .filter_map(|p| p.macos.as_ref().map(|e| (p, e)))
        .map(|(product, entry)| state(product, entry, observed, installed(entry)))
        .collect()
}

fn state(
    product: &Product,
    entry: &OsEntry,
    observed: Observed<'_>,
    sources: Vec<String>,
) -> ProductState {
    let mut matched = Vec::new();
    let mut rejected = Vec::new();
    if let (Some(team), Some(exts)) = (entry.team_id.as_deref(), observed.extensions) {
        for ext in exts {
            if ext.team_id != team || !entry.system_extensions.contains(&ext.bundle_id) {
                continue;
            }
            let label = format!("system extension {} ({team})", ext.bundle_id);
            if ext.running() {
                if !matched.contains(&label) {
                    matched.push(label);
                }
            } else {
                rejected.push(format!("{label}: not running ([{}])", ext.state));
            }
        }
    }
    let job_running = observed.jobs.is_some_and(|jobs| {
        jobs.iter()
            .any(|j| j.pid.is_some() && entry.services.contains(&j.label))
    });
    for p in observed.processes.unwrap_or_default() {
        if !entry
            .processes
            .iter()
            .any(|name| p.name.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let exe = p.exe.as_str();
        let root = p.ruid == 0 && p.uid == 0;
        if !root {
            rejected.push(format!("{} (pid {}): not running as root", p.name, p.pid));
        } else if job_running || trusted_location(entry, exe) {
            matched.push(format!("{} ({exe})", p.name));
        } else {
            rejected.push(format!(
                "{} (pid {}): {exe} is outside the product's install paths",
                p.name, p.pid
            ));
        }
    }
    let running = observed.any().then_some(!matched.is_empty());
    ProductState {
        id: product.id.clone(),
        name: product.name.clone(),
        installed: !sources.is_empty(),
        running,
        healthy: None,
        sources,
        processes: matched,
        rejected,
        health: None,
    }
}
