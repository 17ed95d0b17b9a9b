//! `auto_updates` over real directory trees built in temp dirs from captured files.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside #[test] functions may unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::SystemTime;

use posture_checks::{auto_updates, ChecksConfig, Context};
use posture_core::{Finding, Status};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/auto_updates");

fn fixture(rel: &str) -> Vec<u8> {
    fs::read(Path::new(FIXTURES).join(rel)).unwrap()
}

fn write(root: &Path, rel: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(target, path).unwrap();
}

fn obs<'a>(f: &'a Finding, key: &str) -> &'a Value {
    f.observed.get(key).unwrap_or(&Value::Null)
}

fn run(root: &Path) -> Finding {
    auto_updates::check(&Context::fixture(
        root,
        ChecksConfig::default(),
        SystemTime::now(),
    ))
}

/// A Debian 12 system booted with systemd, apt's timers enabled (as on a fresh install),
/// and unattended-upgrades installed and switched on when `unattended` is true.
fn debian(unattended: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bash =
        "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b8\n";
    let status = if unattended {
        format!(
            "{bash}\n{}",
            String::from_utf8(fixture("debian12/status-unattended-upgrades")).unwrap()
        )
    } else {
        bash.to_owned()
    };
    write(root, "var/lib/dpkg/status", status);
    for name in ["01autoremove", "70debconf"] {
        write(
            root,
            &format!("etc/apt/apt.conf.d/{name}"),
            fixture(&format!("debian12/apt.conf.d/{name}")),
        );
    }
    if unattended {
        for name in ["20auto-upgrades", "50unattended-upgrades"] {
            write(
                root,
                &format!("etc/apt/apt.conf.d/{name}"),
                fixture(&format!("debian12/apt.conf.d/{name}")),
            );
        }
    }
    for timer in ["apt-daily.timer", "apt-daily-upgrade.timer"] {
        write(
            root,
            &format!("lib/systemd/system/{timer}"),
            fixture(&format!("debian12/{timer}")),
        );
        link(
            root,
            &format!("etc/systemd/system/timers.target.wants/{timer}"),
            &format!("/lib/systemd/system/{timer}"),
        );
    }
    fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    dir
}

#[test]
fn unattended_upgrades_on_passes() {
    let tree = debian(true);
    let f = run(tree.path());
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert_eq!(obs(&f, "installed"), true);
    assert_eq!(obs(&f, "unattended_upgrade"), true);
    assert_eq!(obs(&f, "apt_daily_upgrade_timer"), "enabled");
    assert!(f
        .source
        .iter()
        .any(|s| s == "/etc/apt/apt.conf.d/20auto-upgrades"));
}

#[test]
fn not_installed_fails_with_how_to_enable() {
    let tree = debian(false);
    let f = run(tree.path());
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.summary.contains("unattended-upgrades is not installed"));
    assert!(f.summary.contains("Unattended-Upgrade is not enabled"));
    assert!(f.remediation.unwrap().text.contains("dpkg-reconfigure"));
}

#[test]
fn debconf_answer_no_fails() {
    let tree = debian(true);
    // The file the package installs when the debconf question is answered "No".
    write(
        tree.path(),
        "etc/apt/apt.conf.d/20auto-upgrades",
        fixture("debian12/20auto-upgrades-disabled"),
    );
    let f = run(tree.path());
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(obs(&f, "unattended_upgrade"), false);
    assert_eq!(obs(&f, "update_package_lists"), false);
}

#[test]
fn later_file_overrides_and_ignored_names_do_not() {
    let tree = debian(true);
    write(
        tree.path(),
        "etc/apt/apt.conf.d/99local",
        "APT { Periodic { Unattended-Upgrade \"0\"; }; };\n",
    );
    assert_eq!(run(tree.path()).status, Status::Fail);
    // apt skips `.dpkg-old` files, so this one turns nothing off.
    let tree = debian(true);
    write(
        tree.path(),
        "etc/apt/apt.conf.d/99local.dpkg-old",
        "APT::Periodic::Unattended-Upgrade \"0\";\n",
    );
    assert_eq!(run(tree.path()).status, Status::Pass);
}

