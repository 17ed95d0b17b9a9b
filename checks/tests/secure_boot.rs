//! The `secure_boot` check over real sysfs-shaped trees built from the efivar fixtures in
//! `tests/fixtures/secure_boot/`, and over this machine.

// Test helpers outside `#[test]` functions may unwrap too (clippy.toml covers only those).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use posture_checks::{secure_boot, ChecksConfig, Context};
use posture_core::{Finding, Status};
use serde_json::{json, Value};

const GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/secure_boot")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A root with `/sys/firmware/efi/efivars` holding the named fixtures (`None`: variable absent).
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn uefi(secure_boot: Option<&str>, setup_mode: Option<&str>) -> Self {
        let tree = Tree::bios();
        let efivars = tree.path("sys/firmware/efi/efivars");
        std::fs::create_dir_all(&efivars).unwrap();
        // efivarfs always holds many other variables; one is enough to show it is mounted.
        std::fs::write(
            efivars.join(format!("BootCurrent-{GUID}")),
            [6, 0, 0, 0, 1, 0],
        )
        .unwrap();
        if let Some(name) = secure_boot {
            std::fs::write(efivars.join(format!("SecureBoot-{GUID}")), fixture(name)).unwrap();
        }
        if let Some(name) = setup_mode {
            std::fs::write(efivars.join(format!("SetupMode-{GUID}")), fixture(name)).unwrap();
        }
        tree
    }

    fn bios() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/firmware")).unwrap();
        Tree { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn lockdown(self, name: &str) -> Self {
        let dir = self.path("sys/kernel/security");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lockdown"), fixture(name)).unwrap();
        self
    }

    fn check(&self) -> Finding {
        let ctx = Context::fixture(self.dir.path(), ChecksConfig::default(), SystemTime::now());
        let finding = secure_boot::check(&ctx);
        finding.check_invariants().unwrap();
        finding
    }
}

#[test]
fn enabled_with_keys_enrolled_passes() {
    let finding = Tree::uefi(Some("SecureBoot-enabled"), Some("SetupMode-user"))
        .lockdown("lockdown-integrity")
        .check();
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(finding.observed["enabled"], json!(true));
    assert_eq!(finding.observed["setup_mode"], json!(false));
    assert_eq!(finding.observed["lockdown"], json!("integrity"));
    assert!(finding
        .source
        .contains(&format!("/sys/firmware/efi/efivars/SecureBoot-{GUID}")));
}

#[test]
fn disabled_fails_with_firmware_remediation() {
    let finding = Tree::uefi(Some("SecureBoot-disabled"), Some("SetupMode-user"))
        .lockdown("lockdown-none")
        .check();
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(finding.observed["enabled"], json!(false));
    assert_eq!(finding.observed["lockdown"], json!("none"));
    let remediation = finding.remediation.unwrap();
    assert!(
        remediation.text.contains("firmware setup"),
        "{}",
        remediation.text
    );
}

#[test]
fn setup_mode_fails_with_key_enrollment_remediation() {
    let finding = Tree::uefi(Some("SecureBoot-disabled"), Some("SetupMode-setup")).check();
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(finding.observed["setup_mode"], json!(true));
    assert!(finding.remediation.unwrap().text.contains("keys"));
}

#[test]
fn truncated_or_garbage_efivars_are_unknown_never_pass() {
    for bad in [
        "SecureBoot-truncated",
        "SecureBoot-short",
        "SecureBoot-garbage",
        "SecureBoot-not-boolean",
    ] {
        let finding = Tree::uefi(Some(bad), Some("SetupMode-user")).check();
        assert_eq!(finding.status, Status::Unknown, "{bad}: {finding:?}");
        assert_eq!(finding.observed["enabled"], Value::Null, "{bad}");
        assert!(finding.reason.unwrap().contains("SecureBoot"), "{bad}");
    }
    // A garbage SetupMode must not let an enabled SecureBoot pass either.
    let finding = Tree::uefi(Some("SecureBoot-enabled"), Some("SecureBoot-garbage")).check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("SetupMode"));
}

#[test]
fn missing_setup_mode_is_unknown() {
    let finding = Tree::uefi(Some("SecureBoot-enabled"), None).check();
    assert_eq!(finding.status, Status::Unknown);
    assert_eq!(finding.observed["enabled"], json!(true));
    assert_eq!(finding.observed["setup_mode"], Value::Null);
}

#[test]
fn firmware_without_secure_boot_variable_fails() {
    let finding = Tree::uefi(None, None).check();
    assert_eq!(finding.status, Status::Fail);
    assert!(finding.summary.contains("does not support"));
}

#[test]
fn efivarfs_not_mounted_is_unknown() {
    let tree = Tree::bios();
    std::fs::create_dir_all(tree.path("sys/firmware/efi/efivars")).unwrap();
    let finding = tree.check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("efivarfs"));
}

#[test]
fn legacy_sysfs_efivars_are_read() {
    let tree = Tree::bios();
    for (name, data) in [
        ("SecureBoot", "legacy-data-enabled"),
        ("SetupMode", "SetupMode-user"),
    ] {
        let dir = tree.path(&format!("sys/firmware/efi/vars/{name}-{GUID}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = fixture(data);
        if name == "SetupMode" {
            bytes.drain(..4); // the legacy interface has no attribute prefix
        }
        std::fs::write(dir.join("data"), bytes).unwrap();
    }
    let finding = tree.check();
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
}

#[test]
fn legacy_bios_is_unknown_with_reason() {
    let finding = Tree::bios().lockdown("lockdown-none").check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("legacy BIOS"));
    assert_eq!(finding.observed["uefi"], json!(false));
    assert_eq!(finding.observed["enabled"], Value::Null);
    assert_eq!(finding.observed["lockdown"], json!("none"));
}

/// This machine: the expected status is worked out here from the raw files.
#[test]
fn live_machine_agrees_with_its_efivars() {
    let finding = secure_boot::check(&Context::system(ChecksConfig::default()));
    finding.check_invariants().unwrap();
    if !Path::new("/sys/firmware/efi").exists() {
        assert_eq!(finding.status, Status::Unknown, "{finding:?}");
        assert_eq!(finding.observed["uefi"], json!(false));
        return;
    }
    let data = |name: &str| {
        let bytes = std::fs::read(format!("/sys/firmware/efi/efivars/{name}-{GUID}")).ok()?;
        match bytes.as_slice() {
            [_, _, _, _, b @ (0 | 1)] => Some(*b == 1),
            _ => None,
        }
    };
    match (data("SecureBoot"), data("SetupMode")) {
        (Some(true), Some(false)) => assert_eq!(finding.status, Status::Pass),
        (Some(_), Some(_)) => assert_eq!(finding.status, Status::Fail),
        _ => assert_ne!(finding.status, Status::Pass, "{finding:?}"),
    }
}
