//! `patch_level`: how up to date the installed packages are, and whether a reboot is needed.
//!
//! It reports the package manager, pending updates and pending *security* updates, how
//! long the oldest security update has been pending, the last successful whole-system
//! upgrade, and whether a newer kernel than the running one is installed. It fails when a
//! security update has been pending longer than `max_security_pending_days`, when there
//! has been no upgrade for `max_days_since_upgrade` days (unless nothing is pending against
//! package lists no older than that), and, with `fail_on_pending_reboot`, when a reboot is
//! pending. A threshold that cannot be evaluated makes the finding `unknown`, never `pass`.
//!
//! # Sources
//!
//! **apt (Debian, Ubuntu)** — files only, no commands:
//! - `/var/lib/dpkg/status`: installed packages (every state with files on disk).
//! - `/var/lib/apt/lists/*_Packages` (plain, `.lz4` or `.gz`): versions on offer. A list in
//!   another compression (`.xz`, `.zst`) makes the counts `unknown`, never lower.
//! - `/var/lib/apt/lists/*_InRelease` / `*_Release` of each list: `Suite`/`Codename`
//!   ending in `-security`, `Label`/`Origin` naming security, or a security archive host
//!   (`security.debian.org`, `security.ubuntu.com`, `.../debian-security`) mark security
//!   lists; `NotAutomatic`/`ButAutomaticUpgrades` give apt's default pin priorities
//!   (1/100/500) so backports and experimental count only as apt would upgrade to them;
//!   `Date` says how fresh the lists are and is a lower bound on how long an update has
//!   been available. Pins in `/etc/apt/preferences*` are not read.
//! - `/var/log/apt/history.log`, `history.log.1`, `history.log.N.gz`: the newest entry
//!   whose `Commandline` is an `upgrade`/`full-upgrade`/`dist-upgrade`, unattended-upgrades
//!   or a PackageKit update, with an `End-Date` and no `Error`.
//! - `/var/lib/apt/periodic/upgrade-stamp` (mtime): the last successful unattended-upgrades run.
//!
//! **dnf (Fedora, RHEL)**: `/var/log/dnf.rpm.log` (the last package upgrade; dnf logs no
//! "whole upgrade finished" marker). dnf5's `/var/log/dnf5.log` is not read yet (a note
//! says so and the last upgrade stays unknown). Pending counts have no simple file source (repodata
//! is solv/sqlite), so in a live context only: `dnf -q -C check-update` and
//! `dnf -q -C check-update --security` (cache only, no network).
//!
//! **pacman (Arch)**: `/var/log/pacman.log` (`starting full system upgrade` followed by a
//! completed transaction or by nothing to do). Live only: `pacman -Qu` against the
//! local sync databases. Arch publishes no security metadata in its repositories, so
//! security updates are counted only when nothing at all is pending (then zero).
//!
//! **zypper (openSUSE, SLE)**: `/var/log/zypp/history` (`command` records running
//! `zypper up|dup|patch`, dated by their last install). Live only:
//! `zypper -q -n --no-refresh lu` and `zypper -q -n --no-refresh lp -g security` (needed
//! security *patches*).
//!
//! **Kernel**: `/proc/sys/kernel/osrelease` (running) against `/lib/modules/*` and
//! `/usr/lib/modules/*` (with `modules.dep` or `kernel/`, so leftover directories do not
//! count) and `/boot/vmlinuz-*`, of the same flavour, in dpkg's version order;
//! `/run/reboot-required` (Debian, Ubuntu) also means a reboot is pending.
//!
//! # How long security updates have been pending
//!
//! Package lists carry no dates. With a state directory in the [`Context`], the check
//! remembers when it first saw each pending security update (see [`state`]); an update
//! that appeared between two runs has a known age, one already pending at the first run
//! only a lower bound (also raised by the security suite's Release `Date`). The threshold
//! fails on a lower bound above it, passes only on upper bounds within it, and is
//! `unknown` otherwise. `oldest_security_pending_days` is `null` unless every age is
//! bounded; `oldest_security_pending_days_at_least` is always given.
//!
//! Log times are local wall-clock times without a zone; they are read as UTC (at most
//! 14 hours off, immaterial for thresholds in days).
//!
//! # Observed fields (a contract with the policy engine)
//! `package_manager`, `pending_updates` (int, `null` if unknown), `pending_security_updates`
//! (int or `null`), `oldest_security_pending_days` (int or `null`),
//! `oldest_security_pending_days_at_least` (int or `null`), `days_since_last_upgrade`
//! (int or `null`), `last_upgrade` (RFC 3339 or `null`), `reboot_pending` (bool, `null` when
//! no installed kernel could be found), `running_kernel`, `newest_kernel` (or `null`),
//! `security_updates` (up to 50 `name:arch` entries), `lists_date` (apt).

