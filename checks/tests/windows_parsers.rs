//! The Windows checks' pure parsers over the fixtures in `fixtures/windows/` (see their
//! PROVENANCE.md: `*.fl.txt` / `*.wmic.txt` / `manage-bde-*.txt` are outputs published
//! from real machines, read verbatim; `*.json` are constructed in the shape the checks'
//! scripts write). Compiled on every OS: run on Linux in the normal test run, and under
//! Wine by `scripts/cross.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use posture_checks::auto_updates::windows_update_policy;
use posture_checks::disk_encryption::bitlocker::{self, VolumeState};
use posture_checks::disk_encryption::manage_bde;
use posture_checks::edr::catalogue;
use posture_checks::edr::security_center::{self, EngineState};
use posture_checks::edr::windows_products;
use posture_checks::firewall::windows_profiles;
use posture_checks::os::windows_version;
use posture_checks::patch_level::cumulative_updates::{self, LcuState};
use posture_checks::patch_level::windows_update;
use posture_checks::ps_json::from_list_text;
use posture_checks::screen_lock::{problems, windows_policy};
use posture_checks::secure_boot::windows_state::{self, SecureBoot};
use posture_checks::tpm::tbs::{self, TpmAnswer};
use serde_json::Value;

fn fixture_text(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/windows")
        .join(rel);
    std::fs::read_to_string(&path).unwrap()
}

fn fixture(rel: &str) -> Value {
    serde_json::from_str(&fixture_text(rel)).unwrap()
}

/// A published `Format-List` / `wmic /format:list` capture, read as its JSON would be.
fn published(rel: &str) -> Value {
    from_list_text(&fixture_text(rel))
}

#[test]
fn windows_version_and_servicing() {
    let v = windows_version::parse(&fixture("os/win11-24h2-pro.json")).unwrap();
    assert_eq!((v.build, v.ubr), (26100, 4652));
    assert_eq!(
        v.product(),
        "Windows 11",
        "ProductName says 10; the build decides"
    );
    assert_eq!(v.name(), "Windows 11 Professional 24H2 (build 26100.4652)");
    assert_eq!(windows_version::servicing_end(&v), Some("2026-10-13"));
    let e = windows_version::parse(&fixture("os/win10-22h2-enterprise.json")).unwrap();
    assert_eq!(windows_version::servicing_end(&e), Some("2025-10-14"));
    let mut ent = v.clone();
    ent.edition = "Enterprise".into();
    assert_eq!(windows_version::servicing_end(&ent), Some("2027-10-12"));
    ent.edition = "EnterpriseS".into();
    assert_eq!(windows_version::servicing_end(&ent), Some("2029-10-09"));
    assert!(windows_version::parse(&serde_json::json!({"UBR": 1})).is_err());
}

#[test]
fn cumulative_update_table() {
    assert!(matches!(
        cumulative_updates::assess(26100, 4652),
        LcuState::AtLeastTable { kb: "KB5062553" }
    ));
    assert!(matches!(
        cumulative_updates::assess(19045, 5247),
        LcuState::Behind {
            latest_ubr: 6093,
            ..
        }
    ));
    assert_eq!(cumulative_updates::assess(12345, 1), LcuState::UnknownBuild);
}

#[test]
fn windows_update_pending() {
    let none = windows_update::parse(&fixture("patch_level/no-pending.json")).unwrap();
    assert!(none.pending.is_empty());
    assert_eq!(none.security_pending(), 0);
    assert_eq!(none.reboot_required, Some(false));
    assert_eq!(
        none.last_search_success.as_deref(),
        Some("2026-11-30T07:12:44Z")
    );
    let sec = windows_update::parse(&fixture("patch_level/security-pending.json")).unwrap();
    assert_eq!((sec.pending.len(), sec.security_pending()), (2, 1));
    let one = windows_update::parse(&fixture(
        "patch_level/single-nonsecurity-never-searched.json",
    ))
    .unwrap();
    assert_eq!((one.pending.len(), one.security_pending()), (1, 0));
    assert_eq!(one.last_search_success, None);
    assert!(windows_update::parse(&Value::Null).is_err());
}

#[test]
fn bitlocker_volumes() {
    let v = bitlocker::parse(&fixture("disk_encryption/protected-with-usb-stick.json"));
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].state(), VolumeState::Protected);
    assert_eq!(v[0].method_name(), "XTS-AES-128");
    assert_eq!(v[1].method_name(), "XTS-AES-256");
    assert!(!v[2].is_fixed(), "the USB stick is removable");
    assert_eq!(v[2].state(), VolumeState::NotEncrypted);

    let s = bitlocker::parse(&fixture("disk_encryption/suspended-single.json"));
    assert_eq!(s.len(), 1, "a single object is one volume");
    assert_eq!(s[0].state(), VolumeState::Suspended);
    assert_eq!(s[0].suspend_count, Some(1));

    let e = bitlocker::parse(&fixture("disk_encryption/encrypting-and-locked.json"));
    assert_eq!(e[0].state(), VolumeState::EncryptionInProgress);
    assert_eq!(e[1].state(), VolumeState::Unknown);
}

