//! The `screen_lock` check over trees built from `tests/fixtures/screen_lock/` (logind
//! session files, /etc/passwd, real dconf GVDB databases, kscreenlockerrc, xfconf XML),
//! the GVDB reader on real and damaged databases, and this machine.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside `#[test]` functions may unwrap too (clippy.toml covers only those).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use posture_checks::screen_lock::gvdb::{self, GValue};
use posture_checks::{screen_lock, ChecksConfig, Context};
use posture_core::{Finding, Status};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/screen_lock")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Tree {
    dir: tempfile::TempDir,
    config: ChecksConfig,
}

impl Tree {
    /// /etc/passwd and an empty logind sessions directory.
    fn new() -> Self {
        let tree = Tree {
            dir: tempfile::tempdir().unwrap(),
            config: ChecksConfig::default(),
        };
        tree.put("etc/passwd", fixture("passwd"));
        std::fs::create_dir_all(tree.dir.path().join("run/systemd/sessions")).unwrap();
        tree
    }

    fn put(&self, relative: &str, bytes: Vec<u8>) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Adds logind session `id` from a session fixture.
    fn session(self, id: &str, fixture_name: &str) -> Self {
        self.put(
            &format!("run/systemd/sessions/{id}"),
            fixture(&format!("sessions/{fixture_name}")),
        );
        // logind keeps a FIFO next to each session; the check must skip it.
        self.put(&format!("run/systemd/sessions/{id}.ref"), Vec::new());
        self
    }

    fn with(self, relative: &str, fixture_name: &str) -> Self {
        self.put(relative, fixture(fixture_name));
        self
    }

    fn check(&self) -> Finding {
        let ctx = Context::fixture(self.dir.path(), self.config.clone(), SystemTime::now());
        let finding = screen_lock::check(&ctx);
        finding.check_invariants().unwrap();
        finding
    }
}

const USER_DB: &str = "home/alice/.config/dconf/user";

fn gnome(user_db: Option<&str>) -> Tree {
    let tree = Tree::new().session("2", "gnome-wayland");
    match user_db {
        Some(name) => tree.with(USER_DB, &format!("gnome/{name}")),
        None => tree,
    }
}

// ---------------------------------------------------------------- GVDB reader

#[test]
fn gvdb_reads_a_real_user_database() {
    let table = gvdb::parse(&fixture("gnome/user-ok")).unwrap();
    let v = |k: &str| table.values.get(k).cloned();
    assert_eq!(
        v("/org/gnome/desktop/session/idle-delay"),
        Some(GValue::Int(300))
    );
    assert_eq!(
        v("/org/gnome/desktop/screensaver/lock-enabled"),
        Some(GValue::Bool(true))
    );
    assert_eq!(
        v("/org/gnome/desktop/screensaver/lock-delay"),
        Some(GValue::Int(30))
    );
    assert_eq!(
        v("/org/gnome/desktop/interface/color-scheme"),
        Some(GValue::Str("prefer-dark".into()))
    );
    assert_eq!(table.values.len(), 4);
    assert!(table.tables.is_empty());
}

#[test]
fn gvdb_reads_every_value_type() {
    let table = gvdb::parse(&fixture("gnome/user-mixed-types")).unwrap();
    let v = |k: &str| {
        table
            .values
            .get(&format!("/org/example/types/{k}"))
            .cloned()
    };
    assert_eq!(v("byte"), Some(GValue::Int(255)));
    assert_eq!(v("int16"), Some(GValue::Int(-2)));
    assert_eq!(v("uint16"), Some(GValue::Int(65535)));
    assert_eq!(v("int32"), Some(GValue::Int(-7)));
    assert_eq!(v("int64"), Some(GValue::Int(-9_000_000_000)));
    assert_eq!(v("uint64"), Some(GValue::Int(i128::from(u64::MAX))));
    assert_eq!(v("double"), Some(GValue::Double(2.5)));
    assert_eq!(v("string"), Some(GValue::Str("héllo".into())));
    assert_eq!(v("path"), Some(GValue::Str("/org/example".into())));
    assert_eq!(v("list"), Some(GValue::Other("as".into())));
    assert_eq!(v("tuple"), Some(GValue::Other("(is)".into())));
    assert_eq!(v("maybe"), Some(GValue::Other("ms".into())));
    assert_eq!(
        table.values.get("/org/gnome/desktop/session/idle-delay"),
        Some(&GValue::Str("60".into()))
    );
}

