//! Reading: the files (and, live, the commands) behind `patch_level`. Everything read is
//! handed to the pure parsers in the sibling modules.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::list_cache;
use super::{apt, kernel, others};
use crate::source::{
    exists, list_dir, read_attr, read_bytes, read_dpkg_status, read_text, run_command,
};
use crate::Context;

/// Decompressed lists larger than this are not read further (apt's largest is ~60 MB).
const MAX_LIST_BYTES: u64 = 1024 * 1024 * 1024;

/// A package manager this check understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// apt/dpkg.
    Apt,
    /// dnf/rpm.
    Dnf,
    /// pacman.
    Pacman,
    /// zypper/rpm.
    Zypper,
}

impl Manager {
    /// The name in `observed.package_manager`.
    pub fn name(self) -> &'static str {
        match self {
            Manager::Apt => "apt",
            Manager::Dnf => "dnf",
            Manager::Pacman => "pacman",
            Manager::Zypper => "zypper",
        }
    }
}

/// One pending security update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPending {
    /// `name:arch=version` (`name` alone where the manager gives no more).
    pub key: String,
    /// Available at least since (the security suite's Release `Date`), when known.
    pub available_since: Option<SystemTime>,
}

/// What `patch_level` found.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The package manager, if any.
    pub manager: Option<Manager>,
    /// Pending updates, when they could be counted.
    pub pending: Option<u64>,
    /// Pending security updates, when they could be counted.
    pub pending_security: Option<u64>,
    /// The pending security updates individually, where the manager lists them.
    pub security: Vec<SecurityPending>,
    /// Why the counts are unknown.
    pub security_reason: String,
    /// The last successful whole-system upgrade.
    pub last_upgrade: Option<SystemTime>,
    /// Where the last upgrade was looked for.
    pub upgrade_sources: Vec<String>,
    /// The newest Release `Date` of the package lists (apt).
    pub lists_date: Option<SystemTime>,
    /// Whether a reboot is pending; `None` when it cannot be told.
    pub reboot_pending: Option<bool>,
    /// `/proc/sys/kernel/osrelease`.
    pub running_kernel: String,
    /// The newest installed kernel of the running flavour.
    pub newest_kernel: Option<String>,
    /// Every source read.
    pub sources: Vec<String>,
    /// Things worth knowing that are not failures.
    pub notes: Vec<String>,
}

/// The package manager of the tree: the first of apt, dnf, pacman, zypper present.
pub fn detect(ctx: &Context) -> Option<Manager> {
    if exists(ctx, "/var/lib/dpkg/status") && exists(ctx, "/etc/apt") {
        Some(Manager::Apt)
    } else if exists(ctx, "/etc/dnf") {
        Some(Manager::Dnf)
    } else if exists(ctx, "/etc/pacman.conf") || exists(ctx, "/var/lib/pacman/local") {
        Some(Manager::Pacman)
    } else if exists(ctx, "/etc/zypp") {
        Some(Manager::Zypper)
    } else {
        None
    }
}

/// Reads every source of `patch_level`.
pub fn gather(ctx: &Context) -> Facts {
    let mut facts = Facts {
        manager: detect(ctx),
        ..Facts::default()
    };
    match facts.manager {
        Some(Manager::Apt) => gather_apt(ctx, &mut facts),
        Some(Manager::Dnf) => gather_dnf(ctx, &mut facts),
        Some(Manager::Pacman) => gather_pacman(ctx, &mut facts),
        Some(Manager::Zypper) => gather_zypper(ctx, &mut facts),
        None => facts.security_reason = "no package manager".to_owned(),
    }
    if facts.pending == Some(0) && facts.pending_security.is_none() {
        // Nothing pending at all: nothing pending for security either.
        facts.pending_security = Some(0);
    }
    gather_kernel(ctx, &mut facts);
    facts
}

