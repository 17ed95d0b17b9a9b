//! Load generator for BENCHMARKS.md (`scripts/bench-server.sh` and
//! `scripts/bench-fleet.sh` run it) against running posture-servers with
//! `allow_software_keys = true` and a high `device_requests_per_minute` (every simulated
//! device shares this machine's address).
//!
//! `loadgen bench URL ADMIN_TOKEN [RATE]`:
//! 1. raw ES256 verification of one piece of evidence (posture-core's `Verifier`, parsing
//!    included), on as many threads as cores: verifications/s;
//! 2. ingestion: 50 devices enrolled, 8,000 nonces fetched and evidence signed beforehand,
//!    then `POST /v1/evidence` over CONNECTIONS (default 16) keep-alive connections
//!    (HTTP/1.1 by hand, so that the generator takes little of the cores it shares with
//!    the server): accepted/s and the ratio to (1), plus
//!    the CPU the server (and this process) spent per accepted piece of evidence;
//! 3. decisions: `GET /v1/devices/{id}/decision` at a fixed RATE (default 1000/s) for
//!    10 s, open loop as wrk2 does it (each request due at its own time on one of a few
//!    keep-alive connections, latency from when it was due to the last byte, so a late
//!    send counts): p50/p99 and achieved rate, and how much of it was the server (send to
//!    last byte) and how much this process sending late.
//!
//! `loadgen fleet --devices N --rate R --seconds S --server-pids P[,P] [--db-comm C]
//! URL[,URL] ADMIN_TOKEN`: enrols N software-key devices through the real API
//! (enrollment token, challenge, `POST /v1/enroll/software`), spread over the URLs, then
//! holds R deliveries/s (each a `GET /v1/challenge`, signing, `POST /v1/evidence`, devices
//! taking turns as a fleet's 15-minute slots do) for S seconds, and reports the achieved
//! rate, delivery latency, the servers' CPU and memory (from `/proc`), and the CPU of
//! the processes named C (the database) over the same period.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use posture_core::evidence::{sign_evidence, EvidenceOptions};
use posture_core::jose::Jwk;
use posture_core::keys::{KeyAssurance, KeyError, Signer};
use posture_core::verify::{Verifier, VerifyOptions};
use serde_json::{json, Value};

/// A software key held in memory only (50,000 key files would be pointless here).
#[derive(Debug)]
struct MemKey {
    signing: p256::ecdsa::SigningKey,
    public: p256::PublicKey,
}

impl MemKey {
    fn new() -> MemKey {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes).unwrap();
            if let Ok(signing) = p256::ecdsa::SigningKey::from_bytes(&bytes.into()) {
                let public = p256::PublicKey::from(signing.verifying_key());
                return MemKey { signing, public };
            }
        }
    }
}

impl Signer for MemKey {
    fn public_key(&self) -> p256::PublicKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<p256::ecdsa::Signature, KeyError> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = self.signing.sign(message);
        Ok(signature.normalize_s().unwrap_or(signature))
    }

    fn assurance(&self) -> KeyAssurance {
        KeyAssurance::Software
    }
}