#[test]
fn masked_or_disabled_timer_fails() {
    let tree = debian(true);
    link(
        tree.path(),
        "etc/systemd/system/apt-daily-upgrade.timer",
        "/dev/null",
    );
    let f = run(tree.path());
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(obs(&f, "apt_daily_upgrade_timer"), "masked");

    let tree = debian(true);
    fs::remove_file(
        tree.path()
            .join("etc/systemd/system/timers.target.wants/apt-daily.timer"),
    )
    .unwrap();
    let f = run(tree.path());
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(obs(&f, "apt_daily_timer"), "disabled");
}

#[test]
fn without_systemd_the_cron_job_schedules_apt() {
    let tree = debian(true);
    fs::remove_dir_all(tree.path().join("run/systemd")).unwrap();
    fs::remove_dir_all(tree.path().join("etc/systemd/system/timers.target.wants")).unwrap();
    assert_eq!(run(tree.path()).status, Status::Fail);
    write(tree.path(), "etc/cron.daily/apt-compat", "#!/bin/sh\n");
    assert_eq!(run(tree.path()).status, Status::Pass);
}

fn fedora(apply: bool, timer: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/dnf/dnf.conf", "[main]\ngpgcheck=True\n");
    let conf = String::from_utf8(fixture("fedora/automatic.conf")).unwrap();
    let conf = if apply {
        conf.replace("apply_updates = no", "apply_updates = yes")
    } else {
        conf
    };
    write(root, "etc/dnf/automatic.conf", conf);
    for unit in ["dnf-automatic.timer", "dnf-automatic-install.timer"] {
        write(
            root,
            &format!("usr/lib/systemd/system/{unit}"),
            "[Timer]\nOnCalendar=*-*-* 6:00\n",
        );
    }
    if !timer.is_empty() {
        link(
            root,
            &format!("etc/systemd/system/timers.target.wants/{timer}"),
            &format!("/usr/lib/systemd/system/{timer}"),
        );
    }
    dir
}

#[test]
fn dnf_automatic() {
    // Shipped config (apply_updates = no) with the plain timer: downloads only.
    let f = run(fedora(false, "dnf-automatic.timer").path());
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.summary.contains("only downloaded"), "{}", f.summary);
    // The install timer applies regardless of the config.
    let f = run(fedora(false, "dnf-automatic-install.timer").path());
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    // apply_updates = yes with the plain timer.
    let f = run(fedora(true, "dnf-automatic.timer").path());
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    assert_eq!(obs(&f, "upgrade_type"), "default");
    // Installed, nothing enabled.
    let f = run(fedora(true, "").path());
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(obs(&f, "timer"), "disabled");
}

#[test]
fn other_managers_are_unknown_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "etc/pacman.conf", "[options]\n");
    let f = run(dir.path());
    assert_eq!(f.status, Status::Unknown);
    assert!(f.reason.unwrap().contains("pacman"));
}

#[test]
fn live_check_runs_on_this_machine() {
    let f = auto_updates::check(&Context::system(ChecksConfig::default()));
    println!("{}", serde_json::to_string_pretty(&f).unwrap());
    assert!(f.check_invariants().is_ok());
    let apt = if Path::new("/var/lib/dpkg/status").exists() && Path::new("/etc/apt").exists() {
        Ok(())
    } else {
        Err("not an apt system".to_owned())
    };
    if posture_test_support::can_run(apt) {
        let installed = std::process::Command::new("dpkg-query")
            .args(["-W", "-f", "${Status}", "unattended-upgrades"])
            .output()
            .unwrap();
        let installed = String::from_utf8_lossy(&installed.stdout).ends_with(" installed");
        assert_eq!(obs(&f, "installed"), installed);
        if !installed {
            assert_eq!(f.status, Status::Fail);
        }
    }
}
