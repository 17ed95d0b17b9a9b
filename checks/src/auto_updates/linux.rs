//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use std::collections::BTreeMap;

use posture_core::{Finding, Remediation};

use crate::patch_level::apt::is_installed;
use crate::patch_level::{detect, Manager};
use crate::source::{exists, list_dir, read_dpkg_status, read_text};
use crate::Context;
use systemd::{timer_state, UnitState};

/// Reads the effective apt configuration from `/etc/apt/apt.conf.d/*` and `/etc/apt/apt.conf`.
pub fn read_apt_config(ctx: &Context, sources: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut config = BTreeMap::new();
    let parts = list_dir(ctx, "/etc/apt/apt.conf.d").unwrap_or_default();
    for name in parts.iter().filter(|n| aptconf::is_config_part(n)) {
        let path = format!("/etc/apt/apt.conf.d/{name}");
        if let Ok(text) = read_text(ctx, &path) {
            aptconf::apply(&mut config, &text);
            sources.push(path);
        }
    }
    if let Ok(text) = read_text(ctx, "/etc/apt/apt.conf") {
        aptconf::apply(&mut config, &text);
        sources.push("/etc/apt/apt.conf".to_owned());
    }
    config
}

fn check_apt(ctx: &Context) -> Finding {
    let mut sources = vec!["/var/lib/dpkg/status".to_owned()];
    // Shared with patch_level: read once per collection.
    let status = match read_dpkg_status(ctx) {
        Ok(text) => text,
        Err(e) => return Finding::unknown(ID, e).source("/var/lib/dpkg/status"),
    };
    let installed = is_installed(&status, "unattended-upgrades");
    let config = read_apt_config(ctx, &mut sources);
    let get = |key: &str| config.get(key).map(String::as_str);
    let periodic_on = get("apt::periodic::enable").is_none_or(|v| v.trim() != "0");
    let lists =
        periodic_on && aptconf::periodic_enabled(get("apt::periodic::update-package-lists"));
    let upgrade =
        periodic_on && aptconf::periodic_enabled(get("apt::periodic::unattended-upgrade"));

    let booted_with_systemd = exists(ctx, "/run/systemd/system");
    let daily = timer_state(ctx, "apt-daily.timer");
    let daily_upgrade = timer_state(ctx, "apt-daily-upgrade.timer");
    let cron = exists(ctx, "/etc/cron.daily/apt-compat");
    sources.push("/etc/systemd/system/timers.target.wants".to_owned());
    let scheduled = if booted_with_systemd || !cron {
        daily == UnitState::Enabled && daily_upgrade == UnitState::Enabled
    } else {
        true
    };

    let mut problems = Vec::new();
    if !installed {
        problems.push("unattended-upgrades is not installed");
    }
    if !upgrade {
        problems.push("APT::Periodic::Unattended-Upgrade is not enabled");
    }
    if !lists {
        problems.push("APT::Periodic::Update-Package-Lists is not enabled");
    }
    if !scheduled {
        problems.push(
            "apt's daily timers (apt-daily.timer, apt-daily-upgrade.timer) are not both enabled",
        );
    }
    let mut finding = if problems.is_empty() {
        Finding::pass(ID, "unattended-upgrades installs updates automatically")
    } else {
        Finding::fail(
            ID,
            format!("automatic updates are off: {}", problems.join("; ")),
            Remediation::new(
                "Turn on automatic security updates: `sudo apt install unattended-upgrades && \
                 sudo dpkg-reconfigure -plow unattended-upgrades` (answer Yes), and make sure \
                 the timers run: `sudo systemctl enable --now apt-daily.timer \
                 apt-daily-upgrade.timer` (`sudo systemctl unmask ...` first if masked).",
            )
            .with_url("https://wiki.debian.org/UnattendedUpgrades"),
        )
    };
    finding = finding
        .observe("package_manager", "apt")
        .observe("mechanism", "unattended-upgrades")
        .observe("installed", installed)
        .observe("unattended_upgrade", upgrade)
        .observe("update_package_lists", lists)
        .observe("apt_daily_timer", daily.as_str())
        .observe("apt_daily_upgrade_timer", daily_upgrade.as_str())
        .observe("enabled", problems.is_empty());
    for s in sources {
        finding = finding.source(s);
    }
    finding
}

