//! `posture daemon` end to end: the real binary started with a temp config, a fixture
//! root for its checks, its socket, and (for delivery) a real HTTP receiver on loopback.
//!
//! Only the `os` check runs, over a fixture `/etc/os-release` (the text Debian 12 and
//! Debian 10 ship), so compliance can be flipped by editing one file.

// Test helpers outside `#[test]` functions: failing loudly is their job.
// A unix socket, signals and a Linux fixture root.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Verifier as _;
use serde_json::Value;

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

// /etc/os-release of Debian 12 and Debian 10, as shipped by base-files.
const DEBIAN_12: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n";
const DEBIAN_10: &str = "PRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"10\"\nVERSION=\"10 (buster)\"\nVERSION_CODENAME=buster\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n";

/// Deadline for things that should happen within a second or two; only a failure waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

fn own_uid() -> u32 {
    posture_core::process::effective_uid()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        posture_test_support::write_device_root(&dir.path().join("root"));
        let fixture = Self { dir };
        fixture.write_config(&format!("allow_uids = [{}]\n", own_uid()));
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("posture.sock")
    }

    fn outbox(&self) -> PathBuf {
        self.path("state/outbox")
    }

    /// Writes the config; `extra` goes into `[daemon]`.
    fn write_config(&self, extra: &str) {
        let disabled = [
            "patch_level",
            "auto_updates",
            "disk_encryption",
            "edr",
            "firewall",
            "secure_boot",
            "tpm",
            "screen_lock",
        ]
        .map(|id| format!("\"{id}\""))
        .join(", ");
        let retry = if extra.contains("retry_") {
            ""
        } else {
            "retry_initial = \"100ms\"\nretry_max = \"300ms\"\n"
        };
        let config = format!(
            "[checks]\ndisabled = [{disabled}]\n\n[daemon]\nsocket = {:?}\nstate_dir = {:?}\nroot = {:?}\ninterval = \"1h\"\ndebounce = \"100ms\"\n{retry}{extra}",
            self.socket(),
            self.path("state"),
            self.path("root"),
        );
        std::fs::write(self.path("config.toml"), config).unwrap();
    }

    /// Replaces os-release the way dpkg does: write a temp file, rename it over.
    fn set_os_release(&self, text: &str) {
        let tmp = self.path("root/etc/os-release.dpkg-new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path("root/etc/os-release")).unwrap();
    }

    fn start(&self) -> Daemon {
        Daemon::start(self)
    }

    /// Queued outbox items: jti per file.
    fn queued(&self) -> BTreeSet<String> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(|e| {
                let path = e.unwrap().path();
                if path.extension()? != "json" {
                    return None;
                }
                let item: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
                Some(item["jti"].as_str()?.to_owned())
            })
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }
}

struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts the daemon and waits for its systemd READY=1 on a notify socket of our own.
    fn start(fixture: &Fixture) -> Self {
        Self::start_with(fixture, &[]).0
    }

    /// As [`Daemon::start`], with extra environment; also returns the notify socket.
    fn start_with(fixture: &Fixture, env: &[(&str, &str)]) -> (Self, UnixDatagram) {
        let notify_path = fixture.path("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(fixture.path("daemon.log"))
            .unwrap();
        // systemd sets WATCHDOG_PID to the service's pid; a shell that execs the daemon
        // knows that pid in advance.
        let mut command = Command::new("/bin/sh");
        command.args([
            "-c",
            "export WATCHDOG_PID=$$; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_posture"),
        ]);
        let child = command
            .arg("--config")
            .arg(fixture.path("config.toml"))
            .args(["daemon", "--log-level", "debug"])
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("WATCHDOG_USEC")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut daemon = Daemon { child };
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = notify.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
                {
                    return (daemon, notify);
                }
            }
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("daemon exited with {status}:\n{}", fixture.log());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "daemon not ready:\n{}",
                fixture.log()
            );
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes, returns the raw response (the daemon closes after one response).
fn raw(socket: &Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The daemon may answer and close before reading everything we send.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn request(socket: &Path, method: &str, path: &str, json: Option<&str>) -> (u16, Value) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(body) = json {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    let response = raw(socket, req.as_bytes());
    let body = body_of(&response);
    (
        status_of(&response),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn report(socket: &Path) -> Value {
    let (status, report) = request(socket, "GET", "/v1/report", None);
    assert_eq!(status, 200, "{report}");
    report
}

/// The daemon's activity record (`/v1/health`).
fn activity(socket: &Path) -> Value {
    let (status, health) = request(socket, "GET", "/v1/health", None);
    assert_eq!(status, 200, "{health}");
    health["activity"].clone()
}

fn os_status(socket: &Path) -> String {
    let report = report(socket);
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "os")
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn claims(jws: &str) -> Value {
    let payload = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).unwrap()).unwrap()
}

fn header(jws: &str) -> Value {
    let head = jws.split('.').next().unwrap();
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(head).unwrap()).unwrap()
}