/// Status and JSON body; status 0 with the error when there was no answer.
async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = match req.send().await {
        Ok(r) => r,
        Err(e) => return (0, Value::String(e.to_string())),
    };
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Enrols one software-key device through the API; its id.
async fn enroll(
    client: &reqwest::Client,
    url: &str,
    admin: &str,
    key: &MemKey,
    owner: &str,
    report: &posture_core::Report,
) -> String {
    let (status, token) = send(
        client
            .post(format!("{url}/v1/admin/enrollment-tokens"))
            .bearer_auth(admin)
            .body(json!({ "owner": owner }).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let (status, ch) = send(client.get(format!("{url}/v1/challenge"))).await;
    assert_eq!(status, 200, "{ch}");
    let options = EvidenceOptions {
        nonce: Some(ch["nonce"].as_str().unwrap().into()),
        audience: Some(ch["audience"].as_str().unwrap().into()),
        ..Default::default()
    };
    let proof = sign_evidence(report, key, &options).unwrap();
    let (status, body) = send(client.post(format!("{url}/v1/enroll/software")).body(
        json!({"token": token["token"], "jwk": Jwk::from_public_key(&key.public_key()), "proof": proof})
            .to_string(),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    body["device_id"].as_str().unwrap().to_owned()
}

/// User + system CPU seconds of a process so far (0 when it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Every process whose name is `comm`.
fn pids_named(comm: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// A process and its children (PostgreSQL: the postmaster and its backends).
fn process_and_children(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, then the parent's pid.
        let parent = stat
            .rfind(')')
            .and_then(|close| stat.get(close + 2..))
            .and_then(|rest| rest.split(' ').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(root) {
            pids.push(pid);
        }
    }
    pids
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("bench") => bench(&args[2..]).await,
        Some("fleet") => fleet(&args[2..]).await,
        _ => {
            eprintln!("usage: loadgen bench URL ADMIN_TOKEN [RATE] [SERVER_PID] [CONNECTIONS]\n       loadgen fleet --devices N --rate R --seconds S --server-pids P[,P] [--db-comm C] URL[,URL] ADMIN_TOKEN");
            std::process::exit(2);
        }
    }
}

const DEVICES: usize = 50;

/// Deliveries in flight beyond which `loadgen fleet` stops sending (and counts failures).
const MAX_IN_FLIGHT: usize = 2000;
const PER_DEVICE: usize = 160;

async fn bench(args: &[String]) {
    let (url, admin) = (args[0].clone(), args[1].clone());
    let rate: u64 = args.get(2).map_or(1000, |r| r.parse().unwrap());
    let server_pid: Option<u32> = args.get(3).map(|p| p.parse().unwrap());
    let connections: usize = args.get(4).map_or(16, |c| c.parse().unwrap());
    let client = reqwest::Client::new();
    let report = posture_test_support::laptop_report();
    let load_at_start = load_average();
    println!("load average at start: {load_at_start}");

    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let key = MemKey::new();
        let id = enroll(
            &client,
            &url,
            &admin,
            &key,
            &format!("bench{i}@example.com"),
            &report,
        )
        .await;
        devices.push((key, id));
    }
    let (_, ch) = send(client.get(format!("{url}/v1/challenge"))).await;
    let audience = ch["audience"].as_str().unwrap().to_owned();

    // Evidence, signed beforehand (the client's signing is not the server's cost).
    let mut tokens = Vec::new();
    for (key, _) in &devices {
        for _ in 0..PER_DEVICE {
            let (_, ch) = send(client.get(format!("{url}/v1/challenge"))).await;
            let options = EvidenceOptions {
                nonce: Some(ch["nonce"].as_str().unwrap().into()),
                audience: Some(audience.clone()),
                ..Default::default()
            };
            tokens.push(sign_evidence(&report, key, &options).unwrap());
        }
    }

    // 1. Raw verification, all cores.
    let sample = tokens[0].clone();
    let mut verifier = Verifier::new();
    verifier.add_key(devices[0].0.public_key(), None);
    let verifier = Arc::new(verifier);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let raw_cpu_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    let per_thread = 4000;
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
    // CPU per verification: what the comparison means on a machine shared with others,
    // where a process's throughput is its share of the cores.
    let raw_cpu = (cpu_seconds(std::process::id()) - raw_cpu_before) / (cores * per_thread) as f64;
    println!(
        "raw ES256 verification (posture-core Verifier, {cores} threads): {raw:.0}/s, {:.0} µs CPU each, evidence {} bytes, load average {}",
        raw_cpu * 1e6,
        sample.len(),
        load_average()
    );

    // 2. Ingestion.
    let total = tokens.len();
    let queue = Arc::new(Mutex::new(tokens));
    let server_cpu = server_pid.map(cpu_seconds);
    // DB_PID=the PostgreSQL postmaster: the database's processes too (they compete for
    // the same cores): that process and its children, none of another cluster.
    let db_root: Option<u32> = std::env::var("DB_PID")
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let db_pids = db_root.map(process_and_children).unwrap_or_default();
    let db_cpu: Vec<(u32, f64)> = db_pids.iter().map(|p| (*p, cpu_seconds(*p))).collect();
    let own_cpu = cpu_seconds(std::process::id());
    let address = url
        .strip_prefix("http://")
        .expect("an http:// URL")
        .to_owned();
    // The connections are opened before the clock starts, as a client pool would have.
    let mut streams = Vec::new();
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        streams.push(stream);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for stream in streams {
        let (q, a) = (queue.clone(), address.clone());
        tasks.push(tokio::spawn(post_evidence(stream, a, q)));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate_ingest = accepted as f64 / elapsed;
    println!(
        "ingestion (HTTP, verify, policy, store) over {connections} connections: {accepted}/{total} accepted, {rate_ingest:.0}/s, ratio to raw verification {:.2}, load average {}",
        rate_ingest / raw,
        load_average()
    );
    let own = cpu_seconds(std::process::id()) - own_cpu;
    if let (Some(pid), Some(before)) = (server_pid, server_cpu) {
        let server = cpu_seconds(pid) - before;
        let per_accepted = server / accepted as f64;
        println!(
            "  server CPU {:.0} µs per accepted (raw verification {:.0} µs: CPU ratio {:.2}), server used {:.0}% of {cores} cores, load generator {:.0}%",
            per_accepted * 1e6,
            raw_cpu * 1e6,
            raw_cpu / per_accepted,
            server / elapsed / cores as f64 * 100.0,
            own / elapsed / cores as f64 * 100.0
        );
    }
    if !db_pids.is_empty() {
        // Processes started meanwhile (the server's new connections) count whole;
        // processes that exited meanwhile count as 0: a lower bound.
        let now_pids = db_root.map(process_and_children).unwrap_or_default();
        let db: f64 = now_pids
            .iter()
            .map(|p| {
                let before = db_cpu.iter().find(|(q, _)| q == p).map_or(0.0, |(_, c)| *c);
                cpu_seconds(*p) - before
            })
            .sum();
        println!(
            "  database CPU {:.0} µs per accepted ({} processes), {:.0}% of {cores} cores",
            db / accepted as f64 * 1e6,
            now_pids.len(),
            db / elapsed / cores as f64 * 100.0
        );
    }

    // 3. Decisions at a fixed rate, open loop.
    let ids: Vec<String> = devices.iter().map(|d| d.1.clone()).collect();
    let result = decisions(&url, &admin, &ids, rate, Duration::from_secs(10));
    println!(
        "decisions over {DECISION_CONNECTIONS} connections: {} in {:.1} s = {:.0}/s (target {rate}/s), {} failed, load generator CPU {:.0}% of {cores} cores, load average {}",
        result.latency.len(),
        result.elapsed,
        result.latency.len() as f64 / result.elapsed,
        result.failed,
        result.own_cpu / result.elapsed / cores as f64 * 100.0,
        load_average()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (l, s, g) = (&result.latency, &result.service, &result.lag);
    println!(
        "  latency from the scheduled send: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(percentile(l, 0.5)),
        ms(percentile(l, 0.99)),
        ms(percentile(l, 0.999)),
        ms(percentile(l, 1.0)),
    );
    println!(
        "  of which the server (send to last byte): p50 {:.2} ms, p99 {:.2} ms; sending late (this process not scheduled on time): p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(s, 0.5)),
        ms(percentile(s, 0.99)),
        ms(percentile(g, 0.5)),
        ms(percentile(g, 0.99)),
    );
    println!(
        "summary: {connections} connections: raw verification {raw:.0}/s, ingestion {rate_ingest:.0}/s, ratio {:.2} (target >= 0.6); decisions at {rate}/s: p50 {:.2} ms, p99 {:.2} ms (target <= 2 ms); load average before {load_at_start}, after {}",
        rate_ingest / raw,
        ms(percentile(l, 0.5)),
        ms(percentile(l, 0.99)),
        load_average()
    );
}

/// Posts evidence from `queue` over one keep-alive connection, one request at a time,
/// until the queue is empty; how many were accepted (201). HTTP/1.1 written and read by
/// hand (as the decision phase does): the generator shares the two cores with the
/// server, and what it spends per request is taken from the server's share. It sends
/// what reqwest sent (request line, `host`, `content-length`, the token) and reads the
/// whole answer.
async fn post_evidence(
    stream: tokio::net::TcpStream,
    address: String,
    queue: Arc<Mutex<Vec<String>>>,
) -> usize {
    use std::io::Write as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    let (mut ok, mut line, mut body, mut request) = (0, String::new(), Vec::new(), Vec::new());
    loop {
        let Some(token) = queue.lock().unwrap().pop() else {
            break;
        };
        request.clear();
        write!(
            request,
            "POST /v1/evidence HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\n\r\n",
            token.len()
        )
        .unwrap();
        request.extend_from_slice(token.as_bytes());
        write.write_all(&request).await.unwrap();
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let created = line.starts_with("HTTP/1.1 201");
        let mut length = None;
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse().unwrap());
                }
            }
        }
        body.resize(length.expect("answers carry content-length"), 0);
        reader.read_exact(&mut body).await.unwrap();
        if created {
            ok += 1;
        } else {
            eprintln!("{}", String::from_utf8_lossy(&body));
        }
    }
    ok
}

/// Connections the decision phase spreads its schedule over.
const DECISION_CONNECTIONS: usize = 4;

/// What [`decisions`] measured; the durations sorted.
struct DecisionRun {
    /// From each request's scheduled send time to the last byte of its answer.
    latency: Vec<Duration>,
    /// From the actual send to the last byte.
    service: Vec<Duration>,
    /// How late each request was sent.
    lag: Vec<Duration>,
    failed: usize,
    elapsed: f64,
    own_cpu: f64,
}

/// `GET /v1/devices/{id}/decision` at `rate` per second for `length`, open loop as wrk2
/// does it: request `i` is due at `start + i / rate` and goes out on connection
/// `i % DECISION_CONNECTIONS` (one thread each, blocking sockets, keep-alive,
/// `TCP_NODELAY`), and its latency runs from when it was due, so a request sent late —
/// because an earlier answer on its connection was slow, or because this process was not
/// scheduled — counts its delay. Plain HTTP/1.1 written by hand: the load generator must
/// cost little CPU on the machine it shares with the server.
fn decisions(url: &str, token: &str, ids: &[String], rate: u64, length: Duration) -> DecisionRun {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let address = url
        .strip_prefix("http://")
        .expect("an http:// URL")
        .to_owned();
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let total = (length.as_secs_f64() * rate as f64) as usize;
    let own_before = cpu_seconds(std::process::id());
    let start = Instant::now() + Duration::from_millis(50);
    let threads: Vec<_> = (0..DECISION_CONNECTIONS)
        .map(|k| {
            let (address, token, ids) = (address.clone(), token.to_owned(), ids.to_vec());
            std::thread::spawn(move || {
                let stream = std::net::TcpStream::connect(&address).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut out = (Vec::new(), Vec::new(), Vec::new(), 0usize);
                let mut line = String::new();
                let mut body = Vec::new();
                for i in (k..total).step_by(DECISION_CONNECTIONS) {
                    let due = start + interval * i as u32;
                    let now = Instant::now();
                    if now < due {
                        std::thread::sleep(due - now);
                    }
                    let sent = Instant::now();
                    let request = format!(
                        "GET /v1/devices/{}/decision HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\r\n",
                        ids[i % ids.len()]
                    );
                    writer.write_all(request.as_bytes()).unwrap();
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let ok = line.starts_with("HTTP/1.1 200");
                    let mut length = 0usize;
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        let header = line.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap();
                            }
                        }
                    }
                    body.resize(length, 0);
                    reader.read_exact(&mut body).unwrap();
                    let done = Instant::now();
                    out.0.push(done - due);
                    out.1.push(done - sent);
                    out.2.push(sent.saturating_duration_since(due));
                    if !ok {
                        out.3 += 1;
                    }
                }
                out
            })
        })
        .collect();
    let mut run = DecisionRun {
        latency: Vec::new(),
        service: Vec::new(),
        lag: Vec::new(),
        failed: 0,
        elapsed: 0.0,
        own_cpu: 0.0,
    };
    for t in threads {
        let (latency, service, lag, failed) = t.join().unwrap();
        run.latency.extend(latency);
        run.service.extend(service);
        run.lag.extend(lag);
        run.failed += failed;
    }
    run.elapsed = start.elapsed().as_secs_f64();
    run.own_cpu = cpu_seconds(std::process::id()) - own_before;
    run.latency.sort();
    run.service.sort();
    run.lag.sort();
    run
}

