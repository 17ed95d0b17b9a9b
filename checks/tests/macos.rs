//! macOS parsers and decisions, on the fixtures in `tests/fixtures/macos/` (see its
//! `PROVENANCE.md` for where each output comes from). These run on every OS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use posture_checks::auto_updates::softwareupdate_prefs as prefs;
use posture_checks::disk_encryption::fdesetup::{self, FileVault};
use posture_checks::edr::catalogue;
use posture_checks::edr::{apple as edr_apple, launchctl, systemextensionsctl};
use posture_checks::firewall::socketfilterfw;
use posture_checks::os::sw_vers;
use posture_checks::patch_level::softwareupdate::{self as su, UpdateKind};
use posture_checks::plist;
use posture_checks::screen_lock::sysadminctl::{self, LockDelay};
use posture_checks::secure_boot::apple::{self as boot, BootSecurity};
use posture_core::Status;

fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/macos")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn plist_fixture(path: &str) -> serde_json::Value {
    plist::parse(&fixture(path)).unwrap()
}

#[test]
fn sw_vers_and_system_version_plist() {
    let v = sw_vers::parse_sw_vers(&fixture("os/sw_vers-14.2.1.txt")).unwrap();
    assert_eq!(v.version, "14.2.1");
    assert_eq!(v.build.as_deref(), Some("23C71"));
    assert_eq!(v.major(), Some(14));
    assert_eq!(v.display(), "macOS Sonoma 14.2.1 (23C71)");

    let rsr = sw_vers::parse_sw_vers(&fixture("os/sw_vers-13.3.1-rsr.txt")).unwrap();
    assert_eq!(rsr.extra.as_deref(), Some("(a)"));
    assert_eq!(rsr.build.as_deref(), Some("22E772610a"));
    let f = sw_vers::decide(Some(&rsr), "sw_vers");
    assert_eq!(f.status, Status::Fail, "Ventura no longer gets updates");
    assert!(f.remediation.is_some());

    let old = sw_vers::parse_sw_vers(&fixture("os/sw_vers-10.15.7.txt")).unwrap();
    assert_eq!(old.product_name, "Mac OS X");
    assert_eq!(old.major(), Some(10));
    assert_eq!(sw_vers::decide(Some(&old), "sw_vers").status, Status::Fail);

    let plist = plist_fixture("os/SystemVersion-15.6.1.plist");
    let v = sw_vers::from_system_version_plist(&plist).unwrap();
    assert_eq!(
        (v.version.as_str(), v.build.as_deref()),
        ("15.6.1", Some("24G90"))
    );
    let f = sw_vers::decide(Some(&v), "/System/Library/CoreServices/SystemVersion.plist");
    assert_eq!(f.status, Status::Pass);
    assert_eq!(f.observed["version_id"], "15.6.1");

    assert!(sw_vers::parse_sw_vers("garbage").is_none());
    assert_eq!(sw_vers::decide(None, "sw_vers").status, Status::Unknown);
}

#[test]
fn softwareupdate_pending_on_26_7() {
    let list = su::parse_list(&fixture("patch_level/softwareupdate-26.7-pending.txt")).unwrap();
    assert!(!list.none_available);
    let kinds: Vec<(&str, UpdateKind)> = list
        .updates
        .iter()
        .map(|u| (u.label.as_str(), u.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("macOS 27-26A428", UpdateKind::Os),
            ("macOS Tahoe 26.7.1-25H300", UpdateKind::Os),
            (
                "macOS Tahoe 26.7.1 (a)-25H300a",
                UpdateKind::SecurityResponse
            ),
            ("Safari27.0TahoeAuto-27.0", UpdateKind::Other),
        ]
    );
    assert!(list.updates[0].restart && list.updates[0].recommended);
    assert_eq!(list.updates[3].version.as_deref(), Some("27.0"));
    assert!(!list.updates[3].restart);

    let f = su::decide(
        Ok(&list),
        Some(26),
        None,
        &[],
        &["softwareupdate --list".into()],
    );
    assert_eq!(f.status, Status::Fail);
    // The macOS 27 upgrade is optional; the 26.7.1 update, the RSR and Safari are not.
    assert_eq!(f.observed["pending"].as_array().unwrap().len(), 3);
    assert_eq!(f.observed["optional"][0]["label"], "macOS 27-26A428");
    assert!(f.remediation.unwrap().text.contains("restart"));
}