pub mod apt;
pub mod debversion;
pub mod kernel;
pub mod list_cache;
pub mod others;
pub mod softwareupdate;
pub mod state;
pub mod time;

mod gather;

use std::time::{Duration, SystemTime};

use posture_core::{Finding, Remediation, Timestamp};
use serde_json::Value;

use crate::Context;

pub use gather::{detect, gather, Facts, Manager, SecurityPending};

/// Check id.
pub const ID: &str = "patch_level";

const DAY: u64 = 86_400;

/// One threshold's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail(String),
    Unknown(String),
}

fn days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * DAY)
}

/// The security threshold over the pending security updates' ages.
fn security_verdict(
    count: Option<u64>,
    ages: &[state::Age],
    why_unknown: &str,
    max_days: u32,
) -> Verdict {
    let Some(count) = count else {
        return Verdict::Unknown(format!("pending security updates: {why_unknown}"));
    };
    if count == 0 {
        return Verdict::Pass;
    }
    let at_least = ages.iter().map(|a| a.at_least).max().unwrap_or_default();
    if at_least > days(max_days) {
        return Verdict::Fail(format!(
            "{count} security update(s) pending, the oldest for at least {} days (limit {max_days})",
            at_least.as_secs() / DAY
        ));
    }
    let at_most = ages
        .iter()
        .map(|a| a.at_most)
        .try_fold(Duration::ZERO, |acc, m| m.map(|m| acc.max(m)));
    match at_most {
        Some(m) if ages.len() as u64 == count && m <= days(max_days) => Verdict::Pass,
        _ => Verdict::Unknown(format!(
            "{count} security update(s) pending; how long cannot be told (at least {} days, \
             limit {max_days}){}",
            at_least.as_secs() / DAY,
            if ages.is_empty() || ages.iter().all(|a| a.at_most.is_none()) {
                "; posture learns this from one run to the next when it has a state directory"
            } else {
                ""
            }
        )),
    }
}

fn upgrade_verdict(facts: &Facts, now: SystemTime, max_days: u32) -> Verdict {
    let since = facts.last_upgrade.map(|t| time::whole_days(t, now));
    if since.is_some_and(|d| d <= u64::from(max_days)) {
        return Verdict::Pass;
    }
    // Nothing pending against lists fetched within the limit: up to date, even if no
    // upgrade had to run (an upgrade with nothing to do leaves no trace in the logs).
    let lists_fresh = facts
        .lists_date
        .is_some_and(|d| time::whole_days(d, now) <= u64::from(max_days));
    if facts.pending == Some(0) && lists_fresh {
        return Verdict::Pass;
    }
    match since {
        Some(d) => Verdict::Fail(format!("no upgrade for {d} days (limit {max_days})")),
        None => Verdict::Unknown(format!(
            "no successful upgrade found in {}",
            facts.upgrade_sources.join(", ")
        )),
    }
}

fn remediation(manager: Option<Manager>) -> Remediation {
    match manager {
        Some(Manager::Apt) => Remediation::new(
            "Install the pending updates: open Software Updater, or run \
             `sudo apt update && sudo apt full-upgrade`. To keep up automatically, enable \
             unattended-upgrades.",
        )
        .with_url("https://wiki.debian.org/UnattendedUpgrades"),
        Some(Manager::Dnf) => Remediation::new(
            "Install the pending updates: open Software, or run `sudo dnf upgrade --refresh`.",
        )
        .with_url("https://docs.fedoraproject.org/en-US/quick-docs/dnf/"),
        Some(Manager::Pacman) => Remediation::new("Upgrade the system: `sudo pacman -Syu`.")
            .with_url("https://wiki.archlinux.org/title/System_maintenance"),
        Some(Manager::Zypper) => Remediation::new(
            "Install the pending updates: `sudo zypper refresh && sudo zypper update` \
             (Tumbleweed: `sudo zypper dup`).",
        ),
        None => Remediation::new("Install your system's pending updates."),
    }
}