#[test]
fn gvdb_reads_the_locks_of_a_system_database() {
    let table = gvdb::parse(&fixture("gnome/system-local")).unwrap();
    let locks = &table.tables[".locks"];
    let locked: Vec<&str> = locks.values.keys().map(String::as_str).collect();
    assert_eq!(
        locked,
        vec![
            "/org/gnome/desktop/screensaver/lock-enabled",
            "/org/gnome/desktop/session/idle-delay",
        ]
    );
    assert_eq!(
        table.values.get("/org/gnome/desktop/session/idle-delay"),
        Some(&GValue::Int(600))
    );
}

#[test]
fn gvdb_reads_an_empty_database() {
    let table = gvdb::parse(&fixture("gnome/user-empty")).unwrap();
    assert!(table.values.is_empty());
}

/// The committed binaries are what the real dconf builds from the committed keyfiles.
#[test]
fn gvdb_fixtures_match_their_keyfiles() {
    let out = tempfile::tempdir().unwrap();
    let gnome = fixtures().join("gnome");
    let mut compared = 0;
    for entry in std::fs::read_dir(&gnome).unwrap() {
        let source = entry.unwrap().path();
        let Some(name) = source
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_suffix(".d")
        else {
            continue;
        };
        let built = out.path().join(name);
        let status = Command::new("dconf")
            .arg("compile")
            .arg(&built)
            .arg(&source)
            .status()
            .expect("dconf (Debian package dconf-cli, installed by scripts/setup.sh)");
        assert!(status.success(), "dconf compile {name}");
        assert_eq!(
            std::fs::read(&built).unwrap(),
            fixture(&format!("gnome/{name}")),
            "gnome/{name} is stale: run tests/fixtures/screen_lock/gnome/regenerate.sh"
        );
        compared += 1;
    }
    assert_eq!(compared, 10);
}

/// The reader takes untrusted bytes: every truncation, every byte overwritten, and
/// pseudo-random garbage must give an answer (usually an error), never a panic.
#[test]
fn gvdb_never_panics_on_truncated_or_damaged_input() {
    for name in ["user-ok", "user-mixed-types", "system-local", "user-empty"] {
        let bytes = fixture(&format!("gnome/{name}"));
        let whole = gvdb::parse(&bytes).unwrap();
        for len in 0..bytes.len() {
            let cut = gvdb::parse(&bytes[..len]);
            assert_ne!(cut.as_ref().ok(), Some(&whole), "{name} cut at {len}");
        }
        for at in 0..bytes.len() {
            for value in [0x00, 0xff, 0x7f, 0x80, bytes[at].wrapping_add(1)] {
                let mut damaged = bytes.clone();
                damaged[at] = value;
                let _ = gvdb::parse(&damaged);
            }
        }
    }
    // Garbage after a valid signature and header.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..2000 {
        let len = 24 + round % 300;
        let mut bytes = b"GVariant\0\0\0\0\0\0\0\0".to_vec();
        while bytes.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(state as u8);
        }
        // Small root pointers, so the garbage is actually walked as a table.
        bytes[16..20].copy_from_slice(&24u32.to_le_bytes());
        bytes[20..24].copy_from_slice(&(len as u32).to_le_bytes());
        let _ = gvdb::parse(&bytes);
    }
}

// ---------------------------------------------------------------- GNOME

#[test]
fn gnome_lock_within_limit_passes() {
    let finding = gnome(Some("user-ok")).check();
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    let session = &finding.observed["sessions"][0];
    assert_eq!(session["user"], json!("alice"));
    assert_eq!(session["lock_after_seconds"], json!(330));
    assert_eq!(session["status"], json!("pass"));
    assert!(finding
        .source
        .contains(&"/home/alice/.config/dconf/user".to_owned()));
}

