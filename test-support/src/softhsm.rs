//! A SoftHSM2 token for tests of the attestation CA's PKCS#11 key: its own configuration
//! and token directory in a temp dir (nothing in /etc or /var/lib/softhsm is touched).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A SoftHSM2 token of its own (label `posture-ca`, user PIN in `pin`), in a temp dir that
/// holds its configuration and token files; removed on drop.
#[derive(Debug)]
pub struct SoftHsm {
    /// The temp dir: `softhsm2.conf`, `tokens/`, PIN files.
    pub dir: tempfile::TempDir,
    /// The PKCS#11 module.
    pub module: PathBuf,
}

/// The token's user PIN.
pub const TOKEN_PIN: &str = "246810";

impl SoftHsm {
    /// A new token, or None where SoftHSM2 is not installed outside CI.
    pub fn new() -> Option<SoftHsm> {
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
        let util = Command::new("softhsm2-util").arg("--version").output();
        let found = match (&module, util) {
            (Some(_), Ok(out)) if out.status.success() => Ok(()),
            _ => Err("softhsm2 is missing (scripts/setup.sh installs it)".to_owned()),
        };
        if !crate::can_run(found) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm {
            dir,
            module: module.unwrap(),
        };
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "posture-ca"])
            .args(["--so-pin", "13579135", "--pin", TOKEN_PIN])
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        hsm.pin_file("pin", TOKEN_PIN);
        Some(hsm)
    }

    /// The configuration file: `SOFTHSM2_CONF` for every process using the token.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// Writes a PIN file (0600) named `name`; returns its path.
    pub fn pin_file(&self, name: &str, pin: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{pin}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// The URI of key `object` with the PIN from `pin_file`.
    pub fn uri(&self, object: &str, pin_file: &Path) -> String {
        format!(
            "pkcs11:token=posture-ca;object={object}?module-path={}&pin-source=file:{}",
            self.module.display(),
            pin_file.display()
        )
    }
}
