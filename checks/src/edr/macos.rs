//! macOS implementation. Sources: `systemextensionsctl list` (endpoint security and network
//! extensions, with their team IDs), `launchctl list` (as root: the system domain's jobs),
//! `ps -axo pid=,ruid=,uid=,comm=`, and the products' launchd plists and install paths
//! below the context root. Which of them prove a product runs: see [`super::apple`];
//! the decision is shared with the other OSes (`super::decide`).

use std::collections::BTreeSet;
use std::time::Duration;

use posture_core::Finding;
use serde_json::json;

use super::apple::{self, Observed};
use super::catalogue::{self, OsEntry};
use super::{decide, launchctl, systemextensionsctl, ID};
use crate::macos_source::{exists, is_root, run_text, QUICK};
use crate::Context;

/// Where launchd daemons and agents live.
const LAUNCHD_DIRS: &[&str] = &["/Library/LaunchDaemons", "/Library/LaunchAgents"];

fn installed(ctx: &Context, entry: &OsEntry) -> Vec<String> {
    let mut found: Vec<String> = entry
        .services
        .iter()
        .flat_map(|label| {
            LAUNCHD_DIRS
                .iter()
                .map(move |dir| format!("{dir}/{label}.plist"))
        })
        .filter(|path| exists(ctx, path))
        .collect();
    found.extend(entry.paths.iter().filter(|p| exists(ctx, p)).cloned());
    found
}

pub(super) fn check(ctx: &Context) -> Finding {
    let catalogue = match catalogue::builtin() {
        Ok(c) => c,
        Err(e) => return Finding::unknown(ID, e.to_string()),
    };
    let required = &ctx.config.edr.required;
    if let Some(unknown) = super::unknown_required_ids(catalogue, required) {
        return unknown;
    }
    let mut notes = Vec::new();
    let mut sources = BTreeSet::new();
    let extensions = match run_text(ctx, "/usr/bin/systemextensionsctl", &["list"], QUICK) {
        Ok(text) => {
            sources.insert("systemextensionsctl list".to_owned());
            Some(systemextensionsctl::parse_list(&text))
        }
        Err(e) => {
            notes.push(format!("system extensions: {e}"));
            None
        }
    };
    let jobs = if is_root() {
        match run_text(ctx, "/bin/launchctl", &["list"], QUICK) {
            Ok(text) => {
                sources.insert("launchctl list (system domain)".to_owned());
                Some(launchctl::parse_list(&text))
            }
            Err(e) => {
                notes.push(format!("launchd jobs: {e}"));
                None
            }
        }
    } else {
        notes.push("launchd jobs: needs root to list the system domain".to_owned());
        None
    };
    let processes = match run_text(
        ctx,
        "/bin/ps",
        &["-axo", "pid=,ruid=,uid=,comm="],
        Duration::from_secs(15),
    ) {
        Ok(text) => {
            sources.insert("process list (ps)".to_owned());
            Some(launchctl::parse_ps(&text))
        }
        Err(e) => {
            notes.push(format!("processes: {e}"));
            None
        }
    };
    let observed = Observed {
        extensions: extensions.as_deref(),
        jobs: jobs.as_deref(),
        processes: processes.as_deref(),
    };
    let states = apple::product_states(catalogue, observed, |entry| installed(ctx, entry));
    let running: Vec<&str> = states
        .iter()
        .filter(|s| s.running == Some(true))
        .map(|s| s.id.as_str())
        .collect();
    let reported: Vec<_> = states
        .iter()
        .filter(|s| s.installed || s.running == Some(true) || required.contains(&s.id))
        .collect();
    sources.extend(reported.iter().flat_map(|s| s.sources.iter().cloned()));
    let mut finding = decide(&states, required, observed.any())
        .observe("products", json!(reported))
        .observe("running", json!(running))
        .observe("required", json!(required))
        .observe("not_read", json!(notes));
    for source in sources {
        finding = finding.source(source);
    }
    finding
}
