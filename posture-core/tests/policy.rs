//! Policy decisions over reports shaped like the real checks' output (observed members as
//! the `os`, `patch_level`, `edr` and `secure_boot` checks document them).

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use posture_core::evidence::{sign_evidence_at, EvidenceOptions};
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::{KeyAssurance, Signer};
use posture_core::policy::{Outcome, Policy};
use posture_core::verify::{Verifier, VerifyOptions};
use posture_core::{Finding, OsFacts, Remediation, Report, Status};
use serde_json::json;

fn os_facts(id: &str, version: Option<&str>) -> OsFacts {
    OsFacts {
        family: "linux".into(),
        id: id.into(),
        name: format!("{id} {}", version.unwrap_or("rolling")),
        version_id: version.map(str::to_owned),
        kernel: "6.1.0-26-amd64".into(),
        arch: "x86_64".into(),
    }
}

fn healthy() -> Vec<Finding> {
    vec![
        Finding::pass("os", "Debian GNU/Linux 12")
            .observe("id", "debian")
            .observe("version_id", "12"),
        Finding::pass("disk_encryption", "root on LUKS2"),
        Finding::pass("patch_level", "up to date")
            .observe("pending_security_updates", 0)
            // The check reports 0 when nothing is pending; null means "age unknown".
            .observe("oldest_security_pending_days", 0)
            .observe("days_since_last_upgrade", 2)
            .observe("reboot_pending", false),
        Finding::pass("edr", "crowdstrike running")
            .observe("running", json!(["crowdstrike"]))
            .observe("products", json!([{"id": "crowdstrike"}])),
        Finding::pass("secure_boot", "enabled")
            .observe("uefi", true)
            .observe("enabled", true)
            .observe("setup_mode", false),
    ]
}

fn report(os: OsFacts, findings: Vec<Finding>) -> Report {
    posture_test_support::report_on(os, findings)
}

fn replace(findings: &mut [Finding], finding: Finding) {
    let slot = findings.iter_mut().find(|f| f.id == finding.id).unwrap();
    *slot = finding;
}

const POLICY: &str = r#"
required_checks = ["disk_encryption", "firewall"]
max_patch_age_days = 14
required_edr = ["crowdstrike", "sentinelone"]
required_key_assurance = "software"
require_secure_boot = true
max_evidence_age = "10m"

[min_os_version]
debian = "12"
ubuntu = "22.04"
"#;

fn policy() -> Policy {
    Policy::from_toml_str(POLICY).unwrap()
}

fn with_firewall(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.push(Finding::pass("firewall", "nftables active"));
    findings
}

#[test]
fn healthy_device_is_allowed() {
    let r = report(os_facts("debian", Some("12")), with_firewall(healthy()));
    let d = policy().decide_report(&r, KeyAssurance::Software);
    assert_eq!(d.decision, Outcome::Allow, "{:?}", d.reasons);
    assert!(d.reasons.is_empty());
}

#[test]
fn failing_required_check_is_denied_with_its_remediation() {
    let mut findings = healthy();
    findings.push(Finding::fail(
        "firewall",
        "no firewall is active",
        Remediation::new("Enable the firewall: sudo ufw enable"),
    ));
    let d = policy().decide_report(
        &report(os_facts("debian", Some("12")), findings),
        KeyAssurance::Software,
    );
    assert_eq!(d.decision, Outcome::Deny);
    assert_eq!(d.reasons.len(), 1);
    let r = &d.reasons[0];
    assert_eq!(r.rule, "required_checks");
    assert_eq!(r.finding.as_deref(), Some("firewall"));
    assert_eq!(r.status, Some(Status::Fail));
    assert_eq!(
        r.remediation.as_ref().unwrap().text,
        "Enable the firewall: sudo ufw enable"
    );
}

#[test]
fn unknown_and_missing_required_checks_are_denied() {
    let mut findings = healthy();
    replace(
        &mut findings,
        Finding::unknown("disk_encryption", "needs root"),
    );
    let d = policy().decide_report(
        &report(os_facts("debian", Some("12")), findings),
        KeyAssurance::Software,
    );
    let rules: Vec<_> = d
        .reasons
        .iter()
        .map(|r| (r.finding.as_deref(), r.status))
        .collect();
    assert_eq!(
        rules,
        [
            (Some("disk_encryption"), Some(Status::Unknown)),
            (Some("firewall"), None)
        ]
    );
    assert!(d.reasons[0].message.contains("needs root"));
}

