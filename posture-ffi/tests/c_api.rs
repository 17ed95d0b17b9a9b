//! The C API tested the way C consumers use it:
//!
//! - the committed `include/posture.h` is exactly what the pinned cbindgen generates;
//! - `tests/c/posture_test.c` is compiled with `-Wall -Wextra -Werror` against that header,
//!   with the flags of the generated pkg-config file, linked statically and dynamically,
//!   and run under valgrind (any error or leak fails);
//! - `examples/python/verify.py` verifies evidence through ctypes.
//!
//! The evidence those programs verify is made here with posture-core: temporary software
//! keys signing a fixture report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use p256::pkcs8::{EncodePublicKey, LineEnding};
use posture_core::evidence::{sign_evidence_at, EvidenceOptions};
use posture_core::jose::Jwk;
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::Signer;
use posture_core::{Device, Finding, OsFacts, Remediation, Report, Timestamp};

const NONCE: &str = "c-test-nonce-0001";
const AUDIENCE: &str = "proxy.example";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_dir() -> &'static Path {
    crate_dir().parent().unwrap()
}

// ---------------------------------------------------------------------------------------
// Header drift

fn version_macros() -> String {
    format!(
        "\n#define POSTURE_VERSION_MAJOR {}\n#define POSTURE_VERSION_MINOR {}\n#define POSTURE_VERSION_PATCH {}\n#define POSTURE_VERSION_STRING \"{}\"\n",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate_header() -> String {
    let mut config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml")).unwrap();
    config.after_includes = Some(version_macros());
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir().join("src/lib.rs"))
        .generate()
        .unwrap();
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn header_committed_matches_the_code() {
    let path = crate_dir().join("include/posture.h");
    let generated = generate_header();
    if std::env::var_os("POSTURE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/posture.h is out of date; regenerate it with\n  \
         POSTURE_UPDATE_HEADER=1 cargo nextest run -p posture-ffi --test c_api header\n\
         --- generated ---\n{generated}"
    );
}

// ---------------------------------------------------------------------------------------
// Fixtures

/// A small report like `posture check --json` produces: disk encryption passes, the
/// firewall fails (values as the real checks report them on a Debian 12 laptop).
fn fixture_report() -> Report {
    Report::new(
        Device {
            id: "3f".repeat(32),
            hostname: "laptop-42".into(),
            vendor: Some("LENOVO".into()),
            model: Some("21CBCTO1WW".into()),
        },
        OsFacts {
            family: "linux".into(),
            id: "debian".into(),
            name: "Debian GNU/Linux 12 (bookworm)".into(),
            version_id: Some("12".into()),
            kernel: "6.1.0-26-amd64".into(),
            arch: "x86_64".into(),
        },
        Timestamp::now(),
        vec![
            Finding::pass("disk_encryption", "the root filesystem is on LUKS2")
                .observe("root", "luks2")
                .source("/sys/block/dm-0/dm/uuid"),
            Finding::fail(
                "firewall",
                "no firewall is active",
                Remediation::new("Enable a firewall: sudo ufw enable"),
            )
            .source("nft list ruleset"),
        ],
    )
}

/// Writes the inputs `posture_test.c` and the Python example read (see the C file).
fn write_fixtures(dir: &Path) {
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
}

// ---------------------------------------------------------------------------------------
// Building and running C

/// Where cargo put libposture.{a,so}: the directory above this test binary's `deps/`.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned();
    for lib in ["libposture.a", "libposture.so"] {
        assert!(
            dir.join(lib).is_file(),
            "{lib} not built in {}",
            dir.display()
        );
    }
    dir
}

/// Writes posture.pc for the libraries in the target dir, the same substitution
/// scripts/install-ffi.sh does for an installation.
fn write_pkg_config(dir: &Path) -> PathBuf {
    let template = std::fs::read_to_string(crate_dir().join("posture.pc.in")).unwrap();
    let include = crate_dir().join("include");
    let pc = template
        .replace("@PREFIX@", &lib_dir().display().to_string())
        .replace("@LIBDIR@", &lib_dir().display().to_string())
        .replace("@INCLUDEDIR@", &include.display().to_string())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    let pc_dir = dir.join("pkgconfig");
    std::fs::create_dir_all(&pc_dir).unwrap();
    std::fs::write(pc_dir.join("posture.pc"), pc).unwrap();
    pc_dir
}

fn pkg_config(pc_dir: &Path, args: &[&str]) -> Vec<String> {
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
enum Linking {
    Static,
    Dynamic,
}

/// Compiles `tests/c/<name>.c` as a C consumer would, with pkg-config's flags.
fn compile(name: &str, linking: Linking, dir: &Path) -> PathBuf {
    let pc_dir = write_pkg_config(dir);
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
        "-O1",
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

/// The shared libraries an executable needs (ELF DT_NEEDED).
fn needed_libraries(exe: &Path) -> String {
    let out = Command::new("readelf").arg("-d").arg(exe).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `exe` under valgrind: exit code 99 on any memory error or leak.
fn run_under_valgrind(exe: &Path, fixtures: &Path, linking: Linking) -> Output {
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--quiet",
        "--error-exitcode=99",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--fair-sched=yes",
    ])
    .arg(exe)
    .env("POSTURE_TEST_DIR", fixtures)
    .env_remove("LD_LIBRARY_PATH");
    if linking == Linking::Dynamic {
        cmd.env("LD_LIBRARY_PATH", lib_dir());
    }
    cmd.output()
        .expect("valgrind is installed (scripts/setup.sh)")
}

fn c_program_passes(linking: Linking) {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).unwrap();
    write_fixtures(&fixtures);
    let exe = compile("posture_test", linking, dir.path());

    let needed = needed_libraries(&exe);
    match linking {
        Linking::Static => assert!(!needed.contains("libposture"), "{needed}"),
        Linking::Dynamic => assert!(needed.contains("libposture.so"), "{needed}"),
    }

    let out = run_under_valgrind(&exe, &fixtures, linking);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "posture_test ({linking:?}) failed under valgrind\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for test in [
        "ok version",
        "ok error_message",
        "ok null_arguments",
        "ok verifier_construction",
        "ok happy_path",
        "ok rejections",
        "ok garbage",
        "ok threads (8 threads",
        "ok agent",
        "all tests passed",
    ] {
        assert!(stdout.contains(test), "missing {test:?} in:\n{stdout}");
    }
}

