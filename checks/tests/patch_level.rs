//! `patch_level` over real directory trees (fixtures captured from real systems, built in
//! temp dirs) and, live, on this machine against apt's own answer.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside #[test] functions may unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use posture_checks::patch_level::others;
use posture_checks::{patch_level, ChecksConfig, Context, PatchLevelConfig};
use posture_core::{Finding, Status, Timestamp};
use serde_json::Value;

fn at(rfc3339: &str) -> SystemTime {
    Timestamp::parse(rfc3339).unwrap().system_time()
}

fn obs<'a>(f: &'a Finding, key: &str) -> &'a Value {
    f.observed.get(key).unwrap_or(&Value::Null)
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/patch_level");

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(FIXTURES).join(rel)
}

fn write(root: &Path, rel: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The captured dpkg status with each named package's version replaced.
fn status_with(versions: &[(&str, &str)]) -> String {
    let text = fs::read_to_string(fixture("debian12/dpkg-status-outdated")).unwrap();
    text.split("\n\n")
        .map(|para| {
            let name = para
                .lines()
                .find_map(|l| l.strip_prefix("Package: "))
                .unwrap_or("");
            match versions.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => para
                    .lines()
                    .map(|l| {
                        if l.starts_with("Version: ") {
                            format!("Version: {v}")
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                None => para.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Every captured package at apt's candidate version: nothing pending.
const ALL_CURRENT: &[(&str, &str)] = &[
    ("bash", "5.2.15-2+b13"),
    ("base-files", "12.4+deb12u15"),
    ("openssh-client", "1:9.2p1-2+deb12u10"),
    ("libssl3", "3.0.22-1~deb12u2"),
    ("tzdata", "2026f-0+deb12u1"),
];

/// Security fixes installed; bash and base-files (point release, not security) pending.
const SECURITY_CURRENT: &[(&str, &str)] = &[
    ("openssh-client", "1:9.2p1-2+deb12u10"),
    ("libssl3", "3.0.22-1~deb12u2"),
    ("tzdata", "2026f-0+deb12u1"),
];

/// A Debian 12 tree: the captured lists, a dpkg status, a history log, a running kernel.
fn debian_tree(status: &str, history: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc/apt/apt.conf.d")).unwrap();
    write(root, "var/lib/dpkg/status", status);
    copy_dir(&fixture("debian12/lists"), &root.join("var/lib/apt/lists"));
    if let Some(history) = history {
        write(root, "var/log/apt/history.log", history);
    }
    write(root, "proc/sys/kernel/osrelease", "6.1.0-26-amd64\n");
    write(root, "lib/modules/6.1.0-26-amd64/modules.dep", "");
    write(root, "boot/vmlinuz-6.1.0-26-amd64", "");
    dir
}

fn captured_history() -> String {
    fs::read_to_string(fixture("debian12/history.log")).unwrap()
}

/// The captured history plus an upgrade on the given day.
fn history_upgraded_on(day: &str) -> String {
    format!(
        "{}\nStart-Date: {day}  08:00:00\nCommandline: apt-get -y full-upgrade\nUpgrade: bash:amd64 (5.2.15-2+b7, 5.2.15-2+b8)\nEnd-Date: {day}  08:01:10\n",
        captured_history()
    )
}

fn run(root: &Path, now: &str, config: PatchLevelConfig) -> Finding {
    let config = ChecksConfig {
        patch_level: config,
        ..ChecksConfig::default()
    };
    patch_level::check(&Context::fixture(root, config, at(now)))
}

#[test]
fn outdated_debian_fails_on_old_security_updates_and_old_upgrade() {
    let tree = debian_tree(&status_with(&[]), Some(&captured_history()));
    // 29 days after the security suite's Release Date (2026-11-21).
    let f = run(
        tree.path(),
        "2026-12-20T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(obs(&f, "package_manager"), "apt");
    // bash, base-files (main), openssh-client, libssl3, tzdata; zlib1g is current.
    assert_eq!(obs(&f, "pending_updates"), 5);
    // openssh-client counts although its candidate is a later point release: the
    // installed version lacks the security fix.
    assert_eq!(obs(&f, "pending_security_updates"), 3);
    assert_eq!(
        obs(&f, "security_updates"),
        &serde_json::json!(["libssl3:amd64", "openssh-client:amd64", "tzdata:all"])
    );
    // No state directory: only the lower bound from the Release Date is known.
    assert_eq!(obs(&f, "oldest_security_pending_days"), &Value::Null);
    assert_eq!(obs(&f, "oldest_security_pending_days_at_least"), 29);
    assert_eq!(obs(&f, "last_upgrade"), "2025-06-24T14:36:25Z");
    assert_eq!(obs(&f, "days_since_last_upgrade"), 543);
    assert_eq!(obs(&f, "reboot_pending"), false);
    assert_eq!(obs(&f, "running_kernel"), "6.1.0-26-amd64");
    assert_eq!(obs(&f, "lists_date"), "2026-11-21T00:53:02Z");
    assert!(f.summary.contains("at least 29 days"), "{}", f.summary);
    assert!(
        f.summary.contains("no upgrade for 543 days"),
        "{}",
        f.summary
    );
    assert!(f
        .remediation
        .as_ref()
        .unwrap()
        .text
        .contains("apt full-upgrade"));
}

#[test]
fn recent_security_updates_without_history_of_them_are_unknown_not_pass() {
    let tree = debian_tree(&status_with(&[]), Some(&history_upgraded_on("2026-11-22")));
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(f.status, Status::Unknown, "{f:#?}");
    let reason = f.reason.clone().unwrap();
    assert!(reason.contains("3 security update(s) pending"), "{reason}");
    assert!(reason.contains("state directory"), "{reason}");
    assert_eq!(obs(&f, "days_since_last_upgrade"), 3);
    assert_eq!(obs(&f, "pending_security_updates"), 3);
}

#[test]
fn no_pending_security_updates_passes() {
    let tree = debian_tree(
        &status_with(SECURITY_CURRENT),
        Some(&history_upgraded_on("2026-11-22")),
    );
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert_eq!(obs(&f, "pending_updates"), 2);
    assert_eq!(obs(&f, "pending_security_updates"), 0);
    assert_eq!(obs(&f, "oldest_security_pending_days"), 0);
    assert_eq!(obs(&f, "last_upgrade"), "2026-11-22T08:01:10Z");
}

#[test]
fn up_to_date_against_fresh_lists_passes_without_upgrade_history() {
    let tree = debian_tree(&status_with(ALL_CURRENT), None);
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert_eq!(obs(&f, "pending_updates"), 0);
    assert_eq!(obs(&f, "last_upgrade"), &Value::Null);
    // The same tree with lists older than the limit cannot tell.
    let f = run(
        tree.path(),
        "2027-01-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(f.status, Status::Unknown, "{f:#?}");
    assert!(f
        .reason
        .as_ref()
        .unwrap()
        .contains("no successful upgrade found"));
}

#[test]
fn state_dir_bounds_the_age_of_security_updates() {
    let state = tempfile::tempdir().unwrap();
    let history = history_upgraded_on("2026-11-22");
    let config = |now: &str| {
        Context::fixture(Path::new("/nonexistent"), ChecksConfig::default(), at(now))
            .with_state_dir(state.path())
    };
    // Day 0: up to date. Day 1: the security updates appear. Their age is then known to
    // be within a day, so the threshold passes.
    let current = debian_tree(&status_with(SECURITY_CURRENT), Some(&history));
    let outdated = debian_tree(&status_with(&[]), Some(&history));
    let mut ctx = config("2026-11-21T12:00:00Z");
    ctx.root = current.path().to_owned();
    assert_eq!(patch_level::check(&ctx).status, Status::Pass);
    let mut ctx = config("2026-11-22T12:00:00Z");
    ctx.root = outdated.path().to_owned();
    let f = patch_level::check(&ctx);
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert_eq!(obs(&f, "oldest_security_pending_days"), 1);
    assert!(state.path().join("patch_level.json").exists());
    // Still pending 18 days later: fails.
    let mut ctx = config("2026-12-10T12:00:00Z");
    ctx.root = outdated.path().to_owned();
    let f = patch_level::check(&ctx);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(obs(&f, "oldest_security_pending_days"), 19);
    assert!(
        f.summary.contains("security update(s) pending"),
        "{}",
        f.summary
    );
}

#[test]
fn newer_installed_kernel_means_reboot_pending() {
    let tree = debian_tree(
        &status_with(SECURITY_CURRENT),
        Some(&history_upgraded_on("2026-11-22")),
    );
    write(tree.path(), "lib/modules/6.1.0-27-amd64/modules.dep", "");
    // A leftover directory of a removed kernel does not count.
    fs::create_dir_all(tree.path().join("lib/modules/6.1.0-99-amd64/updates/dkms")).unwrap();
    // Another flavour does not count either.
    write(tree.path(), "boot/vmlinuz-6.1.0-30-rt-amd64", "");
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(
        f.status,
        Status::Pass,
        "reboot does not fail by default: {f:#?}"
    );
    assert_eq!(obs(&f, "reboot_pending"), true);
    assert_eq!(obs(&f, "newest_kernel"), "6.1.0-27-amd64");
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig {
            fail_on_pending_reboot: true,
            ..PatchLevelConfig::default()
        },
    );
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f
        .summary
        .contains("running kernel 6.1.0-26-amd64 but 6.1.0-27-amd64"));
    assert!(f.remediation.as_ref().unwrap().text.contains("restart"));
}

#[test]
fn no_kernel_found_makes_reboot_unknown_when_it_matters() {
    let tree = debian_tree(
        &status_with(SECURITY_CURRENT),
        Some(&history_upgraded_on("2026-11-22")),
    );
    fs::remove_dir_all(tree.path().join("lib/modules")).unwrap();
    fs::remove_dir_all(tree.path().join("boot")).unwrap();
    let strict = PatchLevelConfig {
        fail_on_pending_reboot: true,
        ..PatchLevelConfig::default()
    };
    let f = run(tree.path(), "2026-11-25T12:00:00Z", strict);
    assert_eq!(f.status, Status::Unknown, "{f:#?}");
    assert_eq!(obs(&f, "reboot_pending"), &Value::Null);
}

#[test]
fn unsupported_list_compression_is_unknown_never_fewer_updates() {
    let tree = debian_tree(
        &status_with(ALL_CURRENT),
        Some(&history_upgraded_on("2026-11-22")),
    );
    let lists = tree.path().join("var/lib/apt/lists");
    let plain = lists.join("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages");
    let status = std::process::Command::new("xz")
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(f.status, Status::Unknown, "{f:#?}");
    assert!(f
        .reason
        .as_ref()
        .unwrap()
        .contains("xz compression is not supported"));
    assert_eq!(obs(&f, "pending_updates"), &Value::Null);
}

#[test]
fn gzip_lists_and_rotated_history_are_read() {
    let tree = debian_tree(&status_with(&[]), Some(&captured_history()));
    let lists = tree.path().join("var/lib/apt/lists");
    let plain = lists.join("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages");
    assert!(std::process::Command::new("gzip")
        .arg(&plain)
        .status()
        .unwrap()
        .success());
    // history.log has no upgrade; the rotated, compressed one has.
    write(tree.path(), "var/log/apt/history.log", "\nStart-Date: 2026-11-23  16:44:16\nCommandline: apt-get install -y dconf-cli\nEnd-Date: 2026-11-23  16:44:20\n");
    write(
        tree.path(),
        "var/log/apt/history.log.2",
        history_upgraded_on("2026-11-01"),
    );
    assert!(std::process::Command::new("gzip")
        .arg(tree.path().join("var/log/apt/history.log.2"))
        .status()
        .unwrap()
        .success());
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(obs(&f, "pending_updates"), 5);
    assert_eq!(obs(&f, "last_upgrade"), "2026-11-01T08:01:10Z");
    assert!(f
        .source
        .iter()
        .any(|s| s == "/var/log/apt/history.log.2.gz"));
}

#[test]
fn unattended_upgrades_stamp_counts_as_an_upgrade() {
    let tree = debian_tree(&status_with(SECURITY_CURRENT), Some(&captured_history()));
    let stamp = tree.path().join("var/lib/apt/periodic/upgrade-stamp");
    write(tree.path(), "var/lib/apt/periodic/upgrade-stamp", "");
    let when = at("2026-11-20T06:30:00Z");
    fs::File::options()
        .write(true)
        .open(&stamp)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let f = run(
        tree.path(),
        "2026-11-25T12:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(obs(&f, "last_upgrade"), "2026-11-20T06:30:00Z");
    assert_eq!(f.status, Status::Pass, "{f:#?}");
}

#[test]
fn ubuntu_security_pocket_by_host_and_reboot_required() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc/apt")).unwrap();
    fs::copy(fixture("ubuntu2404/status"), {
        fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
        root.join("var/lib/dpkg/status")
    })
    .unwrap();
    copy_dir(
        &fixture("ubuntu2404/lists"),
        &root.join("var/lib/apt/lists"),
    );
    write(
        root,
        "run/reboot-required",
        fs::read(fixture("ubuntu2404/reboot-required")).unwrap(),
    );
    write(root, "proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
    write(root, "var/log/apt/history.log", "\nStart-Date: 2026-11-20  07:00:00\nCommandline: /usr/bin/unattended-upgrade\nUpgrade: libc6:amd64 (2.39-0ubuntu8.2, 2.39-0ubuntu8.3)\nEnd-Date: 2026-11-20  07:00:40\n");
    let f = run(root, "2026-11-22T00:00:00Z", PatchLevelConfig::default());
    assert_eq!(obs(&f, "pending_updates"), 1);
    assert_eq!(obs(&f, "pending_security_updates"), 1);
    assert_eq!(
        obs(&f, "security_updates"),
        &serde_json::json!(["openssl:amd64"])
    );
    assert_eq!(obs(&f, "reboot_pending"), true);
    assert_eq!(obs(&f, "last_upgrade"), "2026-11-20T07:00:40Z");
    // No Release dates, no state: the security age cannot be told.
    assert_eq!(f.status, Status::Unknown, "{f:#?}");
}

#[test]
fn fedora_tree_reads_the_rpm_log_and_cannot_count_without_dnf() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/dnf/dnf.conf", "[main]\ngpgcheck=True\n");
    write(
        root,
        "var/log/dnf.rpm.log",
        fs::read(fixture("fedora41/dnf.rpm.log")).unwrap(),
    );
    write(
        root,
        "proc/sys/kernel/osrelease",
        "6.11.4-301.fc41.x86_64\n",
    );
    write(root, "lib/modules/6.11.4-301.fc41.x86_64/modules.dep", "");
    write(root, "lib/modules/6.11.5-300.fc41.x86_64/modules.dep", "");
    let f = run(root, "2026-11-25T12:00:00Z", PatchLevelConfig::default());
    assert_eq!(obs(&f, "package_manager"), "dnf");
    assert_eq!(obs(&f, "last_upgrade"), "2026-10-02T07:58:44Z");
    assert_eq!(obs(&f, "pending_updates"), &Value::Null);
    assert_eq!(obs(&f, "reboot_pending"), true);
    assert_eq!(obs(&f, "newest_kernel"), "6.11.5-300.fc41.x86_64");
    // 54 days since the last upgrade: that alone fails, whatever is pending.
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.remediation.as_ref().unwrap().text.contains("dnf upgrade"));
    // Recent enough: the counts it could not take make it unknown, not pass.
    let f = run(root, "2026-10-20T12:00:00Z", PatchLevelConfig::default());
    assert_eq!(f.status, Status::Unknown, "{f:#?}");
    assert!(f
        .reason
        .as_ref()
        .unwrap()
        .contains("not run against a fixture root"));
}

#[test]
fn pacman_log_full_upgrades() {
    let text = fs::read_to_string(fixture("arch/pacman.log")).unwrap();
    // The 2026-10-20 runs were interrupted and failed; `pacman -S vim` is no upgrade.
    let when = others::pacman_last_upgrade(&text).unwrap();
    assert_eq!(
        Timestamp::from_system_time(when).to_string(),
        "2026-10-01T07:12:40Z"
    );
    let text = fs::read_to_string(fixture("arch/pacman-nothing-to-do.log")).unwrap();
    let when = others::pacman_last_upgrade(&text).unwrap();
    assert_eq!(
        Timestamp::from_system_time(when).to_string(),
        "2026-11-02T09:00:02Z"
    );
}

#[test]
fn arch_tree_uses_pacman_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/pacman.conf", "[options]\n");
    write(
        root,
        "var/log/pacman.log",
        fs::read(fixture("arch/pacman-nothing-to-do.log")).unwrap(),
    );
    write(root, "proc/sys/kernel/osrelease", "6.11.5-arch1-1\n");
    // pacman replaces the kernel in place: the running one's modules are gone.
    write(root, "lib/modules/6.11.6-arch1-1/modules.dep", "");
    let f = run(root, "2026-11-10T00:00:00Z", PatchLevelConfig::default());
    assert_eq!(obs(&f, "package_manager"), "pacman");
    assert_eq!(obs(&f, "days_since_last_upgrade"), 7);
    assert_eq!(obs(&f, "reboot_pending"), true);
    assert_eq!(f.status, Status::Unknown, "{f:#?}");
}

#[test]
fn zypper_history_upgrades() {
    let text = fs::read_to_string(fixture("opensuse/history")).unwrap();
    let when = others::zypper_last_upgrade(&text).unwrap();
    assert_eq!(
        Timestamp::from_system_time(when).to_string(),
        "2026-10-05T11:02:17Z"
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "etc/zypp/zypp.conf", "");
    write(dir.path(), "var/log/zypp/history", text);
    let f = run(
        dir.path(),
        "2026-11-25T00:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(obs(&f, "package_manager"), "zypper");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.remediation.as_ref().unwrap().text.contains("zypper"));
}

#[test]
fn no_package_manager_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let f = run(
        dir.path(),
        "2026-11-25T00:00:00Z",
        PatchLevelConfig::default(),
    );
    assert_eq!(f.status, Status::Unknown);
    assert!(f
        .reason
        .as_ref()
        .unwrap()
        .contains("no supported package manager"));
}

fn command_stdout(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dpkg_version_gt(a: &str, b: &str) -> bool {
    std::process::Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .unwrap()
        .success()
}

/// apt's own answer, computed without our code: `apt list --upgradable` (apt's candidate
/// computation) for the pending set, and for each of those `apt-cache policy` plus
/// `dpkg --compare-versions`: a security update is pending when a security suite offers a
/// version newer than the installed one (even when a later point release is the candidate).
fn apt_upgradable() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut all = BTreeSet::new();
    let mut names = Vec::new();
    // "bash/oldstable 5.2.15-2+b13 amd64 [upgradable from: 5.2.15-2+b8]"
    for line in command_stdout("apt", &["list", "--upgradable"])
        .lines()
        .filter(|l| l.contains("[upgradable from:"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let name = words[0].split('/').next().unwrap();
        all.insert(format!("{name}:{}", words[2]));
        names.push(format!("{name}:{}", words[2]));
    }
    let mut security = BTreeSet::new();
    if names.is_empty() {
        return (all, security);
    }
    let mut args = vec!["policy"];
    args.extend(names.iter().map(String::as_str));
    let policy = command_stdout("apt-cache", &args);
    let mut current = String::new();
    let mut installed = String::new();
    let mut version = String::new();
    for line in policy.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = line.trim_end_matches(':').to_owned();
        } else if let Some(v) = line.trim().strip_prefix("Installed:") {
            installed = v.trim().to_owned();
        } else if line.starts_with("     ") && !line.starts_with("      ")
            || line.starts_with(" *** ")
        {
            version = line
                .trim_start_matches(" *** ")
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
        } else if line.contains("-security") && dpkg_version_gt(&version, &installed) {
            let key = if current.contains(':') {
                current.clone()
            } else {
                names
                    .iter()
                    .find(|n| n.split(':').next() == Some(&current))
                    .unwrap()
                    .clone()
            };
            security.insert(key);
        }
    }
    (all, security)
}

#[test]
fn live_counts_match_apt() {
    let has_apt =
        if Path::new("/usr/bin/apt").exists() && Path::new("/var/lib/dpkg/status").exists() {
            Ok(())
        } else {
            Err("apt is not installed on this machine".to_owned())
        };
    if !posture_test_support::can_run(has_apt) {
        return;
    }
    let (all, security) = apt_upgradable();
    let finding = patch_level::check(&Context::system(ChecksConfig::default()));
    println!("{}", serde_json::to_string_pretty(&finding).unwrap());
    assert_eq!(obs(&finding, "package_manager"), "apt");
    assert_eq!(
        obs(&finding, "pending_updates").as_u64(),
        Some(all.len() as u64),
        "apt list --upgradable says {all:?}"
    );
    assert_eq!(
        obs(&finding, "pending_security_updates").as_u64(),
        Some(security.len() as u64)
    );
    let ours: BTreeSet<String> = obs(&finding, "security_updates")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        ours.is_subset(&security),
        "{:?}",
        ours.difference(&security)
    );
    if security.len() <= 50 {
        assert_eq!(ours, security);
    }
    // Without a state directory the age of a pending security update is never known to
    // be within the limit.
    if !security.is_empty() {
        assert_ne!(finding.status, Status::Pass, "{finding:?}");
    }
}
