//! FFI overhead of verification: verifications per second through the C API (a C program
//! linked statically against the release libposture.a) and the same work called from
//! Rust (verify, decide with the policy, box the result, as `posture_verify` does), on
//! one thread and on every core, side by side in one run.
//!
//! Two rates per side: per wall-clock second (what a deployment sees, but swayed by
//! whatever else runs on the machine) and per CPU-second of the verifying threads (each
//! thread's own on-CPU time, so other load on a shared machine barely moves it). The FFI
//! overhead is computed from the CPU-time rates. Rounds alternate Rust and C so drift
//! hits both alike; medians are reported.
//!
//! Run with `scripts/bench-ffi.sh`.

// A benchmark harness, like a test: failing loudly on a broken setup is right.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use posture_core::policy::Policy;
use posture_core::verify::{Verifier, VerifyOptions, DEFAULT_SKEW};

const ROUNDS: usize = 7;

#[derive(Clone, Copy)]
struct Rates {
    wall: f64,
    cpu: f64,
}

/// This thread's on-CPU time in seconds (Linux schedstat, nanoseconds).
fn thread_cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    ns as f64 / 1e9
}

fn rust_rates(fixtures: &Path, threads: usize, iterations: usize) -> Rates {
    let keys = std::fs::read_to_string(fixtures.join("trusted.jwk")).unwrap();
    let policy = std::fs::read_to_string(fixtures.join("allow.toml")).unwrap();
    let evidence = std::fs::read(fixtures.join("evidence.jws")).unwrap();
    let verifier = Verifier::from_keys_text(&keys).unwrap();
    let policy = Policy::from_str_auto(&policy).unwrap();
    let options = VerifyOptions {
        nonce: Some(common::NONCE.into()),
        audience: Some(common::AUDIENCE.into()),
        max_age: None,
        now: None,
        skew: DEFAULT_SKEW,
        ..VerifyOptions::default()
    };
    let start = Instant::now();
    let cpu: f64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let cpu_start = thread_cpu_seconds();
                    for _ in 0..iterations {
                        // posture_verify builds its options per call too.
                        let options = options.clone();
                        let verified = verifier.verify(black_box(&evidence), &options).unwrap();
                        let decision = policy.decide(&verified);
                        assert!(decision.is_allowed());
                        black_box(Box::new((verified, decision)));
                    }
                    thread_cpu_seconds() - cpu_start
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let total = (threads * iterations) as f64;
    Rates {
        wall: total / start.elapsed().as_secs_f64(),
        cpu: total / cpu,
    }
}

fn c_rates(exe: &Path, fixtures: &Path, threads: usize, iterations: usize) -> Rates {
    let out = Command::new(exe)
        .arg(threads.to_string())
        .arg(iterations.to_string())
        .env("POSTURE_TEST_DIR", fixtures)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let value = |name: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {stdout:?}"))
    };
    Rates {
        wall: value("verifications_per_second "),
        cpu: value("verifications_per_cpu_second "),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us without it: do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    assert!(
        common::installed_pkg_config().is_some(),
        "run scripts/bench-ffi.sh: it builds the library as shipped (with LTO) first"
    );
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).unwrap();
    common::write_fixtures(&fixtures);
    let exe = common::compile("bench_verify", common::Linking::Static, "-O2", dir.path());

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let iterations: usize = std::env::var("POSTURE_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    // Warm up both paths (page cache, CPU frequency).
    rust_rates(&fixtures, 1, iterations / 10);
    c_rates(&exe, &fixtures, 1, iterations / 10);

    println!(
        "| threads | Rust verif/s (wall) | C verif/s (wall) | Rust verif/CPU-s | C verif/CPU-s | FFI overhead (CPU) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for threads in [1, cores] {
        let (mut rust, mut c) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            rust.push(rust_rates(&fixtures, threads, iterations));
            c.push(c_rates(&exe, &fixtures, threads, iterations));
        }
        let wall = |v: &[Rates]| median(v.iter().map(|r| r.wall).collect());
        let cpu = |v: &[Rates]| median(v.iter().map(|r| r.cpu).collect());
        let overhead = (cpu(&rust) - cpu(&c)) / cpu(&rust) * 100.0;
        println!(
            "| {threads} | {:.0} | {:.0} | {:.0} | {:.0} | {overhead:+.1}% |",
            wall(&rust),
            wall(&c),
            cpu(&rust),
            cpu(&c)
        );
    }
    println!(
        "\n{iterations} verifications per thread per round, median of {ROUNDS} rounds; {cores} \
         cores; C linked statically against libposture.a as installed by scripts/install-ffi.sh; overhead = \
         (Rust - C) / Rust on the CPU-time rates."
    );
}
