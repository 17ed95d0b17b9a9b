//! The `secure_boot` check over real sysfs-shaped trees built from the efivar fixtures in
//! `tests/fixtures/secure_boot/`, and over this machine.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
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

// ---- signature databases (Microsoft's published certificates and dbx updates) ----------

use posture_checks::secure_boot::{eventlog, siglist};

const IMAGE_SECURITY_GUID: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

impl Tree {
    fn var(self, name: &str, guid: &str, fixture_name: &str) -> Self {
        let efivars = self.path("sys/firmware/efi/efivars");
        std::fs::write(
            efivars.join(format!("{name}-{guid}")),
            fixture(fixture_name),
        )
        .unwrap();
        self
    }

    fn event_log(self, fixture_name: &str) -> Self {
        let dir = self.path("sys/kernel/security/tpm0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("binary_bios_measurements"), fixture(fixture_name)).unwrap();
        self
    }
}

fn common_names(db: &siglist::SignatureDb) -> Vec<String> {
    db.certificates
        .iter()
        .map(|c| c.common_name.clone().unwrap())
        .collect()
}

#[test]
fn db_and_kek_list_the_microsoft_2011_and_2023_cas_with_expiry() {
    let db = siglist::parse_efivar_db(&fixture("db-2011-2023")).unwrap();
    assert_eq!(
        common_names(&db),
        [
            "Microsoft Corporation UEFI CA 2011",
            "Microsoft Windows Production PCA 2011",
            "Microsoft UEFI CA 2023",
            "Windows UEFI CA 2023",
            "Microsoft Option ROM UEFI CA 2023",
        ]
    );
    let uefi_ca_2011 = &db.certificates[0];
    assert!(uefi_ca_2011
        .issuer
        .contains("Microsoft Corporation Third Party Marketplace Root"));
    assert!(
        uefi_ca_2011.not_after.starts_with("2026-06-27"),
        "{}",
        uefi_ca_2011.not_after
    );
    assert_eq!(uefi_ca_2011.owner, "77fa9abd-0359-4d32-bd60-28f4e78f784b");
    let kek = siglist::parse_efivar_db(&fixture("KEK-2011-2023")).unwrap();
    assert_eq!(
        common_names(&kek),
        [
            "Microsoft Corporation KEK CA 2011",
            "Microsoft Corporation KEK 2K CA 2023"
        ]
    );
}

#[test]
fn dbx_is_compared_with_microsofts_current_revocations() {
    let current = siglist::assess_dbx(&siglist::parse_efivar_db(&fixture("dbx-current")).unwrap());
    assert_eq!((current.reference_entries, current.missing), (443, 0));
    assert!(!current.windows_pca_2011_revoked);
    let with_2024 =
        siglist::assess_dbx(&siglist::parse_efivar_db(&fixture("dbx-current-2024")).unwrap());
    assert_eq!(with_2024.missing, 0);
    assert!(
        with_2024.windows_pca_2011_revoked,
        "CVE-2023-24932 revocation"
    );
    let old = siglist::assess_dbx(&siglist::parse_efivar_db(&fixture("dbx-2024-only")).unwrap());
    assert!(old.missing > 400, "{old:?}");
}

#[test]
fn truncated_signature_list_is_an_error() {
    let bytes = fixture("db-2011");
    assert!(siglist::parse_efivar_db(&bytes[..bytes.len() - 10]).is_err());
}

fn enabled_tree() -> Tree {
    Tree::uefi(Some("SecureBoot-enabled"), Some("SetupMode-user"))
        .var("db", IMAGE_SECURITY_GUID, "db-2011-2023")
        .var("KEK", GUID, "KEK-2011-2023")
}

#[test]
fn enabled_with_current_dbx_passes_and_reports_the_2023_cas() {
    let finding = enabled_tree()
        .var("dbx", IMAGE_SECURITY_GUID, "dbx-current-2024")
        .check();
    assert_eq!(finding.status, Status::Pass, "{}", finding.summary);
    let cas = &finding.observed["signature_databases"]["microsoft_cas"];
    assert_eq!(cas["ca_2023_present"].as_array().unwrap().len(), 4);
    assert_eq!(
        cas["ca_2011_revoked"],
        json!(["Microsoft Windows Production PCA 2011"])
    );
    assert_eq!(
        finding.observed["signature_databases"]["db"]["certificates"][2]["common_name"],
        "Microsoft UEFI CA 2023"
    );
}

#[test]
fn enabled_with_outdated_dbx_fails_with_the_update_to_apply() {
    let finding = enabled_tree()
        .var("dbx", IMAGE_SECURITY_GUID, "dbx-2024-only")
        .check();
    assert_eq!(finding.status, Status::Fail, "{}", finding.summary);
    assert!(
        finding.summary.contains("dbx) is outdated"),
        "{}",
        finding.summary
    );
    assert!(finding.remediation.unwrap().text.contains("fwupdmgr"));
    assert_eq!(finding.observed["enabled"], json!(true));
}

// ---- TCG event logs (google/go-attestation test data, real machines) -------------------

#[test]
fn event_log_replays_to_the_pcrs_quoted_with_it() {
    // A GCP Shielded VM running Windows: the raw log and the SHA-1 PCRs read with it.
    // This log is in the SHA-1 (TCG 1.2) format; the others below are crypto-agile.
    let log = eventlog::parse(&fixture("windows_gcp_shielded_vm_eventlog")).unwrap();
    assert!(!log.crypto_agile);
    let quoted: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&fixture("windows_gcp_shielded_vm_pcrs_sha1.json")).unwrap();
    let replayed = eventlog::replay(&log, eventlog::ALG_SHA1).unwrap();
    assert!(replayed.len() >= 8, "{replayed:?}");
    for (pcr, value) in &replayed {
        assert_eq!(
            &siglist::hex(value),
            &quoted[&pcr.to_string()],
            "PCR {pcr} replays to the quoted value"
        );
    }
    // A log with one event altered no longer replays to the quote.
    let mut tampered = log.clone();
    let event = tampered
        .events
        .iter_mut()
        .find(|e| e.pcr == 4 && e.kind != 3)
        .unwrap();
    event.digests.iter_mut().for_each(|(_, d)| d[0] ^= 1);
    let replayed = eventlog::replay(&tampered, eventlog::ALG_SHA1).unwrap();
    assert_ne!(siglist::hex(&replayed[&4]), quoted["4"]);
}