/// Verifies an ES256 compact JWS against the device key the daemon publishes.
fn verify_es256(jws: &str, jwk: &Value) {
    let x = Base64UrlUnpadded::decode_vec(jwk["x"].as_str().unwrap()).unwrap();
    let y = Base64UrlUnpadded::decode_vec(jwk["y"].as_str().unwrap()).unwrap();
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
    let (input, signature) = jws.rsplit_once('.').unwrap();
    let signature =
        p256::ecdsa::Signature::from_slice(&Base64UrlUnpadded::decode_vec(signature).unwrap())
            .unwrap();
    key.verify(input.as_bytes(), &signature).unwrap();
    assert_eq!(header(jws)["alg"], "ES256");
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    jti_header: String,
    body: String,
}

/// A small HTTP receiver on loopback (evidence endpoint and RFC 8935 push endpoint).
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Listens on `port`. With `lose_first_ack`, the first delivery of each jti is read
    /// and recorded but the connection is closed without an answer (a lost acknowledgement).
    fn start(port: u16, lose_first_ack: bool) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let received = Arc::new(Mutex::new(Vec::<Received>::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(item) = read_request(&mut stream) else {
                    continue;
                };
                let first = !log
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|r: &Received| r.jti_header == item.jti_header);
                log.lock().unwrap().push(item);
                if lose_first_ack && first {
                    continue; // dropped: no response
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn jtis(&self) -> BTreeSet<String> {
        self.received().into_iter().map(|r| r.jti_header).collect()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(p) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().ok()?;
    while data.len() < head_end + 4 + length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(Received {
        path: head.split_whitespace().nth(1)?.to_owned(),
        content_type: header("content-type"),
        jti_header: header("x-posture-jti"),
        body: String::from_utf8_lossy(&data[head_end + 4..head_end + 4 + length]).into_owned(),
    })
}

/// A loopback port with nothing listening on it (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn delivery_config(port: u16) -> String {
    format!(
        "allow_uids = [{}]\nserver_url = \"http://127.0.0.1:{port}/evidence\"\ncaep_receiver = \"http://127.0.0.1:{port}/caep\"\naudience = \"https://idp.example\"\n",
        own_uid()
    )
}

/// Flips compliance twice while the receiver is down; returns the queued jtis.
fn queue_items_while_receiver_is_down(fixture: &Fixture) -> BTreeSet<String> {
    // Start: one evidence item.
    wait_until("evidence from the first collection queued", || {
        fixture.queued().len() == 1
    });
    fixture.set_os_release(DEBIAN_10);
    // Re-collection: a compliance-change SET and evidence.
    wait_until("SET and evidence queued", || fixture.queued().len() == 3);
    fixture.set_os_release(DEBIAN_12);
    wait_until("second SET and evidence queued", || {
        fixture.queued().len() == 5
    });
    fixture.queued()
}

#[test]
fn block_device_appearing_recollects_disk_encryption() {
    let fixture = Fixture::new();
    std::fs::create_dir_all(fixture.path("root/dev")).unwrap();
    let _daemon = fixture.start();
    // A USB disk plugged in: udev creates its node in /dev.
    std::fs::write(fixture.path("root/dev/sdb"), "").unwrap();
    let socket = fixture.socket();
    wait_until("re-collection after a block device appeared", || {
        let last = &activity(&socket)["last_collection"];
        last["cause"] == "block device added or removed"
            && last["checks"]
                .as_array()
                .is_some_and(|c| c.iter().any(|id| id == "disk_encryption"))
    });
}

#[test]
fn report_and_signed_evidence_over_the_socket() {
    let fixture = Fixture::new();
    let _daemon = fixture.start();
    let socket = fixture.socket();

    let report = report(&socket);
    assert_eq!(report["findings"][0]["id"], "os");
    assert_eq!(report["findings"][0]["status"], "pass");
    assert_eq!(report["os"]["version_id"], "12");

    let (status, health) = request(&socket, "GET", "/v1/health", None);
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");

    let (status, answer) = request(
        &socket,
        "POST",
        "/v1/evidence",
        Some(r#"{"nonce":"c2VjcmV0LW5vbmNlLTE","audience":"https://vpn.example"}"#),
    );
    assert_eq!(status, 200, "{answer}");
    let jws = answer["evidence"].as_str().unwrap();
    verify_es256(jws, &health["key"]);
    let claims = claims(jws);
    assert_eq!(claims["eat_nonce"], "c2VjcmV0LW5vbmNlLTE");
    assert_eq!(claims["aud"], "https://vpn.example");
    let device_id = report["device"]["id"].as_str().unwrap();
    assert!(claims.to_string().contains(device_id));

    // A second request with another nonce is signed afresh.
    let (_, again) = request(
        &socket,
        "POST",
        "/v1/evidence",
        Some(r#"{"nonce":"another-nonce-2"}"#),
    );
    let again = again["evidence"].as_str().unwrap();
    assert_ne!(again, jws);
    assert_eq!(self::claims(again)["eat_nonce"], "another-nonce-2");
}

#[test]
fn two_hundred_concurrent_clients_are_all_answered() {
    let fixture = Fixture::new();
    let daemon = fixture.start();
    let socket = fixture.socket();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let nonce = format!("nonce-of-client-{i:03}");
                let (status, answer) = request(
                    &socket,
                    "POST",
                    "/v1/evidence",
                    Some(&format!(r#"{{"nonce":"{nonce}"}}"#)),
                );
                (status, nonce, answer)
            })
        })
        .collect();
    for client in clients {
        let (status, nonce, answer) = client.join().unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            claims(answer["evidence"].as_str().unwrap())["eat_nonce"],
            nonce
        );
    }
    // Generous ceiling for a debug build; the real figures are in BENCHMARKS.md.
    let rss = daemon.rss_kib();
    assert!(
        rss < 64 * 1024,
        "resident memory {rss} KiB after 200 clients"
    );
}

