//! `firewall` check: parsing and deciding on real nftables netlink dumps and
//! `nft -j list ruleset` outputs of the same rulesets, the
//! iptables-legacy fallback, the config files, and end to end inside fresh network
//! namespaces with a real loaded ruleset.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside #[test] functions may unwrap too (clippy.toml only covers #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use posture_checks::firewall::{
    self, assess, netlink, parse_iptables_save, parse_nft_json, FrontendConfig,
};
use posture_checks::{ChecksConfig, Context};
use posture_core::{Finding, Status};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/firewall")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// The decision for an nft JSON fixture on a machine with IPv6 on.
fn decide_nft(name: &str) -> Finding {
    let ruleset = parse_nft_json(&read_fixture(name)).unwrap();
    firewall::decide(&assess(&ruleset), true, &FrontendConfig::default())
}

#[test]
fn empty_ruleset_fails() {
    let ruleset = parse_nft_json(&read_fixture("empty.json")).unwrap();
    assert_eq!(ruleset.nft_version.as_deref(), Some("1.0.6"));
    let finding = decide_nft("empty.json");
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(finding.observed["input_policy"], "none");
    assert!(finding.remediation.unwrap().text.contains("firewall"));
}

#[test]
fn nft_drop_policy_passes() {
    let ruleset = parse_nft_json(&read_fixture("nft-drop-policy.json")).unwrap();
    let assessment = assess(&ruleset);
    assert_eq!(assessment.chains.len(), 1, "only the input chain counts");
    assert_eq!(assessment.chains[0].because, "policy drop");
    assert_eq!(assessment.managed_by.as_deref(), Some("nftables"));
    let finding = decide_nft("nft-drop-policy.json");
    assert_eq!(finding.status, Status::Pass, "{}", finding.summary);
}

#[test]
fn firewalld_zones_with_final_reject_pass() {
    let ruleset = parse_nft_json(&read_fixture("firewalld-zones.json")).unwrap();
    let assessment = assess(&ruleset);
    assert_eq!(assessment.managed_by.as_deref(), Some("firewalld"));
    let input = &assessment.chains[0];
    assert_eq!(
        (input.chain.as_str(), input.policy.as_str()),
        ("filter_INPUT", "accept")
    );
    assert!(input.restricts);
    assert_eq!(input.because, "catch-all reject rule");
    assert_eq!(decide_nft("firewalld-zones.json").status, Status::Pass);
}

#[test]
fn accept_all_input_with_rules_fails() {
    let finding = decide_nft("accept-all.json");
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(finding.observed["input_policy"], "accept-all");
}

#[test]
fn unconditional_accept_before_drop_policy_fails() {
    let ruleset = parse_nft_json(&read_fixture("unconditional-accept-first.json")).unwrap();
    let assessment = assess(&ruleset);
    assert_eq!(assessment.chains[0].policy, "drop");
    assert_eq!(assessment.chains[0].because, "unconditional accept rule");
    assert_eq!(
        decide_nft("unconditional-accept-first.json").status,
        Status::Fail
    );
}

#[test]
fn ipv4_only_drop_fails_when_ipv6_is_on_and_passes_without_ipv6() {
    let ruleset = parse_nft_json(&read_fixture("ipv4-only-drop.json")).unwrap();
    let assessment = assess(&ruleset);
    assert!(assessment.ipv4_restricted && !assessment.ipv6_restricted);
    let with_v6 = firewall::decide(&assessment, true, &FrontendConfig::default());
    assert_eq!(with_v6.status, Status::Fail);
    assert_eq!(with_v6.observed["input_policy"], "ipv6-accept-all");
    let without_v6 = firewall::decide(&assessment, false, &FrontendConfig::default());
    assert_eq!(without_v6.status, Status::Pass);
}

#[test]
fn ufw_on_iptables_nft_with_xt_matches_passes() {
    let ruleset = parse_nft_json(&read_fixture("ufw-like.json")).unwrap();
    let assessment = assess(&ruleset);
    assert_eq!(assessment.managed_by.as_deref(), Some("ufw"));
    let families: Vec<_> = assessment
        .chains
        .iter()
        .map(|c| (c.family.as_str(), c.chain.as_str(), c.restricts))
        .collect();
    assert_eq!(
        families,
        vec![("ip", "INPUT", true), ("ip6", "INPUT", true)]
    );
    assert_eq!(decide_nft("ufw-like.json").status, Status::Pass);
}

#[test]
fn docker_iptables_nft_compat_tables_with_input_accept_fail() {
    let ruleset = parse_nft_json(&read_fixture("iptables-nft-docker.json")).unwrap();
    let assessment = assess(&ruleset);
    assert!(assessment.rule_count > 5);
    assert!(!assessment.ipv4_restricted);
    assert_eq!(decide_nft("iptables-nft-docker.json").status, Status::Fail);
}