#[test]
fn event_log_reports_secure_boot_state_boot_loader_and_authority() {
    let log = eventlog::parse(&fixture("sb_cert_eventlog")).unwrap();
    assert!(log.crypto_agile);
    let facts = eventlog::facts(&log);
    assert_eq!(facts.secure_boot, Some(true), "{facts:#?}");
    assert!(facts.measured_variables.iter().any(|v| v == "db"));
    assert!(!facts.boot_applications.is_empty());
    assert!(!facts.authorities.is_empty(), "{facts:#?}");

    let ubuntu = eventlog::facts(
        &eventlog::parse(&fixture("ubuntu_2104_shielded_vm_no_secure_boot_eventlog")).unwrap(),
    );
    assert_eq!(ubuntu.secure_boot, Some(false), "{ubuntu:#?}");
    assert!(
        ubuntu.ipl.iter().any(|l| l.contains("vmlinuz")),
        "{:#?}",
        ubuntu.ipl
    );
    assert!(!ubuntu.pcr9_digests.is_empty());
}

#[test]
fn event_log_in_the_check_gives_replayed_pcrs_and_facts() {
    let finding = enabled_tree()
        .var("dbx", IMAGE_SECURITY_GUID, "dbx-current")
        .event_log("sb_cert_eventlog")
        .check();
    let measured = &finding.observed["measured_boot"];
    assert_eq!(
        measured["facts"]["secure_boot"],
        json!(true),
        "{measured:#}"
    );
    assert_eq!(measured["replay_bank"], "0x000b");
    assert_eq!(measured["replayed_pcrs"]["7"].as_str().unwrap().len(), 64);
    // The verifier side (posture-core) reads exactly this shape.
    let boot = posture_core::measured_boot::MeasuredBoot::from_finding(&finding).unwrap();
    assert!(boot.replayed.contains_key(&7) && boot.replayed.contains_key(&4));
    assert_eq!(boot.secure_boot_enabled(), Some(true));
    assert!(!boot.authorities().is_empty());
}