#[test]
fn malformed_and_oversized_requests_are_refused_and_the_daemon_keeps_serving() {
    let fixture = Fixture::new();
    let mut daemon = fixture.start();
    let socket = fixture.socket();

    assert_eq!(status_of(&raw(&socket, b"NOT HTTP AT ALL\r\n\r\n")), 400);
    let huge_header = format!(
        "GET /v1/report HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let response = raw(&socket, huge_header.as_bytes());
    assert!(
        response.is_empty() || status_of(&response) == 431,
        "{response}"
    );
    let declared_huge = "POST /v1/evidence HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{";
    assert_eq!(status_of(&raw(&socket, declared_huge.as_bytes())), 413);
    let chunk = "a".repeat(40 * 1024);
    let chunked = format!(
        "POST /v1/evidence HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    assert_eq!(status_of(&raw(&socket, chunked.as_bytes())), 413);
    for (body, expected) in [
        ("{not json", 400),
        (r#"{"nonce":"short"}"#, 400),
        (r#"{"nonce":"long-enough-nonce","admin":true}"#, 400),
        ("[]", 400),
    ] {
        let (status, answer) = request(&socket, "POST", "/v1/evidence", Some(body));
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["error"].is_string());
    }
    let wrong_type = "POST /v1/evidence HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(status_of(&raw(&socket, wrong_type.as_bytes())), 415);
    assert_eq!(request(&socket, "GET", "/v1/evidence", None).0, 405);
    assert_eq!(request(&socket, "GET", "/v2/anything", None).0, 404);
    // Half a request, then the client goes away.
    {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream
            .write_all(b"POST /v1/evidence HTTP/1.1\r\nCont")
            .unwrap();
    }

    assert!(daemon.alive());
    let (status, health) = request(&socket, "GET", "/v1/health", None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(os_status(&socket), "pass");
}

#[test]
fn caller_not_on_the_allow_list_is_refused_and_logged_until_reload_allows_it() {
    let fixture = Fixture::new();
    let uid = own_uid();
    fixture.write_config(&format!("allow_uids = [{}]\n", uid + 4242));
    let daemon = fixture.start();
    let socket = fixture.socket();

    let (status, answer) = request(&socket, "GET", "/v1/report", None);
    assert_eq!(status, 403, "{answer}");
    let (status, _) = request(
        &socket,
        "POST",
        "/v1/evidence",
        Some(r#"{"nonce":"a-valid-nonce"}"#),
    );
    assert_eq!(status, 403);
    // The posture status command says why.
    let output = Command::new(env!("CARGO_BIN_EXE_posture"))
        .arg("--config")
        .arg(fixture.path("config.toml"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused"));

    // SIGHUP reloads the allow-list.
    fixture.write_config(&format!("allow_uids = [{uid}]\n"));
    daemon.signal("HUP");
    wait_until("reloaded allow-list admits the caller", || {
        request(&socket, "GET", "/v1/report", None).0 == 200
    });
}

#[test]
fn watched_file_change_recollects_and_pushes_a_caep_event() {
    let fixture = Fixture::new();
    let port = free_port();
    let receiver = Receiver::start(port, false);
    fixture.write_config(&format!(
        "allow_uids = [{}]\ncaep_receiver = \"http://127.0.0.1:{port}/caep\"\naudience = \"https://idp.example\"\n",
        own_uid()
    ));
    let _daemon = fixture.start();
    let socket = fixture.socket();
    assert_eq!(os_status(&socket), "pass");
    let status = |fixture: &Fixture| {
        Command::new(env!("CARGO_BIN_EXE_posture"))
            .arg("--config")
            .arg(fixture.path("config.toml"))
            .arg("status")
            .output()
            .unwrap()
    };
    let before = status(&fixture);
    assert_eq!(before.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&before.stdout).contains("Debian GNU/Linux 12"));

    // The interval is an hour: only the watcher can notice this.
    fixture.set_os_release(DEBIAN_10);
    wait_until("os re-collected after os-release changed", || {
        os_status(&socket) == "fail"
    });
    let after = status(&fixture);
    assert_eq!(after.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&after.stdout).contains("end of life"));

    wait_until("the compliance-change SET is pushed", || {
        !receiver.received().is_empty()
    });
    let set = &receiver.received()[0];
    assert_eq!(set.path, "/caep");
    assert_eq!(set.content_type, "application/secevent+jwt");
    let (_, health) = request(&socket, "GET", "/v1/health", None);
    verify_es256(&set.body, &health["key"]);
    assert_eq!(header(&set.body)["typ"], "secevent+jwt");
    let claims = claims(&set.body);
    assert_eq!(claims["jti"], set.jti_header.as_str());
    assert_eq!(claims["aud"], "https://idp.example");
    assert_eq!(claims["events"][CAEP]["previous_status"], "compliant");
    assert_eq!(claims["events"][CAEP]["current_status"], "not-compliant");
    assert_eq!(receiver.received().len(), 1, "one change, one event");
}

#[test]
fn collections_use_the_loaded_config_until_reload_even_when_the_file_is_broken() {
    // Collections run in a child process (`posture --config - collect`); it must get
    // the configuration the daemon runs with, not whatever the file says now.
    let fixture = Fixture::new();
    let daemon = fixture.start();
    let socket = fixture.socket();
    assert_eq!(os_status(&socket), "pass");
    let collections = |socket: &Path| activity(socket)["collections"].clone();

    std::fs::write(fixture.path("config.toml"), "[checks]\ntypo = 1\n").unwrap();
    fixture.set_os_release(DEBIAN_10);
    wait_until("os re-collected with the loaded config", || {
        os_status(&socket) == "fail"
    });

    // A reload of the broken file keeps the previous config, and collections go on.
    daemon.signal("HUP");
    let before = collections(&socket);
    fixture.set_os_release(DEBIAN_12);
    wait_until("os re-collected after the failed reload", || {
        os_status(&socket) == "pass"
    });
    assert_ne!(collections(&socket), before);
    let (status, _) = request(&socket, "GET", "/v1/health", None);
    assert_eq!(status, 200);
}

#[test]
fn receiver_down_then_up_gets_every_queued_item() {
    let fixture = Fixture::new();
    let port = free_port();
    fixture.write_config(&delivery_config(port));
    let _daemon = fixture.start();
    let queued = queue_items_while_receiver_is_down(&fixture);
    assert_eq!(queued.len(), 5);

    let receiver = Receiver::start(port, false);
    wait_until("every queued item delivered", || {
        receiver.jtis().is_superset(&queued) && fixture.queued().is_empty()
    });
    let received = receiver.received();
    let sets: Vec<_> = received.iter().filter(|r| r.path == "/caep").collect();
    assert_eq!(sets.len(), 2);
    assert_eq!(
        claims(&sets[0].body)["events"][CAEP]["current_status"],
        "not-compliant"
    );
    assert_eq!(
        claims(&sets[1].body)["events"][CAEP]["current_status"],
        "compliant"
    );
    for item in &received {
        assert_eq!(claims(&item.body)["jti"], item.jti_header.as_str());
        if item.path == "/evidence" {
            assert_eq!(item.content_type, "application/eat+jwt");
            assert_eq!(claims(&item.body)["aud"], "https://idp.example");
        }
    }
}

#[test]
fn kill_9_mid_queue_loses_nothing_after_restart() {
    let fixture = Fixture::new();
    let port = free_port();
    fixture.write_config(&delivery_config(port));
    let daemon = fixture.start();
    let queued = queue_items_while_receiver_is_down(&fixture);
    daemon.kill9();
    assert_eq!(fixture.queued(), queued, "the outbox is intact on disk");

    let receiver = Receiver::start(port, false);
    let _daemon = fixture.start();
    wait_until("every item queued before kill -9 delivered", || {
        receiver.jtis().is_superset(&queued) && fixture.queued().is_empty()
    });
}

#[test]
fn lost_acknowledgement_is_redelivered_with_the_same_jti() {
    let fixture = Fixture::new();
    let port = free_port();
    let receiver = Receiver::start(port, true);
    fixture.write_config(&delivery_config(port));
    let _daemon = fixture.start();
    wait_until("first evidence delivered after a lost ack", || {
        fixture.queued().is_empty() && receiver.received().len() >= 2
    });
    let mut by_jti: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in receiver.received() {
        assert_eq!(claims(&item.body)["jti"], item.jti_header.as_str());
        by_jti.entry(item.jti_header).or_default().push(item.body);
    }
    let (jti, copies) = by_jti.iter().next().unwrap();
    assert!(copies.len() >= 2, "{jti} was delivered once");
    assert!(
        copies.iter().all(|c| c == &copies[0]),
        "duplicates are byte-identical"
    );
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let fixture = Fixture::new();
    let mut daemon = fixture.start();
    assert!(fixture.socket().exists());
    daemon.signal("TERM");
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!fixture.socket().exists());
}

#[test]
fn sigterm_flushes_the_outbox_before_exit() {
    let fixture = Fixture::new();
    let port = free_port();
    // After one failure the next retry would be half an hour away: only the shutdown
    // flush can deliver in time.
    fixture.write_config(&format!(
        "{}retry_initial = \"1h\"\nretry_max = \"1h\"\n",
        delivery_config(port)
    ));
    let mut daemon = fixture.start();
    wait_until("the first delivery attempt failed", || {
        activity(&fixture.socket())["delivery_failures"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    let queued = fixture.queued();
    assert_eq!(queued.len(), 1);
    let receiver = Receiver::start(port, false);
    daemon.signal("TERM");
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(receiver.jtis(), queued);
    assert!(fixture.queued().is_empty());
}

#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let fixture = Fixture::new();
    let _daemon = fixture.start();
    let output = Command::new(env!("CARGO_BIN_EXE_posture"))
        .arg("--config")
        .arg(fixture.path("config.toml"))
        .arg("daemon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already listening"));
    assert_eq!(os_status(&fixture.socket()), "pass");
}

#[test]
fn systemd_watchdog_is_petted_when_asked_for() {
    let fixture = Fixture::new();
    let (_daemon, notify) = Daemon::start_with(&fixture, &[("WATCHDOG_USEC", "1000000")]);
    let mut buf = [0u8; 4096];
    wait_until("WATCHDOG=1 arrives", || match notify.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "WATCHDOG=1"),
        Err(_) => false,
    });
}

/// A private bus standing in for the system bus, and a connection that owns logind's name.
#[test]
fn resume_from_suspend_triggers_a_full_collection() {
    let fixture = Fixture::new();
    let bus_path = fixture.path("system_bus_socket");
    let address = format!("unix:path={}", bus_path.display());
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile"])
        .arg(format!("--address={address}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("dbus-daemon (Debian package dbus-daemon)");
    wait_until("the bus listens", || bus_path.exists());
    let (_daemon, _notify) =
        Daemon::start_with(&fixture, &[("DBUS_SYSTEM_BUS_ADDRESS", address.as_str())]);
    wait_until("the daemon subscribed to logind", || {
        activity(&fixture.socket())["watching_logind"] == true
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let logind = zbus::connection::Builder::address(address.as_str())
            .unwrap()
            .name("org.freedesktop.login1")
            .unwrap()
            .build()
            .await
            .unwrap();
        for sleeping in [true, false] {
            logind
                .emit_signal(
                    None::<()>,
                    "/org/freedesktop/login1",
                    "org.freedesktop.login1.Manager",
                    "PrepareForSleep",
                    &(sleeping,),
                )
                .await
                .unwrap();
        }
    });
    let socket = fixture.socket();
    wait_until("a full collection after resume", || {
        let last = &activity(&socket)["last_collection"];
        last["cause"] == "resumed from suspend" && last["checks"] == serde_json::json!([])
    });
    assert_eq!(
        activity(&socket)["collections"]["resumed from suspend"],
        1,
        "going to sleep does not collect"
    );
    bus.kill().unwrap();
    bus.wait().unwrap();
}

#[test]
fn json_logs_are_one_object_per_line() {
    let fixture = Fixture::new();
    let daemon = Command::new(env!("CARGO_BIN_EXE_posture"))
        .arg("--config")
        .arg(fixture.path("config.toml"))
        .args(["daemon", "--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the first report", || {
        fixture.socket().exists() && request(&fixture.socket(), "GET", "/v1/report", None).0 == 200
    });
    Command::new("kill")
        .args(["-s", "TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let output = daemon.wait_with_output().unwrap();
    let text = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["message"] == "request" && l["path"] == "/v1/report"));
    assert!(lines.iter().all(|l| l["level"].is_string()));
}

#[test]
fn status_without_a_daemon_says_so() {
    let fixture = Fixture::new();
    let output = Command::new(env!("CARGO_BIN_EXE_posture"))
        .arg("--config")
        .arg(fixture.path("config.toml"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not running"));
}

/// The patch_level fixtures of the checks crate (captured Debian 12 lists and status).
fn patch_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../checks/tests/fixtures/patch_level")
        .join(rel)
}

/// The captured dpkg status, with the security fixes installed (`current`) or not.
fn dpkg_status(security_current: bool) -> String {
    let text = std::fs::read_to_string(patch_fixture("debian12/dpkg-status-outdated")).unwrap();
    if !security_current {
        return text;
    }
    text.replace("Version: 3.0.19-1~deb12u2", "Version: 3.0.22-1~deb12u2")
        .replace("Version: 1:9.2p1-2+deb12u6", "Version: 1:9.2p1-2+deb12u10")
        .replace("Version: 2025b-0+deb12u2", "Version: 2026f-0+deb12u1")
}

#[test]
fn the_daemon_remembers_how_long_security_updates_are_pending() {
    // Regression: the daemon collected without a state directory, so patch_level never
    // knew when a security update appeared (`oldest_security_pending_days: null`
    // forever) and a pending-age threshold could never pass under the daemon.
    let fixture = Fixture::new();
    let root = fixture.path("root");
    let lists = root.join("var/lib/apt/lists");
    std::fs::create_dir_all(&lists).unwrap();
    for entry in std::fs::read_dir(patch_fixture("debian12/lists")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), lists.join(entry.file_name())).unwrap();
    }
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(root.join("etc/apt/apt.conf.d")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), dpkg_status(true)).unwrap();
    let config = std::fs::read_to_string(fixture.path("config.toml"))
        .unwrap()
        .replace("\"patch_level\", ", "");
    std::fs::write(fixture.path("config.toml"), config).unwrap();
    let daemon = fixture.start();
    let socket = fixture.socket();
    let patch_level = || {
        report(&socket)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "patch_level")
            .cloned()
            .expect("patch_level ran")
    };
    assert_eq!(
        patch_level()["observed"]["pending_security_updates"],
        0,
        "{}",
        patch_level()
    );
    assert!(
        fixture.path("state/patch_level.json").exists(),
        "the first collection recorded what it saw in the state directory"
    );

    // The security updates appear; the next collection bounds their age by the previous
    // collection, which saw none (without the state directory the age stays null).
    std::fs::write(root.join("var/lib/dpkg/status"), dpkg_status(false)).unwrap();
    daemon.signal("HUP");
    wait_until("the security updates are seen with a known age", || {
        let finding = patch_level();
        finding["observed"]["pending_security_updates"]
            .as_u64()
            .unwrap_or(0)
            > 0
            && finding["observed"]["oldest_security_pending_days"].is_u64()
    });
}

// ---- issue 11: an ordinary local user cannot fake posture or starve the agent ----------

const NOBODY: u32 = 65534;

/// A fixture whose socket `nobody` can reach (group `nogroup`, directory 0755), with root
/// (this test) and `nobody` allowed; `extra` goes into `[daemon]`.
fn shared_fixture(extra: &str) -> Fixture {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        own_uid(),
        0,
        "this test starts clients as `nobody` and needs root"
    );
    let fixture = Fixture::new();
    std::fs::set_permissions(fixture.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    fixture.write_config(&format!(
        "allow_uids = [0, {NOBODY}]\nsocket_group = \"nogroup\"\n{extra}"
    ));
    fixture
}

/// `curl` over the socket as `nobody` (with `groups` as supplementary groups); returns the
/// HTTP status, the body and how long it took.
fn curl_as_nobody(socket: &Path, groups: &str, args: &[&str]) -> (u16, Value, Duration) {
    let started = Instant::now();
    let output = Command::new("setpriv")
        .args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}")])
        .args(if groups.is_empty() {
            vec!["--clear-groups".to_owned()]
        } else {
            vec![format!("--groups={groups}")]
        })
        .arg("curl")
        .args(["-s", "--max-time", "30", "--unix-socket"])
        .arg(socket)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("setpriv (util-linux) and curl are needed (scripts/setup.sh installs them)");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
        elapsed,
    )
}

#[test]
fn regression_one_uid_cannot_hold_every_connection_slot() {
    // Issue 11: 64 slow connections from one allowed uid held every slot for 10 s; another
    // allowed user's request was answered after 9.5 s.
    let fixture = shared_fixture("");
    let _daemon = fixture.start();
    let socket = fixture.socket();
    report(&socket);
    let mut slow = Vec::new();
    for _ in 0..64 {
        let mut stream = UnixStream::connect(&socket).unwrap();
        // Half a request head, then nothing.
        stream
            .write_all(b"POST /v1/evidence HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        slow.push(stream);
    }
    std::thread::sleep(Duration::from_millis(200));
    let (status, health, elapsed) = curl_as_nobody(&socket, "", &["http://localhost/v1/health"]);
    assert_eq!(status, 200, "{health}");
    // Answered within milliseconds now, against 9.5 s before; 3 s leaves room for a
    // loaded CI machine without hiding the regression.
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );

    // The slow clients are cut off by the read deadline (2 s), not held for 10 s: the
    // first 8 (the uid's share, served at once) are closed well within 8 s; the uid's
    // other connections wait for its own slots, one batch per deadline.
    let started = Instant::now();
    for mut stream in slow.into_iter().take(8) {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slow connections held for {:?}",
        started.elapsed()
    );
}

#[test]
fn regression_hundred_byte_nonce_is_400_not_500() {
    let fixture = Fixture::new();
    let _daemon = fixture.start();
    let socket = fixture.socket();
    report(&socket);
    let nonce = "n".repeat(100);
    let (status, answer) = request(
        &socket,
        "POST",
        "/v1/evidence",
        Some(&format!(r#"{{"nonce":"{nonce}"}}"#)),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("8 to 64 bytes"));
    let (status, _) = request(
        &socket,
        "POST",
        "/v1/evidence",
        Some(&format!(r#"{{"nonce":"{}"}}"#, "n".repeat(64))),
    );
    assert_eq!(status, 200);
}

#[test]
fn regression_groups_come_from_the_account_database_not_proc() {
    // `nobody` is not in group 4242 in the account database; a process can still carry
    // it as a supplementary group (set by whoever started it), which /proc/PID/status
    // shows. Only the account database counts.
    let fixture = shared_fixture("");
    fixture.write_config("allow_gids = [4242]\nsocket_group = \"nogroup\"\n");
    let daemon = fixture.start();
    let socket = fixture.socket();
    let (status, answer, _) = curl_as_nobody(&socket, "4242", &["http://localhost/v1/health"]);
    assert_eq!(status, 403, "{answer}");
    // Its primary group from the account database does count.
    drop(daemon);
    fixture.write_config(&format!(
        "allow_gids = [{NOBODY}]\nsocket_group = \"nogroup\"\n"
    ));
    let _daemon = fixture.start();
    let (status, answer, _) = curl_as_nobody(&socket, "", &["http://localhost/v1/health"]);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn evidence_names_its_requester_and_allowed_clients_restrict_programs_and_audiences() {
    let curl = std::fs::canonicalize("/usr/bin/curl").expect("curl is needed");
    let fixture = Fixture::new();
    fixture.write_config(&format!(
        "allow_uids = [{}]\n[[daemon.allowed_clients]]\nexe = {:?}\naudiences = [\"https://idp.example\"]\n",
        own_uid(),
        curl
    ));
    let _daemon = fixture.start();
    let socket = fixture.socket();
    report(&socket);
    let ask = |audience: &str| {
        let output = Command::new(&curl)
            .args(["-s", "--unix-socket"])
            .arg(&socket)
            .args([
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/json",
                "-d",
            ])
            .arg(format!(
                r#"{{"nonce":"relay-nonce-0123","audience":"{audience}"}}"#
            ))
            .arg("http://localhost/v1/evidence")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse::<u16>().unwrap(),
            serde_json::from_str::<Value>(body).unwrap_or(Value::Null),
        )
    };
    // The allowed program, for its audience: the evidence says who asked.
    let (status, answer) = ask("https://idp.example");
    assert_eq!(status, 200, "{answer}");
    let claims = claims(answer["evidence"].as_str().unwrap());
    assert_eq!(claims["requester"]["uid"], own_uid());
    assert_eq!(claims["requester"]["exe"], curl.to_str().unwrap());
    // The same program for another audience: refused.
    let (status, answer) = ask("https://attacker.example");
    assert_eq!(status, 403, "{answer}");
    // Another program (this test binary) for the allowed audience: refused.
    let (status, answer) = request(
        &socket,
        "POST",
        "/v1/evidence",
        Some(r#"{"nonce":"relay-nonce-0123","audience":"https://idp.example"}"#),
    );
    assert_eq!(status, 403, "{answer}");
}

// ---------------------------------------------------------------------------------------
// Microsoft Intune custom compliance (issue 13)

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `posture` as the discovery script finds it on PATH: the binary under test with the
/// fixture's config.
fn posture_on_path(fixture: &Fixture) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = fixture.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("posture");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {:?} --config {:?} \"$@\"\n",
            env!("CARGO_BIN_EXE_posture"),
            fixture.path("config.toml")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs the shipped discovery script as Intune does (`sh`, its stdout is the answer).
fn discovery(bin: &Path) -> Value {
    let script = workspace_root().join("packaging/intune/posture-intune-discovery.sh");
    let out = Command::new("/bin/sh")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    // Intune's contract: one line of JSON, at most 1 MB, values of its DataTypes.
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.len() < 1024 * 1024);
    let value: Value = serde_json::from_str(&text).unwrap();
    for (name, v) in value.as_object().unwrap() {
        assert!(v.is_string() || v.is_boolean(), "{name}: {v}");
    }
    value
}

/// Intune's evaluation of one rule against the discovery answer: `None` when the setting
/// is missing.
fn intune_rule_holds(rule: &Value, answer: &Value) -> Option<bool> {
    let actual = answer.get(rule["SettingName"].as_str().unwrap())?;
    let operand = &rule["Operand"];
    let version = |v: &Value| -> Vec<u64> {
        v.as_str()
            .unwrap()
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect()
    };
    Some(
        match (
            rule["Operator"].as_str().unwrap(),
            rule["DataType"].as_str().unwrap(),
        ) {
            ("IsEquals", "String") => actual.as_str()? == operand.as_str().unwrap(),
            ("IsEquals", "Boolean") => actual.as_bool()? == operand.as_bool().unwrap(),
            ("GreaterEquals", "Version") => version(actual) >= version(operand),
            other => panic!("the rules use {other:?}, which this test does not evaluate"),
        },
    )
}

/// Issue 13: under Intune the discovery script runs as the user, who cannot read what
/// root-only checks need; the shipped script asks the daemon instead, and the rules file
/// it is uploaded with is generic, links to sections that exist and names commands that
/// run.
#[test]
fn intune_discovery_script_asks_the_daemon_and_the_rules_are_generic_issue_13() {
    let fixture = Fixture::new();
    let bin = posture_on_path(&fixture);

    // No daemon yet: an answer that is not compliant and says why.
    let answer = discovery(&bin);
    assert_eq!(answer["posture_daemon"], "unreachable", "{answer}");
    assert_eq!(answer["posture_compliant"], false);
    assert_eq!(answer["os"], "unknown");

    let _daemon = fixture.start();
    let answer = discovery(&bin);
    assert_eq!(answer["posture_daemon"], "running", "{answer}");
    assert_eq!(answer["posture_compliant"], true, "{answer}");
    assert_eq!(answer["os"], "pass");
    assert_eq!(answer["os_version"], "12");
    assert_eq!(answer["key_assurance"], "software");
    // Exactly the daemon's findings.
    let report: Value = serde_json::from_str(body_of(&raw(
        &fixture.socket(),
        b"GET /v1/report HTTP/1.1\r\nHost: x\r\n\r\n",
    )))
    .unwrap();
    for finding in report["findings"].as_array().unwrap() {
        assert_eq!(answer[finding["id"].as_str().unwrap()], finding["status"]);
    }

    // The rules file, generated on this machine, uploaded for every machine.
    let docs = "https://it.example.org/posture/remediation.html";
    let rules_path = fixture.path("rules.json");
    let out = Command::new(bin.join("posture"))
        .args(["export", "intune", "--rules"])
        .arg(&rules_path)
        .args(["--docs-url", docs])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&rules_path).unwrap();
    let rules: Value = serde_json::from_str(&text).unwrap();
    let rules = rules["Rules"].as_array().unwrap();
    // Nothing of this machine (its host name, its os-release, its devices).
    let hostname = std::fs::read_to_string(fixture.path("root/etc/hostname")).unwrap();
    for specific in [
        hostname.trim(),
        "bookworm",
        "Debian",
        "(/ on ",
        "example.invalid",
    ] {
        assert!(
            !text.contains(specific),
            "{specific:?} in the rules:\n{text}"
        );
    }
    let remediation =
        std::fs::read_to_string(workspace_root().join("docs/remediation.md")).unwrap();
    for rule in rules {
        let setting = rule["SettingName"].as_str().unwrap();
        // Each link is a section of docs/remediation.md.
        assert_eq!(rule["MoreInfoUrl"], format!("{docs}#{setting}"));
        assert!(
            remediation.contains(&format!("<a id=\"{setting}\"></a>")),
            "docs/remediation.md has no section {setting}"
        );
        let strings = rule["RemediationStrings"].as_array().unwrap();
        assert!(strings.iter().any(|s| s["Language"] == "en_US"));
        // Every rule holds for this compliant device, and has its setting.
        assert_eq!(intune_rule_holds(rule, &answer), Some(true), "{rule}");
        // The posture commands named run (exit 0 or 1: they answered, no usage error).
        let description = strings[0]["Description"].as_str().unwrap();
        if let Some(start) = description.find("posture check") {
            let words: Vec<&str> = description[start..]
                .split([':', ','])
                .next()
                .unwrap()
                .split_whitespace()
                .skip(1)
                .take_while(|w| *w != "in")
                .collect();
            let out = Command::new(bin.join("posture"))
                .args(&words)
                .output()
                .unwrap();
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "posture {words:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let names: Vec<&str> = rules
        .iter()
        .map(|r| r["SettingName"].as_str().unwrap())
        .collect();
    // The checks this configuration runs (the fixture runs only `os`).
    assert_eq!(names, ["posture_daemon", "posture_compliant", "os"]);
    // What the daemon's rule tells people to run exists in what the packages install.
    let unit = workspace_root().join("packaging/systemd/posture.service");
    assert!(unit.exists());
    let sysusers =
        std::fs::read_to_string(workspace_root().join("packaging/systemd/posture.sysusers"))
            .unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("g posture")));
    let enroll = Command::new(bin.join("posture"))
        .args(["enroll", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&enroll.stdout);
    assert!(
        help.contains("--server") && help.contains("--token"),
        "{help}"
    );

    // With a policy requiring a TPM key: the key_assurance rule fails for this software
    // key, the rest hold.
    let policy = fixture.path("policy.toml");
    std::fs::write(&policy, "required_checks = [\"os\"]\nrequired_key_assurance = \"tpm\"\n[min_os_version]\ndebian = \"12\"\n").unwrap();
    let out = Command::new(bin.join("posture"))
        .args(["export", "intune", "--rules"])
        .arg(&rules_path)
        .args(["--docs-url", docs, "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let rules: Value =
        serde_json::from_str(&std::fs::read_to_string(&rules_path).unwrap()).unwrap();
    for rule in rules["Rules"].as_array().unwrap() {
        let holds = intune_rule_holds(rule, &answer);
        let expected = rule["SettingName"] != "key_assurance";
        assert_eq!(holds, Some(expected), "{rule}");
    }

    // The device falls out of compliance: the next discovery says so.
    fixture.set_os_release(DEBIAN_10);
    wait_until("the discovery answer to follow the daemon", || {
        discovery(&bin)["posture_compliant"] == false
    });
    assert_eq!(discovery(&bin)["os"], "fail");

    // No --docs-url while this build names a placeholder repository: refused, not
    // written into a rules file.
    let out = Command::new(bin.join("posture"))
        .args(["export", "intune", "--rules"])
        .arg(fixture.path("default.json"))
        .output()
        .unwrap();
    let repository = env!("CARGO_PKG_REPOSITORY");
    if repository.is_empty() || repository.contains(".invalid") {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--docs-url"));
        assert!(!fixture.path("default.json").exists());
    } else {
        assert_eq!(out.status.code(), Some(0));
    }
}