#[test]
fn gnome_defaults_apply_without_a_user_database() {
    for tree in [gnome(None), gnome(Some("user-empty"))] {
        let finding = tree.check();
        assert_eq!(finding.status, Status::Pass, "{finding:?}");
        let session = &finding.observed["sessions"][0];
        assert_eq!(session["lock_after_seconds"], json!(300));
        assert_eq!(
            session["settings"]["origin"]["/org/gnome/desktop/session/idle-delay"],
            json!("default")
        );
    }
}

#[test]
fn gnome_lock_disabled_fails_with_settings_remediation() {
    let finding = gnome(Some("user-lock-disabled")).check();
    assert_eq!(finding.status, Status::Fail);
    assert!(
        finding.summary.contains("does not lock"),
        "{}",
        finding.summary
    );
    let text = finding.remediation.unwrap().text;
    assert!(
        text.contains("Screen Lock") && text.contains("gsettings"),
        "{text}"
    );
}

#[test]
fn gnome_lock_too_late_fails() {
    let finding = gnome(Some("user-idle-long")).check();
    assert_eq!(finding.status, Status::Fail);
    assert!(finding.summary.contains("35 min"), "{}", finding.summary);
    assert_eq!(
        finding.observed["sessions"][0]["lock_after_seconds"],
        json!(2100)
    );
}

#[test]
fn gnome_lock_limit_comes_from_config() {
    let mut tree = gnome(Some("user-idle-long"));
    tree.config.screen_lock.max_idle_minutes = 35;
    assert_eq!(tree.check().status, Status::Pass);
    tree.config.screen_lock.max_idle_minutes = 34;
    assert_eq!(tree.check().status, Status::Fail);
}

#[test]
fn gnome_never_idle_fails() {
    let finding = gnome(Some("user-never-idle")).check();
    assert_eq!(finding.status, Status::Fail);
    assert!(finding.summary.contains("never locks"));
}

#[test]
fn gnome_system_locks_override_the_user() {
    let tree = gnome(Some("user-lock-disabled")).with("etc/dconf/db/local", "gnome/system-local");
    // Without a profile naming it, dconf does not read the system database.
    assert_eq!(tree.check().status, Status::Fail);
    tree.put(
        "etc/dconf/profile/user",
        b"user-db:user\nsystem-db:local\n".to_vec(),
    );
    let finding = tree.check();
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    let origin = &finding.observed["sessions"][0]["settings"]["origin"];
    assert_eq!(
        origin["/org/gnome/desktop/screensaver/lock-enabled"],
        json!("/etc/dconf/db/local")
    );
    assert_eq!(
        finding.observed["sessions"][0]["lock_after_seconds"],
        json!(600)
    );
}

#[test]
fn gnome_values_of_the_wrong_type_are_ignored() {
    // lock-enabled=int32 0 and idle-delay='60' are ignored (defaults true and 300), but
    // lock-delay=uint32 4294967295 is honoured and pushes the lock past the limit.
    let finding = gnome(Some("user-mixed-types")).check();
    assert_eq!(finding.status, Status::Fail);
    let settings = &finding.observed["sessions"][0]["settings"];
    assert_eq!(settings["lock_enabled"], json!(true));
    assert_eq!(settings["idle_delay_seconds"], json!(300));
    assert_eq!(settings["lock_delay_seconds"], json!(4_294_967_295u64));
}

#[test]
fn gnome_corrupt_database_is_unknown() {
    let tree = gnome(None);
    let mut bytes = fixture("gnome/user-ok");
    bytes.truncate(bytes.len() / 2);
    tree.put(USER_DB, bytes);
    let finding = tree.check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("corrupt"));
}

// ---------------------------------------------------------------- sessions