/// Runs the check.
pub fn check(ctx: &Context) -> Finding {
    let facts = gather(ctx);
    let config = &ctx.config.patch_level;
    let now = ctx.now;

    // Security ages, remembered in the state directory when there is one.
    let keyed: Vec<(String, Option<SystemTime>)> = facts
        .security
        .iter()
        .map(|s| (s.key.clone(), s.available_since))
        .collect();
    let mut notes = facts.notes.clone();
    let ages = match &ctx.state_dir {
        Some(dir) => {
            let (next, ages) = state::load(dir).observe(&keyed, now);
            if let Err(e) = state::save(dir, &next) {
                notes.push(format!("cannot save state in {}: {e}", dir.display()));
            }
            ages
        }
        None => state::State::default()
            .observe(&keyed, now)
            .1
            .into_iter()
            .map(|a| state::Age {
                at_least: a.at_least,
                at_most: None,
            })
            .collect(),
    };
    let ages_known = facts
        .pending_security
        .is_some_and(|c| c as usize == ages.len());
    let at_least = ages.iter().map(|a| a.at_least.as_secs() / DAY).max();
    let oldest_bounded = ages_known && ages.iter().all(|a| a.at_most.is_some());

    let mut verdicts = vec![
        security_verdict(
            facts.pending_security,
            if ages_known { &ages } else { &[] },
            &facts.security_reason,
            config.max_security_pending_days,
        ),
        upgrade_verdict(&facts, now, config.max_days_since_upgrade),
    ];
    if config.fail_on_pending_reboot {
        verdicts.push(match facts.reboot_pending {
            Some(false) => Verdict::Pass,
            Some(true) => Verdict::Fail(match &facts.newest_kernel {
                Some(newest) if newest != &facts.running_kernel => format!(
                    "reboot pending: running kernel {} but {newest} is installed",
                    facts.running_kernel
                ),
                _ => "reboot pending (/run/reboot-required)".to_owned(),
            }),
            None => Verdict::Unknown(format!(
                "cannot tell whether a reboot is pending: no installed kernel of the running \
                 flavour ({}) found in /lib/modules or /boot",
                facts.running_kernel
            )),
        });
    }

    let manager_name = facts.manager.map(Manager::name);
    let summary_counts = format!(
        "{}: {} pending update(s), {} security",
        manager_name.unwrap_or("no package manager"),
        facts
            .pending
            .map_or("unknown number of".to_owned(), |n| n.to_string()),
        facts
            .pending_security
            .map_or("unknown".to_owned(), |n| n.to_string()),
    );
    let failures: Vec<&String> = verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Fail(m) => Some(m),
            _ => None,
        })
        .collect();
    let unknowns: Vec<&String> = verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Unknown(m) => Some(m),
            _ => None,
        })
        .collect();

    let mut finding = if facts.manager.is_none() {
        Finding::unknown(
            ID,
            "no supported package manager found (apt, dnf, pacman, zypper)",
        )
    } else if !failures.is_empty() {
        let mut remedy = remediation(facts.manager);
        if facts.reboot_pending == Some(true) && config.fail_on_pending_reboot {
            remedy
                .text
                .push_str(" Then restart the computer to run the newest kernel.");
        }
        let text = failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Finding::fail(ID, format!("{summary_counts}; {text}"), remedy)
    } else if !unknowns.is_empty() {
        let text = unknowns
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut f = Finding::unknown(ID, text);
        f.summary = format!(
            "{summary_counts}; could not tell: {}",
            f.reason.clone().unwrap_or_default()
        );
        f
    } else {
        let last = facts
            .last_upgrade
            .map(|t| format!(", last upgrade {} days ago", time::whole_days(t, now)))
            .unwrap_or_default();
        Finding::pass(ID, format!("{summary_counts}{last}"))
    };

    let opt_int = |v: Option<u64>| v.map_or(Value::Null, Value::from);
    finding = finding
        .observe(
            "package_manager",
            manager_name.map_or(Value::Null, Value::from),
        )
        .observe("pending_updates", opt_int(facts.pending))
        .observe("pending_security_updates", opt_int(facts.pending_security))
        .observe(
            "oldest_security_pending_days",
            if facts.pending_security == Some(0) {
                Value::from(0)
            } else if oldest_bounded {
                opt_int(at_least)
            } else {
                Value::Null
            },
        )
        .observe(
            "oldest_security_pending_days_at_least",
            if facts.pending_security == Some(0) {
                Value::from(0)
            } else {
                opt_int(at_least)
            },
        )
        .observe(
            "days_since_last_upgrade",
            opt_int(facts.last_upgrade.map(|t| time::whole_days(t, now))),
        )
        .observe(
            "last_upgrade",
            facts.last_upgrade.map_or(Value::Null, |t| {
                Timestamp::from_system_time(t).to_string().into()
            }),
        )
        .observe(
            "reboot_pending",
            facts.reboot_pending.map_or(Value::Null, Value::from),
        )
        .observe("running_kernel", facts.running_kernel.clone())
        .observe(
            "newest_kernel",
            facts.newest_kernel.clone().map_or(Value::Null, Value::from),
        )
        .observe(
            "security_updates",
            facts
                .security
                .iter()
                .take(50)
                .map(|s| Value::from(s.key.split('=').next().unwrap_or("").to_owned()))
                .collect::<Vec<_>>(),
        );
    if facts.manager == Some(Manager::Apt) {
        finding = finding.observe(
            "lists_date",
            facts.lists_date.map_or(Value::Null, |t| {
                Timestamp::from_system_time(t).to_string().into()
            }),
        );
    }
    if !notes.is_empty() {
        finding = finding.observe("notes", notes);
    }
    for source in &facts.sources {
        finding = finding.source(source.clone());
    }
    finding
}
