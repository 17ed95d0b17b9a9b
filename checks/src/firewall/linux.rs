//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use std::time::Duration;

use posture_core::{Finding, Remediation};
use serde_json::json;

use crate::source::{read_attr, read_text, run_command, SourceError};
use crate::Context;

/// Reason given when the loaded ruleset cannot be read for lack of privilege.
pub const NEEDS_ROOT: &str = "needs root to read the loaded firewall ruleset";

const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the loaded ruleset came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed ruleset.
    pub ruleset: Ruleset,
    /// The command(s) it came from.
    pub source: Vec<String>,
}

/// Runs the check.
pub(super) fn check(ctx: &Context) -> Finding {
    let config = frontends::read(ctx);
    let with_config = |finding: Finding| {
        let mut finding = finding
            .observe("config", json!(config))
            .observe("configured_frontend", config.configured_frontend());
        for source in frontends::SOURCES {
            finding = finding.source(*source);
        }
        finding
    };

    if !ctx.live {
        return with_config(Finding::unknown(
            ID,
            "the loaded firewall ruleset is live kernel state and is not read from a fixture root",
        ));
    }
    if !cfg!(target_os = "linux") {
        return with_config(Finding::unknown(
            ID,
            "unsupported on this OS: only Linux firewalls are read so far",
        ));
    }
    if !is_root() {
        return with_config(
            Finding::unknown(ID, NEEDS_ROOT).remediation(Remediation::new(
                "Run `sudo posture check` to let posture read the firewall rules.",
            )),
        );
    }
    let loaded = match read_loaded(ctx) {
        Ok(loaded) => loaded,
        Err(reason) => return with_config(Finding::unknown(ID, reason)),
    };
    let ipv6_enabled = ipv6_enabled(ctx);
    let assessment = assess(&loaded.ruleset);
    let mut finding = with_config(decide(&assessment, ipv6_enabled, &config))
        .observe("managed_by", assessment.managed_by.clone())
        .observe(
            "loaded",
            json!({
                "rule_count": assessment.rule_count,
                "input_chains": assessment.chains,
                "ipv4_restricted": assessment.ipv4_restricted,
                "ipv6_restricted": assessment.ipv6_restricted,
                "ipv6_enabled": ipv6_enabled,
            }),
        )
        .observe("firewalld_zones", json!(assessment.firewalld_zones))
        .observe("docker", json!(assessment.docker))
        .source("/proc/sys/net/ipv6/conf/all/disable_ipv6");
    for source in loaded.source {
        finding = finding.source(source);
    }
    finding
}

/// The decision over an assessed ruleset. Pure: `ipv6_enabled` says whether IPv6 input
/// needs filtering at all.
pub fn decide(
    assessment: &InputAssessment,
    ipv6_enabled: bool,
    config: &FrontendConfig,
) -> Finding {
    let v4 = assessment.ipv4_restricted;
    let v6 = assessment.ipv6_restricted || !ipv6_enabled;
    let managed = assessment
        .managed_by
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    if assessment.chains.is_empty() {
        return Finding::fail(
            ID,
            "no firewall is active: no input filter rules are loaded",
            remediation(config),
        )
        .observe("input_policy", "none");
    }
    match (v4, v6) {
        (true, true) => {
            let because = assessment
                .chains
                .iter()
                .find(|c| c.restricts)
                .map(|c| format!("{} in {} {} {}", c.because, c.family, c.table, c.chain))
                .unwrap_or_default();
            let docker = match &assessment.docker {
                Some(d) if d.published_ports > 0 => format!(
                    "; Docker publishes {} container port(s) past it (nat DOCKER chain)",
                    d.published_ports
                ),
                _ => String::new(),
            };
            Finding::pass(
                ID,
                format!(
                    "firewall active{managed}: incoming traffic is restricted ({because}){docker}"
                ),
            )
            .observe("input_policy", "restricted")
        }
        (false, false) => Finding::fail(
            ID,
            format!("firewall rules are loaded{managed} but accept all incoming traffic"),
            remediation(config),
        )
        .observe("input_policy", "accept-all"),
        (true, false) => Finding::fail(
            ID,
            format!("firewall{managed} restricts IPv4 but accepts all incoming IPv6 traffic"),
            Remediation::new(
                "Incoming IPv6 traffic is not filtered. Add IPv6 rules that drop unsolicited \
                 traffic (an `inet` nftables table covers both; with ufw set IPV6=yes in \
                 /etc/default/ufw and run `sudo ufw reload`).",
            ),
        )
        .observe("input_policy", "ipv6-accept-all"),
        (false, true) => Finding::fail(
            ID,
            format!("firewall{managed} restricts IPv6 but accepts all incoming IPv4 traffic"),
            remediation(config),
        )
        .observe("input_policy", "ipv4-accept-all"),
    }
}