#[test]
fn no_graphical_session_is_unknown() {
    for tree in [
        Tree::new(),
        Tree::new()
            .session("c1", "gdm-greeter")
            .session("5", "ssh-tty"),
    ] {
        let finding = tree.check();
        assert_eq!(finding.status, Status::Unknown);
        assert_eq!(finding.reason.as_deref(), Some("no graphical user session"));
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), SystemTime::now());
    let finding = screen_lock::check(&ctx);
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding
        .reason
        .unwrap()
        .contains("no graphical user session"));
}

#[test]
fn the_greeter_and_ssh_sessions_are_not_judged() {
    let finding = gnome(Some("user-ok"))
        .session("c1", "gdm-greeter")
        .session("5", "ssh-tty")
        .check();
    assert_eq!(finding.status, Status::Pass);
    assert_eq!(finding.observed["sessions"].as_array().unwrap().len(), 1);
}

#[test]
fn unsupported_desktop_is_unknown() {
    let finding = Tree::new().session("2", "labwc-wayland").check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("labwc"));
}

// ---- Cinnamon, MATE, sway, Hyprland, i3 / X11 lockers ------------------------------------

fn session_of(kind: &str) -> Tree {
    Tree::new().session("2", kind)
}

fn one(finding: &Finding) -> &serde_json::Value {
    &finding.observed["sessions"][0]
}

#[test]
fn cinnamon_settings_pass_and_its_900_s_default_is_the_limit() {
    let finding = session_of("cinnamon-x11")
        .with(USER_DB, "gnome/cinnamon-ok")
        .check();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(one(&finding)["lock_after_seconds"], json!(300));
    // No user database: Cinnamon's schema default idle-delay is 900 s (15 min).
    let finding = session_of("cinnamon-x11").check();
    assert_eq!(one(&finding)["lock_after_seconds"], json!(900));
}

#[test]
fn mate_with_lock_disabled_fails_with_mate_remediation() {
    let finding = session_of("mate-x11")
        .with(USER_DB, "gnome/mate-lock-disabled")
        .check();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert!(finding.summary.contains("does not lock automatically"));
    assert!(finding.remediation.as_ref().unwrap().text.contains("MATE"));
    // MATE's idle-delay is in minutes.
    assert_eq!(one(&finding)["settings"]["idle_delay_minutes"], json!(10));
}

#[test]
fn sway_default_config_never_locks_and_a_swayidle_config_does() {
    // Debian 12's /etc/sway/config only has swayidle commented out.
    let finding = session_of("sway-wayland")
        .with("etc/sway/config", "lockers/sway-config-debian12")
        .check();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert!(finding.remediation.unwrap().text.contains("swayidle"));
    let finding = session_of("sway-wayland")
        .with("etc/sway/config", "lockers/sway-config-debian12")
        .with(
            "home/alice/.config/swayidle/config",
            "lockers/swayidle-config",
        )
        .check();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(one(&finding)["lock_after_seconds"], json!(300));
}

#[test]
fn sway_without_any_config_is_unknown() {
    let finding = session_of("sway-wayland").check();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
}

#[test]
fn hypridle_locks_through_lock_session_when_hyprland_starts_it() {
    let tree = session_of("hyprland-wayland").with(
        "home/alice/.config/hypr/hypridle.conf",
        "lockers/hypridle.conf",
    );
    // hypridle.conf alone: nothing starts hypridle, so nothing locks.
    let finding = tree.check();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    let finding = tree
        .with(
            "home/alice/.config/hypr/hyprland.conf",
            "lockers/hyprland.conf",
        )
        .check();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(one(&finding)["lock_after_seconds"], json!(300));
}

#[test]
fn i3_default_config_locks_through_xss_lock_at_the_x_default() {
    // Debian 12's /etc/i3/config as the user's config: xss-lock + i3lock, no `xset s`.
    let finding = session_of("i3-x11")
        .with("home/alice/.config/i3/config", "lockers/i3-config-debian12")
        .check();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(one(&finding)["lock_after_seconds"], json!(600));
    assert_eq!(one(&finding)["settings"]["tool"], json!("xss-lock"));
}