async fn fleet(args: &[String]) {
    let mut devices_n = 50_000usize;
    let mut rates = vec![56.0f64];
    let mut seconds = 120u64;
    let mut server_pids: Vec<u32> = Vec::new();
    let mut db_comm: Option<String> = None;
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--devices" => {
                devices_n = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--rate" => {
                rates = args[i + 1].split(',').map(|r| r.parse().unwrap()).collect();
                i += 1;
            }
            "--seconds" => {
                seconds = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--server-pids" => {
                server_pids = args[i + 1].split(',').map(|p| p.parse().unwrap()).collect();
                i += 1;
            }
            "--db-comm" => {
                db_comm = Some(args[i + 1].clone());
                i += 1;
            }
            other => positional.push(other.to_owned()),
        }
        i += 1;
    }
    let urls: Vec<String> = positional[0].split(',').map(str::to_owned).collect();
    let admin = positional[1].clone();
    let client = reqwest::Client::new();
    let report = Arc::new(posture_test_support::laptop_report());

    // Enrolment through the API, 32 at a time.
    println!(
        "enrolling {devices_n} devices through {} server(s), load average {}",
        urls.len(),
        load_average()
    );
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let enrolled = Arc::new(Mutex::new(Vec::with_capacity(devices_n)));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (c, urls, admin, next, enrolled, report) = (
            client.clone(),
            urls.clone(),
            admin.clone(),
            next.clone(),
            enrolled.clone(),
            report.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= devices_n {
                    break;
                }
                let key = MemKey::new();
                let url = &urls[n % urls.len()];
                let id = enroll(
                    &c,
                    url,
                    &admin,
                    &key,
                    &format!("user{n}@example.com"),
                    &report,
                )
                .await;
                let mut e = enrolled.lock().unwrap();
                e.push((Arc::new(key), id));
                if e.len() % 5000 == 0 {
                    println!(
                        "  {} enrolled, {:.0}/s",
                        e.len(),
                        e.len() as f64 / start.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let devices: Vec<(Arc<MemKey>, String)> = std::mem::take(&mut *enrolled.lock().unwrap());
    let enrol_secs = start.elapsed().as_secs_f64();
    println!(
        "enrolled {} devices in {enrol_secs:.0} s ({:.0}/s), load average {}",
        devices.len(),
        devices.len() as f64 / enrol_secs,
        load_average()
    );
    let audience = {
        let (_, ch) = send(client.get(format!("{}/v1/challenge", urls[0]))).await;
        ch["audience"].as_str().unwrap().to_owned()
    };

    // Deliveries at each fixed rate in turn, open loop; devices keep taking turns.
    let mut n = 0usize;
    for rate in rates {
        n = deliver(
            &client,
            &urls,
            &audience,
            &report,
            &devices,
            n,
            rate,
            seconds,
            &server_pids,
            db_comm.as_deref(),
        )
        .await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    client: &reqwest::Client,
    urls: &[String],
    audience: &str,
    report: &Arc<posture_core::Report>,
    devices: &[(Arc<MemKey>, String)],
    mut n: usize,
    rate: f64,
    seconds: u64,
    server_pids: &[u32],
    db_comm: Option<&str>,
) -> usize {
    println!(
        "delivering {rate}/s for {seconds} s, load average {}",
        load_average()
    );
    let db_pids = db_comm.map(pids_named).unwrap_or_default();
    let server_cpu: Vec<f64> = server_pids.iter().map(|p| cpu_seconds(*p)).collect();
    let db_cpu: f64 = db_pids.iter().map(|p| cpu_seconds(*p)).sum();
    let own_cpu = cpu_seconds(std::process::id());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rss_samples: Vec<Vec<f64>> = vec![Vec::new(); server_pids.len()];
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut skipped = 0usize;
    let mut last_sample = Instant::now();
    let start = Instant::now();
    let mut inflight = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        let scheduled = ticker.tick().await;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            for (samples, pid) in rss_samples.iter_mut().zip(server_pids) {
                samples.push(rss_mib(*pid));
            }
        }
        let (key, _) = devices[n % devices.len()].clone();
        let url = urls[n % urls.len()].clone();
        n += 1;
        // An overloaded server must not take this process down with it: beyond this
        // many deliveries in flight, a tick is counted as failed without sending.
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            skipped += 1;
            failures.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = in_flight.clone();
        let (c, audience, report, l, f) = (
            client.clone(),
            audience.to_owned(),
            report.clone(),
            latencies.clone(),
            failures.clone(),
        );
        inflight.push(tokio::spawn(async move {
            let (status, ch) = send(c.get(format!("{url}/v1/challenge"))).await;
            let ok = if status == 200 {
                let options = EvidenceOptions {
                    nonce: Some(ch["nonce"].as_str().unwrap().into()),
                    audience: Some(audience),
                    ..Default::default()
                };
                let token = sign_evidence(&report, key.as_ref(), &options).unwrap();
                let (status, body) = send(c.post(format!("{url}/v1/evidence")).body(token)).await;
                if status != 201 && f.load(Ordering::Relaxed) < 5 {
                    eprintln!("{status} {body}");
                }
                status == 201
            } else {
                if f.load(Ordering::Relaxed) < 5 {
                    eprintln!("challenge: {status} {ch}");
                }
                false
            };
            l.lock().unwrap().push(scheduled.elapsed());
            if !ok {
                f.fetch_add(1, Ordering::Relaxed);
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    for t in inflight {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let failed = failures.load(Ordering::Relaxed);
    if skipped > 0 {
        println!("  {skipped} deliveries not sent: {MAX_IN_FLIGHT} already in flight (overload)");
    }
    println!(
        "deliveries: {} in {elapsed:.1} s = {:.1}/s accepted (target {rate}/s), {failed} failed, latency (challenge + evidence) p50 {:?} p99 {:?}, load average {}",
        l.len() + skipped,
        (l.len() + skipped - failed) as f64 / elapsed,
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        load_average()
    );
    for ((pid, before), samples) in server_pids.iter().zip(&server_cpu).zip(&rss_samples) {
        let cpu = cpu_seconds(*pid) - before;
        let max = samples.iter().copied().fold(0.0, f64::max);
        let mean = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
        println!(
            "  server {pid}: CPU {:.1}% of one core ({:.0} µs per delivery), RSS mean {mean:.1} MiB, max {max:.1} MiB",
            cpu / elapsed * 100.0,
            cpu / (l.len() as f64 / server_pids.len() as f64) * 1e6,
        );
    }
    if !db_pids.is_empty() {
        let cpu: f64 = db_pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - db_cpu;
        println!(
            "  database ({} processes): CPU {:.1}% of one core",
            db_pids.len(),
            cpu / elapsed * 100.0
        );
    }
    let own = cpu_seconds(std::process::id()) - own_cpu;
    println!(
        "  load generator: CPU {:.1}% of one core",
        own / elapsed * 100.0
    );
    n
}
