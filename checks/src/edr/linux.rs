//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use std::collections::BTreeSet;

use posture_core::Finding;
use serde_json::json;

use crate::source::exists;
use crate::Context;
use catalogue::{Catalogue, Os, OsEntry, Product};

/// Linux truncates a process's name (`comm`) to this many bytes.
const LINUX_COMM_LEN: usize = 15;

/// Where systemd unit files live.
const SYSTEMD_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// Where launchd daemons and agents live.
const LAUNCHD_DIRS: &[&str] = &["/Library/LaunchDaemons", "/Library/LaunchAgents"];

/// Whether a process is one of `names` (catalogue process names). Matches the process name
/// or the executable's file name, ignoring ASCII case (Windows), and a Linux name
/// truncated to 15 bytes.
pub fn process_matches(process: &ProcessInfo, names: &[String]) -> bool {
    let exe_name = process.exe.as_deref().map(|exe| {
        // Both separators: a Windows path read on any OS still yields its file name.
        exe.rsplit(['/', '\\']).next().unwrap_or(exe)
    });
    names.iter().any(|name| {
        process.name.eq_ignore_ascii_case(name)
            || exe_name.is_some_and(|e| e.eq_ignore_ascii_case(name))
            || (name.len() > LINUX_COMM_LEN
                && process.name.len() == LINUX_COMM_LEN
                && name
                    .get(..LINUX_COMM_LEN)
                    .is_some_and(|prefix| prefix == process.name))
    })
}

/// For each product, the processes that belong to it (pure).
pub fn match_processes<'a>(
    products: impl IntoIterator<Item = (&'a str, &'a OsEntry)>,
    processes: &[ProcessInfo],
) -> Vec<(&'a str, Vec<&'_ ProcessInfo>)> {
    products
        .into_iter()
        .map(|(id, entry)| {
            let matched = processes
                .iter()
                .filter(|p| process_matches(p, &entry.processes))
                .collect();
            (id, matched)
        })
        .collect()
}

/// The unit files and install paths of a product found below the root.
pub fn installed_sources(ctx: &Context, os: Os, entry: &OsEntry) -> Vec<String> {
    let mut found = Vec::new();
    for service in &entry.services {
        let candidates: Vec<String> = match os {
            Os::Linux => SYSTEMD_DIRS
                .iter()
                .map(|dir| format!("{dir}/{service}"))
                .collect(),
            Os::Macos => LAUNCHD_DIRS
                .iter()
                .map(|dir| format!("{dir}/{service}.plist"))
                .collect(),
            // Service names need the service control manager; paths cover Windows for now.
            Os::Windows => Vec::new(),
        };
        found.extend(candidates.into_iter().filter(|path| exists(ctx, path)));
    }
    found.extend(entry.paths.iter().filter(|p| exists(ctx, p)).cloned());
    found
}

/// Runs the check: the live process list in a live context; against a fixture root only
/// installation is known and the check answers `unknown`.
pub(super) fn check(ctx: &Context) -> Finding {
    if ctx.live {
        // Only processes with a catalogue name are read in full; matching (and
        // verification) then runs on those as on the whole list.
        let names: Vec<String> = catalogue::builtin()
            .ok()
            .zip(Os::current())
            .map(|(catalogue, os)| {
                catalogue
                    .products
                    .iter()
                    .filter_map(|p| p.entry(os))
                    .flat_map(|e| e.processes.iter().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let processes = process::live_processes_where(|p| process_matches(p, &names));
        check_with_processes(ctx, Some(&processes))
    } else {
        check_with_processes(ctx, None)
    }
}

/// Runs the check with a given process list (`None`: not known). Installation and file-based
/// health are read below `ctx.root`; health commands run only when `ctx.live`.
pub fn check_with_processes(ctx: &Context, processes: Option<&[ProcessInfo]>) -> Finding {
    match catalogue::builtin() {
        Ok(catalogue) => check_with_catalogue(ctx, catalogue, processes),
        Err(e) => Finding::unknown(ID, e.to_string()),
    }
}

/// [`check_with_processes`] with a given catalogue (tests of products that are not
/// installed on the test machine).
pub fn check_with_catalogue(
    ctx: &Context,
    catalogue: &Catalogue,
    processes: Option<&[ProcessInfo]>,
) -> Finding {
    let Some(os) = Os::current() else {
        return Finding::unknown(
            ID,
            "unsupported on this OS: the EDR catalogue has no entries for it",
        );
    };
    let required = &ctx.config.edr.required;
    if let Some(unknown) = super::unknown_required_ids(catalogue, required) {
        return unknown;
    }

    let states = product_states(ctx, catalogue, os, processes);
    let running: Vec<&str> = states
        .iter()
        .filter(|s| s.running == Some(true))
        .map(|s| s.id.as_str())
        .collect();
    let reported: Vec<&ProductState> = states
        .iter()
        .filter(|s| s.installed || s.running == Some(true) || required.contains(&s.id))
        .collect();
    let mut sources: BTreeSet<String> = reported
        .iter()
        .flat_map(|s| s.sources.iter().cloned())
        .collect();
    sources.extend(
        reported
            .iter()
            .filter_map(|s| s.health.as_ref().map(|h| h.source.clone())),
    );
    if processes.is_some() {
        sources.insert("process list".to_owned());
    }

    let mut finding = decide(&states, required, processes.is_some())
        .observe("products", json!(reported))
        .observe("running", json!(running))
        .observe("required", json!(required));
    for source in sources {
        finding = finding.source(source);
    }
    finding
}

fn product_states(
    ctx: &Context,
    catalogue: &Catalogue,
    os: Os,
    processes: Option<&[ProcessInfo]>,
) -> Vec<ProductState> {
    let with_entries: Vec<(&Product, &OsEntry)> = catalogue
        .products
        .iter()
        .filter_map(|p| p.entry(os).map(|e| (p, e)))
        .collect();
    let matches = processes
        .map(|list| match_processes(with_entries.iter().map(|(p, e)| (p.id.as_str(), *e)), list));
    with_entries
        .iter()
        .enumerate()
        .map(|(i, (product, entry))| {
            let allowed_uids = process::allowed_uids(ctx, entry);
            let mut matched: Vec<String> = Vec::new();
            let mut rejected: Vec<String> = Vec::new();
            let candidates = matches.as_ref().and_then(|m| m.get(i)).map(|(_, p)| p);
            for p in candidates.into_iter().flatten() {
                match process::verify(ctx, entry, &allowed_uids, p) {
                    Ok(()) => matched.push(match &p.exe {
                        Some(exe) => format!("{} ({exe})", p.name),
                        None => p.name.clone(),
                    }),
                    Err(why) => rejected.push(format!("{} (pid {}): {why}", p.name, p.pid)),
                }
            }
            let running = processes.map(|_| !matched.is_empty());
            let sources = installed_sources(ctx, os, entry);
            let installed = !sources.is_empty();
            let health = if installed || running == Some(true) {
                entry
                    .health
                    .as_ref()
                    .and_then(|h| health::evaluate(ctx, h, running == Some(true)))
            } else {
                None
            };
            ProductState {
                id: product.id.clone(),
                name: product.name.clone(),
                installed,
                running,
                healthy: health.as_ref().and_then(|h| h.healthy),
                sources,
                processes: matched,
                rejected,
                health,
            }
        })
        .collect()
}