#[test]
fn xscreensaver_locking_after_20_minutes_fails_the_15_minute_limit() {
    let finding = session_of("openbox-x11")
        .with("home/alice/.xscreensaver", "lockers/xscreensaver")
        .check();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(one(&finding)["lock_after_seconds"], json!(1200));
    assert_eq!(one(&finding)["desktop"], json!("openbox"));
}

#[test]
fn light_locker_not_locking_on_suspend_fails() {
    let finding = session_of("openbox-x11")
        .with("etc/xdg/autostart/light-locker.desktop", "passwd")
        .with(USER_DB, "gnome/light-locker-no-suspend")
        .check();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert!(
        finding.summary.contains("waking from sleep"),
        "{}",
        finding.summary
    );
}

#[test]
fn x11_session_without_any_locker_is_unknown() {
    let finding = session_of("openbox-x11").check();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert!(finding.reason.unwrap().contains("no screen locker found"));
}

#[test]
fn one_failing_session_fails_the_device() {
    let finding = gnome(Some("user-ok"))
        .session("3", "kde-x11")
        .with(
            "home/alice/.config/kscreenlockerrc",
            "kde/kscreenlockerrc-no-autolock",
        )
        .check();
    assert_eq!(finding.status, Status::Fail);
    let statuses: Vec<_> = finding.observed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("pass"), json!("fail")]);
    assert!(finding.remediation.unwrap().text.contains("KDE"));
}

// ---------------------------------------------------------------- KDE

fn kde(user: Option<&str>) -> Tree {
    let tree = Tree::new().session("3", "kde-x11");
    match user {
        Some(name) => tree.with("home/alice/.config/kscreenlockerrc", &format!("kde/{name}")),
        None => tree,
    }
}

#[test]
fn kde_defaults_pass() {
    for tree in [kde(None), kde(Some("kscreenlockerrc-defaults"))] {
        let finding = tree.check();
        assert_eq!(finding.status, Status::Pass, "{finding:?}");
        let session = &finding.observed["sessions"][0];
        assert_eq!(session["lock_after_seconds"], json!(305));
        assert_eq!(session["settings"]["lock_on_resume"], json!(true));
    }
}

#[test]
fn kde_bad_settings_fail() {
    for (file, words) in [
        ("kscreenlockerrc-no-autolock", "does not lock automatically"),
        ("kscreenlockerrc-30min", "31 min"),
        ("kscreenlockerrc-no-resume", "waking from sleep"),
    ] {
        let finding = kde(Some(file)).check();
        assert_eq!(finding.status, Status::Fail, "{file}");
        assert!(
            finding.summary.contains(words),
            "{file}: {}",
            finding.summary
        );
        assert!(finding.remediation.unwrap().text.contains("Screen Locking"));
    }
}

#[test]
fn kde_unparseable_value_is_unknown() {
    let finding = kde(Some("kscreenlockerrc-typo")).check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("Timeout=five"));
}

#[test]
fn kde_immutable_system_settings_win() {
    let finding = kde(Some("kscreenlockerrc-no-autolock"))
        .with(
            "etc/xdg/kscreenlockerrc",
            "kde/system-kscreenlockerrc-locked",
        )
        .check();
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(
        finding.observed["sessions"][0]["lock_after_seconds"],
        json!(605)
    );
}

// ---------------------------------------------------------------- XFCE

const XFCE_CHANNEL: &str =
    "home/alice/.config/xfce4/xfconf/xfce-perchannel-xml/xfce4-screensaver.xml";

fn xfce(channel: Option<&str>) -> Tree {
    let tree = Tree::new().session("4", "xfce-x11");
    tree.put("usr/bin/xfce4-screensaver", b"#!/bin/sh\n".to_vec());
    match channel {
        Some(name) => tree.with(XFCE_CHANNEL, &format!("xfce/{name}")),
        None => tree,
    }
}

