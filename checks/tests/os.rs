//! The `os` check over real os-release files of five distributions (fixtures/os/), run
//! by the real check code over a tree built in a temp dir.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside #[test] functions are not covered by clippy.toml's test allowance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use posture_checks::{os, ChecksConfig, Context};
use posture_core::{Status, Timestamp};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/os")
        .join(name)
}

/// 2026-11-23, the day these expectations were written.
fn today() -> SystemTime {
    Timestamp::parse("2026-11-23T12:00:00Z")
        .unwrap()
        .system_time()
}

/// A tree with the fixture at `os_release_path` (e.g. `etc/os-release`) and a kernel release.
fn tree(fixture_name: &str, os_release_path: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join(os_release_path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(fixture(fixture_name), target).unwrap();
    std::fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
    std::fs::write(
        dir.path().join("proc/sys/kernel/osrelease"),
        "6.1.0-26-amd64\n",
    )
    .unwrap();
    dir
}

fn run(fixture_name: &str) -> posture_core::Finding {
    let dir = tree(fixture_name, "etc/os-release");
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), today());
    os::check(&ctx)
}

#[test]
fn debian_12_is_supported() {
    let f = run("debian-12.os-release");
    assert_eq!(f.status, Status::Pass, "{f:?}");
    assert_eq!(f.observed["id"], "debian");
    assert_eq!(f.observed["version_id"], "12");
    assert_eq!(f.observed["codename"], "bookworm");
    assert_eq!(f.observed["end_of_life"], "2028-06-30");
    assert_eq!(f.observed["kernel"], "6.1.0-26-amd64");
    assert_eq!(
        f.source,
        vec!["/etc/os-release", "/proc/sys/kernel/osrelease"]
    );
}

#[test]
fn debian_11_reached_end_of_life() {
    let f = run("debian-11.os-release");
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert_eq!(f.observed["end_of_life"], "2026-08-31");
    assert!(f.remediation.unwrap().text.contains("Upgrade"));
}

#[test]
fn ubuntu_24_04_is_supported() {
    let f = run("ubuntu-24.04.os-release");
    assert_eq!(f.status, Status::Pass, "{f:?}");
    assert_eq!(f.observed["name"], "Ubuntu 24.04.1 LTS");
    assert_eq!(f.observed["version_id"], "24.04");
}

#[test]
fn fedora_41_reached_end_of_life() {
    let f = run("fedora-41.os-release");
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert_eq!(f.observed["version_id"], "41");
    // An empty VERSION_CODENAME="" is absent, not "".
    assert!(f.observed["codename"].is_null());
}

#[test]
fn rolling_releases_pass_as_rolling() {
    for name in ["arch.os-release", "opensuse-tumbleweed.os-release"] {
        let f = run(name);
        assert_eq!(f.status, Status::Pass, "{name}: {f:?}");
        assert_eq!(f.observed["support"], "rolling", "{name}");
    }
}

#[test]
fn opensuse_leap_15_6_reached_end_of_life() {
    let f = run("opensuse-leap-15.6.os-release");
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert_eq!(f.observed["id"], "opensuse-leap");
}

#[test]
fn unknown_release_is_unknown_not_pass() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/os-release"),
        "ID=plan9\nVERSION_ID=4\n",
    )
    .unwrap();
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), today());
    let f = os::check(&ctx);
    assert_eq!(f.status, Status::Unknown);
    assert!(f.reason.unwrap().contains("end of life"));
}

#[test]
fn usr_lib_os_release_is_the_fallback() {
    let dir = tree("debian-12.os-release", "usr/lib/os-release");
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), today());
    let f = os::check(&ctx);
    assert_eq!(f.status, Status::Pass);
    assert_eq!(f.source[0], "/usr/lib/os-release");
    let facts = os::os_facts(&ctx);
    assert_eq!(facts.id, "debian");
    assert_eq!(facts.name, "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(facts.kernel, "6.1.0-26-amd64");
}

#[test]
fn missing_os_release_is_unknown_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), today());
    let f = os::check(&ctx);
    assert_eq!(f.status, Status::Unknown);
    assert!(f.reason.unwrap().contains("os-release"));
}