#[test]
fn old_os_is_denied_by_distribution() {
    let r = report(os_facts("ubuntu", Some("20.04")), with_firewall(healthy()));
    let d = policy().decide_report(&r, KeyAssurance::Software);
    assert_eq!(d.reasons.len(), 1, "{:?}", d.reasons);
    assert_eq!(d.reasons[0].rule, "min_os_version");
    assert!(d.reasons[0]
        .message
        .contains("20.04 is older than the required 22.04"));
    assert!(d.reasons[0]
        .remediation
        .as_ref()
        .unwrap()
        .text
        .contains("22.04"));
    // A newer one passes, an unlisted OS is not constrained.
    let r = report(os_facts("ubuntu", Some("24.04")), with_firewall(healthy()));
    assert!(policy()
        .decide_report(&r, KeyAssurance::Software)
        .is_allowed());
    let r = report(os_facts("arch", None), with_firewall(healthy()));
    assert!(policy()
        .decide_report(&r, KeyAssurance::Software)
        .is_allowed());
}

#[test]
fn os_without_version_is_denied_when_constrained() {
    let r = report(os_facts("debian", None), with_firewall(healthy()));
    let d = policy().decide_report(&r, KeyAssurance::Software);
    assert_eq!(d.reasons[0].rule, "min_os_version");
}

#[test]
fn min_os_version_falls_back_to_family() {
    let p = Policy::from_toml_str("[min_os_version]\nlinux = \"13\"\n").unwrap();
    let r = report(os_facts("debian", Some("12")), healthy());
    assert!(!p.decide_report(&r, KeyAssurance::Software).is_allowed());
}

#[test]
fn old_pending_security_update_is_denied() {
    let mut findings = with_firewall(healthy());
    replace(
        &mut findings,
        Finding::fail(
            "patch_level",
            "3 security updates pending for 30 days",
            Remediation::new("sudo apt update && sudo apt upgrade"),
        )
        .observe("pending_security_updates", 3)
        .observe("oldest_security_pending_days", 30)
        .observe("days_since_last_upgrade", 40)
        .observe("reboot_pending", false),
    );
    let d = policy().decide_report(
        &report(os_facts("debian", Some("12")), findings),
        KeyAssurance::Software,
    );
    assert_eq!(d.reasons.len(), 1, "{:?}", d.reasons);
    assert_eq!(d.reasons[0].rule, "max_patch_age_days");
    assert!(d.reasons[0].message.contains("30 days"));
    assert_eq!(
        d.reasons[0].remediation.as_ref().unwrap().text,
        "sudo apt update && sudo apt upgrade"
    );
}

#[test]
fn recent_pending_security_update_is_allowed() {
    let mut findings = with_firewall(healthy());
    replace(
        &mut findings,
        Finding::pass("patch_level", "1 security update pending for 3 days")
            .observe("pending_security_updates", 1)
            .observe("oldest_security_pending_days", 3),
    );
    assert!(policy()
        .decide_report(
            &report(os_facts("debian", Some("12")), findings),
            KeyAssurance::Software
        )
        .is_allowed());
}

#[test]
fn unknown_patch_level_is_denied() {
    let mut findings = with_firewall(healthy());
    replace(
        &mut findings,
        Finding::unknown("patch_level", "apt lists are missing"),
    );
    let d = policy().decide_report(
        &report(os_facts("debian", Some("12")), findings),
        KeyAssurance::Software,
    );
    assert_eq!(d.reasons[0].rule, "max_patch_age_days");
    assert!(d.reasons[0].message.contains("apt lists are missing"));
}

#[test]
fn edr_needs_any_of_the_required_products_running() {
    let mut findings = with_firewall(healthy());
    replace(
        &mut findings,
        Finding::pass("edr", "sentinelone running").observe("running", json!(["sentinelone"])),
    );
    assert!(policy()
        .decide_report(
            &report(os_facts("debian", Some("12")), findings.clone()),
            KeyAssurance::Software
        )
        .is_allowed());
    replace(
        &mut findings,
        // The edr check passed (its own configuration accepts any product), but not one
        // of the products this policy requires is running.
        Finding::pass("edr", "clamav running").observe("running", json!(["clamav"])),
    );
    let d = policy().decide_report(
        &report(os_facts("debian", Some("12")), findings),
        KeyAssurance::Software,
    );
    assert_eq!(d.reasons[0].rule, "required_edr");
    assert!(d.reasons[0].message.contains("running: clamav"));
    assert!(d.reasons[0]
        .remediation
        .as_ref()
        .unwrap()
        .text
        .contains("crowdstrike, sentinelone"));
}