#[test]
fn xfce_settings() {
    let cases = [
        (None, Status::Pass, Some(300)),
        (Some("xfce4-screensaver-ok.xml"), Status::Pass, Some(660)),
        (
            Some("xfce4-screensaver-lock-disabled.xml"),
            Status::Fail,
            Some(600),
        ),
        (Some("xfce4-screensaver-idle-off.xml"), Status::Fail, None),
    ];
    for (channel, status, after) in cases {
        let finding = xfce(channel).check();
        assert_eq!(finding.status, status, "{channel:?}: {finding:?}");
        assert_eq!(
            finding.observed["sessions"][0]["lock_after_seconds"],
            json!(after),
            "{channel:?}"
        );
        if status == Status::Fail {
            assert!(finding.remediation.unwrap().text.contains("XFCE"));
        }
    }
}

#[test]
fn xfce_broken_channel_is_unknown() {
    let finding = xfce(Some("xfce4-screensaver-truncated.xml")).check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("xfce4-screensaver.xml"));
}

#[test]
fn xfce_without_xfce4_screensaver_is_unknown() {
    let tree = Tree::new()
        .session("4", "xfce-x11")
        .with(XFCE_CHANNEL, "xfce/xfce4-screensaver-ok.xml");
    let finding = tree.check();
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("not installed"));
}

// ---------------------------------------------------------------- this machine

/// This machine: the live check asks logind over the system bus. This build machine (and
/// CI) runs no systemd and no system bus, so the answer must be `unknown` naming D-Bus,
/// never a pass; where a bus and logind run, the sessions it lists are judged.
#[test]
fn live_machine_asks_logind_over_dbus() {
    let finding = screen_lock::check(&Context::system(ChecksConfig::default()));
    finding.check_invariants().unwrap();
    assert!(finding
        .source
        .iter()
        .any(|s| s.starts_with("D-Bus org.freedesktop.login1")));
    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").is_ok()
        || Path::new("/run/dbus/system_bus_socket").exists();
    if !bus {
        assert_eq!(finding.status, Status::Unknown, "{finding:?}");
        assert!(finding.reason.unwrap().contains("D-Bus"));
    }
}

// ---- logind over a real (private) D-Bus, with logind's interface served by the test ----

const LOGIND_ROOT: &str = "POSTURE_TEST_LOGIND_ROOT";
const LOGIND_OUT: &str = "POSTURE_TEST_LOGIND_OUT";

/// Helper run by `logind_over_dbus_*` in a child process whose `DBUS_SYSTEM_BUS_ADDRESS`
/// names the private bus: the check, live (so it asks D-Bus), over the fixture tree.
#[test]
#[ignore = "helper: run by the logind_over_dbus tests with a private system bus"]
fn logind_child() {
    let root = std::env::var(LOGIND_ROOT).expect("run by the logind tests");
    let mut ctx = Context::fixture(root, ChecksConfig::default(), SystemTime::now());
    ctx.live = true;
    let finding = screen_lock::check(&ctx);
    std::fs::write(
        std::env::var(LOGIND_OUT).unwrap(),
        serde_json::to_vec(&finding).unwrap(),
    )
    .unwrap();
}

