//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use std::time::{Duration, SystemTime};

use posture_core::{Finding, Remediation, Timestamp};
use serde_json::Value;

use crate::Context;

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
pub(super) fn check(ctx: &Context) -> Finding {
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