fn open_list(
    ctx: &Context,
    file: &str,
    compression: apt::Compression,
) -> std::io::Result<Box<dyn BufRead>> {
    let path = ctx.path(Path::new("/var/lib/apt/lists").join(file));
    let raw = std::fs::File::open(path)?;
    let decoded: Box<dyn Read> = match compression {
        apt::Compression::None => Box::new(raw),
        apt::Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(raw)),
        apt::Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
    };
    Ok(Box::new(BufReader::with_capacity(
        256 * 1024,
        decoded.take(MAX_LIST_BYTES),
    )))
}

fn gather_apt(ctx: &Context, facts: &mut Facts) {
    apt_last_upgrade(ctx, facts);
    facts.sources.push("/var/lib/dpkg/status".to_owned());
    // Shared with auto_updates: read once per collection.
    let status = match read_dpkg_status(ctx) {
        Ok(text) => text,
        Err(e) => {
            facts.security_reason = e;
            return;
        }
    };
    let installed = apt::parse_dpkg_status(&status);
    // The installed packages by (name, architecture), for reading a list that is not in
    // the cache; built only then (a warm run never needs it).
    let mut index: Option<HashMap<(String, String), String>> = None;

    facts.sources.push("/var/lib/apt/lists".to_owned());
    let files = match list_dir(ctx, "/var/lib/apt/lists") {
        Ok(files) => files,
        Err(e) => {
            facts.security_reason = e.to_string();
            return;
        }
    };
    let status_fingerprint =
        list_cache::fingerprint(&ctx.path("/var/lib/dpkg/status")).unwrap_or_default();
    let mut cache = list_cache::ListCache::load(ctx.state_dir.as_deref(), &status_fingerprint);
    let mut offers = Vec::new();
    let mut unreadable = Vec::new();
    let mut releases: HashMap<String, Option<apt::Release>> = HashMap::new();
    for file in &files {
        let compression = match apt::packages_list_kind(file) {
            None => continue,
            Some(Ok(c)) => c,
            Some(Err(ext)) => {
                unreadable.push(format!("{file} ({ext} compression is not supported)"));
                continue;
            }
        };
        let list_fingerprint =
            list_cache::fingerprint(&ctx.path(Path::new("/var/lib/apt/lists").join(file)));
        let cached = list_fingerprint
            .as_deref()
            .and_then(|fp| cache.get(file, fp));
        let contents = match cached {
            Some(contents) => contents,
            None => match open_list(ctx, file, compression).and_then(|reader| {
                let index = index.get_or_insert_with(|| {
                    installed
                        .iter()
                        .map(|p| ((p.name.clone(), p.arch.clone()), p.version.clone()))
                        .collect()
                });
                apt::read_list(reader, index)
            }) {
                Ok(c) => {
                    if let Some(fp) = list_fingerprint {
                        cache.put(file, fp, &c);
                    }
                    c
                }
                Err(e) => {
                    unreadable.push(format!("{file} ({e})"));
                    continue;
                }
            },
        };
        // One Release file describes every list of its suite (main, contrib, each
        // architecture, ...): read and parse it once per run.
        let release = apt::release_file_for(file, &files).and_then(|name| {
            releases
                .entry(name.to_owned())
                .or_insert_with(|| {
                    read_text(ctx, Path::new("/var/lib/apt/lists").join(name))
                        .ok()
                        .map(|t| apt::parse_release(&t))
                })
                .clone()
        });
        if let Some(date) = release.as_ref().and_then(|r| r.date) {
            facts.lists_date = Some(facts.lists_date.map_or(date, |d| d.max(date)));
        }
        offers.push(apt::ListOffer {
            file: file.clone(),
            security: apt::is_security_list(file, release.as_ref()),
            date: release.as_ref().and_then(|r| r.date),
            priority: apt::default_priority(release.as_ref()),
            contents,
        });
    }
    if let Err(e) = cache.save(ctx.state_dir.as_deref(), &files) {
        facts
            .notes
            .push(format!("cannot save the package list cache: {e}"));
    }
    if !unreadable.is_empty() {
        facts.security_reason = format!(
            "cannot read package list(s) in /var/lib/apt/lists: {}",
            unreadable.join(", ")
        );
        return;
    }
    if offers.is_empty() {
        facts.security_reason =
            "no package lists in /var/lib/apt/lists (run `sudo apt update`)".to_owned();
        return;
    }
    if !offers.iter().any(|o| o.security) {
        facts.notes.push(
            "no security suite among the package lists: security updates would only be \
             counted through other suites"
                .to_owned(),
        );
    }
    let pending = apt::pending_updates(&installed, &offers);
    facts.pending = Some(pending.len() as u64);
    facts.security = pending
        .iter()
        .filter(|p| p.security)
        .map(|p| SecurityPending {
            key: format!("{}:{}={}", p.name, p.arch, p.candidate),
            available_since: p.available_since,
        })
        .collect();
    facts.pending_security = Some(facts.security.len() as u64);
}