struct FakeManager {
    sessions: Vec<(String, u32, String, String, zbus::zvariant::OwnedObjectPath)>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeManager {
    fn list_sessions(&self) -> Vec<(String, u32, String, String, zbus::zvariant::OwnedObjectPath)> {
        self.sessions.clone()
    }
}

struct FakeSession {
    kind: &'static str,
    class: &'static str,
    desktop: &'static str,
    locked: bool,
    idle: bool,
}

#[zbus::interface(name = "org.freedesktop.login1.Session")]
impl FakeSession {
    #[zbus(property)]
    fn r#type(&self) -> String {
        self.kind.to_owned()
    }
    #[zbus(property)]
    fn class(&self) -> String {
        self.class.to_owned()
    }
    #[zbus(property)]
    fn state(&self) -> String {
        "active".to_owned()
    }
    #[zbus(property)]
    fn desktop(&self) -> String {
        self.desktop.to_owned()
    }
    #[zbus(property)]
    fn active(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn idle_hint(&self) -> bool {
        self.idle
    }
    #[zbus(property)]
    fn idle_since_hint(&self) -> u64 {
        if self.idle {
            1_764_547_200_000_000
        } else {
            0
        }
    }
    #[zbus(property)]
    fn locked_hint(&self) -> bool {
        self.locked
    }
    #[zbus(property)]
    fn remote(&self) -> bool {
        false
    }
}

/// Starts a private dbus-daemon, serves a logind with these sessions on it, runs the
/// check in a child process against it, and returns the finding.
fn check_with_fake_logind(tree: &Tree, sessions: Vec<(&str, u32, &str, FakeSession)>) -> Finding {
    let bus = posture_test_support::PrivateBus::start();
    let address = bus.address.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _logind = runtime.block_on(async {
        let listed = sessions
            .iter()
            .map(|(id, uid, user, _)| {
                (
                    (*id).to_owned(),
                    *uid,
                    (*user).to_owned(),
                    "seat0".to_owned(),
                    zbus::zvariant::OwnedObjectPath::try_from(format!(
                        "/org/freedesktop/login1/session/_3{id}"
                    ))
                    .unwrap(),
                )
            })
            .collect();
        let mut builder = zbus::connection::Builder::address(address.as_str())
            .unwrap()
            .name("org.freedesktop.login1")
            .unwrap()
            .serve_at("/org/freedesktop/login1", FakeManager { sessions: listed })
            .unwrap();
        for (id, _, _, session) in sessions {
            builder = builder
                .serve_at(format!("/org/freedesktop/login1/session/_3{id}"), session)
                .unwrap();
        }
        builder.build().await.unwrap()
    });
    let out = bus.path("finding.json");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "logind_child", "--ignored", "--nocapture"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .env(LOGIND_ROOT, tree.dir.path())
        .env(LOGIND_OUT, &out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

fn fake(kind: &'static str, class: &'static str, desktop: &'static str) -> FakeSession {
    FakeSession {
        kind,
        class,
        desktop,
        locked: false,
        idle: false,
    }
}

#[test]
fn logind_over_dbus_lists_the_graphical_sessions_with_their_hints() {
    // The tree has alice's GNOME settings but no session files: the sessions come only
    // from logind on the bus.
    let tree = Tree::new().with(USER_DB, "gnome/user-ok");
    let mut gnome = fake("wayland", "user", "GNOME");
    gnome.locked = true;
    gnome.idle = true;
    let finding = check_with_fake_logind(
        &tree,
        vec![
            ("2", 1000, "alice", gnome),
            ("c1", 120, "gdm", fake("wayland", "greeter", "GNOME")),
            ("5", 1000, "alice", fake("tty", "user", "")),
        ],
    );
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    let sessions = finding.observed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "the greeter and the tty are not judged");
    assert_eq!(sessions[0]["session"], "2");
    assert_eq!(sessions[0]["logind"]["locked"], true);
    assert_eq!(sessions[0]["logind"]["idle"], true);
    assert!(finding
        .source
        .iter()
        .any(|s| s.starts_with("D-Bus org.freedesktop.login1")));
}

#[test]
fn logind_over_dbus_with_no_graphical_session_is_unknown() {
    let finding = check_with_fake_logind(
        &Tree::new(),
        vec![("5", 1000, "alice", fake("tty", "user", ""))],
    );
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert_eq!(finding.reason.as_deref(), Some("no graphical user session"));
}

#[test]
fn no_logind_on_the_bus_is_unknown_never_pass() {
    // A bus without logind on it: the call fails, the answer is unknown with the reason.
    let finding = check_with_fake_logind_absent();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert!(
        finding.reason.unwrap().contains("logind"),
        "reason names logind"
    );
}

fn check_with_fake_logind_absent() -> Finding {
    let tree = Tree::new();
    let bus = posture_test_support::PrivateBus::start();
    let address = bus.address.clone();
    let out = bus.path("finding.json");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "logind_child", "--ignored", "--nocapture"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .env(LOGIND_ROOT, tree.dir.path())
        .env(LOGIND_OUT, &out)
        .output()
        .unwrap();
    assert!(output.status.success());
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

// ---- files a user controls, read as root (issue 11, item 2) ------------------------------

/// What a user can put in place of a settings file in their home directory.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A FIFO: a plain `open` blocks until someone writes to it, forever.
    Fifo,
    /// A symbolic link to a file only root may read.
    SymlinkToShadow,
    /// A 1 GB sparse file (costs the user nothing on disk).
    SparseGigabyte,
    /// A device node (`/dev/zero`'s numbers: reading never ends).
    DeviceNode,
    /// `~/.config` itself a symbolic link to a directory the user does not own.
    ConfigDirSymlink,
}

fn plant(tree: &Tree, relative: &str, hostile: Hostile) {
    let path = tree.dir.path().join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let run = |program: &str, args: &[&str]| {
        let status = Command::new(program)
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("{program} is needed for this test: {e}"));
        assert!(status.success(), "{program} {args:?} failed (needs root)");
    };
    let p = path.to_str().unwrap();
    match hostile {
        Hostile::Fifo => run("mkfifo", &[p]),
        Hostile::SymlinkToShadow => std::os::unix::fs::symlink("/etc/shadow", &path).unwrap(),
        Hostile::SparseGigabyte => {
            let file = std::fs::File::create(&path).unwrap();
            file.set_len(1 << 30).unwrap();
        }
        Hostile::DeviceNode => run("mknod", &[p, "c", "1", "5"]),
        Hostile::ConfigDirSymlink => {
            let config = tree.dir.path().join("home/alice/.config");
            let elsewhere = tree.dir.path().join("root/.config");
            std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
            std::fs::rename(&config, &elsewhere).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &config).unwrap();
        }
    }
}

