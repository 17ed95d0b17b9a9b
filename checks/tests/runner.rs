//! The runner bounds what a timed-out check costs (issue 11, item 3): a check that never
//! returns, collected 100 times the way the daemon collects, leaves one thread behind,
//! not 100; a check that watches its cancellation ends when its collection times out.
//!
//! One test in this binary: it counts this process's threads.

// Counts threads in /proc/self/status.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant, SystemTime};

use posture_checks::{collect_checks, stragglers, wait_for_stragglers};
use posture_checks::{CheckDef, ChecksConfig, Context};
use posture_core::{Finding, Status};

fn never_returns(_: &Context) -> Finding {
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stops_when_cancelled(ctx: &Context) -> Finding {
    while !ctx.cancelled() {
        std::thread::sleep(Duration::from_millis(5));
    }
    Finding::unknown("cooperative", "cancelled")
}

static NEVER: CheckDef = CheckDef {
    id: "never_returns",
    title: "Never returns",
    run: never_returns,
};
static COOPERATIVE: CheckDef = CheckDef {
    id: "cooperative",
    title: "Stops when cancelled",
    run: stops_when_cancelled,
};

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn timed_out_checks_leave_bounded_threads_and_memory_and_can_be_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = ChecksConfig {
        timeout: Duration::from_millis(20),
        ..ChecksConfig::default()
    };
    let ctx = Context::fixture(dir.path(), config, SystemTime::now());
    let threads_before = status_field("Threads:");
    let rss_before = status_field("VmRSS:");

    for round in 0..100 {
        let findings = collect_checks(&[&NEVER, &COOPERATIVE], &ctx).unwrap();
        assert_eq!(findings.len(), 2);
        for finding in &findings {
            assert_eq!(
                finding.status,
                Status::Unknown,
                "round {round}: {finding:?}"
            );
            assert!(
                finding.reason.as_deref().unwrap().starts_with("timeout"),
                "round {round}: {finding:?}"
            );
        }
    }
    // Today's runner left 200 threads behind here (one per check per round). Now: the
    // never-returning check once, and at most the cooperative one of the last round.
    let threads_after = status_field("Threads:");
    assert!(
        threads_after <= threads_before + 2,
        "threads grew from {threads_before} to {threads_after}"
    );
    assert!(stragglers().contains(&"never_returns"));
    // 100 collections cost no more than a few MiB (a leaked thread each would cost its
    // stack and the finding it holds).
    let rss_after = status_field("VmRSS:");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "VmRSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // Before exit: the cooperative check has ended; the one that ignores cancellation is
    // named, so a caller knows exactly what is still running.
    let started = Instant::now();
    let left = wait_for_stragglers(Duration::from_millis(500));
    assert_eq!(left, vec!["never_returns"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status_field("Threads:"), threads_before + 1);
}
