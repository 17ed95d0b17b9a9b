//! The `tpm` check over sysfs-shaped trees built from `tests/fixtures/tpm/`, and over this
//! machine.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside `#[test]` functions may unwrap too (clippy.toml covers only those).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use posture_checks::{tpm, ChecksConfig, Context};
use posture_core::{Finding, Status};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tpm")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Tree {
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Tree {
    /// A root whose `/sys/class` exists (sysfs is mounted) but has no TPM.
    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/class")).unwrap();
        Tree {
            root: dir.path().to_owned(),
            _dir: Some(dir),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// A TPM 2.0 as a 5.6+ kernel shows it, with its resource manager device.
    fn tpm2(self) -> Self {
        self.write(
            "sys/class/tpm/tpm0/tpm_version_major",
            &fixture("tpm_version_major-2"),
        );
        std::fs::create_dir_all(self.path("sys/class/tpmrm/tpmrm0")).unwrap();
        self.write("dev/tpmrm0", b"");
        self
    }

    fn check(&self) -> Finding {
        let ctx = Context::fixture(&self.root, ChecksConfig::default(), SystemTime::now());
        let finding = tpm::check(&ctx);
        finding.check_invariants().unwrap();
        finding
    }
}

#[test]
fn tpm2_that_this_user_can_open_passes() {
    let finding = Tree::empty().tpm2().check();
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(finding.observed["present"], json!(true));
    assert_eq!(finding.observed["version"], json!("2.0"));
    assert_eq!(finding.observed["accessible"], json!(true));
    assert_eq!(finding.observed["device"], json!("/dev/tpmrm0"));
    assert!(finding.remediation.is_none());
}

#[test]
fn tpm2_on_an_old_kernel_is_known_by_its_resource_manager() {
    let tree = Tree::empty();
    std::fs::create_dir_all(tree.path("sys/class/tpm/tpm0/device")).unwrap();
    std::fs::create_dir_all(tree.path("sys/class/tpmrm/tpmrm0")).unwrap();
    tree.write("dev/tpmrm0", b"");
    let finding = tree.check();
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(finding.observed["version"], json!("2.0"));
}

#[test]
fn no_tpm_fails_with_firmware_remediation() {
    let finding = Tree::empty().check();
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(finding.observed["present"], json!(false));
    assert_eq!(finding.observed["version"], Value::Null);
    let text = finding.remediation.unwrap().text;
    assert!(
        text.contains("fTPM") && text.contains("PTT") && text.contains("firmware setup"),
        "{text}"
    );

    // The tpm class exists but holds no device (driver loaded, TPM disabled).
    let tree = Tree::empty();
    std::fs::create_dir_all(tree.path("sys/class/tpm")).unwrap();
    assert_eq!(tree.check().status, Status::Fail);
}

#[test]
fn tpm_1_2_only_fails() {
    for (file, bytes) in [
        ("tpm_version_major", fixture("tpm_version_major-1")),
        ("caps", fixture("caps-1.2")),
        ("device/caps", fixture("caps-1.2")),
    ] {
        let tree = Tree::empty();
        tree.write(&format!("sys/class/tpm/tpm0/{file}"), &bytes);
        let finding = tree.check();
        assert_eq!(finding.status, Status::Fail, "{file}: {finding:?}");
        assert_eq!(finding.observed["version"], json!("1.2"), "{file}");
        assert!(finding.remediation.unwrap().text.contains("2.0"));
    }
}

#[test]
fn tpm_of_unknown_version_is_unknown() {
    let tree = Tree::empty();
    std::fs::create_dir_all(tree.path("sys/class/tpm/tpm0")).unwrap();
    let finding = tree.check();
    assert_eq!(finding.status, Status::Unknown, "{finding:?}");
    assert_eq!(finding.observed["present"], json!(true));
}

#[test]
fn without_sysfs_it_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), SystemTime::now());
    let finding = tpm::check(&ctx);
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("/sys/class/tpm"));
}

#[test]
fn missing_device_node_passes_on_presence_but_says_so() {
    let tree = Tree::empty().tpm2();
    std::fs::remove_file(tree.path("dev/tpmrm0")).unwrap();
    let finding = tree.check();
    assert_eq!(finding.status, Status::Pass);
    assert_eq!(finding.observed["accessible"], json!(false));
    assert!(finding.remediation.unwrap().text.contains("/dev/tpmrm0"));
}

const INNER_ROOT: &str = "POSTURE_TEST_TPM_ROOT";

/// The device permission case needs a user the file mode applies to; root bypasses it.
/// As root this re-runs [`inner_unprivileged_open_is_denied`] as `nobody` via setpriv.
#[test]
fn tpm2_this_user_cannot_open_passes_with_tss_hint() {
    let tree = Tree::empty().tpm2();
    // Like udev's default for tpmrm: owned by tss, mode 0660; nobody is not in the group.
    let device = tree.path("dev/tpmrm0");
    std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The temp dir is 0700; the unprivileged user must reach the tree (the temp root
    // itself, /tmp, is world-searchable).
    for sub in [
        "",
        "sys",
        "sys/class",
        "sys/class/tpm",
        "sys/class/tpm/tpm0",
        "dev",
    ] {
        std::fs::set_permissions(tree.path(sub), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    if !is_root() {
        // Unprivileged already: the 0600 file of another owner... is our own file, so
        // take away our own access instead.
        std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o000)).unwrap();
        assert_denied(&tree.check());
        return;
    }
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "inner_unprivileged_open_is_denied",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER_ROOT, &tree.root)
        .output()
        .expect("setpriv (util-linux) runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "inner test as nobody failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "run by tpm2_this_user_cannot_open_passes_with_tss_hint as an unprivileged user"]
fn inner_unprivileged_open_is_denied() {
    let root = std::env::var_os(INNER_ROOT).expect("started by the outer test");
    assert!(!is_root(), "the inner test must run unprivileged");
    let ctx = Context::fixture(root, ChecksConfig::default(), SystemTime::now());
    assert_denied(&tpm::check(&ctx));
}

fn assert_denied(finding: &Finding) {
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(finding.observed["accessible"], json!(false));
    let text = &finding.remediation.as_ref().unwrap().text;
    assert!(text.contains("usermod -aG tss"), "{text}");
}

fn is_root() -> bool {
    posture_core::process::is_root()
}

/// This machine: the expected status is worked out here from sysfs and /dev.
#[test]
fn live_machine_agrees_with_sysfs() {
    let finding = tpm::check(&Context::system(ChecksConfig::default()));
    finding.check_invariants().unwrap();
    let devices: Vec<PathBuf> = std::fs::read_dir("/sys/class/tpm")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("tpm")
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    let majors: Vec<String> = devices
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("tpm_version_major")).ok())
        .map(|s| s.trim().to_owned())
        .collect();
    if majors.iter().any(|m| m == "2") {
        assert_eq!(finding.status, Status::Pass, "{finding:?}");
        let can_open = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(finding.observed["device"].as_str().unwrap())
            .is_ok();
        assert_eq!(finding.observed["accessible"], json!(can_open));
    } else if majors.iter().any(|m| m == "1") {
        assert_eq!(finding.status, Status::Fail);
    } else if devices.is_empty() && Path::new("/sys/class").exists() {
        assert_eq!(finding.status, Status::Fail, "{finding:?}");
        assert_eq!(finding.observed["present"], json!(false));
    } else {
        // A TPM whose version this kernel does not print: not a pass we can predict.
        assert_ne!(finding.status, Status::Fail, "{finding:?}");
    }
}