fn remediation(config: &FrontendConfig) -> Remediation {
    if config.ufw.installed {
        Remediation::new(
            "Turn on the firewall: run `sudo ufw enable` (ufw blocks incoming connections by \
             default; check `sudo ufw status verbose` says \"deny (incoming)\").",
        )
        .with_url("https://help.ubuntu.com/community/UFW")
    } else if config.firewalld.installed {
        Remediation::new(
            "Turn on the firewall: run `sudo systemctl enable --now firewalld`, and keep the \
             default zone's target at `default` or `DROP` (`sudo firewall-cmd --get-default-zone`).",
        )
        .with_url("https://firewalld.org/documentation/")
    } else {
        Remediation::new(
            "Turn on a firewall that blocks incoming connections: on Debian/Ubuntu \
             `sudo apt install ufw && sudo ufw enable`, on Fedora/RHEL \
             `sudo dnf install firewalld && sudo systemctl enable --now firewalld`. \
             If your organisation manages this device, contact IT.",
        )
        .with_url("https://help.ubuntu.com/community/UFW")
    }
}

/// Where the netlink read is named in a finding's `source`.
pub const NETLINK_SOURCE: &str = "netlink NETLINK_NETFILTER (nftables dump)";

/// Reads the loaded ruleset: nftables over netlink, plus iptables-legacy tables when the
/// kernel has any; `iptables-save` only on a kernel without nf_tables.
pub fn read_loaded(ctx: &Context) -> Result<Loaded, String> {
    let cancelled = || ctx.cancelled();
    #[cfg(target_os = "linux")]
    let dumped = netlink::dump(&cancelled);
    #[cfg(not(target_os = "linux"))]
    let dumped: Result<Vec<u8>, netlink::NetlinkError> = {
        let _ = cancelled;
        Err(netlink::NetlinkError::Io(std::io::Error::other(
            "unsupported on this OS",
        )))
    };
    match dumped.and_then(|bytes| netlink::parse_dump(&bytes)) {
        Ok(ruleset) => {
            let mut loaded = Loaded {
                ruleset,
                source: vec![NETLINK_SOURCE.to_owned()],
            };
            add_legacy_tables(ctx, &mut loaded)?;
            Ok(loaded)
        }
        Err(e) if e.is_permission() => Err(NEEDS_ROOT.to_owned()),
        // EPROTONOSUPPORT / ENOENT-like answers: a kernel without nf_tables.
        Err(netlink::NetlinkError::Kernel(_)) | Err(netlink::NetlinkError::Io(_)) => {
            read_iptables(ctx)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// nft does not show iptables-legacy's tables (they live in the old xtables kernel
/// modules). The kernel lists those tables in `/proc/net/ip_tables_names` (and `ip6_`) once
/// they exist; only then is `iptables-legacy-save` run and its rules added.
fn add_legacy_tables(ctx: &Context, loaded: &mut Loaded) -> Result<(), String> {
    let legacy = [
        ("/proc/net/ip_tables_names", "iptables-legacy-save", "ip"),
        ("/proc/net/ip6_tables_names", "ip6tables-legacy-save", "ip6"),
    ];
    for (names, program, family) in legacy {
        let has_filter = read_text(ctx, names)
            .map(|text| text.lines().any(|l| l.trim() == "filter"))
            .unwrap_or(false);
        if !has_filter {
            continue;
        }
        let output = match run_command(ctx, program, &[], COMMAND_TIMEOUT) {
            Ok(output) => output.success(program).map_err(|e| permission_reason(&e))?,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.to_string()),
        };
        let part = parse_iptables_save(&output.stdout, family);
        loaded.ruleset.tables.extend(part.tables);
        loaded.ruleset.chains.extend(part.chains);
        loaded.ruleset.rules.extend(part.rules);
        loaded.source.push(names.to_owned());
        loaded.source.push(program.to_owned());
    }
    Ok(())
}

fn read_iptables(ctx: &Context) -> Result<Loaded, String> {
    let mut ruleset = Ruleset::default();
    let mut source = Vec::new();
    for (program, family) in [("iptables-save", "ip"), ("ip6tables-save", "ip6")] {
        let output = match run_command(ctx, program, &[], COMMAND_TIMEOUT) {
            Ok(output) => output.success(program).map_err(|e| permission_reason(&e))?,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.to_string()),
        };
        let part = parse_iptables_save(&output.stdout, family);
        ruleset.tables.extend(part.tables);
        ruleset.chains.extend(part.chains);
        ruleset.rules.extend(part.rules);
        source.push(program.to_owned());
    }
    if source.is_empty() {
        return Err(
            "nftables is not available over netlink and iptables-save is not installed".to_owned(),
        );
    }
    Ok(Loaded { ruleset, source })
}

fn permission_reason(err: &SourceError) -> String {
    let text = err.to_string();
    if text.contains("Operation not permitted") || text.contains("Permission denied") {
        NEEDS_ROOT.to_owned()
    } else {
        text
    }
}

/// Whether IPv6 is on (in this network namespace): a stack without it needs no IPv6 rules.
fn ipv6_enabled(ctx: &Context) -> bool {
    match read_attr(ctx, "/proc/sys/net/ipv6/conf/all/disable_ipv6") {
        Ok(value) => value != "1",
        // No file: the kernel has no IPv6 stack. Another error: assume IPv6 is on.
        Err(e) => !e.is_not_found(),
    }
}

/// Whether this process runs with effective uid 0 (read from procfs: no libc, no unsafe).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1))
                .map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