#[test]
fn security_center_product_state() {
    assert_eq!(
        security_center::decode(397_568),
        (EngineState::On, true, true)
    );
    assert_eq!(
        security_center::decode(393_472),
        (EngineState::Off, true, true)
    );
    assert_eq!(
        security_center::decode(266_240),
        (EngineState::On, true, false)
    );
    assert_eq!(
        security_center::decode(262_160),
        (EngineState::Off, false, false)
    );
    let only = security_center::parse(&fixture("edr/defender-only.json")["AntiVirus"]);
    assert_eq!(only.len(), 1);
    assert!(only[0].protecting() && only[0].microsoft);

    let both =
        security_center::parse(&fixture("edr/third-party-beside-defender.json")["AntiVirus"]);
    assert_eq!(both.len(), 2);
    assert!(!both[0].protecting(), "Defender is passive beside Sophos");
    assert!(both[1].protecting() && !both[1].microsoft);
}

#[test]
fn catalogue_products_with_path_checks() {
    let catalogue = catalogue::builtin().unwrap();
    let product = catalogue
        .products
        .iter()
        .find(|p| p.id == "crowdstrike")
        .unwrap();
    let entry = product.entry(catalogue::Os::Windows).unwrap();
    let (services, processes) =
        windows_products::parse(&fixture("edr/crowdstrike-and-impostor.json"));
    let state = windows_products::assess(&product.id, &product.name, entry, &services, &processes);
    assert!(state.installed && state.running);
    assert_eq!(state.verified.len(), 2, "{:?}", state.verified);
    assert_eq!(state.rejected.len(), 1);
    assert!(
        state.rejected[0].contains("Downloads"),
        "{:?}",
        state.rejected
    );

    // The impostor alone does not make the product run.
    let impostor: Vec<_> = processes.into_iter().filter(|p| p.pid == 9120).collect();
    let alone = windows_products::assess(&product.id, &product.name, entry, &[], &impostor);
    assert!(!alone.running && !alone.installed);

    assert_eq!(
        windows_products::service_binary(r#""C:\Program Files\X\a.exe" -k"#),
        r"C:\Program Files\X\a.exe"
    );
    assert_eq!(
        windows_products::service_binary(r"C:\WINDOWS\system32\svchost.exe -k netsvcs"),
        r"C:\WINDOWS\system32\svchost.exe"
    );
}

#[test]
fn firewall_profiles() {
    let on = windows_profiles::parse(&fixture("firewall/all-on.json"));
    assert_eq!(on.len(), 3);
    assert!(on.iter().all(|p| p.problem().is_none()));
    let bad = windows_profiles::parse(&fixture("firewall/private-off-public-allow.json"));
    let problems: Vec<_> = bad.iter().filter_map(|p| p.problem()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("Private") && problems[1].contains("Public"));
}

#[test]
fn secure_boot_state() {
    assert_eq!(
        windows_state::parse(&fixture("secure_boot/uefi-on.json")),
        SecureBoot::On
    );
    assert_eq!(
        windows_state::parse(&fixture("secure_boot/uefi-off-not-admin.json")),
        SecureBoot::Off,
        "the registry answers without elevation"
    );
    assert_eq!(
        windows_state::parse(&fixture("secure_boot/legacy-bios.json")),
        SecureBoot::Legacy
    );
    assert!(matches!(
        windows_state::parse(&serde_json::json!({"Firmware": "UEFI"})),
        SecureBoot::Unknown(_)
    ));
}

#[test]
fn tpm_sources() {
    assert_eq!(tbs::from_tbs(0, 2), TpmAnswer::Present("2.0"));
    assert_eq!(tbs::from_tbs(0, 1), TpmAnswer::Present("1.2"));
    assert_eq!(
        tbs::from_tbs(tbs::TBS_E_TPM_NOT_FOUND, 0),
        TpmAnswer::Absent
    );
    assert!(matches!(
        tbs::from_tbs(0x8028_4001, 0),
        TpmAnswer::Unknown(_)
    ));
    assert_eq!(
        tbs::from_win32_tpm(&fixture("tpm/win32-tpm-2.0.json")),
        (TpmAnswer::Present("2.0"), Some(true))
    );
    assert_eq!(
        tbs::from_win32_tpm(&fixture("tpm/win32-tpm-1.2.json")).0,
        TpmAnswer::Present("1.2")
    );
    assert_eq!(
        tbs::from_win32_tpm(&serde_json::json!([])).0,
        TpmAnswer::Absent
    );
}

#[test]
fn screen_lock_policies() {
    let machine = windows_policy::parse(&fixture("screen_lock/machine-limit-900.json"));
    assert_eq!(
        machine.lock_after_seconds,
        Some(900),
        "the saver has no password"
    );
    assert!(problems(&machine, 15).is_empty());
    assert_eq!(problems(&machine, 10).len(), 1);

    let policy = windows_policy::parse(&fixture("screen_lock/policy-overrides-user.json"));
    assert_eq!(policy.lock_after_seconds, Some(300), "Group Policy wins");

    let no_password = windows_policy::parse(&fixture("screen_lock/saver-without-password.json"));
    assert!(!no_password.lock_enabled);
    assert_eq!(problems(&no_password, 15).len(), 1);
}

#[test]
fn automatic_update_policy() {
    let now = "2026-12-01T10:00:00Z";
    let (ok, _) = windows_update_policy::problems(&fixture("auto_updates/default.json"), now);
    assert!(ok.is_empty(), "{ok:?}");
    let (off, options) =
        windows_update_policy::problems(&fixture("auto_updates/off-everywhere.json"), now);
    assert_eq!(off.len(), 4, "{off:?}");
    assert_eq!(options, Some(2));
    // The pause is over after its expiry.
    let (later, _) = windows_update_policy::problems(
        &fixture("auto_updates/off-everywhere.json"),
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(later.len(), 3);
}

#[test]
fn published_windows_version() {
    // Get-ItemProperty of CurrentVersion on Windows 10 21H2 (19044.3086), as published.
    let v = windows_version::parse(&published("os/currentversion-win10-21h2.fl.txt")[0]).unwrap();
    assert_eq!((v.build, v.ubr), (19044, 3086));
    assert_eq!(v.edition, "Professional");
    assert_eq!(v.display_version.as_deref(), Some("21H2"));
    assert_eq!(v.name(), "Windows 10 Professional 21H2 (build 19044.3086)");
    assert_eq!(
        windows_version::servicing_end(&v),
        Some("2023-06-13"),
        "21H2 Home/Pro servicing ended"
    );
    assert_eq!(
        cumulative_updates::assess(v.build, v.ubr),
        LcuState::UnknownBuild
    );
}

#[test]
fn published_security_center_third_party_beside_defender() {
    for capture in [
        "edr/sentinelone-beside-defender.fl.txt",
        "edr/bitdefender-beside-defender.fl.txt",
    ] {
        let products = security_center::parse(&published(capture));
        assert_eq!(products.len(), 2, "{capture}");
        let third = &products[0];
        assert!(
            third.protecting() && !third.microsoft,
            "{capture}: {third:?}"
        );
        assert_eq!(third.product_state, 266_240);
        let defender = &products[1];
        assert_eq!(defender.name, "Windows Defender");
        assert!(defender.microsoft && defender.state == EngineState::Off);
        assert!(
            !defender.protecting(),
            "Defender stands down beside {}",
            third.name
        );
    }
    // wmic /format:list, Defender alone and on: 397568 = 0x61100.
    let on = security_center::parse(&published("edr/defender-on.wmic.txt"));
    assert_eq!(on.len(), 1);
    assert_eq!(on[0].product_state, 397_568);
    assert!(on[0].protecting() && on[0].microsoft);
    // Defender alone on a Windows 10 20H2 test machine: 401664 = 0x62100, engine bits
    // 0x2000 = snoozed (real-time protection turned off for a while): not protecting.
    let snoozed = security_center::parse(&published("edr/defender-snoozed.wmic.txt"));
    assert_eq!(snoozed[0].product_state, 401_664);
    assert_eq!(snoozed[0].state, EngineState::Snoozed);
    assert!(!snoozed[0].protecting());
}

#[test]
fn published_manage_bde() {
    // Windows 11 24H2, OS volume still encrypting, protection not yet on.
    let v = manage_bde::parse(&fixture_text(
        "disk_encryption/manage-bde-encrypting-24h2.txt",
    ));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].drive_letter, "C:");
    assert_eq!(v[0].volume_type, Some(0));
    assert_eq!(v[0].state(), VolumeState::EncryptionInProgress);
    assert_eq!(v[0].method_name(), "XTS-AES-128");

    // Fully (used space) encrypted with protection off: the key is in the clear.
    let off = manage_bde::parse(&fixture_text(
        "disk_encryption/manage-bde-protection-off.txt",
    ));
    assert_eq!(off.len(), 1, "a capture without its header is one volume");
    assert_eq!(off[0].state(), VolumeState::Suspended);
    assert_eq!(off[0].suspend_count, None, "no reboot count printed");

    // The suspension form `Suspend-BitLocker -RebootCount 1` leaves (Microsoft Learn's
    // wording; constructed, no published capture was found).
    let suspended = manage_bde::parse(
        "Volume D: [Data]\n[Data Volume]\n    Conversion Status:    Fully Encrypted\n    \
         Protection Status:    Protection Off (1 reboots left)\n    Lock Status:          Unlocked\n\
         Volume E: [Stick]\n[Data Volume]\n    Conversion Status:    Unknown\n    \
         Lock Status:          Locked\n",
    );
    assert_eq!(suspended.len(), 2);
    assert_eq!(suspended[0].state(), VolumeState::Suspended);
    assert_eq!(suspended[0].suspend_count, Some(1));
    assert_eq!(suspended[1].state(), VolumeState::Unknown, "locked");
    assert!(
        manage_bde::parse("ERROR: An attempt to access a required resource was denied.").is_empty()
    );
}

