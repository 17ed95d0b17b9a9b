//! Test fixtures shared by posture's crates: sample devices and reports as the real
//! checks produce them on a Debian 12 laptop, and throw-away software device keys.
//!
//! Dev-only (every user lists it under `[dev-dependencies]`); failing loudly on a
//! broken test setup is right, so helpers panic instead of returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(unix)] // SoftHSM (a PKCS#11 module loaded with dlopen) and 0600 PIN files: Unix only.
pub mod softhsm;

use posture_core::keys::software::SoftwareKey;
use posture_core::{Device, Finding, OsFacts, Remediation, Report, Timestamp};

/// A device identity: a hashed machine id (64 hex digits) and a host name.
pub fn device(hostname: &str) -> Device {
    Device {
        id: "5f".repeat(32),
        hostname: hostname.into(),
        vendor: Some("LENOVO".into()),
        model: None,
        serial_number: None,
    }
}

/// The OS facts of a Debian 12 laptop.
pub fn debian_12() -> OsFacts {
    OsFacts {
        family: "linux".into(),
        id: "debian".into(),
        name: "Debian GNU/Linux 12 (bookworm)".into(),
        version_id: Some("12".into()),
        kernel: "6.1.0-26-amd64".into(),
        arch: "x86_64".into(),
    }
}

/// A report of `findings` from a Debian 12 laptop, collected now.
pub fn report_with(findings: Vec<Finding>) -> Report {
    report_on(debian_12(), findings)
}

/// A report of `findings` from a laptop running `os`, collected now.
pub fn report_on(os: OsFacts, findings: Vec<Finding>) -> Report {
    Report::new(device("laptop-7"), os, Timestamp::now(), findings)
}

/// The failing firewall finding the sample reports carry.
pub fn firewall_off() -> Finding {
    Finding::fail(
        "firewall",
        "no firewall is active",
        Remediation::new("Enable the firewall: sudo ufw enable")
            .with_url("https://wiki.debian.org/Uncomplicated%20Firewall%20%28ufw%29"),
    )
    .source("nft list ruleset")
}

/// A non-compliant report: the OS passes, the firewall fails.
pub fn laptop_report() -> Report {
    report_with(vec![
        Finding::pass("os", "Debian GNU/Linux 12").observe("id", "debian"),
        firewall_off(),
    ])
}

/// A compliant report: every finding passes.
pub fn healthy_report() -> Report {
    report_with(vec![
        Finding::pass("os", "Debian GNU/Linux 12").observe("id", "debian"),
        Finding::pass("firewall", "nftables drops inbound by default"),
    ])
}

/// A software device key in a fresh temp directory (kept alive by the returned guard).
pub fn software_key() -> (tempfile::TempDir, SoftwareKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = SoftwareKey::load_or_create(&dir.path().join("keys")).unwrap();
    (dir, key)
}

/// Whether a test that needs something this machine may lack (root, `unshare`, `nft`,
/// apt) can run. In CI (`CI` set), where `scripts/setup.sh` installs everything and the
/// tests run as root, lacking it fails the test; elsewhere the test says why it did not
/// run, on stderr, and returns. Never a silent pass.
pub fn can_run(needs: Result<(), String>) -> bool {
    match needs {
        Ok(()) => true,
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("this test must run in CI (scripts/setup.sh installs what it needs): {reason}")
        }
        Err(reason) => {
            eprintln!("NOT RUN on this machine: {reason} (CI runs it)");
            false
        }
    }
}

/// os-release of Debian 12, as the distribution ships it (the fields the checks read).
pub const DEBIAN_12_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

/// Writes a minimal device tree below `root` (os-release, host name, machine id, kernel
/// release): what the checks read when a test points `[daemon] root` (or a fixture
/// `Context`) at it instead of this machine.
pub fn write_device_root(root: &std::path::Path) {
    for (path, text) in [
        ("etc/os-release", DEBIAN_12_OS_RELEASE),
        ("etc/hostname", "laptop\n"),
        ("etc/machine-id", "3f5c2a9e8b7d4c1fa0e6b2d9c8a7f6e5\n"),
        ("proc/sys/kernel/osrelease", "6.1.0-26-amd64\n"),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A private D-Bus daemon on a unix socket in a temp dir, for tests that serve a system
/// service's interface (logind, fwupd) that this machine does not run. Stopped on drop.
#[derive(Debug)]
pub struct PrivateBus {
    /// The temp dir (the socket, and room for the test's own files).
    pub dir: tempfile::TempDir,
    /// The bus address, for `DBUS_SYSTEM_BUS_ADDRESS` or a zbus connection.
    pub address: String,
    child: std::process::Child,
}

impl PrivateBus {
    /// Starts `dbus-daemon` (Debian package `dbus-daemon`, installed by scripts/setup.sh;
    /// a test that needs it must not be skipped) and waits until it listens.
    pub fn start() -> PrivateBus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let address = format!("unix:path={}", socket.display());
        let child = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect(
                "dbus-daemon is not installed: run scripts/setup.sh (this test must not be skipped)",
            );
        let started = std::time::Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed().as_secs() < 10,
                "dbus-daemon did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        PrivateBus {
            dir,
            address,
            child,
        }
    }

    /// A path in the bus's temp dir.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