/// Parses an INI file (`[section]`, `key = value`, `#`/`;` comments) into
/// `section.key` -> value, keys lowercased.
pub fn parse_ini(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(
                format!("{section}.{}", k.trim().to_ascii_lowercase()),
                v.trim().to_owned(),
            );
        }
    }
    out
}

fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "on"))
}

fn check_dnf(ctx: &Context) -> Finding {
    let mut sources = vec!["/usr/lib/systemd/system".to_owned()];
    // dnf 4 (Fedora <= 40, RHEL) and dnf 5 (Fedora >= 41) name things differently.
    let (timer, install_timer, conf_paths): (&str, Option<&str>, &[&str]) =
        if timer_state(ctx, "dnf5-automatic.timer") != UnitState::NotFound {
            (
                "dnf5-automatic.timer",
                None,
                &[
                    "/usr/share/dnf5/dnf5-plugins/automatic.conf",
                    "/etc/dnf/dnf5-plugins/automatic.conf",
                ],
            )
        } else {
            (
                "dnf-automatic.timer",
                Some("dnf-automatic-install.timer"),
                &["/etc/dnf/automatic.conf"],
            )
        };
    let timer_state_now = timer_state(ctx, timer);
    let install_state = install_timer.map(|t| timer_state(ctx, t));
    let installed = timer_state_now != UnitState::NotFound
        || install_state.is_some_and(|s| s != UnitState::NotFound);
    let mut conf = BTreeMap::new();
    for path in conf_paths {
        if let Ok(text) = read_text(ctx, path) {
            conf.extend(parse_ini(&text));
            sources.push((*path).to_owned());
        }
    }
    let apply = truthy(conf.get("commands.apply_updates").map(String::as_str));
    let upgrade_type = conf
        .get("commands.upgrade_type")
        .cloned()
        .unwrap_or_else(|| "default".to_owned());
    let enabled = install_state == Some(UnitState::Enabled)
        || (timer_state_now == UnitState::Enabled && apply);

    let mut finding = if enabled {
        Finding::pass(
            ID,
            format!("dnf-automatic installs updates automatically ({upgrade_type} updates)"),
        )
    } else {
        let why = if !installed {
            "dnf-automatic is not installed".to_owned()
        } else if timer_state_now == UnitState::Enabled {
            format!("{timer} runs but apply_updates is not yes: updates are only downloaded")
        } else {
            format!("{timer} is {}", timer_state_now.as_str())
        };
        Finding::fail(
            ID,
            format!("automatic updates are off: {why}"),
            Remediation::new(
                "Turn on automatic updates: `sudo dnf install dnf-automatic && sudo systemctl \
                 enable --now dnf-automatic-install.timer` (dnf5: set `apply_updates = yes` in \
                 /etc/dnf/dnf5-plugins/automatic.conf and enable dnf5-automatic.timer).",
            )
            .with_url("https://dnf.readthedocs.io/en/latest/automatic.html"),
        )
    };
    finding = finding
        .observe("package_manager", "dnf")
        .observe("mechanism", "dnf-automatic")
        .observe("installed", installed)
        .observe("timer", timer_state_now.as_str())
        .observe("apply_updates", apply)
        .observe("upgrade_type", upgrade_type)
        .observe("enabled", enabled);
    if let (Some(name), Some(state)) = (install_timer, install_state) {
        finding = finding.observe("install_timer", format!("{name}: {}", state.as_str()));
    }
    for s in sources {
        finding = finding.source(s);
    }
    finding
}

/// Runs the check.
pub(super) fn check(ctx: &Context) -> Finding {
    match detect(ctx) {
        Some(Manager::Apt) => check_apt(ctx),
        Some(Manager::Dnf) => check_dnf(ctx),
        Some(m @ (Manager::Pacman | Manager::Zypper)) => Finding::unknown(
            ID,
            format!(
                "{} has no standard automatic-update mechanism that posture checks",
                m.name()
            ),
        )
        .observe("package_manager", m.name()),
        None => Finding::unknown(
            ID,
            "no supported package manager found (apt, dnf, pacman, zypper)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_and_comments() {
        let c = parse_ini("[commands]\n# apply_updates = no\nupgrade_type = security\napply_updates = yes\n[emitters]\nemit_via = stdio\n");
        assert_eq!(c["commands.apply_updates"], "yes");
        assert_eq!(c["commands.upgrade_type"], "security");
        assert!(truthy(Some("True")));
        assert!(!truthy(Some("no")));
    }
}
