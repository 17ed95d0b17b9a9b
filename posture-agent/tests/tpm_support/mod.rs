//! A real TPM for tests: `swtpm` (libtpms) with its state in a temp dir, manufactured by
//! `swtpm_setup --create-ek-cert` with a local CA of its own, killed on drop. Each test
//! gets its own, so tests run in parallel.
//!
//! tss-esapi 7.x parses only `host=`/`port=` in a swtpm TCTI (not `path=` for a unix
//! socket), so the simulator listens on two consecutive loopback TCP ports (data p,
//! control p+1). Ports are picked free, and a start that loses a race for them is retried
//! on other ports; within one test process the picking is serialised.

// Test support code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static PORTS: Mutex<()> = Mutex::new(());

use posture_agent::tpm::Tpm;

pub struct Swtpm {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// The data port (control is port + 1).
    port: u16,
}

fn consecutive_ports() -> u16 {
    for _ in 0..100 {
        let data = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = data.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free loopback ports");
}

impl Swtpm {
    /// Manufactures a TPM (EK, EK certificate under a fresh local CA, sha256 bank) and
    /// starts it.
    pub fn start() -> Swtpm {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("state")).unwrap();
        std::fs::create_dir(d.join("ca")).unwrap();
        std::fs::write(
            d.join("localca.conf"),
            format!(
                "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n",
                ca = d.join("ca").display()
            ),
        )
        .unwrap();
        // The options are those of Debian's /etc/swtpm-localca.options.
        std::fs::write(
            d.join("localca.options"),
            "--platform-manufacturer Debian\n--platform-version 2.1\n--platform-model QEMU\n",
        )
        .unwrap();
        std::fs::write(
            d.join("setup.conf"),
            format!(
                "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
                d.join("localca.conf").display(),
                d.join("localca.options").display()
            ),
        )
        .unwrap();
        let out = Command::new("swtpm_setup")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(d.join("state"))
            .arg("--create-ek-cert")
            .arg("--config")
            .arg(d.join("setup.conf"))
            .arg("--logfile")
            .arg(d.join("setup.log"))
            .output()
            .expect("swtpm_setup (install swtpm-tools: scripts/setup.sh)");
        assert!(
            out.status.success(),
            "swtpm_setup failed: {}",
            std::fs::read_to_string(d.join("setup.log")).unwrap_or_default()
        );
        let mut tpm = Swtpm {
            dir,
            child: None,
            port: 0,
        };
        tpm.spawn();
        tpm
    }

    /// Undefines NV index `index` with platform authorization (empty on swtpm), e.g. the
    /// RSA EK certificate `0x01c00002`, to make a TPM that ships only an ECC EK
    /// certificate. Uses `tpm2_nvundefine` (tpm2-tools); call it while no `Tpm` is open
    /// (swtpm serves one connection at a time).
    pub fn undefine_nv_index(&self, index: u32) {
        let out = Command::new("tpm2_nvundefine")
            .args(["-C", "p", &format!("0x{index:08x}")])
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .expect("tpm2_nvundefine (install tpm2-tools: scripts/setup.sh)");
        assert!(
            out.status.success(),
            "tpm2_nvundefine 0x{index:08x}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The TCTI string for this simulator (the TCTI uses port+1 for control).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn open(&self) -> Arc<Tpm> {
        Arc::new(Tpm::open(&self.tcti()).unwrap())
    }

    /// The local CA's root and intermediate (what a verifier configures as EK roots).
    pub fn ca_bundle(&self) -> Vec<u8> {
        let ca = self.dir.path().join("ca");
        let mut pem = std::fs::read(ca.join("issuercert.pem")).unwrap();
        pem.extend(std::fs::read(ca.join("swtpm-localca-rootca-cert.pem")).unwrap());
        pem
    }

    fn spawn(&mut self) {
        let _serialised = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..10 {
            let port = consecutive_ports();
            let mut child = Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg("--tpmstate")
                .arg(format!("dir={}", self.dir.path().join("state").display()))
                .args(["--server", &format!("type=tcp,port={port}")])
                .args(["--ctrl", &format!("type=tcp,port={}", port + 1)])
                // Do what firmware does at power-on: TPM2_Startup(CLEAR).
                .args(["--flags", "not-need-init,startup-clear"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm (install swtpm: scripts/setup.sh)");
            if listening(&mut child, port + 1) {
                self.port = port;
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start");
    }

    /// Power-cycles the simulator, keeping its state (persistent keys, seeds, NV).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `child` accepts on `port`; false if it exited (e.g. the port was taken).
fn listening(child: &mut Child, port: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Make sure it was ours that answered, not a process that held the port.
            std::thread::sleep(Duration::from_millis(20));
            return child.try_wait().unwrap().is_none();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}