fn read_maybe_gz(ctx: &Context, path: &str) -> Option<String> {
    let bytes = read_bytes(ctx, path).ok()?;
    if path.ends_with(".gz") {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .take(crate::source::MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn apt_last_upgrade(ctx: &Context, facts: &mut Facts) {
    facts.upgrade_sources = vec![
        "/var/log/apt/history.log*".to_owned(),
        "/var/lib/apt/periodic/upgrade-stamp".to_owned(),
    ];
    // Newest first: history.log, then logrotate's history.log.1 (delaycompress) and .N.gz.
    let mut candidates = vec![
        "/var/log/apt/history.log".to_owned(),
        "/var/log/apt/history.log.1".to_owned(),
    ];
    candidates.extend((1..=12).map(|n| format!("/var/log/apt/history.log.{n}.gz")));
    for path in candidates {
        let Some(text) = read_maybe_gz(ctx, &path) else {
            continue;
        };
        facts.sources.push(path);
        if let Some(t) = apt::last_upgrade_in_history(&text) {
            facts.last_upgrade = Some(t);
            break;
        }
    }
    let stamp = ctx.path("/var/lib/apt/periodic/upgrade-stamp");
    if let Ok(modified) = std::fs::metadata(&stamp).and_then(|m| m.modified()) {
        facts
            .sources
            .push("/var/lib/apt/periodic/upgrade-stamp".to_owned());
        facts.last_upgrade = Some(facts.last_upgrade.map_or(modified, |t| t.max(modified)));
    }
}

/// Runs a read-only query command (live only) and counts its output.
fn live_count(
    ctx: &Context,
    program: &str,
    args: &[&str],
    ok_codes: &[i32],
    count: fn(&str) -> u64,
    facts: &mut Facts,
) -> Result<u64, String> {
    let command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let timeout = ctx.config.timeout.max(Duration::from_secs(1));
    let out = run_command(ctx, program, args, timeout).map_err(|e| format!("`{command}`: {e}"))?;
    facts.sources.push(command.clone());
    if out.code.is_some_and(|c| ok_codes.contains(&c)) {
        Ok(count(&out.stdout))
    } else {
        Err(format!(
            "`{command}` failed ({}): {}",
            out.code
                .map_or("killed by signal".to_owned(), |c| format!("exit {c}")),
            out.stderr.lines().next().unwrap_or("")
        ))
    }
}

fn log_last_upgrade(
    ctx: &Context,
    path: &str,
    parse: fn(&str) -> Option<SystemTime>,
    facts: &mut Facts,
) {
    facts.upgrade_sources = vec![path.to_owned()];
    if let Ok(text) = read_text(ctx, path) {
        facts.sources.push(path.to_owned());
        facts.last_upgrade = parse(&text);
    }
}

fn gather_dnf(ctx: &Context, facts: &mut Facts) {
    log_last_upgrade(ctx, "/var/log/dnf.rpm.log", others::dnf_last_upgrade, facts);
    if facts.last_upgrade.is_none() && exists(ctx, "/var/log/dnf5.log") {
        facts.notes.push(
            "dnf5 logs to /var/log/dnf5.log, which posture does not read yet: the last \
             upgrade is not known"
                .to_owned(),
        );
    }
    let all = live_count(
        ctx,
        "dnf",
        &["-q", "-C", "check-update"],
        &[0, 100],
        others::count_dnf_check_update,
        facts,
    );
    let security = live_count(
        ctx,
        "dnf",
        &["-q", "-C", "check-update", "--security"],
        &[0, 100],
        others::count_dnf_check_update,
        facts,
    );
    set_counts(facts, all, security);
}

fn gather_pacman(ctx: &Context, facts: &mut Facts) {
    log_last_upgrade(
        ctx,
        "/var/log/pacman.log",
        others::pacman_last_upgrade,
        facts,
    );
    // `pacman -Qu` exits 1 when nothing is upgradable.
    let all = live_count(
        ctx,
        "pacman",
        &["-Qu"],
        &[0, 1],
        others::count_pacman_qu,
        facts,
    );
    let security = Err(
        "Arch Linux repositories carry no security metadata; only \"nothing pending\" \
         proves no security update is pending"
            .to_owned(),
    );
    set_counts(facts, all, security);
}

fn gather_zypper(ctx: &Context, facts: &mut Facts) {
    log_last_upgrade(
        ctx,
        "/var/log/zypp/history",
        others::zypper_last_upgrade,
        facts,
    );
    let all = live_count(
        ctx,
        "zypper",
        &["-q", "-n", "--no-refresh", "lu"],
        &[0, 100, 101],
        others::count_zypper_table,
        facts,
    );
    let security = live_count(
        ctx,
        "zypper",
        &["-q", "-n", "--no-refresh", "lp", "-g", "security"],
        &[0, 100, 101],
        others::count_zypper_table,
        facts,
    );
    set_counts(facts, all, security);
}

fn set_counts(facts: &mut Facts, all: Result<u64, String>, security: Result<u64, String>) {
    let mut reasons = Vec::new();
    match all {
        Ok(n) => facts.pending = Some(n),
        Err(e) => reasons.push(e),
    }
    match security {
        Ok(n) => facts.pending_security = Some(n),
        Err(e) => reasons.push(e),
    }
    facts.security_reason = reasons.join("; ");
}

fn gather_kernel(ctx: &Context, facts: &mut Facts) {
    facts.running_kernel = read_attr(ctx, "/proc/sys/kernel/osrelease").unwrap_or_default();
    facts.sources.push("/proc/sys/kernel/osrelease".to_owned());
    let mut installed: Vec<String> = Vec::new();
    for dir in ["/lib/modules", "/usr/lib/modules"] {
        for name in list_dir(ctx, dir).unwrap_or_default() {
            let base = Path::new(dir).join(&name);
            // Removed kernels can leave directories behind (DKMS leftovers); a kernel that
            // is installed has its module tree and depmod's index.
            if exists(ctx, base.join("modules.dep")) || exists(ctx, base.join("kernel")) {
                installed.push(name);
            }
        }
    }
    for name in list_dir(ctx, "/boot").unwrap_or_default() {
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            installed.push(release.to_owned());
        }
    }
    installed.sort();
    installed.dedup();
    facts.sources.push("/lib/modules".to_owned());
    facts.sources.push("/boot".to_owned());
    facts.newest_kernel = if facts.running_kernel.is_empty() {
        None
    } else {
        kernel::newest_of_flavour(&facts.running_kernel, &installed).map(str::to_owned)
    };
    let kernel_newer = facts
        .newest_kernel
        .as_deref()
        .map(|newest| kernel::compare(newest, &facts.running_kernel).is_gt());
    facts.reboot_pending = if exists(ctx, "/run/reboot-required") {
        facts.sources.push("/run/reboot-required".to_owned());
        Some(true)
    } else {
        kernel_newer
    };
}