#[test]
fn c_program_linked_statically_passes_under_valgrind() {
    c_program_passes(Linking::Static);
}

#[test]
fn c_program_linked_dynamically_passes_under_valgrind() {
    c_program_passes(Linking::Dynamic);
}

// ---------------------------------------------------------------------------------------
// Python through ctypes

fn run_python_example(fixtures: &Path, policy: &str, evidence: &str, nonce: &str) -> Output {
    Command::new("python3")
        .arg(workspace_dir().join("examples/python/verify.py"))
        .arg("--lib")
        .arg(lib_dir().join("libposture.so"))
        .arg("--keys")
        .arg(fixtures.join("trusted.jwk"))
        .arg("--policy")
        .arg(fixtures.join(policy))
        .arg("--evidence")
        .arg(fixtures.join(evidence))
        .args(["--nonce", nonce, "--audience", AUDIENCE])
        .output()
        .expect("python3 is installed (scripts/setup.sh)")
}

#[test]
fn python_ctypes_example_decides() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());

    let out = run_python_example(dir.path(), "allow.toml", "evidence.jws", NONCE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "allow\n");

    let out = run_python_example(dir.path(), "deny.toml", "evidence.jws", NONCE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("deny\n  required_checks [firewall]: "),
        "{stdout}"
    );

    let out = run_python_example(dir.path(), "allow.toml", "expired.jws", NONCE);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the evidence has expired (status 206)"));

    let out = run_python_example(
        dir.path(),
        "allow.toml",
        "evidence.jws",
        "someone-elses-nonce",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonce does not match"));
}