#[test]
fn published_win32_encryptable_volume() {
    // Get-WmiObject's Format-List of two plain volumes (OS C:, fixed data D:).
    let v = bitlocker::parse(&published("disk_encryption/wmi-not-encrypted.fl.txt"));
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[0].device_id,
        r"\\?\Volume{90dc9ab6-791d-46f6-ade8-e6d3201baf52}\"
    );
    assert_eq!((v[0].label(), v[0].volume_type), ("C:", Some(0)));
    assert_eq!((v[1].label(), v[1].volume_type), ("D:", Some(1)));
    assert!(v
        .iter()
        .all(|v| v.is_fixed() && v.state() == VolumeState::NotEncrypted));
    assert_eq!(v[0].method_name(), "none");
}

#[test]
fn bitlocker_answer_combines_wmi_and_manage_bde() {
    let bde = fixture_text("disk_encryption/manage-bde-encrypting-24h2.txt")
        .replace("Protection Off", "Protection Off (2 reboots left)");
    let wmi = serde_json::json!([{"DriveLetter": "C:", "DeviceID": "\\\\?\\Volume{x}\\",
        "VolumeType": 0, "ProtectionStatus": 0, "ConversionStatus": 1, "EncryptionMethod": 6}]);
    let (both, from) = bitlocker::parse_answer(&serde_json::json!({
        "EncryptableVolume": wmi, "EncryptableVolumeError": null, "ManageBde": bde
    }))
    .unwrap();
    assert_eq!(from, bitlocker::VolumeSource::Wmi);
    assert_eq!(both.len(), 1);
    assert_eq!(
        both[0].state(),
        VolumeState::Suspended,
        "WMI decides the state"
    );
    assert_eq!(
        both[0].suspend_count,
        Some(2),
        "manage-bde gives the restarts left"
    );

    let (bde_only, from) = bitlocker::parse_answer(&serde_json::json!({
        "EncryptableVolume": null, "EncryptableVolumeError": "Access denied",
        "ManageBde": fixture_text("disk_encryption/manage-bde-encrypting-24h2.txt")
    }))
    .unwrap();
    assert_eq!(from, bitlocker::VolumeSource::ManageBde);
    assert_eq!(bde_only[0].state(), VolumeState::EncryptionInProgress);

    let none = bitlocker::parse_answer(&serde_json::json!({
        "EncryptableVolume": [], "EncryptableVolumeError": "Access denied", "ManageBde": null
    }));
    assert!(none.unwrap_err().contains("Access denied"));
}

#[test]
fn published_firewall_profiles() {
    // The Domain profile's default inbound action set to Allow (machine SRV2).
    let server =
        windows_profiles::parse(&published("firewall/server-domain-allows-inbound.fl.txt"));
    assert_eq!(server.len(), 3);
    let problems: Vec<_> = server.iter().filter_map(|p| p.problem()).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("Domain") && problems[0].contains("inbound"));

    // After `Set-NetFirewallProfile -Enabled False`.
    let off = windows_profiles::parse(&published("firewall/all-profiles-off.fl.txt"));
    assert_eq!(off.len(), 3);
    assert!(off.iter().all(|p| p.enabled == Some(false)));
}

#[test]
fn published_win32_tpm() {
    let (answer, enabled) = tbs::from_win32_tpm(&published("tpm/win32-tpm-nuvoton.fl.txt"));
    assert_eq!(answer, TpmAnswer::Present("2.0"));
    assert_eq!(enabled, Some(true));
}