#[test]
fn softwareupdate_nothing_pending_passes() {
    let list = su::parse_list(&fixture("patch_level/softwareupdate-none.txt")).unwrap();
    assert!(list.none_available && list.updates.is_empty());
    let data = [("xprotect".to_owned(), "5283".to_owned())];
    let f = su::decide(Ok(&list), Some(15), None, &data, &[]);
    assert_eq!(f.status, Status::Pass);
    assert_eq!(f.observed["security_data"]["xprotect"], "5283");
}

#[test]
fn softwareupdate_other_forms() {
    let bsi = su::parse_list(&fixture("patch_level/softwareupdate-bsi.txt")).unwrap();
    assert_eq!(bsi.updates[0].kind, UpdateKind::SecurityResponse);
    assert_eq!(bsi.updates[0].version.as_deref(), Some("26.3.1 (a)"));

    let data = su::parse_list(&fixture("patch_level/softwareupdate-config-data.txt")).unwrap();
    assert!(data
        .updates
        .iter()
        .all(|u| u.kind == UpdateKind::SecurityData));
    let f = su::decide(Ok(&data), Some(15), None, &[], &[]);
    assert_eq!(
        f.status,
        Status::Fail,
        "pending XProtect data is a pending update"
    );

    let old = su::parse_list(&fixture("patch_level/softwareupdate-10.x-old-format.txt")).unwrap();
    let labels: Vec<_> = old
        .updates
        .iter()
        .map(|u| (u.label.as_str(), u.recommended, u.restart))
        .collect();
    assert_eq!(
        labels,
        [
            ("iPhoto-2.0", true, false),
            ("StuffItExpander7-7.0", true, false),
            ("iCal-1.0.2", false, false),
            ("AirPortSW-4.1", true, true),
        ]
    );

    let offline = su::parse_list(&fixture("patch_level/softwareupdate-offline.txt"));
    assert!(matches!(offline, Err(su::ListError::NoCatalogue(_))));
    let err = offline.unwrap_err();
    assert_eq!(
        su::decide(Err(&err), Some(15), None, &[], &[]).status,
        Status::Unknown
    );
    assert_eq!(
        su::parse_list("Software Update Tool\n"),
        Err(su::ListError::NotUnderstood)
    );
}

#[test]
fn software_update_state_and_xprotect_version() {
    let state = su::last_check(&plist_fixture(
        "patch_level/com.apple.SoftwareUpdate-state.plist",
    ));
    assert_eq!(
        state.last_successful.as_deref(),
        Some("2024-01-22T09:14:31Z")
    );
    assert_eq!(state.recommended_available, Some(1));
    assert_eq!(state.recommended, ["macOS Sonoma 14.3"]);
    let xp = plist_fixture("patch_level/XProtect-Info.plist");
    assert_eq!(su::bundle_version(&xp).as_deref(), Some("5283"));
}

#[test]
fn automatic_update_settings() {
    let local = plist_fixture("auto_updates/com.apple.SoftwareUpdate-local.plist");
    let managed = plist_fixture("auto_updates/com.apple.SoftwareUpdate-managed.plist");

    let eff = prefs::effective(None, Some(&local));
    let f = prefs::decide(&eff, &["local".into()]);
    assert_eq!(f.status, Status::Fail);
    assert!(f.summary.contains("download new updates"), "{}", f.summary);
    assert!(f.summary.contains("Security Responses"), "{}", f.summary);
    assert_eq!(
        f.observed["settings"]["ConfigDataInstall"]["origin"],
        "default"
    );
    assert!(f.remediation.unwrap().text.contains("Automatic Updates"));

    // A profile overrides the user's choices.
    let eff = prefs::effective(Some(&managed), Some(&local));
    let f = prefs::decide(&eff, &[]);
    assert_eq!(f.status, Status::Pass);
    assert_eq!(
        f.observed["settings"]["AutomaticDownload"]["origin"],
        "managed"
    );

    // Nothing set at all: the macOS defaults, which pass.
    assert_eq!(
        prefs::decide(&prefs::effective(None, None), &[]).status,
        Status::Pass
    );
    assert_eq!(prefs::parse_schedule("Automatic check is off"), Some(false));
}