#[test]
fn iptables_legacy_save_fallback() {
    let mut ufw = parse_iptables_save(&read_fixture("ufw-like.legacy-save.txt"), "ip");
    let v6 = parse_iptables_save(&read_fixture("ufw-like6.legacy-save.txt"), "ip6");
    ufw.chains.extend(v6.chains);
    ufw.rules.extend(v6.rules);
    let assessment = assess(&ufw);
    assert!(assessment.ipv4_restricted && assessment.ipv6_restricted);
    assert_eq!(assessment.managed_by.as_deref(), Some("ufw"));

    let docker = parse_iptables_save(&read_fixture("docker-like.legacy-save.txt"), "ip");
    let assessment = assess(&docker);
    assert_eq!(
        assessment.chains.len(),
        1,
        "nat INPUT is not a filter chain"
    );
    assert!(!assessment.ipv4_restricted);
}

// ---- netlink dumps (what the check reads) -----------------------------------------------

fn parse_nlmsg(name: &str) -> firewall::Ruleset {
    netlink::parse_dump(&std::fs::read(fixture(&format!("{name}.nlmsg"))).unwrap()).unwrap()
}

/// Every netlink dump fixture decides exactly as nft's own JSON of the same ruleset does:
/// same input chains, same verdicts, same reasons.
#[test]
fn netlink_dumps_agree_with_nft_json_of_the_same_ruleset() {
    let names = [
        ("empty", Status::Fail),
        ("nft-drop-policy", Status::Pass),
        ("firewalld-zones", Status::Pass),
        ("accept-all", Status::Fail),
        ("unconditional-accept-first", Status::Fail),
        ("ipv4-only-drop", Status::Fail),
        ("ufw-like", Status::Pass),
        ("iptables-nft-docker", Status::Fail),
        ("nixos-nftables", Status::Pass),
        ("nixos-iptables", Status::Pass),
        ("docker-published", Status::Pass),
    ];
    for (name, expected) in names {
        let from_netlink = assess(&parse_nlmsg(name));
        let from_json = assess(&parse_nft_json(&read_fixture(&format!("{name}.json"))).unwrap());
        assert_eq!(from_netlink.chains, from_json.chains, "{name}");
        assert_eq!(from_netlink.managed_by, from_json.managed_by, "{name}");
        assert_eq!(from_netlink.rule_count, from_json.rule_count, "{name}");
        assert_eq!(from_netlink.docker, from_json.docker, "{name}");
        let finding = firewall::decide(&from_netlink, true, &FrontendConfig::default());
        assert_eq!(finding.status, expected, "{name}: {}", finding.summary);
    }
}

#[test]
fn netlink_dump_of_nixos_iptables_firewall_restricts_through_its_chains() {
    let assessment = assess(&parse_nlmsg("nixos-iptables"));
    assert_eq!(assessment.managed_by.as_deref(), Some("nixos"));
    let input: Vec<_> = assessment
        .chains
        .iter()
        .map(|c| (c.family.as_str(), c.policy.as_str(), c.because.as_str()))
        .collect();
    assert_eq!(
        input,
        vec![
            (
                "ip",
                "accept",
                "catch-all drop rule in chain nixos-fw-refuse"
            ),
            (
                "ip6",
                "accept",
                "catch-all drop rule in chain nixos-fw-refuse"
            ),
        ]
    );
}

#[test]
fn netlink_dump_of_nixos_nftables_firewall_passes_on_its_drop_policy() {
    let assessment = assess(&parse_nlmsg("nixos-nftables"));
    assert_eq!(assessment.managed_by.as_deref(), Some("nixos"));
    assert_eq!(assessment.chains.len(), 1, "rpfilter is a prerouting chain");
    assert_eq!(assessment.chains[0].because, "policy drop");
}

#[test]
fn netlink_dump_of_firewalld_names_the_active_zone() {
    let assessment = assess(&parse_nlmsg("firewalld-zones"));
    assert_eq!(assessment.managed_by.as_deref(), Some("firewalld"));
    assert_eq!(assessment.firewalld_zones, vec!["public".to_owned()]);
}

#[test]
fn docker_chains_open_and_are_reported_never_counted_as_a_firewall() {
    // Docker alone: its FORWARD policy drop is not an input restriction.
    let alone = assess(&parse_nlmsg("iptables-nft-docker"));
    assert!(!alone.ipv4_restricted);
    assert_eq!(alone.docker.as_ref().map(|d| d.published_ports), Some(0));
    // Docker with a published port on a host with an input drop policy: pass, and the
    // finding says the port bypasses the input chain.
    let published = assess(&parse_nlmsg("docker-published"));
    assert_eq!(
        published.docker.as_ref().map(|d| d.published_ports),
        Some(1)
    );
    let finding = firewall::decide(&published, true, &FrontendConfig::default());
    assert_eq!(finding.status, Status::Pass);
    assert!(
        finding
            .summary
            .contains("Docker publishes 1 container port"),
        "{}",
        finding.summary
    );
}