#[test]
fn secure_boot_disabled_or_unknown_is_denied() {
    for (enabled, needle) in [
        (json!(false), "disabled"),
        (json!(null), "does not report `enabled`"),
    ] {
        let mut findings = with_firewall(healthy());
        replace(
            &mut findings,
            Finding::pass("secure_boot", "x")
                .observe("enabled", enabled)
                .observe("setup_mode", false),
        );
        let d = policy().decide_report(
            &report(os_facts("debian", Some("12")), findings),
            KeyAssurance::Software,
        );
        assert_eq!(d.reasons[0].rule, "require_secure_boot");
        assert!(
            d.reasons[0].message.contains(needle),
            "{}",
            d.reasons[0].message
        );
    }
}

#[test]
fn tpm_assurance_is_required_when_asked() {
    let p = Policy::from_toml_str("required_key_assurance = \"tpm\"\n").unwrap();
    let r = report(os_facts("debian", Some("12")), healthy());
    let d = p.decide_report(&r, KeyAssurance::Software);
    assert_eq!(d.reasons[0].rule, "required_key_assurance");
    assert!(p.decide_report(&r, KeyAssurance::Tpm).is_allowed());
}

#[test]
fn verified_evidence_is_decided_including_its_age() {
    let dir = tempfile::tempdir().unwrap();
    let key = SoftwareKey::load_or_create(&dir.path().join("k")).unwrap();
    let r = report(os_facts("debian", Some("12")), with_firewall(healthy()));
    let issued = SystemTime::now() - Duration::from_secs(15 * 60);
    let options = EvidenceOptions {
        ttl: Duration::from_secs(3600),
        ..Default::default()
    };
    let token = sign_evidence_at(&r, &key, &options, issued).unwrap();
    let mut verifier = Verifier::new();
    verifier.add_key(key.public_key(), None);
    let verified = verifier
        .verify(token.as_bytes(), &VerifyOptions::default())
        .unwrap();
    let d = policy().decide(&verified);
    assert_eq!(d.decision, Outcome::Deny);
    assert_eq!(d.reasons.len(), 1, "{:?}", d.reasons);
    assert_eq!(d.reasons[0].rule, "max_evidence_age");
    // Fresh evidence of the same device is allowed.
    let token = sign_evidence_at(&r, &key, &options, SystemTime::now()).unwrap();
    let verified = verifier
        .verify(token.as_bytes(), &VerifyOptions::default())
        .unwrap();
    assert!(policy().decide(&verified).is_allowed());
}

#[test]
fn decision_json_has_decision_and_reasons() {
    let r = report(os_facts("debian", Some("11")), healthy());
    let d = policy().decide_report(&r, KeyAssurance::Software);
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reasons"].as_array().unwrap().len(), 2);
}