#[test]
fn filevault_states() {
    let cases = [
        ("fdesetup-on.txt", Some(FileVault::On), Status::Pass),
        ("fdesetup-off.txt", Some(FileVault::Off), Status::Fail),
        (
            "fdesetup-encrypting.txt",
            Some(FileVault::Encrypting {
                percent: Some(37.52),
            }),
            Status::Fail,
        ),
        (
            "fdesetup-encrypting-pending.txt",
            Some(FileVault::Encrypting { percent: None }),
            Status::Fail,
        ),
        (
            "fdesetup-decrypting.txt",
            Some(FileVault::Decrypting {
                percent: Some(73.0),
            }),
            Status::Fail,
        ),
        (
            "fdesetup-deferred.txt",
            Some(FileVault::Deferred),
            Status::Fail,
        ),
    ];
    for (file, state, status) in cases {
        let parsed = fdesetup::parse_status(&fixture(&format!("disk_encryption/{file}")));
        assert_eq!(parsed, state, "{file}");
        let f = fdesetup::decide(parsed.as_ref(), "fdesetup status");
        assert_eq!(f.status, status, "{file}");
        assert_eq!(f.remediation.is_some(), status == Status::Fail, "{file}");
    }
    assert_eq!(fdesetup::parse_status("Error: unknown"), None);
    assert_eq!(
        fdesetup::decide(None, "fdesetup status").status,
        Status::Unknown
    );
}

#[test]
fn apfs_data_volume() {
    let volumes = fdesetup::parse_apfs_list(&fixture("disk_encryption/diskutil-apfs-list.txt"));
    assert_eq!(volumes.len(), 3);
    // The System volume's "Snapshot Mount Point: /" is not its mount point.
    assert_eq!(
        volumes[0].mount_point.as_deref(),
        Some("/System/Volumes/Update/mnt1")
    );
    let data = fdesetup::data_volume(&volumes).unwrap();
    assert_eq!(data.device, "disk3s5");
    assert_eq!(data.name.as_deref(), Some("Macintosh HD - Data"));
    assert_eq!(fdesetup::volume_state(data), Some(FileVault::On));

    let volumes = fdesetup::parse_apfs_list(&fixture(
        "disk_encryption/diskutil-apfs-list-not-filevault.txt",
    ));
    let data = fdesetup::data_volume(&volumes).unwrap();
    // Encrypted at rest by the Secure Enclave is not FileVault: no password protects it.
    assert_eq!(fdesetup::volume_state(data), Some(FileVault::Off));
}

#[test]
fn application_firewall() {
    let on = socketfilterfw::parse(&fixture("firewall/socketfilterfw-15-on-stealth.txt"));
    assert_eq!((on.global_state, on.stealth), (Some(1), Some(true)));
    assert_eq!(
        socketfilterfw::decide(&on, "socketfilterfw").status,
        Status::Pass
    );

    let off = socketfilterfw::parse(&fixture("firewall/socketfilterfw-15-off.txt"));
    let f = socketfilterfw::decide(&off, "socketfilterfw");
    assert_eq!(f.status, Status::Fail);
    assert!(f.remediation.unwrap().text.contains("--setglobalstate on"));

    let old = socketfilterfw::parse(&fixture("firewall/socketfilterfw-13-on-no-stealth.txt"));
    assert_eq!((old.global_state, old.stealth), (Some(1), Some(false)));
    let f = socketfilterfw::decide(&old, "socketfilterfw");
    assert_eq!(f.status, Status::Fail);
    assert!(f.summary.contains("stealth"));

    let all = socketfilterfw::parse(&fixture("firewall/socketfilterfw-block-all.txt"));
    assert_eq!((all.global_state, all.block_all), (Some(2), Some(true)));
    assert_eq!(
        socketfilterfw::decide(&all, "socketfilterfw").status,
        Status::Pass
    );

    let alf = socketfilterfw::from_alf_plist(&plist_fixture("firewall/com.apple.alf.plist"));
    assert_eq!((alf.global_state, alf.stealth), (Some(1), Some(false)));

    let nothing = socketfilterfw::parse("socketfilterfw: unknown option");
    assert_eq!(
        socketfilterfw::decide(&nothing, "socketfilterfw").status,
        Status::Unknown
    );
}

