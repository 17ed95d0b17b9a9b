//! Verify-and-decide throughput on one core, side by side with raw ECDSA P-256
//! verification of the same message by the same crypto backend (the `p256` crate), and
//! signing latency with the software key.
//!
//! Run: `cargo bench -p posture-core --bench verify` (or `scripts/bench-evidence.sh`).
//! Prints a Markdown table for BENCHMARKS.md. Single-threaded by construction.

// A benchmark binary, like a test: failing loudly on a broken setup is what we want.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use posture_core::evidence::{sign_evidence, EvidenceOptions};
use posture_core::jose::b64url_decode;
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::{KeyAssurance, Signer};
use posture_core::policy::Policy;
use posture_core::verify::{Verifier, VerifyOptions};
use posture_core::{Finding, Remediation, Report};
use serde_json::json;

/// A report shaped like a real Linux laptop's: nine checks with their observed facts.
fn report() -> Report {
    let findings = vec![
        Finding::pass("os", "Debian GNU/Linux 12 (bookworm), kernel 6.1.0-26-amd64")
            .observe("id", "debian")
            .observe("version_id", "12")
            .observe("name", "Debian GNU/Linux 12 (bookworm)")
            .observe("kernel", "6.1.0-26-amd64")
            .source("/etc/os-release")
            .source("/proc/sys/kernel/osrelease"),
        Finding::pass("disk_encryption", "root filesystem on LUKS2 (aes-xts-plain64)")
            .observe("root", "luks2")
            .observe(
                "volumes",
                json!([{"device": "/dev/nvme0n1p3", "type": "luks2", "cipher": "aes-xts-plain64", "mapped": "/dev/mapper/nvme0n1p3_crypt"}]),
            )
            .source("/sys/block/dm-0/dm/uuid"),
        Finding::pass("patch_level", "no security updates pending")
            .observe("pending_security_updates", 0)
            .observe("oldest_security_pending_days", json!(null))
            .observe("days_since_last_upgrade", 3)
            .observe("reboot_pending", false)
            .source("/var/lib/apt/lists")
            .source("/var/log/apt/history.log"),
        Finding::pass("auto_updates", "unattended-upgrades enabled")
            .observe("enabled", true)
            .source("/etc/apt/apt.conf.d/20auto-upgrades"),
        Finding::pass("firewall", "nftables: input policy drop")
            .observe("backend", "nftables")
            .observe("input_policy", "drop")
            .source("nft list ruleset"),
        Finding::pass("edr", "crowdstrike running")
            .observe("running", json!(["crowdstrike"]))
            .observe("products", json!([{"id": "crowdstrike", "process": "falcon-sensor", "version": "7.14.0"}]))
            .source("/proc"),
        Finding::pass("secure_boot", "Secure Boot enabled")
            .observe("enabled", true)
            .source("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
        Finding::fail(
            "screen_lock",
            "screen locks after 30 minutes",
            Remediation::new("Set the screen to lock after 5 minutes: Settings → Privacy → Screen Lock")
                .with_url("https://help.gnome.org/users/gnome-help/stable/privacy-screen-lock.html"),
        )
        .observe("idle_delay_seconds", 1800)
        .observe("lock_enabled", true)
        .source("gsettings get org.gnome.desktop.session idle-delay"),
        Finding::pass("tpm", "TPM 2.0 present")
            .observe("version", "2.0")
            .observe("manufacturer", "STM")
            .source("/sys/class/tpm/tpm0/tpm_version_major"),
    ];
    posture_test_support::report_with(findings)
}

const POLICY: &str = r#"
required_checks = ["disk_encryption", "firewall", "screen_lock"]
max_patch_age_days = 14
required_edr = ["crowdstrike", "sentinelone"]
required_key_assurance = "software"
require_secure_boot = true
max_evidence_age = "10m"

[min_os_version]
debian = "12"
ubuntu = "22.04"
"#;

/// Runs `f` repeatedly for about `budget` and returns operations per second.
fn throughput(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..50 {
            f();
        }
        n += 50;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BENCH_MILLIS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000),
    );
    let dir = std::env::temp_dir().join(format!("posture-bench-{}", std::process::id()));
    let key = SoftwareKey::load_or_create(&dir).expect("key");
    let report = report();
    let options = EvidenceOptions {
        nonce: Some("0123456789abcdef".into()),
        audience: Some("proxy".into()),
        ttl: Duration::from_secs(3600),
    };
    let token = sign_evidence(&report, &key, &options).expect("sign");
    let mut verifier = Verifier::new();
    verifier.add_key(key.public_key(), None);
    let verify_options = VerifyOptions {
        nonce: Some("0123456789abcdef".into()),
        audience: Some("proxy".into()),
        ..VerifyOptions::default()
    };
    let policy = Policy::from_toml_str(POLICY).expect("policy");
    let verified = verifier
        .verify(token.as_bytes(), &verify_options)
        .expect("verify");
    assert!(
        !policy.decide(&verified).is_allowed(),
        "screen_lock fails by design"
    );

    // The raw baseline: the same signing input and signature, p256 ECDSA verify only.
    let (input, sig) = token.rsplit_once('.').expect("jws");
    let sig = Signature::from_slice(&b64url_decode(sig).expect("b64")).expect("sig");
    let vk = VerifyingKey::from(&key.public_key());

    // Alternate the two measurements so drift (other load) hits both alike.
    let (mut raw, mut full) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        raw.push(throughput(budget, || {
            black_box(
                vk.verify(black_box(input.as_bytes()), black_box(&sig))
                    .is_ok(),
            );
        }));
        full.push(throughput(budget, || {
            let verified = verifier
                .verify(black_box(token.as_bytes()), &verify_options)
                .expect("verify");
            black_box(policy.decide(&verified));
        }));
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (raw, full) = (best(&raw), best(&full));

    let sign_rate = throughput(budget, || {
        black_box(sign_evidence(black_box(&report), &key, &options).expect("sign"));
    });
    let raw_sign_rate = throughput(budget, || {
        black_box(key.sign(black_box(input.as_bytes())).expect("sign"));
    });
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "evidence size: {} bytes ({} findings), key assurance {}",
        token.len(),
        report.findings.len(),
        KeyAssurance::Software.as_str()
    );
    println!();
    println!("| measurement (one core) | ops/s | µs/op |");
    println!("| --- | ---: | ---: |");
    println!(
        "| raw ECDSA P-256 verify (p256, same message) | {raw:.0} | {:.1} |",
        1e6 / raw
    );
    println!(
        "| verify evidence + decide policy | {full:.0} | {:.1} |",
        1e6 / full
    );
    println!(
        "| sign evidence (software key, incl. JSON) | {sign_rate:.0} | {:.1} |",
        1e6 / sign_rate
    );
    println!(
        "| raw ECDSA P-256 sign (software key) | {raw_sign_rate:.0} | {:.1} |",
        1e6 / raw_sign_rate
    );
    println!();
    println!(
        "verify-and-decide / raw verify = {:.2} (target ≥ 0.80)",
        full / raw
    );
}