/// Issue 10, item 2: every rule that reads a finding fails closed. For each rule, over
/// the healthy device (which it allows), replace the finding it reads by one that
/// failed, could not tell, did not run, or lacks (or has `null` for) each fact the rule
/// reads: every variant is denied, by that rule, with a reason naming the finding.
/// Regressions pinned: a null `oldest_security_pending_days` with 86 pending security
/// updates, an edr finding that failed (product running but unhealthy), and secure_boot
/// failed in Setup Mode or unknown were all allowed.
#[test]
fn every_rule_fails_closed_on_fail_unknown_missing_finding_and_missing_facts_issue_10() {
    struct Rule {
        policy: &'static str,
        rule: &'static str,
        finding: &'static str,
        facts: &'static [&'static str],
    }
    let rules = [
        Rule {
            policy: "required_checks = [\"disk_encryption\"]\n",
            rule: "required_checks",
            finding: "disk_encryption",
            facts: &[],
        },
        Rule {
            policy: "[min_os_version]\ndebian = \"12\"\n",
            rule: "min_os_version",
            finding: "os",
            facts: &[],
        },
        Rule {
            policy: "max_patch_age_days = 14\n",
            rule: "max_patch_age_days",
            finding: "patch_level",
            facts: &["oldest_security_pending_days"],
        },
        Rule {
            policy: "required_edr = [\"crowdstrike\"]\n",
            rule: "required_edr",
            finding: "edr",
            facts: &["running"],
        },
        Rule {
            policy: "require_secure_boot = true\n",
            rule: "require_secure_boot",
            finding: "secure_boot",
            facts: &["enabled", "setup_mode"],
        },
    ];
    let os = || os_facts("debian", Some("12"));
    for rule in &rules {
        let policy = Policy::from_toml_str(rule.policy).unwrap();
        let base = healthy();
        assert!(
            policy
                .decide_report(&report(os(), base.clone()), KeyAssurance::Software)
                .is_allowed(),
            "{}: the healthy device must be allowed",
            rule.rule
        );
        let original = base.iter().find(|f| f.id == rule.finding).unwrap().clone();

        let mut variants: Vec<(String, Vec<Finding>)> = Vec::new();
        // The same facts, but the check failed or could not tell.
        let mut failed = Finding::fail(rule.finding, "unhealthy", Remediation::new("fix it"));
        failed.observed = original.observed.clone();
        let mut unknown = Finding::unknown(rule.finding, "needs root");
        unknown.observed = original.observed.clone();
        for (name, finding) in [("fail", failed), ("unknown", unknown)] {
            let mut findings = base.clone();
            replace(&mut findings, finding);
            variants.push((name.into(), findings));
        }
        // The check did not run.
        variants.push((
            "missing finding".into(),
            base.iter()
                .filter(|f| f.id != rule.finding)
                .cloned()
                .collect(),
        ));
        // A pass whose facts are incomplete.
        for fact in rule.facts {
            for null in [false, true] {
                let mut finding = original.clone();
                if null {
                    finding.observed.insert((*fact).into(), json!(null));
                } else {
                    finding.observed.remove(*fact);
                }
                let mut findings = base.clone();
                replace(&mut findings, finding);
                let how = if null { "null" } else { "missing" };
                variants.push((format!("{how} {fact}"), findings));
            }
        }

        for (variant, findings) in variants {
            let d = policy.decide_report(&report(os(), findings), KeyAssurance::Software);
            let what = format!("{} with {variant}", rule.rule);
            assert_eq!(d.decision, Outcome::Deny, "{what} must be denied");
            assert_eq!(d.reasons.len(), 1, "{what}: {:?}", d.reasons);
            assert_eq!(d.reasons[0].rule, rule.rule, "{what}");
            assert_eq!(
                d.reasons[0].finding.as_deref(),
                Some(rule.finding),
                "{what}"
            );
            assert!(
                d.reasons[0]
                    .message
                    .contains(&format!("`{}`", rule.finding))
                    || d.reasons[0].message.contains("Secure Boot"),
                "{what}: {}",
                d.reasons[0].message
            );
        }
    }
}

/// The three inputs the review reproduced, as the real checks report them.
#[test]
fn reproduced_fail_open_inputs_are_denied_issue_10() {
    let policy = Policy::from_toml_str(
        "max_patch_age_days = 14\nrequired_edr = [\"crowdstrike\"]\nrequire_secure_boot = true\n",
    )
    .unwrap();
    let cases = [
        Finding::fail(
            "patch_level",
            "86 security updates pending",
            Remediation::new("apt upgrade"),
        )
        .observe("pending_security_updates", 86)
        .observe("oldest_security_pending_days", json!(null))
        .observe("oldest_security_pending_days_at_least", 40),
        Finding::fail(
            "edr",
            "crowdstrike is running but unhealthy",
            Remediation::new("restart falcon-sensor"),
        )
        .observe("running", json!(["crowdstrike"])),
        Finding::fail(
            "secure_boot",
            "Secure Boot is in Setup Mode: no platform key is enrolled",
            Remediation::new("restore the keys"),
        )
        .observe("uefi", true)
        .observe("enabled", true)
        .observe("setup_mode", true),
        Finding::unknown("secure_boot", "efivarfs is not mounted")
            .observe("uefi", true)
            .observe("enabled", true)
            .observe("setup_mode", false),
    ];
    for finding in cases {
        let id = finding.id.clone();
        let mut findings = healthy();
        replace(&mut findings, finding);
        let d = policy.decide_report(
            &report(os_facts("debian", Some("12")), findings),
            KeyAssurance::Software,
        );
        assert_eq!(d.decision, Outcome::Deny, "{id}");
        assert_eq!(d.reasons[0].finding.as_deref(), Some(id.as_str()));
    }
}
