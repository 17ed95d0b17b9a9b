//! Shared by the C API tests and the FFI benchmark: fixtures (keys, policies, evidence)
//! and compiling C programs against libposture the way a consumer does.
#![allow(dead_code)] // each user takes what it needs
// Test support: failing loudly on a broken setup is right.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use p256::pkcs8::{EncodePublicKey, LineEnding};
use posture_core::evidence::{sign_evidence_at, EvidenceOptions};
use posture_core::jose::Jwk;
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::Signer;
use posture_core::{Finding, Report};

pub const NONCE: &str = "c-test-nonce-0001";
pub const AUDIENCE: &str = "proxy.example";

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn workspace_dir() -> &'static Path {
    crate_dir().parent().unwrap()
}

// ---------------------------------------------------------------------------------------
// Fixtures

/// A small report like `posture check --json` produces: disk encryption passes, the
/// firewall fails (values as the real checks report them on a Debian 12 laptop).
pub fn fixture_report() -> Report {
    posture_test_support::report_with(vec![
        Finding::pass("disk_encryption", "the root filesystem is on LUKS2")
            .observe("root", "luks2")
            .source("/sys/block/dm-0/dm/uuid"),
        posture_test_support::firewall_off(),
    ])
}

/// Writes the inputs `posture_test.c` and the Python example read (see the C file).
pub fn write_fixtures(dir: &Path) {
    let key_a = SoftwareKey::load_or_create(&dir.join("key-a")).unwrap();
    let key_b = SoftwareKey::load_or_create(&dir.join("key-b")).unwrap();
    let jwk = |key: &SoftwareKey| serde_json::to_string(&Jwk::from_public_key(&key.public_key()));
    std::fs::write(dir.join("trusted.jwk"), jwk(&key_a).unwrap()).unwrap();
    std::fs::write(dir.join("other.jwk"), jwk(&key_b).unwrap()).unwrap();
    let pem = key_a
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(dir.join("trusted.pem"), pem).unwrap();
    std::fs::write(
        dir.join("allow.toml"),
        "required_checks = [\"disk_encryption\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("deny.toml"),
        "required_checks = [\"disk_encryption\", \"firewall\"]\n",
    )
    .unwrap();

    let report = fixture_report();
    let options = EvidenceOptions {
        nonce: Some(NONCE.into()),
        audience: Some(AUDIENCE.into()),
        ttl: Duration::from_secs(3600),
    };
    let now = SystemTime::now();
    let sign = |key: &SoftwareKey, options: &EvidenceOptions, at| {
        sign_evidence_at(&report, key, options, at).unwrap()
    };
    std::fs::write(dir.join("evidence.jws"), sign(&key_a, &options, now)).unwrap();
    std::fs::write(dir.join("wrong_key.jws"), sign(&key_b, &options, now)).unwrap();
    let short = EvidenceOptions {
        ttl: Duration::from_secs(60),
        ..options.clone()
    };
    let two_hours_ago = now - Duration::from_secs(2 * 3600);
    std::fs::write(dir.join("expired.jws"), sign(&key_a, &short, two_hours_ago)).unwrap();
    write_agent_fixture(dir);
}

/// A device tree for the C agent to collect from (`[daemon] root`), and its config: the
/// checks read these files, never this machine's, so the C programs under valgrind do the
/// same work on any machine, loaded or not.
fn write_agent_fixture(dir: &Path) {
    let root = dir.join("device-root");
    posture_test_support::write_device_root(&root);
    let config = format!(
        "[checks]\ntimeout = \"60s\"\n\n[key]\nbackend = \"software\"\n\n[daemon]\nroot = {:?}\nstate_dir = {:?}\n",
        root,
        dir.join("agent-state"),
    );
    std::fs::write(dir.join("agent.toml"), config).unwrap();
}

// ---------------------------------------------------------------------------------------
// Building and running C

/// Where cargo put the libposture.{a,so} built with this test or bench binary: its own
/// `deps/` directory. (The copies one level up are refreshed only by `cargo build`, so
/// they may be stale.)
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_owned();
    for lib in ["libposture.a", "libposture.so"] {
        assert!(
            dir.join(lib).is_file(),
            "{lib} not built in {}",
            dir.display()
        );
    }
    dir
}

/// Writes posture.pc for the libraries in [`lib_dir`] and the committed header: the same
/// substitution scripts/install-ffi.sh does for an installation.
pub fn write_pkg_config(dir: &Path) -> PathBuf {
    let template = std::fs::read_to_string(crate_dir().join("posture.pc.in")).unwrap();
    let include = crate_dir().join("include");
    let pc = template
        .replace("@PREFIX@", &lib_dir().display().to_string())
        .replace("@LIBDIR@", &lib_dir().display().to_string())
        .replace("@INCLUDEDIR@", &include.display().to_string())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace(
            "@REQUIRES_PRIVATE@",
            "Requires.private: tss2-esys tss2-mu tss2-tctildr",
        );
    let pc_dir = dir.join("pkgconfig");
    std::fs::create_dir_all(&pc_dir).unwrap();
    std::fs::write(pc_dir.join("posture.pc"), pc).unwrap();
    pc_dir
}

pub fn pkg_config(pc_dir: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("posture")
        .env("PKG_CONFIG_PATH", pc_dir)
        .output()
        .expect("pkg-config is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Linking {
    Static,
    Dynamic,
}

/// The pkg-config directory of an installation made by scripts/install-ffi.sh, when
/// `POSTURE_FFI_PREFIX` names one.
pub fn installed_pkg_config() -> Option<PathBuf> {
    std::env::var_os("POSTURE_FFI_PREFIX").map(|p| PathBuf::from(p).join("lib/pkgconfig"))
}

/// Compiles `tests/c/<name>.c` as a C consumer would, with pkg-config's flags: against the
/// libraries built with this binary, or an installation when [`installed_pkg_config`].
pub fn compile(name: &str, linking: Linking, optimize: &str, dir: &Path) -> PathBuf {
    let pc_dir = installed_pkg_config().unwrap_or_else(|| write_pkg_config(dir));
    let source = workspace_dir().join("tests/c").join(format!("{name}.c"));
    let exe = dir.join(format!("{name}-{linking:?}").to_lowercase());
    let mut cmd = Command::new("cc");
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-g",
        optimize,
    ])
    .args(pkg_config(&pc_dir, &["--cflags"]))
    .arg(&source)
    .arg("-o")
    .arg(&exe)
    .arg("-pthread");
    match linking {
        // The documented static link: the archive by -Bstatic, then what Rust's std needs.
        Linking::Static => {
            for flag in pkg_config(&pc_dir, &["--static", "--libs"]) {
                if flag == "-lposture" {
                    cmd.args(["-Wl,-Bstatic", "-lposture", "-Wl,-Bdynamic"]);
                } else {
                    cmd.arg(flag);
                }
            }
        }
        Linking::Dynamic => {
            cmd.args(pkg_config(&pc_dir, &["--libs"]));
        }
    }
    let out = cmd.output().expect("a C compiler (cc) is installed");
    assert!(
        out.status.success(),
        "compiling {name} ({linking:?}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}
