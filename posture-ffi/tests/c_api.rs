//! The C API tested the way C consumers use it:
//!
//! - the committed `include/posture.h` is exactly what the pinned cbindgen generates;
//! - `tests/c/posture_test.c` is compiled with `-Wall -Wextra -Werror` against that header,
//!   with the flags of the generated pkg-config file, linked statically and dynamically,
//!   and run natively (the threads truly in parallel) and under valgrind (any error or
//!   leak fails);
//! - `examples/python/verify.py` verifies evidence through ctypes.
//!
//! The evidence those programs verify is made here with posture-core: temporary software
//! keys signing a fixture report.

// Test support functions outside #[test]: failing loudly on a broken setup is right.
// Builds C programs and a Python ctypes consumer against the Linux shared library.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{
    compile, crate_dir, lib_dir, workspace_dir, write_fixtures, Linking, AUDIENCE, NONCE,
};

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

/// The shared libraries an executable needs (ELF DT_NEEDED).
fn needed_libraries(exe: &Path) -> String {
    let out = Command::new("readelf").arg("-d").arg(exe).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `exe` natively (threads truly in parallel) or under valgrind (exit code 99 on any
/// memory error or leak).
fn run(exe: &Path, fixtures: &Path, linking: Linking, valgrind: bool) -> Output {
    let mut cmd = if valgrind {
        let mut cmd = Command::new("valgrind");
        cmd.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible",
            "--fair-sched=yes",
        ])
        .arg(exe);
        cmd
    } else {
        Command::new(exe)
    };
    cmd.env("POSTURE_TEST_DIR", fixtures)
        .env_remove("LD_LIBRARY_PATH");
    if linking == Linking::Dynamic {
        cmd.env("LD_LIBRARY_PATH", lib_dir());
    }
    cmd.output()
        .expect("valgrind is installed (scripts/setup.sh)")
}

fn c_program_passes(linking: Linking) {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile("posture_test", linking, "-O1", dir.path());
    let needed = needed_libraries(&exe);
    match linking {
        Linking::Static => assert!(!needed.contains("libposture"), "{needed}"),
        Linking::Dynamic => assert!(needed.contains("libposture.so"), "{needed}"),
    }

    for valgrind in [false, true] {
        // Each run gets its own fixtures: the agent test creates key directories.
        let fixtures = dir.path().join(format!("fixtures-valgrind-{valgrind}"));
        std::fs::create_dir(&fixtures).unwrap();
        write_fixtures(&fixtures);
        let out = run(&exe, &fixtures, linking, valgrind);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "posture_test ({linking:?}, valgrind: {valgrind}) failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
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