/// Runs the check on its own thread: a reader blocked on a FIFO fails the test instead
/// of hanging it. 20 s is far beyond what a refusal takes (milliseconds).
fn check_bounded(tree: Tree) -> Finding {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let finding = tree.check();
        let _ = send.send(finding);
        drop(tree);
    });
    receive
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the screen_lock check blocked on a file the user controls")
}

/// A desktop: its name, a passing tree, and its settings file in the home directory.
type Desktop = (&'static str, fn() -> Tree, &'static str);

#[test]
fn hostile_files_in_the_home_directory_are_refused_not_read() {
    let desktops: [Desktop; 3] = [
        ("gnome", || gnome(Some("user-ok")), USER_DB),
        (
            "kde",
            || kde(Some("kscreenlockerrc-defaults")),
            "home/alice/.config/kscreenlockerrc",
        ),
        (
            "xfce",
            || xfce(Some("xfce4-screensaver-ok.xml")),
            XFCE_CHANNEL,
        ),
    ];
    for (desktop, tree, relative) in desktops {
        // The same tree with the real file passes: the refusals below are the hostile files.
        assert_eq!(tree().check().status, Status::Pass, "{desktop}");
        for hostile in [
            Hostile::Fifo,
            Hostile::SymlinkToShadow,
            Hostile::SparseGigabyte,
            Hostile::DeviceNode,
            Hostile::ConfigDirSymlink,
        ] {
            let tree = tree();
            plant(&tree, relative, hostile);
            let started = std::time::Instant::now();
            let finding = check_bounded(tree);
            finding.check_invariants().unwrap();
            assert_eq!(
                finding.status,
                Status::Unknown,
                "{desktop} {hostile:?}: {finding:?}"
            );
            let reason = finding.reason.as_deref().unwrap();
            assert!(
                reason.contains("refused to read"),
                "{desktop} {hostile:?}: {reason}"
            );
            let why = match hostile {
                Hostile::Fifo => "FIFO",
                Hostile::SymlinkToShadow | Hostile::ConfigDirSymlink => "symbolic link",
                Hostile::SparseGigabyte => "1073741824 bytes",
                Hostile::DeviceNode => "character device",
            };
            assert!(reason.contains(why), "{desktop} {hostile:?}: {reason}");
            // Refused before reading: far less than reading 64 MiB of a sparse file.
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
        }
    }
}