#[test]
fn truncated_event_log_is_an_error() {
    let bytes = fixture("sb_cert_eventlog");
    assert!(eventlog::parse(&bytes[..bytes.len() - 7]).is_err());
}

// ---- fwupd's HSI over a real (private) D-Bus, fwupd's side played by the test -----------

const FWUPD_ROOT: &str = "POSTURE_TEST_FWUPD_ROOT";
const FWUPD_OUT: &str = "POSTURE_TEST_FWUPD_OUT";

/// Helper run by `fwupd_hsi_is_read_over_dbus` with `DBUS_SYSTEM_BUS_ADDRESS` set.
#[test]
#[ignore = "helper: run by fwupd_hsi_is_read_over_dbus with a private system bus"]
fn fwupd_child() {
    let mut ctx = Context::fixture(
        std::env::var(FWUPD_ROOT).unwrap(),
        ChecksConfig::default(),
        SystemTime::now(),
    );
    ctx.live = true;
    let finding = secure_boot::check(&ctx);
    std::fs::write(
        std::env::var(FWUPD_OUT).unwrap(),
        serde_json::to_vec(&finding).unwrap(),
    )
    .unwrap();
}

struct FakeFwupd;

#[zbus::interface(name = "org.freedesktop.fwupd")]
impl FakeFwupd {
    #[zbus(property)]
    fn host_security_id(&self) -> String {
        "HSI:2! (v1.9.16)".to_owned()
    }
}

fn run_fwupd_child(tree: &Tree, serve: bool) -> Finding {
    let bus = posture_test_support::PrivateBus::start();
    let address = bus.address.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _fwupd = serve.then(|| {
        runtime.block_on(async {
            zbus::connection::Builder::address(address.as_str())
                .unwrap()
                .name("org.freedesktop.fwupd")
                .unwrap()
                .serve_at("/", FakeFwupd)
                .unwrap()
                .build()
                .await
                .unwrap()
        })
    });
    let out = bus.path("finding.json");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fwupd_child", "--ignored", "--nocapture"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .env(FWUPD_ROOT, tree.dir.path())
        .env(FWUPD_OUT, &out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

#[test]
fn fwupd_hsi_is_read_over_dbus() {
    let tree = enabled_tree().var("dbx", IMAGE_SECURITY_GUID, "dbx-current");
    let finding = run_fwupd_child(&tree, true);
    assert_eq!(
        finding.observed["fwupd_hsi"],
        json!({ "id": "HSI:2! (v1.9.16)", "level": 2, "runtime_issues": true })
    );
    assert_eq!(
        finding.status,
        Status::Pass,
        "HSI is evidence, not a verdict"
    );
    // No fwupd on the bus: the fact is missing with the reason, nothing else changes.
    let finding = run_fwupd_child(&tree, false);
    assert!(finding.observed["fwupd_hsi"]["unavailable"]
        .as_str()
        .unwrap()
        .contains("fwupd"));
    assert_eq!(finding.status, Status::Pass);
}

#[test]
fn shim_mok_lists_are_reported_with_their_certificates() {
    // MokListRT holds whatever the machine owner enrolled (a DKMS signing key, a vendor
    // key); here a real certificate list stands in for it.
    let finding = enabled_tree()
        .var(
            "MokListRT",
            "605dab50-e046-4300-abb6-3dd810dd8b23",
            "KEK-2011",
        )
        .var("dbx", IMAGE_SECURITY_GUID, "dbx-current")
        .check();
    let mok = &finding.observed["signature_databases"]["MokListRT"];
    assert_eq!(
        mok["certificates"][0]["common_name"],
        "Microsoft Corporation KEK CA 2011"
    );
    assert!(finding
        .source
        .iter()
        .any(|s| s.ends_with("MokListRT-605dab50-e046-4300-abb6-3dd810dd8b23")));
}