#[test]
fn sip_gatekeeper_and_boot_policy() {
    let on = boot::parse_csrutil(&fixture("secure_boot/csrutil-enabled.txt")).unwrap();
    assert!(on.fully_enabled());
    let off = boot::parse_csrutil(&fixture("secure_boot/csrutil-disabled.txt")).unwrap();
    assert_eq!(off.status, "disabled");
    let custom = boot::parse_csrutil(&fixture("secure_boot/csrutil-custom.txt")).unwrap();
    assert!(custom.custom && custom.status == "enabled" && !custom.fully_enabled());
    assert_eq!(
        custom.disabled_protections.len(),
        5,
        "{:?}",
        custom.disabled_protections
    );
    assert!(!custom
        .disabled_protections
        .contains(&"Apple Internal".to_owned()));
    let unknown = boot::parse_csrutil(&fixture("secure_boot/csrutil-unknown-custom.txt")).unwrap();
    assert_eq!(unknown.status, "unknown");
    assert_eq!(
        unknown.disabled_protections,
        [
            "Filesystem Protections",
            "Debugging Restrictions",
            "NVRAM Protections",
            "Boot-arg Restrictions"
        ]
    );

    assert_eq!(
        boot::parse_spctl(&fixture("secure_boot/spctl-enabled.txt")),
        Some(true)
    );
    assert_eq!(
        boot::parse_spctl(&fixture("secure_boot/spctl-disabled.txt")),
        Some(false)
    );

    let full = boot::parse_bputil(&fixture("secure_boot/bputil-full.txt")).unwrap();
    assert_eq!(full.security, Some(BootSecurity::Full));
    assert!(full.lowered.is_empty());
    let reduced = boot::parse_bputil(&fixture("secure_boot/bputil-reduced-kexts.txt")).unwrap();
    assert_eq!(reduced.security, Some(BootSecurity::Reduced));
    assert_eq!(reduced.lowered, ["3rd Party Kexts Status: Enabled"]);

    assert_eq!(
        boot::parse_t2_policy(&fixture("secure_boot/nvram-t2-full.txt")),
        Some(BootSecurity::Full)
    );
    assert_eq!(
        boot::parse_t2_policy(&fixture("secure_boot/nvram-t2-medium.txt")),
        Some(BootSecurity::Reduced)
    );

    let good = boot::decide(
        &Ok((BootSecurity::Full, vec![])),
        &Ok(on.clone()),
        &Ok(true),
        &[],
    );
    assert_eq!(good.status, Status::Pass);
    let bad = boot::decide(
        &Ok((BootSecurity::Reduced, reduced.lowered.clone())),
        &Ok(custom),
        &Ok(false),
        &[],
    );
    assert_eq!(bad.status, Status::Fail);
    let text = bad.remediation.unwrap().text;
    for needle in ["Startup Security Utility", "csrutil enable", "spctl"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    // Not root: the boot policy cannot be read; the rest is fine -> unknown, not pass.
    let partial = boot::decide(&Err("needs root".into()), &Ok(on), &Ok(true), &[]);
    assert_eq!(partial.status, Status::Unknown);
    assert!(partial.reason.unwrap().contains("needs root"));
}

#[test]
fn screen_lock_settings() {
    let parse = |f: &str| sysadminctl::parse_status(&fixture(&format!("screen_lock/{f}")));
    assert_eq!(
        parse("sysadminctl-immediate.txt"),
        Some(LockDelay::Immediate)
    );
    assert_eq!(parse("sysadminctl-300.txt"), Some(LockDelay::After(300)));
    assert_eq!(parse("sysadminctl-off-26.6.2.txt"), Some(LockDelay::Off));
    assert_eq!(
        parse("sysadminctl-5s-26.6.2.txt"),
        Some(LockDelay::After(5))
    );
    assert_eq!(
        sysadminctl::parse_status("screenLock delay is -1.000000 seconds"),
        Some(LockDelay::Off)
    );

    let managed = sysadminctl::managed(&plist_fixture(
        "screen_lock/com.apple.screensaver-managed.plist",
    ));
    assert_eq!(managed.delay(), Some(LockDelay::After(5)));
    assert_eq!(managed.idle_time, Some(600));

    let ok = sysadminctl::decide(
        Ok((LockDelay::Immediate, "s".into())),
        Ok((600, "d".into())),
        15,
    );
    assert_eq!(ok.status, Status::Pass);
    let late = sysadminctl::decide(
        Ok((LockDelay::After(300), "s".into())),
        Ok((600, "d".into())),
        15,
    );
    assert_eq!(late.status, Status::Fail);
    let never = sysadminctl::decide(
        Ok((LockDelay::Immediate, "s".into())),
        Ok((0, "d".into())),
        15,
    );
    assert_eq!(never.status, Status::Fail);
    assert!(never.remediation.unwrap().text.contains("Lock Screen"));
    let unknown = sysadminctl::decide(Err("no console user".into()), Ok((600, "d".into())), 15);
    assert_eq!(unknown.status, Status::Unknown);
    assert_eq!(sysadminctl::parse_idle_time("600\n"), Some(600));
}

#[test]
fn system_extensions_launchd_and_processes() {
    let exts = systemextensionsctl::parse_list(&fixture("edr/systemextensionsctl-crowdstrike.txt"));
    assert_eq!(exts.len(), 2);
    assert_eq!(
        exts[0].category.as_deref(),
        Some("com.apple.system_extension.endpoint_security")
    );
    assert_eq!(exts[0].team_id, "X9E956P446");
    assert_eq!(exts[0].bundle_id, "com.crowdstrike.falcon.Agent");
    assert_eq!(exts[0].version.as_deref(), Some("7.29/201.03"));
    assert!(exts[0].running());

    let waiting = systemextensionsctl::parse_list(&fixture("edr/systemextensionsctl-waiting.txt"));
    assert_eq!(waiting.len(), 1);
    assert!(!waiting[0].enabled && waiting[0].active && !waiting[0].running());
    let other = systemextensionsctl::parse_list(&fixture("edr/systemextensionsctl-other-team.txt"));
    assert_eq!(other.len(), 2);
    assert!(
        systemextensionsctl::parse_list(&fixture("edr/systemextensionsctl-none.txt")).is_empty()
    );

    let jobs = launchctl::parse_list(&fixture("edr/launchctl-list.txt"));
    assert_eq!(jobs.len(), 4);
    assert_eq!(jobs[1].label, "com.crowdstrike.falcond");
    assert_eq!(jobs[1].pid, Some(412));
    assert_eq!(jobs[2].last_exit, Some(-9));

    let procs = launchctl::parse_ps(&fixture("edr/ps.txt"));
    assert_eq!(procs.len(), 4);
    assert_eq!(procs[2].name, "Google Chrome");
    assert_eq!((procs[3].ruid, procs[3].uid), (501, 501));

    let catalogue = catalogue::builtin().unwrap();
    let crowdstrike = |observed| {
        edr_apple::product_states(catalogue, observed, |_| Vec::new())
            .into_iter()
            .find(|s| s.id == "crowdstrike")
            .unwrap()
    };
    // The system extension alone proves it.
    let s = crowdstrike(edr_apple::Observed {
        extensions: Some(&exts),
        ..Default::default()
    });
    assert_eq!(s.running, Some(true), "{s:?}");
    // Another team's extensions and a user's `falcond` prove nothing.
    let s = crowdstrike(edr_apple::Observed {
        extensions: Some(&other),
        jobs: None,
        processes: Some(&procs[3..]),
    });
    assert_eq!(s.running, Some(false));
    assert!(
        s.rejected[0].contains("not running as root"),
        "{:?}",
        s.rejected
    );
    // Nothing read: not known.
    assert_eq!(crowdstrike(edr_apple::Observed::default()).running, None);

    let states = edr_apple::product_states(
        catalogue,
        edr_apple::Observed {
            extensions: Some(&exts),
            jobs: Some(&jobs),
            processes: Some(&procs),
        },
        |_| Vec::new(),
    );
    assert_eq!(
        posture_checks::edr::decide(&states, &[], true).status,
        Status::Pass
    );
    let none = edr_apple::product_states(
        catalogue,
        edr_apple::Observed {
            extensions: Some(&[]),
            jobs: Some(&[]),
            processes: Some(&procs[..1]),
        },
        |_| Vec::new(),
    );
    let f = posture_checks::edr::decide(&none, &[], true);
    assert_eq!(f.status, Status::Fail);
    assert!(f.remediation.is_some());
}

/// The launchd job in `packaging/macos/` is a well-formed plist that runs the daemon as
/// root with the `posture` group, restarts it on failure and keeps files owner-only.
#[test]
fn launchd_plist_is_the_daemon() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/macos/org.posture.daemon.plist");
    let job = plist::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(job["Label"], "org.posture.daemon");
    assert_eq!(
        job["ProgramArguments"],
        serde_json::json!(["/usr/local/bin/posture", "daemon"])
    );
    assert_eq!(job["UserName"], "root");
    assert_eq!(job["GroupName"], "posture");
    assert_eq!(job["Umask"], 0o077);
    assert_eq!(job["RunAtLoad"], true);
    assert_eq!(job["KeepAlive"]["SuccessfulExit"], false);
}