#[test]
fn netlink_error_reply_is_an_error_not_an_empty_ruleset() {
    // An NLMSG_ERROR carrying -EPERM, as the kernel answers a dump without CAP_NET_ADMIN.
    let mut message = vec![36, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&(-1i32).to_ne_bytes());
    message.extend_from_slice(&[20, 0, 0, 0, 1, 10, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0]);
    let err = netlink::parse_dump(&message).unwrap_err();
    assert!(err.is_permission(), "{err}");
}

/// Regression: a rule whose bitwise mask attribute claims more bytes than it has made the
/// netlink decoder panic (found by the boot_and_disk fuzz target).
#[test]
fn fuzz_crash_malformed_bitwise_mask_is_a_decode_error_not_a_panic() {
    let bytes = std::fs::read(fixture("fuzz-crash-bitwise-mask.nlmsg")).unwrap();
    let err = netlink::parse_dump(&bytes).unwrap_err();
    assert!(err.to_string().contains("malformed"), "{err}");
}

#[test]
fn truncated_netlink_dump_is_an_error() {
    let bytes = std::fs::read(fixture("nft-drop-policy.nlmsg")).unwrap();
    assert!(netlink::parse_dump(&bytes[..bytes.len() / 2 + 3]).is_err());
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn fixture_root_reports_ufw_config_but_does_not_pass() {
    let dir = tempfile::tempdir().unwrap();
    // As shipped by Debian's ufw 0.36 package after `ufw enable`.
    write(
        dir.path(),
        "/etc/ufw/ufw.conf",
        "# /etc/ufw/ufw.conf\n#\n\n# Set to yes to start on boot.\nENABLED=yes\n\nLOGLEVEL=low\n",
    );
    write(
        dir.path(),
        "/etc/default/ufw",
        "IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\nDEFAULT_FORWARD_POLICY=\"DROP\"\n",
    );
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), SystemTime::now());
    let finding = firewall::check(&ctx);
    assert_eq!(finding.status, Status::Unknown, "config alone is not proof");
    assert_eq!(finding.observed["configured_frontend"], "ufw");
    assert_eq!(finding.observed["config"]["ufw"]["enabled"], true);
    assert_eq!(
        finding.observed["config"]["ufw"]["default_input_policy"],
        "DROP"
    );
    assert!(finding.source.iter().any(|s| s == "/etc/ufw/ufw.conf"));
}

#[test]
fn fixture_root_reports_firewalld_default_zone_target() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "/etc/firewalld/firewalld.conf",
        "# firewalld config file\n\n# default zone\nDefaultZone=trusted\n\nCleanupOnExit=yes\n",
    );
    // firewalld's shipped trusted zone accepts everything; public uses the default target.
    write(dir.path(), "/usr/lib/firewalld/zones/trusted.xml", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone target=\"ACCEPT\">\n  <short>Trusted</short>\n</zone>\n");
    write(
        dir.path(),
        "/etc/systemd/system/multi-user.target.wants/firewalld.service",
        "",
    );
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), SystemTime::now());
    let finding = firewall::check(&ctx);
    assert_eq!(finding.status, Status::Unknown);
    let firewalld = &finding.observed["config"]["firewalld"];
    assert_eq!(firewalld["default_zone"], "trusted");
    assert_eq!(firewalld["zone_target"], "ACCEPT");
    assert_eq!(firewalld["service_enabled"], true);
    assert!(
        finding.observed["configured_frontend"].is_null(),
        "an ACCEPT zone restricts nothing"
    );
}

// ---- end to end in a fresh network namespace -------------------------------------------

const CHILD_OUT: &str = "POSTURE_FIREWALL_NETNS_OUT";

/// Helper run by the tests below inside `unshare --net`: it runs the real check against the
/// namespace's loaded ruleset and writes the finding where the parent asked.
#[test]
#[ignore = "helper: run by the netns tests inside a fresh network namespace"]
fn netns_child() {
    let finding = firewall::check(&Context::system(ChecksConfig::default()));
    let out = std::env::var(CHILD_OUT).expect("run by the netns tests");
    std::fs::write(out, serde_json::to_vec(&finding).unwrap()).unwrap();
}

fn can_unshare() -> Result<(), String> {
    if !posture_core::process::is_root() {
        return Err("not root".into());
    }
    for tool in ["unshare", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success();
        if !found {
            return Err(format!(
                "{tool} is not installed (scripts/setup.sh installs it)"
            ));
        }
    }
    Ok(())
}

