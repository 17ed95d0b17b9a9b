//! Load generator for BENCHMARKS.md (`scripts/bench-server.sh` runs it).
//!
//! `loadgen URL ADMIN_TOKEN` against a running posture-server with
//! `allow_software_keys = true` and a high `device_requests_per_minute`:
//! 1. raw ES256 verification of one evidence token (posture-core's verifier), on as many
//!    threads as cores: verifications/s;
//! 2. ingestion: N devices enrolled, nonces fetched and evidence signed beforehand, then
//!    POST /v1/evidence with 16 connections: accepted/s, and the ratio to (1);
//! 3. decisions: GET /v1/devices/{id}/decision at a fixed rate (default 1000/s) for 10 s:
//!    p50/p99 latency and achieved rate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use posture_core::evidence::{sign_evidence, EvidenceOptions};
use posture_core::jose::Jwk;
use posture_core::keys::Signer as _;
use posture_core::verify::{Verifier, VerifyOptions};
use serde_json::{json, Value};

const DEVICES: usize = 50;
const PER_DEVICE: usize = 60;

async fn send(client: &reqwest::Client, req: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = client;
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, admin) = (args[1].clone(), args[2].clone());
    let rate: u64 = args.get(3).map_or(1000, |r| r.parse().unwrap());
    let client = reqwest::Client::new();
    let report = posture_test_support::laptop_report();

    // Devices.
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let (dir, key) = posture_test_support::software_key();
        let (_, token) = send(
            &client,
            client
                .post(format!("{url}/v1/admin/enrollment-tokens"))
                .bearer_auth(&admin)
                .body(json!({"owner": format!("bench{i}@example.com")}).to_string()),
        )
        .await;
        let (_, ch) = send(&client, client.get(format!("{url}/v1/challenge"))).await;
        let options = EvidenceOptions {
            nonce: Some(ch["nonce"].as_str().unwrap().into()),
            audience: Some(ch["audience"].as_str().unwrap().into()),
            ..Default::default()
        };
        let proof = sign_evidence(&report, &key, &options).unwrap();
        let (status, body) = send(&client, client.post(format!("{url}/v1/enroll/software"))
            .body(json!({"token": token["token"], "jwk": Jwk::from_public_key(&key.public_key()), "proof": proof}).to_string())).await;
        assert_eq!(status, 201, "{body}");
        devices.push((
            dir,
            key,
            body["device_id"].as_str().unwrap().to_owned(),
            ch["audience"].as_str().unwrap().to_owned(),
        ));
    }

    // Evidence, signed beforehand (the client's signing is not the server's cost).
    let mut tokens = Vec::new();
    for (_, key, _, audience) in &devices {
        for _ in 0..PER_DEVICE {
            let (_, ch) = send(&client, client.get(format!("{url}/v1/challenge"))).await;
            let options = EvidenceOptions {
                nonce: Some(ch["nonce"].as_str().unwrap().into()),
                audience: Some(audience.clone()),
                ..Default::default()
            };
            tokens.push(sign_evidence(&report, key, &options).unwrap());
        }
    }

    // 1. Raw verification, all cores.
    let (_, key, _, audience) = &devices[0];
    let sample = tokens[0].clone();
    let mut verifier = Verifier::new();
    verifier.add_key(key.public_key(), None);
    let verifier = Arc::new(verifier);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let start = Instant::now();
    let per_thread = 3000;
    let handles: Vec<_> = (0..cores)
        .map(|_| {
            let (v, t, a) = (verifier.clone(), sample.clone(), audience.clone());
            std::thread::spawn(move || {
                let o = VerifyOptions {
                    audience: Some(a),
                    ..Default::default()
                };
                for _ in 0..per_thread {
                    v.verify(t.as_bytes(), &o).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let raw = (cores * per_thread) as f64 / start.elapsed().as_secs_f64();
    println!("raw ES256 verification (posture-core Verifier, {cores} threads): {raw:.0}/s, evidence {} bytes", sample.len());

    // 2. Ingestion.
    let total = tokens.len();
    let queue = Arc::new(std::sync::Mutex::new(tokens));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (q, c, u) = (queue.clone(), client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            loop {
                let Some(t) = q.lock().unwrap().pop() else {
                    break;
                };
                let r = c
                    .post(format!("{u}/v1/evidence"))
                    .body(t)
                    .send()
                    .await
                    .unwrap();
                if r.status().as_u16() == 201 {
                    ok += 1
                } else {
                    eprintln!("{}", r.text().await.unwrap());
                }
            }
            ok
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    let rate_ingest = accepted as f64 / start.elapsed().as_secs_f64();
    println!("ingestion (HTTP, verify, policy, store): {accepted}/{total} accepted, {rate_ingest:.0}/s, ratio to raw verification {:.2}", rate_ingest / raw);

    // 3. Decisions at a fixed rate.
    let ids: Vec<String> = devices.iter().map(|d| d.2.clone()).collect();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut n = 0usize;
    let mut inflight = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        ticker.tick().await;
        let (c, u, a, id, l) = (
            client.clone(),
            url.clone(),
            admin.clone(),
            ids[n % ids.len()].clone(),
            latencies.clone(),
        );
        n += 1;
        inflight.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .get(format!("{u}/v1/devices/{id}/decision"))
                .bearer_auth(a)
                .send()
                .await
                .unwrap();
            let _ = r.bytes().await.unwrap();
            l.lock().unwrap().push(t.elapsed());
        }));
    }
    for t in inflight {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let p = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
    println!(
        "decisions: {} in {elapsed:.1}s = {:.0}/s (target {rate}/s), p50 {:?}, p99 {:?}, max {:?}",
        l.len(),
        l.len() as f64 / elapsed,
        p(0.5),
        p(0.99),
        l[l.len() - 1]
    );
}