/// Runs the real check in a new network namespace after `setup` (a shell command run in
/// that namespace, in a directory holding `files`) has loaded its ruleset.
fn check_in_netns(setup: &str, files: &[(&str, String)]) -> Option<Finding> {
    check_in_namespaces(&["--net"], setup, files)
}

/// As [`check_in_netns`], in the extra namespaces `unshare` is given.
fn check_in_namespaces(
    namespaces: &[&str],
    setup: &str,
    files: &[(&str, String)],
) -> Option<Finding> {
    if !posture_test_support::can_run(can_unshare()) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = dir.path().join("finding.json");
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        r#"cd "$1" && {{ {setup}; }} || exit 97; exec "$2" --exact netns_child --ignored --nocapture"#
    );
    let output = Command::new("unshare")
        .args(namespaces)
        .args(["--", "sh", "-c", &script, "sh"])
        .arg(dir.path())
        .arg(&exe)
        .env(CHILD_OUT, &out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap())
}

#[test]
fn live_netns_with_drop_policy_passes() {
    let rules = read_fixture("nft-drop-policy.nft");
    let Some(finding) = check_in_netns("nft -f rules.nft", &[("rules.nft", rules)]) else {
        return;
    };
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(finding.observed["managed_by"], "nftables");
    assert_eq!(finding.observed["loaded"]["ipv4_restricted"], true);
    assert!(finding.source.iter().any(|s| s == firewall::NETLINK_SOURCE));
}

/// Regression: on a minimal install with neither `nft` nor `iptables-save` the answer used
/// to be `unknown`. The ruleset is now read over netlink: with every sbin/bin directory
/// hidden (a private mount namespace mounts empty tmpfs over them after loading the rules),
/// the check still reads it, and no command could have been run.
#[test]
fn live_netns_without_nft_or_iptables_binaries_still_reads_the_ruleset() {
    let rules = read_fixture("nft-drop-policy.nft");
    let hide = "for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin /sbin /bin; do \
                [ -L \"$d\" ] || mount -t tmpfs none \"$d\"; done";
    let Some(finding) = check_in_namespaces(
        &["--net", "--mount", "--propagation", "private"],
        &format!("nft -f rules.nft && {hide}"),
        &[("rules.nft", rules)],
    ) else {
        return;
    };
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert!(finding.source.iter().any(|s| s == firewall::NETLINK_SOURCE));
    assert!(finding
        .source
        .iter()
        .all(|s| !s.contains("nft -j") && !s.contains("-save")));
}

#[test]
fn live_netns_with_empty_ruleset_fails() {
    let Some(finding) = check_in_netns("true", &[]) else {
        return;
    };
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    assert_eq!(finding.observed["input_policy"], "none");
    assert!(finding.remediation.is_some());
}

#[test]
fn live_netns_with_ufw_rules_via_iptables_nft_passes() {
    // Loading through iptables-nft-restore exercises the xt compat expressions live.
    let Some(finding) = check_in_netns(
        "iptables-nft-restore < v4.rules && ip6tables-nft-restore < v6.rules",
        &[
            ("v4.rules", read_fixture("ufw-like.rules")),
            ("v6.rules", read_fixture("ufw-like6.rules")),
        ],
    ) else {
        return;
    };
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(finding.observed["managed_by"], "ufw");
}

#[test]
fn live_netns_with_iptables_legacy_rules_passes() {
    // Rules in the legacy xtables are invisible to nft; the check must still see them.
    let Some(finding) = check_in_netns(
        "iptables-legacy-restore < v4.rules && ip6tables-legacy-restore < v6.rules",
        &[
            ("v4.rules", read_fixture("ufw-like.rules")),
            ("v6.rules", read_fixture("ufw-like6.rules")),
        ],
    ) else {
        return;
    };
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(finding.observed["managed_by"], "ufw");
    assert!(finding.source.iter().any(|s| s == "iptables-legacy-save"));
    assert!(finding.source.iter().any(|s| s == "ip6tables-legacy-save"));
}

#[test]
fn live_netns_with_accept_all_rules_fails() {
    let rules = read_fixture("accept-all.nft");
    let Some(finding) = check_in_netns("nft -f rules.nft", &[("rules.nft", rules)]) else {
        return;
    };
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    assert_eq!(finding.observed["input_policy"], "accept-all");
}

#[test]
fn live_without_root_is_unknown_and_reports_config() {
    if !posture_test_support::can_run(can_unshare()) {
        return;
    }
    // Run the helper as `nobody`: a copy of this test binary in a world-readable directory.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let exe = dir.path().join("firewall-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let out = dir.path().join("finding.json");
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", "netns_child", "--ignored", "--nocapture"])
        .env(CHILD_OUT, &out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let finding: Finding = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(finding.status, Status::Unknown);
    assert_eq!(finding.reason.as_deref(), Some(firewall::NEEDS_ROOT));
    assert!(finding.observed.contains_key("config"));
}
