//! posture-server end to end, with real parts: the `posture-server` binary on loopback,
//! SQLite in a temp dir and a real PostgreSQL cluster (initdb/pg_ctl as the unprivileged
//! `postgres` user, removed afterwards), swtpm-backed devices running the `posture`
//! binary (`posture enroll --server`, `posture daemon`), and headless Chromium for the
//! dashboard. Every test runs against both databases where the database matters.
// Real parts of a Linux host (PostgreSQL as `postgres`, swtpm, nginx, Chromium, Unix modes).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../posture-agent/tests/tpm_support/mod.rs"]
#[allow(dead_code)]
mod tpm_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use posture_core::evidence::{sign_evidence, EvidenceOptions};
use posture_core::jose::Jwk;
use posture_core::keys::software::SoftwareKey;
use posture_core::keys::Signer;
use posture_test_support::softhsm::SoftHsm;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// A throwaway PostgreSQL cluster in a temp dir, run by the `postgres` user when the
/// tests run as root (PostgreSQL refuses to run as root).
struct Postgres {
    dir: tempfile::TempDir,
}

fn pg_bin(name: &str) -> PathBuf {
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<_> = std::fs::read_dir(base)
        .expect("PostgreSQL is not installed (scripts/setup.sh installs it)")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions.last().unwrap().join("bin").join(name)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

fn as_postgres(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("posture-pg")
            .tempdir()
            .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = as_postgres(pg_bin("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-N", "-E", "UTF8", "-D"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Postgres { dir };
        pg.ctl_start();
        pg
    }

    fn ctl_start(&self) {
        let out = as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-o")
            .arg(format!(
                "-k {} -c listen_addresses='' -p 5432",
                self.dir.path().display()
            ))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn stop(&self) {
        let _ = as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    fn url(&self) -> String {
        format!(
            "postgres:///postgres?host={}&port=5432&user=postgres",
            self.dir.path().display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

// ---------------------------------------------------------------------------------------
// The server

#[derive(Clone, Copy, Debug, PartialEq)]
enum Db {
    Sqlite,
    Postgres,
}

/// A database for a test: SQLite in the server's dir, or a cluster of its own.
struct Database {
    pg: Option<Postgres>,
}

impl Database {
    fn new(db: Db) -> Database {
        Database {
            pg: (db == Db::Postgres).then(Postgres::start),
        }
    }

    fn config_line(&self) -> String {
        match &self.pg {
            Some(pg) => format!("database_url = {:?}\n", pg.url()),
            None => String::new(),
        }
    }
}

struct Server {
    dir: tempfile::TempDir,
    child: Child,
    /// The CA the test's HTTP client trusts (a server with `[tls]`).
    ca: Option<Vec<u8>>,
    url: String,
    admin: String,
    audience: String,
    #[allow(dead_code)]
    login: String,
}

fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_posture-server")
}

impl Server {
    fn start(db: &Database, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, db, extra, None)
    }

    fn start_in(
        dir: tempfile::TempDir,
        db: &Database,
        extra: &str,
        admin: Option<String>,
    ) -> Server {
        let config = dir.path().join("config.toml");
        if !config.exists() {
            std::fs::write(
                &config,
                format!(
                    "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\n{}{extra}",
                    dir.path().join("state"),
                    db.config_line()
                ),
            )
            .unwrap();
        }
        let mut child = Command::new(server_bin())
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut token, mut audience, mut login) = (None, admin, None, None);
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(t) = line.strip_prefix("admin token (shown once, keep it): ") {
                token = Some(t.to_owned());
            } else if let Some(rest) = line.strip_prefix("posture-server listening on ") {
                url = Some(rest.split(' ').next().unwrap().to_owned());
            } else if let Some(l) = line.strip_prefix("dashboard: ") {
                login = Some(l.to_owned());
            } else if let Some(a) = line.strip_prefix("evidence audience: ") {
                audience = Some(a.to_owned());
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            dir,
            child,
            ca: None,
            url: url.expect("server did not start"),
            admin: token.expect("no admin token"),
            audience: audience.unwrap(),
            login: login.unwrap(),
        }
    }

    /// SIGKILL, no shutdown of any kind.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the server again on the same state and database (after [`Server::kill`]).
    fn restart(mut self, db: &Database) -> Server {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let admin = self.admin.clone();
        drop(self);
        Self::start_in(dir, db, "", Some(admin))
    }

    fn admin_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(server_bin())
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

fn http() -> blocking::Client {
    blocking::Client::new(None)
}

/// A tiny blocking wrapper over reqwest's async client (reqwest's `blocking` feature is off).
mod blocking {
    use serde_json::Value;

    pub struct Client {
        rt: tokio::runtime::Runtime,
        inner: ::reqwest::Client,
    }

    /// An error with its causes (reqwest's own message does not say why TLS failed).
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    impl Client {
        /// A client; with `ca`, HTTPS servers must have a certificate from that CA (and
        /// from nothing else: the built-in roots are off).
        pub fn new(ca: Option<&[u8]>) -> Client {
            let mut builder =
                ::reqwest::Client::builder().redirect(::reqwest::redirect::Policy::none());
            if let Some(pem) = ca {
                builder = builder
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(::reqwest::Certificate::from_pem(pem).unwrap());
            }
            Client {
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
                inner: builder.build().unwrap(),
            }
        }

        /// A request with extra headers: `(status, headers (lower-case names), body text)`.
        pub fn authz(
            &self,
            method: &str,
            url: &str,
            headers: &[(&str, &str)],
        ) -> (u16, std::collections::HashMap<String, String>, String) {
            self.rt.block_on(async {
                let mut req = self
                    .inner
                    .request(method.parse().unwrap(), url)
                    .timeout(std::time::Duration::from_secs(20));
                for (name, value) in headers {
                    req = req.header(*name, *value);
                }
                let response = req.send().await.unwrap();
                let status = response.status().as_u16();
                let headers = response
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                (status, headers, response.text().await.unwrap())
            })
        }

        pub fn send(
            &self,
            method: &str,
            url: &str,
            bearer: Option<&str>,
            body: Option<Vec<u8>>,
        ) -> Result<(u16, Value), String> {
            self.rt.block_on(async {
                let mut req = self
                    .inner
                    .request(method.parse().unwrap(), url)
                    .timeout(std::time::Duration::from_secs(20));
                if let Some(token) = bearer {
                    req = req.bearer_auth(token);
                }
                if let Some(body) = body {
                    req = req.body(body);
                }
                let response = req.send().await.map_err(|e| chain(&e))?;
                let status = response.status().as_u16();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                Ok((
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                ))
            })
        }
    }
}

impl Server {
    fn http(&self) -> blocking::Client {
        blocking::Client::new(self.ca.as_deref())
    }

    fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        self.http()
            .send("GET", &format!("{}{path}", self.url), bearer, None)
            .unwrap()
    }

    fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
        self.http()
            .send(
                "POST",
                &format!("{}{path}", self.url),
                bearer,
                Some(body.to_string().into_bytes()),
            )
            .unwrap()
    }

    fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        self.http()
            .send("POST", &format!("{}{path}", self.url), None, Some(body))
            .unwrap()
    }

    fn enrollment_token(&self, owner: &str) -> String {
        let (status, body) = self.post(
            "/v1/admin/enrollment-tokens",
            Some(&self.admin),
            &json!({ "owner": owner, "ttl": "1h" }),
        );
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    fn challenge(&self) -> Value {
        let (status, body) = self.get("/v1/challenge", None);
        assert_eq!(status, 200, "{body}");
        body
    }

    fn device(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/devices/{id}"), Some(&self.admin));
        assert_eq!(status, 200, "{body}");
        body
    }

    fn history_jtis(&self, id: &str) -> Vec<String> {
        self.device(id)["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["jti"].as_str().unwrap().to_owned())
            .collect()
    }

    fn decision(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/devices/{id}/decision"), Some(&self.admin));
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// A device with a software key, driven by the test itself (posture-core signing).
struct SoftDevice {
    _dir: tempfile::TempDir,
    key: SoftwareKey,
}

impl SoftDevice {
    fn new() -> SoftDevice {
        let (dir, key) = posture_test_support::software_key();
        SoftDevice { _dir: dir, key }
    }

    fn id(&self) -> String {
        posture_core::keys::key_id(&self.key.public_key())
    }

    fn evidence(&self, report: &posture_core::Report, nonce: &str, audience: &str) -> String {
        let options = EvidenceOptions {
            nonce: Some(nonce.to_owned()),
            audience: Some(audience.to_owned()),
            ttl: Duration::from_secs(300),
        };
        sign_evidence(report, &self.key, &options).unwrap()
    }

    fn fresh_evidence(&self, server: &Server, report: &posture_core::Report) -> String {
        let challenge = server.challenge();
        self.evidence(
            report,
            challenge["nonce"].as_str().unwrap(),
            &server.audience,
        )
    }

    fn enroll(&self, server: &Server, token: &str) -> (u16, Value) {
        let proof = self.fresh_evidence(server, &posture_test_support::healthy_report());
        server.post(
            "/v1/enroll/software",
            None,
            &json!({
                "token": token,
                "jwk": Jwk::from_public_key(&self.key.public_key()),
                "proof": proof,
            }),
        )
    }
}

const SOFTWARE: &str = "[enrollment]\nallow_software_keys = true\n";

// ---------------------------------------------------------------------------------------
// Device lifecycle and bad input

fn software_lifecycle(db: Db) {
    let database = Database::new(db);
    let server = Server::start(&database, SOFTWARE);
    let device = SoftDevice::new();

    // No token, no admin API.
    assert_eq!(server.get("/v1/devices", None).0, 401);
    let token = server.enrollment_token("alice@example.com");
    let (status, enrolled) = device.enroll(&server, &token);
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["device_id"], device.id());
    assert_eq!(enrolled["owner"], "alice@example.com");
    assert_eq!(enrolled["key_assurance"], "software");

    // A token is spent once.
    let other = SoftDevice::new();
    let (status, refused) = other.enroll(&server, &token);
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("invalid_token"))
    );

    // Never seen: denied.
    assert_eq!(server.decision(&device.id())["decision"], "deny");
    assert_eq!(
        server.decision(&device.id())["reasons"][0]["rule"],
        "no_evidence"
    );

    // Fresh, nonce-bound evidence of a device with its firewall off: stored, denied,
    // with the finding and its remediation.
    let laptop = posture_test_support::laptop_report();
    let evidence = device.fresh_evidence(&server, &laptop);
    let (status, accepted) = server.post_raw("/v1/evidence", evidence.clone().into_bytes());
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["status"], "noncompliant");
    let decision = server.decision(&device.id());
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["stale"], false);
    let reasons = decision["reasons"].as_array().unwrap();
    let firewall = reasons.iter().find(|r| r["finding"] == "firewall").unwrap();
    assert!(firewall["remediation"]["text"].as_str().unwrap().len() > 3);
    assert!(decision["evidence_issued_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    // The same evidence again: a replay, refused, nothing stored.
    let (status, refused) = server.post_raw("/v1/evidence", evidence.into_bytes());
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("replay"))
    );
    assert_eq!(server.history_jtis(&device.id()).len(), 1);
    // New evidence (a new jti) with a nonce that was spent: refused, nothing stored.
    let nonce = server.challenge()["nonce"].as_str().unwrap().to_owned();
    let first = device.evidence(&laptop, &nonce, &server.audience);
    assert_eq!(server.post_raw("/v1/evidence", first.into_bytes()).0, 201);
    let again = device.evidence(&laptop, &nonce, &server.audience);
    let (status, refused) = server.post_raw("/v1/evidence", again.into_bytes());
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("nonce")),
        "{refused}"
    );
    assert_eq!(server.history_jtis(&device.id()).len(), 2);

    // A healthy report: allowed; the change is in the history.
    let evidence = device.fresh_evidence(&server, &posture_test_support::healthy_report());
    assert_eq!(
        server.post_raw("/v1/evidence", evidence.into_bytes()).0,
        201
    );
    assert_eq!(server.decision(&device.id())["decision"], "allow");
    let shown = server.device(&device.id());
    assert_eq!(shown["changes"].as_array().unwrap().len(), 2);
    assert_eq!(shown["display_status"], "compliant");

    let refused = |body: Vec<u8>| {
        let (status, answer) = server.post_raw("/v1/evidence", body);
        (
            status,
            answer["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    let healthy = posture_test_support::healthy_report();
    // A nonce this server never issued.
    assert_eq!(
        refused(
            device
                .evidence(&healthy, "made-up-nonce-123", &server.audience)
                .into_bytes()
        ),
        (400, "nonce".into())
    );
    // An unknown device (a key this server never enrolled).
    assert_eq!(
        refused(other.fresh_evidence(&server, &healthy).into_bytes()),
        (403, "unknown_device".into())
    );
    // Evidence meant for another server (its audience).
    let challenge = server.challenge();
    assert_eq!(
        refused(
            device
                .evidence(
                    &healthy,
                    challenge["nonce"].as_str().unwrap(),
                    "urn:posture-server:other"
                )
                .into_bytes()
        ),
        (400, "audience".into())
    );
    // A wrong signature.
    let mut forged = device.fresh_evidence(&server, &healthy).into_bytes();
    let last = forged.len() - 5;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(refused(forged), (403, "signature".into()));
    // Malformed and oversized.
    assert_eq!(refused(b"not a jws".to_vec()), (400, "malformed".into()));
    assert_eq!(refused(vec![b'a'; 200 * 1024]).0, 413);
    // A nonce of this server with one character changed (its MAC no longer matches).
    let mut nonce = server.challenge()["nonce"].as_str().unwrap().to_owned();
    let changed = if nonce.starts_with('A') { "B" } else { "A" };
    nonce.replace_range(0..1, changed);
    assert_eq!(
        refused(
            device
                .evidence(&healthy, &nonce, &server.audience)
                .into_bytes()
        ),
        (400, "nonce".into())
    );
    // Nothing of the refused evidence was stored.
    assert_eq!(server.history_jtis(&device.id()).len(), 3);

    // Admin: list, disable (evidence refused, decision deny), delete.
    let (_, list) = server.get("/v1/devices", Some(&server.admin));
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    let path = format!("/v1/admin/devices/{}/disable", device.id());
    assert_eq!(server.post(&path, Some(&server.admin), &json!({})).0, 204);
    assert_eq!(
        server.decision(&device.id())["reasons"][0]["rule"],
        "device_disabled"
    );
    assert_eq!(
        refused(device.fresh_evidence(&server, &healthy).into_bytes()),
        (403, "device_disabled".into())
    );
    // A reader token reads decisions but is no admin.
    let (_, reader) = server.post(
        "/v1/admin/api-tokens",
        Some(&server.admin),
        &json!({ "name": "proxy", "role": "reader" }),
    );
    let reader = reader["token"].as_str().unwrap();
    assert_eq!(
        server
            .get(
                &format!("/v1/devices/{}/decision", device.id()),
                Some(reader)
            )
            .0,
        200
    );
    assert_eq!(server.post(&path, Some(reader), &json!({})).0, 403);
    let out = server.admin_cli(&["devices", "delete", &device.id()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server
            .get(&format!("/v1/devices/{}", device.id()), Some(&server.admin))
            .0,
        404
    );
}

#[test]
fn software_device_lifecycle_and_bad_input_sqlite() {
    software_lifecycle(Db::Sqlite);
}

#[test]
fn software_device_lifecycle_and_bad_input_postgres() {
    software_lifecycle(Db::Postgres);
}

/// Challenges cost the database nothing: only a nonce that evidence spent is recorded.
#[test]
fn challenges_write_nothing_until_evidence_spends_a_nonce() {
    let database = Database::new(Db::Sqlite);
    let server = Server::start(&database, SOFTWARE);
    let device = SoftDevice::new();
    assert_eq!(
        device
            .enroll(&server, &server.enrollment_token("erin@example.com"))
            .0,
        201
    );
    let db = server.dir.path().join("state").join("posture.db");
    let count = |table: &str| -> i64 {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    // The enrollment proof spent one.
    assert_eq!((count("spent_nonces"), count("nonces")), (1, 0));
    for _ in 0..50 {
        server.challenge();
    }
    assert_eq!((count("spent_nonces"), count("nonces")), (1, 0));
    let evidence = device.fresh_evidence(&server, &posture_test_support::healthy_report());
    assert_eq!(
        server.post_raw("/v1/evidence", evidence.into_bytes()).0,
        201
    );
    assert_eq!(count("spent_nonces"), 2);
    // Refused evidence (a nonce of this server with a changed tag) records nothing.
    let mut nonce = server.challenge()["nonce"].as_str().unwrap().to_owned();
    let last = if nonce.ends_with('A') { "Q" } else { "A" };
    nonce.replace_range(nonce.len() - 1.., last);
    let forged = device.evidence(
        &posture_test_support::healthy_report(),
        &nonce,
        &server.audience,
    );
    assert_eq!(server.post_raw("/v1/evidence", forged.into_bytes()).0, 400);
    assert_eq!(count("spent_nonces"), 2);
}

#[test]
fn software_keys_are_refused_unless_allowed_and_tokens_come_from_the_cli() {
    let database = Database::new(Db::Sqlite);
    let server = Server::start(&database, "");
    let out = server.admin_cli(&[
        "token",
        "create",
        "--owner",
        "bob@example.com",
        "--ttl",
        "2h",
    ]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("pet_"));
    let (status, refused) = SoftDevice::new().enroll(&server, &token);
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("software_keys_not_allowed"))
    );
    // The refusal did not spend the token.
    let out = server.admin_cli(&["--json", "token", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["used_at"], Value::Null);
    assert_eq!(list[0]["owner"], "bob@example.com");
    // Unknown config keys are errors with line and column.
    let bad = server.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:0\"\n[enrollment]\nallow_sofware_keys = true\n",
    )
    .unwrap();
    let out = Command::new(server_bin())
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3:1") && stderr.contains("allow_sofware_keys"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// Faults

fn kill_9(db: Db) {
    let database = Database::new(db);
    let server = Server::start(
        &database,
        &format!("{SOFTWARE}[limits]\ndevice_requests_per_minute = 100000\n"),
    );
    let devices: Vec<SoftDevice> = (0..6).map(|_| SoftDevice::new()).collect();
    for (i, d) in devices.iter().enumerate() {
        let token = server.enrollment_token(&format!("user{i}@example.com"));
        assert_eq!(d.enroll(&server, &token).0, 201);
    }
    // Each device delivers as fast as it can; the server is killed in the middle.
    let url = server.url.clone();
    let audience = server.audience.clone();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = devices
        .into_iter()
        .map(|device| {
            let (url, audience, acked, stop) =
                (url.clone(), audience.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = http();
                let report = posture_test_support::healthy_report();
                for _ in 0..40 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let Ok((200, challenge)) =
                        client.send("GET", &format!("{url}/v1/challenge"), None, None)
                    else {
                        break;
                    };
                    let token =
                        device.evidence(&report, challenge["nonce"].as_str().unwrap(), &audience);
                    let jti = jti_of(&token);
                    match client.send(
                        "POST",
                        &format!("{url}/v1/evidence"),
                        None,
                        Some(token.into_bytes()),
                    ) {
                        Ok((201, _)) => acked.lock().unwrap().push((device.id(), jti)),
                        _ => break,
                    }
                }
                device
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let mut server = server;
    // SIGKILL mid-ingestion.
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let server = server.restart(&database);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 6,
        "too few acknowledged before the kill: {}",
        acked.len()
    );
    for (device, jti) in &acked {
        assert!(
            server.history_jtis(device).contains(jti),
            "acknowledged evidence {jti} of {device} was lost"
        );
    }
}

fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&posture_core::jose::b64url_decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[test]
fn kill_9_during_ingestion_loses_no_acknowledged_evidence_sqlite() {
    kill_9(Db::Sqlite);
}

#[test]
fn kill_9_during_ingestion_loses_no_acknowledged_evidence_postgres() {
    kill_9(Db::Postgres);
}

// ---------------------------------------------------------------------------------------
// Devices running the real `posture` binary

/// The `posture` binary of this build (`cargo build -p posture-cli`, or the workspace).
fn posture_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("posture");
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build -p posture-cli)",
        bin.display()
    );
    bin
}

/// A device: a config, a state dir and optionally a swtpm.
struct PostureDevice {
    dir: tempfile::TempDir,
    swtpm: Option<tpm_support::Swtpm>,
}

impl PostureDevice {
    fn new(tpm: bool) -> PostureDevice {
        PostureDevice {
            dir: tempfile::tempdir().unwrap(),
            swtpm: tpm.then(tpm_support::Swtpm::start),
        }
    }

    fn configure(&self, server: &Server, retry: &str) {
        let dir = &self.dir;
        let tpm = self.swtpm.is_some();
        let backend = if tpm { "tpm" } else { "software" };
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[key]\nbackend = \"{backend}\"\n\n[daemon]\nsocket = {:?}\nstate_dir = {:?}\ninterval = \"1h\"\nwatch = false\nserver_url = \"{}/v1/evidence\"\n{retry}",
                dir.path().join("posture.sock"),
                dir.path().join("state"),
                server.url
            ),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(posture_bin());
        c.args(args)
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        if let Some(tpm) = &self.swtpm {
            c.env("TCTI", tpm.tcti());
        }
        c
    }

    fn enroll(&self, server: &Server, token: &str) -> std::process::Output {
        self.command(&["enroll", "--server", &server.url, "--token", token])
            .output()
            .unwrap()
    }

    fn enroll_trusting(&self, server: &Server, token: &str, ca: &Path) -> std::process::Output {
        self.command(&["enroll", "--server", &server.url, "--token", token])
            .arg("--ca-cert")
            .arg(ca)
            .output()
            .unwrap()
    }

    fn daemon(&self) -> Child {
        self.command(&["daemon"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn outbox_len(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("state/outbox"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tpm_end_to_end(db: Db) {
    tpm_end_to_end_with(db, None);
}

/// [`tpm_end_to_end`], with the attestation CA's intermediate key in the SoftHSM2 token
/// `hsm` when given (`SOFTHSM2_CONF` must name its configuration).
fn tpm_end_to_end_with(db: Db, hsm: Option<&SoftHsm>) {
    let database = Database::new(db);
    // swtpm makes a local CA per TPM: the server trusts both devices' CAs.
    let device = PostureDevice::new(true);
    let second = PostureDevice::new(true);
    let ca = tempfile::NamedTempFile::new().unwrap();
    let mut bundle = device.swtpm.as_ref().unwrap().ca_bundle();
    bundle.extend(second.swtpm.as_ref().unwrap().ca_bundle());
    std::fs::write(ca.path(), bundle).unwrap();
    // An attestation CA: CA-verified TPMs get an AIK certificate at enrollment.
    let attestation = tempfile::tempdir().unwrap();
    let attestation_ca = attestation.path().join("ca");
    let uri = hsm.map(|hsm| hsm.uri("intermediate", &hsm.dir.path().join("pin")));
    let mut ca_init = Command::new(posture_bin());
    ca_init
        .args(["enrollment", "ca-init", "--organization", "Example Corp"])
        .arg(&attestation_ca);
    if let Some(uri) = &uri {
        ca_init.args(["--pkcs11", uri]);
    }
    let out = ca_init.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut enrollment = format!(
        "[enrollment]\nek_roots = [{:?}]\nattestation_ca = {:?}\nallow_software_keys = true\n",
        ca.path(),
        attestation_ca
    );
    if let Some(uri) = &uri {
        enrollment.push_str(&format!("attestation_ca_key = {uri:?}\n"));
    }
    let server = Server::start(&database, &enrollment);
    device.configure(&server, "");

    let token = server.enrollment_token("alice@example.com");
    let out = device.enroll(&server, &token);
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    check_aik_certificate(
        &server,
        &device,
        &attestation_ca,
        &String::from_utf8_lossy(&out.stderr),
    );
    // A software device gets none.
    let soft = SoftDevice::new();
    let (status, enrolled) = soft.enroll(&server, &server.enrollment_token("sam@example.com"));
    assert_eq!(status, 201, "{enrolled}");
    assert!(enrolled.get("aik_chain").is_none(), "{enrolled}");
    let shown = server.device(&id);
    assert_eq!(shown["device"]["key_kind"], "tpm");
    assert_eq!(shown["device"]["ek_trust"], "ca");
    assert_eq!(shown["device"]["key_assurance"], "tpm");
    assert_eq!(shown["device"]["owner"], "alice@example.com");
    // This machine's facts: whatever they are, the server decided on them.
    let status = shown["device"]["status"].as_str().unwrap().to_owned();
    assert!(
        status == "compliant" || status == "noncompliant",
        "{status}"
    );
    assert_eq!(server.history_jtis(&id).len(), 1);

    // The token is spent: a second enrollment with it is refused.
    second.configure(&server, "");
    let out = second.enroll(&server, &token);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_token"));

    // The daemon fetches a challenge and delivers nonce-bound evidence.
    let mut daemon = device.daemon();
    wait_for("the daemon's evidence", Duration::from_secs(60), || {
        server.history_jtis(&id).len() >= 2
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let decision = server.decision(&id);
    assert_eq!(decision["key_assurance"], "tpm");
    assert_eq!(decision["decision"] == "allow", status == "compliant");
}

/// The enrolled TPM device got its AIK certificate from the server's attestation CA, the
/// server serves that CA's certificates, and the device registers a WebAuthn credential
/// with it.
fn check_aik_certificate(server: &Server, device: &PostureDevice, ca: &Path, stderr: &str) {
    let written = stderr
        .lines()
        .find_map(|l| l.strip_prefix("AIK certificate for WebAuthn written to "))
        .unwrap_or_else(|| panic!("no AIK certificate: {stderr}"));
    let chain = std::fs::read_to_string(written).unwrap();
    // The certificate names the device as the server does: a relying party can ask for its
    // decision.
    let id = aik_device_id(&chain);
    assert_eq!(server.decision(&id)["device_id"], id.as_str());
    let served = |file: &str| {
        let out = Command::new("curl")
            .args(["-sfS", &format!("{}/v1/attestation-ca/{file}", server.url)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        served("root.pem"),
        std::fs::read_to_string(ca.join("root.pem")).unwrap()
    );
    let intermediate = served("intermediate.pem");
    assert!(
        chain.ends_with(&intermediate),
        "the chain is AIK certificate then intermediate"
    );
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "no root in the chain"
    );
    let out = device
        .command(&[
            "webauthn",
            "register",
            "--rp-id",
            "login.example.com",
            "--challenge",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(reg["response"]["attestationObject"].as_str().unwrap().len() > 1000);
}

/// The device id the AIK certificate names (its second SubjectAltName entry), as a
/// relying party reads it to ask `/v1/devices/{id}/decision`.
fn aik_device_id(chain_pem: &str) -> String {
    use x509_cert::der::Decode as _;
    let certs = x509_cert::Certificate::load_pem_chain(chain_pem.as_bytes()).unwrap();
    let ext = certs[0]
        .tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.17")
        .unwrap()
        .clone();
    let san = x509_cert::ext::pkix::SubjectAltName::from_der(ext.extn_value.as_bytes()).unwrap();
    let x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(uri) = &san.0[1] else {
        panic!("{san:?}")
    };
    uri.as_str()
        .strip_prefix("urn:posture:device:")
        .unwrap()
        .to_owned()
}

#[test]
fn tpm_device_enrols_with_posture_enroll_and_its_daemon_delivers_sqlite() {
    tpm_end_to_end(Db::Sqlite);
}

#[test]
fn tpm_device_enrols_with_posture_enroll_and_its_daemon_delivers_postgres() {
    tpm_end_to_end(Db::Postgres);
}

/// The attestation CA's intermediate key in a PKCS#11 token (SoftHSM2): the server issues
/// AIK certificates with it as with a key file; with a wrong PIN it does not start.
#[test]
fn tpm_device_gets_its_aik_certificate_from_a_ca_key_in_a_pkcs11_token() {
    let Some(hsm) = SoftHsm::new() else { return };
    // Every process this test starts (ca-init, the server) finds the token through this;
    // nextest runs each test in its own process, and no other test reads it.
    std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    tpm_end_to_end_with(Db::Sqlite, Some(&hsm));

    // A wrong PIN: the server refuses to start, and says why.
    let ca_dir = tempfile::tempdir().unwrap();
    let out = Command::new(posture_bin())
        .args(["enrollment", "ca-init", "--organization", "Example Corp"])
        .arg(ca_dir.path().join("ca"))
        .args(["--pkcs11", &hsm.uri("second", &hsm.dir.path().join("pin"))])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = hsm.pin_file("wrong-pin", "111111");
    let config = ca_dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\n[enrollment]\nattestation_ca = {:?}\nattestation_ca_key = {:?}\n",
            ca_dir.path().join("state"),
            ca_dir.path().join("ca"),
            hsm.uri("second", &wrong)
        ),
    )
    .unwrap();
    let out = Command::new("timeout")
        .arg("60")
        .arg(server_bin())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "{stderr}"
    );
    assert!(stderr.contains("the PIN is incorrect"), "{stderr}");
    assert!(
        !stderr.contains(posture_test_support::softhsm::TOKEN_PIN),
        "{stderr}"
    );
}

#[test]
fn replicas_sharing_postgres_see_each_others_changes_in_their_decisions() {
    let database = Database::new(Db::Postgres);
    let a = Server::start(&database, SOFTWARE);
    let b = Server::start_in(
        tempfile::tempdir().unwrap(),
        &database,
        SOFTWARE,
        Some(a.admin.clone()),
    );
    let device = SoftDevice::new();
    assert_eq!(
        device.enroll(&a, &a.enrollment_token("dana@example.com")).0,
        201
    );
    // B answers (and caches) the state before any evidence.
    assert_eq!(
        b.decision(&device.id())["reasons"][0]["rule"],
        "no_evidence"
    );
    // Evidence through A, admin changes through A's API and the admin command: B's
    // decision follows each (its cache hears PostgreSQL's notifications).
    let evidence = device.fresh_evidence(&a, &posture_test_support::healthy_report());
    assert_eq!(a.post_raw("/v1/evidence", evidence.into_bytes()).0, 201);
    let rule = |server: &Server| {
        server.decision(&device.id())["reasons"][0]["rule"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    wait_for("B to see the evidence", Duration::from_secs(10), || {
        b.decision(&device.id())["decision"] == "allow"
    });
    // A nonce from A is good on B (the replicas share the nonce key through the
    // database), and once spent there it is refused on A: single use across replicas.
    let healthy = posture_test_support::healthy_report();
    let nonce = a.challenge()["nonce"].as_str().unwrap().to_owned();
    let on_b = device.evidence(&healthy, &nonce, &b.audience);
    assert_eq!(b.post_raw("/v1/evidence", on_b.into_bytes()).0, 201);
    let on_a = device.evidence(&healthy, &nonce, &a.audience);
    let (status, refused) = a.post_raw("/v1/evidence", on_a.into_bytes());
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("nonce")),
        "{refused}"
    );
    let path = format!("/v1/admin/devices/{}/disable", device.id());
    assert_eq!(a.post(&path, Some(&a.admin), &json!({})).0, 204);
    wait_for(
        "B to see the device disabled",
        Duration::from_secs(10),
        || rule(&b) == "device_disabled",
    );
    assert!(a
        .admin_cli(&["devices", "enable", &device.id()])
        .status
        .success());
    wait_for(
        "B to see the device enabled",
        Duration::from_secs(10),
        || b.decision(&device.id())["decision"] == "allow",
    );
    // Evidence verified on B with its cached key is refused once A deleted the device.
    let evidence = device.fresh_evidence(&b, &posture_test_support::healthy_report());
    assert_eq!(b.post_raw("/v1/evidence", evidence.into_bytes()).0, 201);
    assert!(a
        .admin_cli(&["devices", "delete", &device.id()])
        .status
        .success());
    let evidence = device.fresh_evidence(&b, &posture_test_support::healthy_report());
    let (status, refused) = b.post_raw("/v1/evidence", evidence.into_bytes());
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("device_disabled")),
        "{refused}"
    );
    wait_for(
        "B to forget the deleted device",
        Duration::from_secs(10),
        || {
            b.get(
                &format!("/v1/devices/{}/decision", device.id()),
                Some(&b.admin),
            )
            .0 == 404
        },
    );
}

/// The nonce expiry of [`ingest`]'s evidence (in 2096; the store takes it as given).
const NONCE_EXPIRES: i64 = 4_000_000_000;

/// Evidence for the store tests below: `device` (enrollment `e1` unless given), `nonce`,
/// `jti`, `status`.
fn ingest(device: &str, nonce: &str, jti: &str, status: &str) -> posture_server::store::Ingest {
    let now = posture_server::now();
    posture_server::store::Ingest {
        device_id: device.into(),
        enrollment: "e1".into(),
        nonce: nonce.into(),
        nonce_expires_at: NONCE_EXPIRES,
        jti: jti.into(),
        iat: now,
        received_at: now,
        status: status.into(),
        failing: if status == "compliant" {
            vec![]
        } else {
            vec!["firewall".into()]
        },
        host: "laptop".into(),
        decision_json: "{}".into(),
        report_json: "{}".into(),
        serial_number: Some(format!("SN-{device}")),
    }
}

fn new_device(id: &str) -> posture_server::store::NewDevice {
    posture_server::store::NewDevice {
        id: id.into(),
        owner: "alice@example.com".into(),
        key_kind: "software".into(),
        key_record: "{}".into(),
        ek_trust: "none".into(),
        key_assurance: "software".into(),
        enrolled_at: posture_server::now(),
        enrollment: "e1".into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// PostgreSQL records evidence in batches (group commit): within one batch every piece is
/// refused or recorded on its own, a refused piece leaves nothing (its nonce is not
/// recorded as spent), and a device's compliance changes follow its evidence in order.
#[test]
fn postgres_batch_refuses_each_piece_on_its_own_and_records_the_rest() {
    use posture_server::store::{IngestRefusal, PostgresStore, Store};
    let database = Database::new(Db::Postgres);
    let url = database.pg.as_ref().unwrap().url();
    runtime().block_on(async {
        let store = PostgresStore::open(&url).await.unwrap();
        for id in ["dev-a", "dev-b", "dev-c"] {
            store.insert_device(&new_device(id)).await.unwrap();
        }
        assert!(store.set_disabled("dev-c", true).await.unwrap());
        // Spent before (by other evidence, or a device certificate request).
        assert!(store.spend_nonce("n0", NONCE_EXPIRES).await.unwrap());
        assert!(!store.spend_nonce("n0", NONCE_EXPIRES).await.unwrap());
        let mut enrolled_again = ingest("dev-b", "n6", "j7", "compliant");
        enrolled_again.enrollment = "e2".into();
        let batch = [
            ingest("dev-a", "n1", "j1", "compliant"),
            // The same jti with a fresh nonce: a replay; n2 is not spent.
            ingest("dev-a", "n2", "j1", "compliant"),
            ingest("dev-a", "n3", "j2", "noncompliant"),
            ingest("dev-b", "n0", "j3", "compliant"),
            // n1 was spent by the first piece, in this same batch.
            ingest("dev-b", "n1", "j4", "compliant"),
            ingest("dev-c", "n4", "j5", "compliant"),
            ingest("dev-unknown", "n5", "j6", "compliant"),
            enrolled_again,
            ingest("dev-b", "n7", "j8", "noncompliant"),
        ];
        let outcomes = store.ingest_batch(&batch).await.unwrap();
        assert_eq!(
            outcomes,
            [
                Ok(()),
                Err(IngestRefusal::Replay),
                Ok(()),
                Err(IngestRefusal::Nonce),
                Err(IngestRefusal::Nonce),
                Err(IngestRefusal::Device),
                Err(IngestRefusal::Device),
                Err(IngestRefusal::Enrollment),
                Ok(()),
            ]
        );
        let jtis = |h: Vec<posture_server::store::HistoryEntry>| {
            h.into_iter().map(|e| e.jti).collect::<Vec<_>>()
        };
        assert_eq!(
            jtis(store.history("dev-a", 10).await.unwrap()),
            ["j2", "j1"]
        );
        assert_eq!(jtis(store.history("dev-b", 10).await.unwrap()), ["j8"]);
        assert!(store.history("dev-c", 10).await.unwrap().is_empty());
        let changes = |c: Vec<posture_server::store::Change>| {
            c.into_iter().map(|c| (c.from, c.to)).collect::<Vec<_>>()
        };
        assert_eq!(
            changes(store.changes("dev-a", 10).await.unwrap()),
            [
                ("compliant".to_owned(), "noncompliant".to_owned()),
                ("none".to_owned(), "compliant".to_owned())
            ]
        );
        assert_eq!(
            changes(store.changes("dev-b", 10).await.unwrap()),
            [("none".to_owned(), "noncompliant".to_owned())]
        );
        let dev_a = store.device("dev-a").await.unwrap().unwrap();
        assert_eq!(dev_a.status, "noncompliant");
        // The serial number is recorded too (migration 30's column).
        let found = store
            .devices_by_identity(&["SN-dev-a".to_owned()], &[])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].device.id, "dev-a");
        assert_eq!(found[0].serial_number.as_deref(), Some("SN-dev-a"));
        // The refused pieces' nonces were not recorded as spent; the accepted ones' were.
        for n in ["n2", "n4", "n5", "n6"] {
            assert!(
                store.spend_nonce(n, NONCE_EXPIRES).await.unwrap(),
                "{n} was spent"
            );
        }
        for n in ["n1", "n3", "n7"] {
            assert!(
                !store.spend_nonce(n, NONCE_EXPIRES).await.unwrap(),
                "{n} was not spent"
            );
        }

        // Through the batcher, concurrently: every piece twice (the second a replay,
        // in the same batch or a later one), devices interleaved.
        let devices: Vec<String> = (0..8).map(|d| format!("dev-{d}")).collect();
        for id in &devices {
            store.insert_device(&new_device(id)).await.unwrap();
        }
        let mut pieces = Vec::new();
        for i in 0..160 {
            let nonce = format!("c{i}");
            let status = if i % 3 == 0 {
                "compliant"
            } else {
                "noncompliant"
            };
            let piece = ingest(
                &devices[i % devices.len()],
                &nonce,
                &format!("cj{i}"),
                status,
            );
            pieces.push(piece.clone());
            pieces.push(piece);
        }
        let store = std::sync::Arc::new(store);
        let tasks: Vec<_> = pieces
            .into_iter()
            .map(|piece| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move { store.ingest(piece).await.unwrap() })
            })
            .collect();
        let (mut accepted, mut replays) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => accepted += 1,
                Err(IngestRefusal::Replay) => replays += 1,
                Err(other) => panic!("refused: {other:?}"),
            }
        }
        assert_eq!((accepted, replays), (160, 160));
        // Each device's changes are exactly the transitions of its history, in order.
        for id in &devices {
            let history = store.history(id, 100).await.unwrap();
            assert_eq!(history.len(), 20);
            let mut expected = Vec::new();
            let mut previous = "none".to_owned();
            for entry in history.iter().rev() {
                if entry.status != previous {
                    expected.push((previous.clone(), entry.status.clone()));
                    previous = entry.status.clone();
                }
            }
            let mut recorded = changes(store.changes(id, 100).await.unwrap());
            recorded.reverse();
            assert_eq!(recorded, expected, "{id}");
        }
    });
}

#[test]
fn database_down_answers_503_and_the_daemon_keeps_the_evidence_until_it_is_back() {
    let database = Database::new(Db::Postgres);
    let server = Server::start(&database, SOFTWARE);
    let device = PostureDevice::new(false);
    device.configure(&server, "retry_initial = \"1s\"\nretry_max = \"2s\"\n");
    let token = server.enrollment_token("carol@example.com");
    let out = device.enroll(&server, &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    database.pg.as_ref().unwrap().stop();
    // A challenge needs no database (nothing is stored until a nonce is spent); evidence
    // does: 503 with the stable code.
    let (status, challenge) = server.get("/v1/challenge", None);
    assert_eq!(status, 200, "{challenge}");
    let evidence = SoftDevice::new().evidence(
        &posture_test_support::healthy_report(),
        challenge["nonce"].as_str().unwrap(),
        &server.audience,
    );
    let (status, body) = server.post_raw("/v1/evidence", evidence.into_bytes());
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable"))
    );
    assert_eq!(server.get("/v1/health", None).0, 503);

    let mut daemon = device.daemon();
    wait_for("the report in the outbox", Duration::from_secs(60), || {
        device.outbox_len() >= 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        device.outbox_len() >= 1,
        "the outbox lost the evidence while the database was down"
    );

    database.pg.as_ref().unwrap().ctl_start();
    wait_for(
        "delivery after the database is back",
        Duration::from_secs(60),
        || server.get("/v1/health", None).0 == 200 && server.history_jtis(&id).len() >= 2,
    );
    wait_for("an empty outbox", Duration::from_secs(10), || {
        device.outbox_len() == 0
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
}

// ---------------------------------------------------------------------------------------
// TLS

/// A CA, and a certificate for 127.0.0.1 and localhost issued by it: `(CA PEM, chain
/// PEM, key PEM)`.
fn test_pki(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "posture-server test");
    let leaf = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

#[test]
fn tls_from_the_config_serves_enrollment_evidence_and_decisions_to_clients_that_verify_it() {
    let (ca, chain, key) = test_pki("posture");
    let (other_ca, _, _) = test_pki("other");
    let pki = tempfile::tempdir().unwrap();
    let path = |name: &str| pki.path().join(name);
    std::fs::write(path("ca.pem"), &ca).unwrap();
    std::fs::write(path("other-ca.pem"), &other_ca).unwrap();
    std::fs::write(path("cert.pem"), &chain).unwrap();
    std::fs::write(path("key.pem"), &key).unwrap();
    let database = Database::new(Db::Sqlite);
    let mut server = Server::start(
        &database,
        &format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n{SOFTWARE}",
            path("cert.pem"),
            path("key.pem")
        ),
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // A client that does not trust the server's CA is refused: another CA, or only the
    // built-in roots.
    for client in [blocking::Client::new(Some(other_ca.as_bytes())), http()] {
        let err = client
            .send("GET", &format!("{}/v1/health", server.url), None, None)
            .unwrap_err();
        assert!(
            err.contains("certificate") || err.contains("UnknownIssuer"),
            "{err}"
        );
    }
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = server.url.replace("https://", "http://");
    assert!(http()
        .send("GET", &format!("{plain}/v1/health"), None, None)
        .is_err());

    // Trusting the right CA: the admin API, enrollment, evidence and decisions over HTTPS.
    server.ca = Some(ca.into_bytes());
    assert_eq!(server.get("/v1/health", None).0, 200);
    let device = SoftDevice::new();
    let (status, enrolled) = device.enroll(&server, &server.enrollment_token("tls@example.com"));
    assert_eq!(status, 201, "{enrolled}");
    let evidence = device.fresh_evidence(&server, &posture_test_support::healthy_report());
    let (status, accepted) = server.post_raw("/v1/evidence", evidence.into_bytes());
    assert_eq!(
        (status, accepted["status"].as_str()),
        (201, Some("compliant"))
    );
    assert_eq!(server.decision(&device.id())["decision"], "allow");

    // `posture enroll --server https://...` checks the certificate too: with the wrong
    // CA it fails and spends nothing; with the right one it enrols.
    let cli = PostureDevice::new(false);
    cli.configure(&server, "");
    let token = server.enrollment_token("cli@example.com");
    let out = cli.enroll_trusting(&server, &token, &path("other-ca.pem"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    let out = cli.enroll_trusting(&server, &token, &path("ca.pem"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(server.device(&id)["device"]["owner"], "cli@example.com");
}

// ---------------------------------------------------------------------------------------
// The dashboard in a real browser

fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium is not installed (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text a person sees: the DOM without tags and with entities decoded.
fn visible_text(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn login_url(server: &Server, next: &str) -> String {
    let out = server.admin_cli(&["login-link"]);
    assert!(out.status.success());
    // The CLI prints the configured public URL (port 0 here): keep only the path.
    let link = String::from_utf8(out.stdout).unwrap();
    let path = &link[link.find("/ui/login/").unwrap()..];
    format!("{}{}?next={next}", server.url, path.trim())
}

#[test]
fn dashboard_shows_the_fleet_and_each_device_in_chromium() {
    let database = Database::new(Db::Sqlite);
    let server = Server::start(&database, SOFTWARE);
    let bad = SoftDevice::new();
    let good = SoftDevice::new();
    for (d, owner) in [(&bad, "alice@example.com"), (&good, "bob@example.com")] {
        assert_eq!(d.enroll(&server, &server.enrollment_token(owner)).0, 201);
    }
    let laptop = posture_test_support::laptop_report();
    assert_eq!(
        server
            .post_raw(
                "/v1/evidence",
                bad.fresh_evidence(&server, &laptop).into_bytes()
            )
            .0,
        201
    );
    let healthy = posture_test_support::healthy_report();
    assert_eq!(
        server
            .post_raw(
                "/v1/evidence",
                good.fresh_evidence(&server, &healthy).into_bytes()
            )
            .0,
        201
    );

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&artifacts).unwrap();

    // Not signed in: the login page.
    let text = visible_text(&chromium(&["--dump-dom"], &format!("{}/ui", server.url)));
    assert!(
        text.contains("Sign in") && text.contains("Admin token"),
        "{text}"
    );

    let fleet = visible_text(&chromium(&["--dump-dom"], &login_url(&server, "/ui")));
    assert!(fleet.contains("Fleet"), "{fleet}");
    assert!(
        fleet.contains("1 Compliant")
            && fleet.contains("1 Not compliant")
            && fleet.contains("0 Stale"),
        "{fleet}"
    );
    assert!(
        fleet.contains("alice@example.com") && fleet.contains("bob@example.com"),
        "{fleet}"
    );
    assert!(fleet.contains(&laptop.device.hostname), "{fleet}");
    assert!(
        fleet.contains("firewall"),
        "the failing check is listed: {fleet}"
    );
    chromium(
        &[&format!(
            "--screenshot={}",
            artifacts.join("fleet.png").display()
        )],
        &login_url(&server, "/ui"),
    );

    let page = format!("/ui/devices/{}", bad.id());
    let device = visible_text(&chromium(&["--dump-dom"], &login_url(&server, &page)));
    let firewall = laptop.finding("firewall").unwrap();
    assert!(
        device.contains("Not compliant") && device.contains("alice@example.com"),
        "{device}"
    );
    assert!(device.contains(&firewall.summary), "{device}");
    assert!(
        device.contains(&firewall.remediation.as_ref().unwrap().text),
        "{device}"
    );
    assert!(device.contains("software"), "key assurance shown: {device}");
    assert!(
        device.contains("Compliance changes") && device.contains("No evidence yet"),
        "{device}"
    );
    chromium(
        &[&format!(
            "--screenshot={}",
            artifacts.join("device.png").display()
        )],
        &login_url(&server, &page),
    );
    for shot in ["fleet.png", "device.png"] {
        assert!(
            std::fs::metadata(artifacts.join(shot)).unwrap().len() > 10_000,
            "{shot}"
        );
    }
    // Each login link works once.
    let link = login_url(&server, "/ui");
    let _ = chromium(&["--dump-dom"], &link);
    assert!(visible_text(&chromium(&["--dump-dom"], &link)).contains("already used"));
    let _ = SystemTime::now();
}

// ---------------------------------------------------------------------------------------
// Cloudflare Zero Trust custom device posture (issue 13)

/// The team's Access signing key: an RSA key made by `openssl` (an implementation
/// independent of the server's), served as a JWK Set over loopback the way
/// `https://TEAM.cloudflareaccess.com/cdn-cgi/access/certs` serves it.
struct AccessTeam {
    dir: tempfile::TempDir,
    certs_url: String,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const CF_TEAM: &str = "posture-test.cloudflareaccess.com";
const CF_AUD: &str = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is not installed (scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn b64url(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

fn rsa_jwk(key: &Path, kid: &str) -> Value {
    let out = openssl(
        &["rsa", "-in", key.to_str().unwrap(), "-noout", "-modulus"],
        None,
    );
    let hex = String::from_utf8(out).unwrap();
    let hex = hex.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    json!({ "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig", "e": "AQAB", "n": b64url(&n) })
}

impl AccessTeam {
    fn start() -> AccessTeam {
        let dir = tempfile::tempdir().unwrap();
        for name in ["team.pem", "other.pem"] {
            let path = dir.path().join(name);
            openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    path.to_str().unwrap(),
                ],
                None,
            );
        }
        // Cloudflare's certs document: `keys` (JWKs) beside the same keys as PEM.
        let certs = json!({
            "keys": [rsa_jwk(&dir.path().join("team.pem"), "team-kid")],
            "public_cert": { "kid": "team-kid", "cert": "-----BEGIN CERTIFICATE-----\n..." },
            "public_certs": [],
        })
        .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let certs_url = format!(
            "http://{}/cdn-cgi/access/certs",
            listener.local_addr().unwrap()
        );
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = fetches.clone();
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let wanted = String::from_utf8_lossy(&head)
                    .starts_with("GET /cdn-cgi/access/certs HTTP/1.1");
                let (status, body) = if wanted {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    ("200 OK", certs.as_str())
                } else {
                    ("404 Not Found", "{}")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        AccessTeam {
            dir,
            certs_url,
            fetches,
        }
    }

    fn config(&self) -> String {
        format!(
            "[cloudflare]\nteam_domain = {CF_TEAM:?}\naudience = {CF_AUD:?}\ncerts_url = {:?}\n",
            self.certs_url
        )
    }

    /// An Access application token as Cloudflare Access issues one for a service token
    /// (`type: app`, `common_name`: the service token's client id), signed with `key`.
    fn token(&self, key: &str, header: Value, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let key = self.dir.path().join(key);
        let signature = openssl(
            &["dgst", "-sha256", "-sign", key.to_str().unwrap()],
            Some(signed.as_bytes()),
        );
        format!("{signed}.{}", b64url(&signature))
    }

    fn claims(now: u64) -> Value {
        json!({
            "aud": [CF_AUD],
            "email": "",
            "exp": now + 600,
            "iat": now,
            "nbf": now,
            "iss": format!("https://{CF_TEAM}"),
            "type": "app",
            "identity_nonce": "6ei69kawdKzMIAPF",
            "sub": "",
            "common_name": "88bf3b6d86161464f6509f7219099e57.access",
        })
    }

    fn valid_token(&self) -> String {
        let header = json!({ "alg": "RS256", "kid": "team-kid", "typ": "JWT" });
        self.token("team.pem", header, Self::claims(unix_now()))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Server {
    /// Cloudflare's call: POST with `Cf-Access-Jwt-Assertion` (when given).
    fn cloudflare(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut request = reqwest::Client::new()
                .post(format!("{}/v1/integrations/cloudflare/posture", self.url))
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(token) = token {
                request = request.header("Cf-Access-Jwt-Assertion", token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }
}

/// A software device enrolled with `owner`, which then delivers `report` as if from a
/// machine with this host name and serial number.
fn cf_device(
    server: &Server,
    host: &str,
    serial: Option<&str>,
    mut report: posture_core::Report,
) -> SoftDevice {
    let device = SoftDevice::new();
    let token = server.enrollment_token("alice@example.com");
    assert_eq!(device.enroll(server, &token).0, 201);
    report.device.hostname = host.to_owned();
    report.device.serial_number = serial.map(str::to_owned);
    let evidence = device.fresh_evidence(server, &report);
    let (status, body) = server.post_raw("/v1/evidence", evidence.into_bytes());
    assert_eq!(status, 201, "{body}");
    device
}

/// A device entry as Cloudflare sends it: every field, blank where it does not apply.
fn cf_entry(device_id: &str, serial: &str, hostname: &str) -> Value {
    json!({
        "device_id": device_id,
        "email": "alice@example.com",
        "serial_number": serial,
        "mac_address": "f8:4d:89:6c:1a:2b",
        "virtual_ipv4": "100.96.0.12",
        "hostname": hostname,
    })
}

fn cloudflare_posture(db: Db) {
    let database = Database::new(db);
    let team = AccessTeam::start();
    let server = Server::start(&database, &format!("{SOFTWARE}{}", team.config()));
    let healthy = posture_test_support::healthy_report;
    let failing = posture_test_support::laptop_report;

    let a = cf_device(&server, "laptop-a", Some("PF3AAAAA"), healthy());
    let b = cf_device(&server, "laptop-b", None, failing());
    // Two enrolled devices answer to the same host name (one without a serial).
    let c = cf_device(&server, "Shared", None, healthy());
    let d = cf_device(&server, "shared", Some("PF3DDDDD"), healthy());
    let e = cf_device(&server, "laptop-e", Some("PF3EEEEE"), healthy());
    let (status, _) = server.post(
        &format!("/v1/admin/devices/{}/disable", e.id()),
        Some(&server.admin),
        &json!({}),
    );
    assert_eq!(status, 204);

    let request = json!({ "devices": [
        cf_entry("cf-a", "PF3AAAAA", "renamed-laptop"),     // serial wins
        cf_entry("cf-b", "", "LAPTOP-B"),                   // host name, any case
        cf_entry("cf-shared", "", "shared"),                // two candidates: ambiguous
        cf_entry("cf-d", "PF3DDDDD", "shared"),             // the serial decides
        cf_entry("cf-e", "PF3EEEEE", "laptop-e"),           // disabled
        cf_entry("cf-other", "PF3XXXXX", "laptop-a"),       // laptop-a's name, another machine
        cf_entry("cf-unknown", "", "nobody"),
        { "device_id": "cf-bare" },                         // only the id
    ]});

    // Nothing is answered without a valid Access token.
    let (status, body) = server.cloudflare(None, &request);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "access_token_missing");
    assert!(body.get("result").is_none());
    let refused = |token: &str| {
        let (status, body) = server.cloudflare(Some(token), &request);
        assert!(body.get("result").is_none(), "{body}");
        (
            status,
            body["error"]["message"].as_str().unwrap_or("").to_owned(),
        )
    };
    let now = unix_now();
    let header = json!({ "alg": "RS256", "kid": "team-kid", "typ": "JWT" });
    let with = |key: &str, header: &Value, change: &dyn Fn(&mut Value)| {
        let mut claims = AccessTeam::claims(now);
        change(&mut claims);
        team.token(key, header.clone(), claims)
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong audience",
            with("team.pem", &header, &|c| c["aud"] = json!(["another-app"])),
        ),
        (
            "wrong issuer",
            with("team.pem", &header, &|c| {
                c["iss"] = json!("https://evil.cloudflareaccess.com")
            }),
        ),
        (
            "expired",
            with("team.pem", &header, &|c| c["exp"] = json!(now - 3600)),
        ),
        (
            "not yet valid",
            with("team.pem", &header, &|c| c["nbf"] = json!(now + 3600)),
        ),
        (
            "no exp",
            with("team.pem", &header, &|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("bad signature", with("other.pem", &header, &|_| {})),
        (
            "unknown kid",
            with(
                "team.pem",
                &json!({ "alg": "RS256", "kid": "nope" }),
                &|_| {},
            ),
        ),
        (
            "alg must be RS256",
            with(
                "team.pem",
                &json!({ "alg": "HS256", "kid": "team-kid" }),
                &|_| {},
            ),
        ),
        ("not a compact JWS", "not.a.jwt.at-all".to_owned()),
    ];
    for (why, token) in &cases {
        let (status, message) = refused(token);
        assert_eq!(status, 403, "{why}: {message}");
        assert!(message.contains(why), "{why}: {message}");
    }
    // A tampered payload under a valid signature.
    let valid = team.valid_token();
    let parts: Vec<&str> = valid.split('.').collect();
    let mut claims = AccessTeam::claims(now);
    claims["aud"] = json!([CF_AUD, "x"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(refused(&tampered).0, 403);

    // A valid token: every device Cloudflare sent has an answer.
    let (status, body) = server.cloudflare(Some(&valid), &request);
    assert_eq!(status, 200, "{body}");
    let result = body["result"].as_object().unwrap();
    assert_eq!(result.len(), 8, "{body}");
    let answer = |id: &str| {
        (
            result[id]["s2s_id"].as_str().unwrap().to_owned(),
            result[id]["score"].as_u64().unwrap(),
        )
    };
    assert_eq!(answer("cf-a"), (a.id(), 100));
    assert_eq!(answer("cf-b"), (b.id(), 0));
    assert_eq!(answer("cf-shared"), (String::new(), 0));
    assert_eq!(answer("cf-d"), (d.id(), 100));
    assert_eq!(answer("cf-e"), (e.id(), 0));
    assert_eq!(answer("cf-other"), (String::new(), 0));
    assert_eq!(answer("cf-unknown"), (String::new(), 0));
    assert_eq!(answer("cf-bare"), (String::new(), 0));
    let _ = c;
    // The keys were fetched once and cached.
    assert_eq!(team.fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // b becomes compliant: its score follows.
    let evidence = b.fresh_evidence(&server, &{
        let mut r = healthy();
        r.device.hostname = "laptop-b".into();
        r
    });
    assert_eq!(
        server.post_raw("/v1/evidence", evidence.into_bytes()).0,
        201
    );
    let (_, body) = server.cloudflare(
        Some(&valid),
        &json!({ "devices": [cf_entry("cf-b", "", "laptop-b")] }),
    );
    assert_eq!(body["result"]["cf-b"]["score"], 100);

    // More than Cloudflare's 1,000 devices: a clear 4xx, nothing answered.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({ "device_id": format!("cf-{i}") }))
        .collect();
    let (status, body) = server.cloudflare(Some(&valid), &json!({ "devices": many }));
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_many_devices");
    // 1,000 is fine.
    let many: Vec<Value> = (0..1000)
        .map(|i| cf_entry(&format!("cf-{i}"), &format!("SN{i}"), &format!("host-{i}")))
        .collect();
    let (status, body) = server.cloudflare(Some(&valid), &json!({ "devices": many }));
    assert_eq!(status, 200);
    assert_eq!(body["result"].as_object().unwrap().len(), 1000);
    // Malformed: 400.
    let (status, body) = server.cloudflare(Some(&valid), &json!({ "devices": [{ "email": "x" }] }));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
}

#[test]
fn cloudflare_custom_posture_maps_devices_and_checks_access_tokens_sqlite() {
    cloudflare_posture(Db::Sqlite);
}

#[test]
fn cloudflare_custom_posture_maps_devices_and_checks_access_tokens_postgres() {
    cloudflare_posture(Db::Postgres);
}

#[test]
fn cloudflare_endpoint_is_off_without_its_config() {
    let database = Database::new(Db::Sqlite);
    let server = Server::start(&database, "");
    let (status, body) = server.cloudflare(Some("x.y.z"), &json!({ "devices": [] }));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_configured"))
    );
}

#[test]
fn cloudflare_keys_out_of_reach_answer_503_and_nothing_else() {
    let database = Database::new(Db::Sqlite);
    let team = AccessTeam::start();
    // Nothing listens on port 1 of loopback.
    let config = format!(
        "[cloudflare]\nteam_domain = {CF_TEAM:?}\naudience = {CF_AUD:?}\ncerts_url = \"http://127.0.0.1:1/cdn-cgi/access/certs\"\n"
    );
    let server = Server::start(&database, &config);
    let request = json!({ "devices": [cf_entry("cf-a", "PF3AAAAA", "laptop-a")] });
    for _ in 0..2 {
        let (status, body) = server.cloudflare(Some(&team.valid_token()), &request);
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "access_keys_unavailable");
        assert!(body.get("result").is_none());
    }
}

// ---------------------------------------------------------------------------------------
// Device certificates and forward auth, behind a real nginx

impl SoftDevice {
    /// `POST /v1/device-certificate` with a CSR bound to a fresh nonce, for `device_id`.
    fn csr(&self, server: &Server) -> String {
        let nonce = server.challenge()["nonce"].as_str().unwrap().to_owned();
        let der = posture_core::devcert::build_csr(&self.key, &nonce).unwrap();
        posture_core::devcert::csr_pem(&der).unwrap()
    }

    fn certificate(&self, server: &Server) -> (u16, Value) {
        let csr = self.csr(server);
        server.post(
            "/v1/device-certificate",
            None,
            &json!({ "device_id": self.id(), "csr": csr }),
        )
    }

    fn deliver(&self, server: &Server, report: &posture_core::Report) {
        let evidence = self.fresh_evidence(server, report);
        let (status, body) = server.post_raw("/v1/evidence", evidence.into_bytes());
        assert_eq!(status, 201, "{body}");
    }
}

fn error_code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or(""))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real nginx in a temp dir: its own prefix and config, loopback only, in the
/// foreground, killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

const NGINX: &str = "/usr/sbin/nginx";

impl Nginx {
    /// mTLS against `device_ca` (optional: no certificate reaches auth_request, which
    /// answers 401), `auth_request` to posture-server's `/v1/authz`, then `upstream`.
    fn start(tls: &(String, String, String), device_ca: &str, authz: &str, upstream: u16) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("posture-nginx")
            .tempdir()
            .unwrap();
        let p = dir.path();
        std::fs::write(p.join("server.pem"), &tls.1).unwrap();
        std::fs::write(p.join("server-key.pem"), &tls.2).unwrap();
        std::fs::write(p.join("device-ca.pem"), device_ca).unwrap();
        std::fs::create_dir(p.join("tmp")).unwrap();
        let port = free_port();
        // The example of docs/proxies.md, with the test's paths and ports.
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/nginx.conf"),
        )
        .unwrap();
        let site = example
            .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
            .replace(
                "/etc/nginx/tls/server.pem",
                &p.join("server.pem").display().to_string(),
            )
            .replace(
                "/etc/nginx/tls/server-key.pem",
                &p.join("server-key.pem").display().to_string(),
            )
            .replace(
                "/etc/nginx/tls/posture-device-ca.pem",
                &p.join("device-ca.pem").display().to_string(),
            )
            .replace("http://127.0.0.1:8470", authz)
            .replace(
                "http://127.0.0.1:8080",
                &format!("http://127.0.0.1:{upstream}"),
            );
        assert_ne!(site, example);
        let user = if is_root() { "user root root;\n" } else { "" };
        let t = p.join("tmp").display().to_string();
        let conf = format!(
            "{user}daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\nerror_log {log} info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log {access};\n client_body_temp_path {t}/body;\n proxy_temp_path {t}/proxy;\n\
             fastcgi_temp_path {t}/fcgi;\n uwsgi_temp_path {t}/uwsgi;\n scgi_temp_path {t}/scgi;\n{site}\n}}\n",
            pid = p.join("nginx.pid").display(),
            log = p.join("error.log").display(),
            access = p.join("access.log").display(),
        );
        std::fs::write(p.join("nginx.conf"), conf).unwrap();
        let check = Command::new(NGINX)
            .arg("-p")
            .arg(p)
            .arg("-e")
            .arg(p.join("error.log"))
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .arg("-t")
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(p)
            .arg("-e")
            .arg(p.join("error.log"))
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("nginx to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Nginx { child, dir, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The upstream behind nginx: answers every request with the device nginx passed on.
fn upstream() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let device = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("x-posture-device")
                        .then_some(value)
                })
                .unwrap_or("none")
                .trim()
                .to_owned();
            let body = format!("upstream says hello to device {device}\n");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `curl` through nginx: `(status, body)`; status 0 when the TLS handshake failed.
fn curl(nginx: &Nginx, ca: &Path, cert: Option<(&Path, &Path)>, headers: &[&str]) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca);
    if let Some((cert, key)) = cert {
        c.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c
        .arg(format!("https://127.0.0.1:{}/app/", nginx.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.trim_end().to_owned())
}

/// An OpenSSL config with the default and tpm2 providers, the tpm2 provider's algorithms
/// preferred (so a TPM key signs in the TPM), random numbers from the default provider.
const TPM2_OPENSSL_CNF: &str = "openssl_conf = openssl_init\n\
[openssl_init]\nproviders = providers_sect\nalg_section = evp_sect\nrandom = random_sect\n\
[providers_sect]\ndefault = default_sect\ntpm2 = tpm2_sect\n\
[default_sect]\nactivate = 1\n\
[tpm2_sect]\nactivate = 1\n\
[evp_sect]\ndefault_properties = ?provider=tpm2\n\
[random_sect]\nproperties = provider=default\n";

/// The tpm2 OpenSSL provider (Debian's `tpm2-openssl`).
fn tpm2_provider() -> Result<(), String> {
    let found = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ]
    .iter()
    .any(|d| Path::new(d).join("ossl-modules/tpm2.so").exists());
    if found {
        Ok(())
    } else {
        Err("the tpm2 OpenSSL provider (tpm2-openssl) is not installed".into())
    }
}

fn nginx_available() -> Result<(), String> {
    for (path, what) in [(NGINX, "nginx"), ("/usr/bin/curl", "curl")] {
        if !Path::new(path).exists() {
            return Err(format!("{what} is not installed ({path})"));
        }
    }
    Ok(())
}

#[test]
fn device_certificates_are_issued_only_to_compliant_enrolled_devices_for_their_own_key_sqlite() {
    device_certificates(Db::Sqlite);
}

#[test]
fn device_certificates_are_issued_only_to_compliant_enrolled_devices_for_their_own_key_postgres() {
    device_certificates(Db::Postgres);
}

fn device_certificates(db: Db) {
    let database = Database::new(db);
    let server = Server::start(&database, SOFTWARE);
    let good = SoftDevice::new();
    let bad = SoftDevice::new();
    for device in [&good, &bad] {
        let token = server.enrollment_token("alice@example.com");
        assert_eq!(device.enroll(&server, &token).0, 201);
    }

    // No evidence yet: nothing.
    assert_eq!(
        error_code(&good.certificate(&server)),
        (403, "not_compliant")
    );
    good.deliver(&server, &posture_test_support::healthy_report());
    bad.deliver(&server, &posture_test_support::laptop_report());

    // Compliant: a certificate for its key, naming the device and the key assurance.
    let (status, issued) = good.certificate(&server);
    assert_eq!(status, 201, "{issued}");
    let (status, _, ca_pem) =
        server
            .http()
            .authz("GET", &format!("{}/v1/device-ca.pem", server.url), &[]);
    assert_eq!(status, 200);
    assert!(
        ca_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{ca_pem}"
    );
    let cert_pem = issued["certificate"].as_str().unwrap();
    let (not_before, not_after) = posture_core::devcert::validity_of(cert_pem.as_bytes()).unwrap();
    let lifetime = not_after.duration_since(not_before).unwrap();
    assert_eq!(
        lifetime,
        Duration::from_secs(24 * 3600 + 300),
        "24 h (+5 min backdating)"
    );
    let state = server.dir.path().join("state/device-ca");
    let ca = posture_core::devcert::DeviceCa::load(
        &state.join(posture_core::devcert::CA_CERT),
        &state.join(posture_core::devcert::CA_KEY),
    )
    .unwrap();
    let der = posture_core::devcert::forwarded_certificate(
        posture_core::devcert::ForwardedFormat::Nginx,
        &cert_pem.replace('\n', "%0A").replace(' ', "%20"),
    )
    .unwrap();
    let verified = ca.verify(&der, SystemTime::now()).unwrap();
    assert_eq!(verified.device_id, good.id());
    assert_eq!(verified.key_assurance, "software");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(state.join(posture_core::devcert::CA_KEY))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Non-compliant: none, with the failed rule.
    let refused = bad.certificate(&server);
    assert_eq!(error_code(&refused), (403, "not_compliant"));
    assert!(refused.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("firewall"));

    // A replayed CSR: its nonce is spent.
    let csr = good.csr(&server);
    let body = json!({ "device_id": good.id(), "csr": csr });
    assert_eq!(server.post("/v1/device-certificate", None, &body).0, 201);
    assert_eq!(
        error_code(&server.post("/v1/device-certificate", None, &body)),
        (400, "nonce")
    );
    // Another device's CSR for this device: its key is not this device's.
    let other = json!({ "device_id": good.id(), "csr": bad.csr(&server) });
    assert_eq!(
        error_code(&server.post("/v1/device-certificate", None, &other)),
        (403, "key_mismatch")
    );
    // A CSR whose signature does not verify (a byte of the signature changed).
    let mut der =
        posture_core::devcert::build_csr(&good.key, server.challenge()["nonce"].as_str().unwrap())
            .unwrap();
    let last = der.len() - 1;
    der[last] ^= 1;
    let tampered = json!({
        "device_id": good.id(),
        "csr": posture_core::devcert::csr_pem(&der).unwrap_or_else(|_| "garbage".into()),
    });
    let answer = server.post("/v1/device-certificate", None, &tampered);
    assert!(
        matches!(
            error_code(&answer),
            (403, "bad_csr_signature") | (400, "invalid_csr")
        ),
        "{answer:?}"
    );
    // A nonce the server never issued.
    let forged = posture_core::devcert::csr_pem(
        &posture_core::devcert::build_csr(&good.key, "made-up-nonce").unwrap(),
    )
    .unwrap();
    let answer = server.post(
        "/v1/device-certificate",
        None,
        &json!({ "device_id": good.id(), "csr": forged }),
    );
    assert_eq!(error_code(&answer), (400, "nonce"));
    // Unknown devices and garbage.
    let stranger = SoftDevice::new();
    assert_eq!(
        error_code(&stranger.certificate(&server)),
        (403, "unknown_device")
    );
    let answer = server.post(
        "/v1/device-certificate",
        None,
        &json!({ "device_id": good.id(), "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n" }),
    );
    assert_eq!(error_code(&answer), (400, "invalid_csr"));
    // Disabled by an admin: none.
    let (status, _) = server.post(
        &format!("/v1/admin/devices/{}/disable", good.id()),
        Some(&server.admin),
        &json!({}),
    );
    assert_eq!(status, 204);
    assert_eq!(
        error_code(&good.certificate(&server)),
        (403, "device_disabled")
    );
}

#[test]
fn nginx_forward_auth_lets_compliant_devices_through_and_refuses_the_rest() {
    if !posture_test_support::can_run(nginx_available()) {
        return;
    }
    let database = Database::new(Db::Sqlite);
    let server = Server::start(
        &database,
        &format!("{SOFTWARE}[device_certificates]\nlifetime = \"1h\"\n[forward_auth]\nproxy = \"nginx\"\n"),
    );
    let good = SoftDevice::new();
    let bad = SoftDevice::new();
    for device in [&good, &bad] {
        let token = server.enrollment_token("bob@example.com");
        assert_eq!(device.enroll(&server, &token).0, 201);
        device.deliver(&server, &posture_test_support::healthy_report());
    }
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let certificate = |device: &SoftDevice| {
        let (status, issued) = device.certificate(&server);
        assert_eq!(status, 201, "{issued}");
        issued["certificate"].as_str().unwrap().to_owned()
    };
    let good_cert = write("good.pem", &certificate(&good));
    let bad_cert = write("bad.pem", &certificate(&bad));
    // `bad` stops being compliant after its certificate was issued.
    bad.deliver(&server, &posture_test_support::laptop_report());

    // An expired certificate from the same CA, for the compliant device.
    let state = server.dir.path().join("state/device-ca");
    let ca = posture_core::devcert::DeviceCa::load(
        &state.join(posture_core::devcert::CA_CERT),
        &state.join(posture_core::devcert::CA_KEY),
    )
    .unwrap();
    let expired = ca
        .issue(
            &posture_core::devcert::Subject {
                device_id: &good.id(),
                key_assurance: "software",
                public_key: &good.key.public_key(),
                lifetime: Duration::from_secs(60),
            },
            SystemTime::now() - Duration::from_secs(7200),
        )
        .unwrap();
    let expired = write(
        "expired.pem",
        &posture_core::devcert::certificate_pem(&expired).unwrap(),
    );

    let tls = test_pki("nginx");
    let tls_ca = write("tls-ca.pem", &tls.0);
    let (status, _, device_ca) =
        server
            .http()
            .authz("GET", &format!("{}/v1/device-ca.pem", server.url), &[]);
    assert_eq!(status, 200);
    let nginx = Nginx::start(&tls, &device_ca, &server.url, upstream());

    // A compliant device's curl gets the upstream, which learns who it is.
    let (status, body) = curl(&nginx, &tls_ca, Some((&good_cert, good.key.path())), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("upstream says hello to device {}", good.id()));

    // A non-compliant one: 403 with the reason.
    let (status, body) = curl(&nginx, &tls_ca, Some((&bad_cert, bad.key.path())), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("firewall"), "{body}");
    assert!(body.contains("no firewall is active"), "{body}");

    // No certificate: 401, also when the client forges the header nginx would set.
    let (status, body) = curl(&nginx, &tls_ca, None, &[]);
    assert_eq!(status, 401, "{body}");
    let forged = format!(
        "X-Client-Cert: {}",
        std::fs::read_to_string(&good_cert)
            .unwrap()
            .replace('\n', "%0A")
            .replace(' ', "%20")
    );
    let (status, body) = curl(&nginx, &tls_ca, None, &[&forged]);
    assert_eq!(
        status, 401,
        "a client-supplied X-Client-Cert must not count: {body}"
    );

    // An expired certificate: nginx itself refuses it (400), posture-server is not asked.
    let (status, body) = curl(&nginx, &tls_ca, Some((&expired, good.key.path())), &[]);
    assert_eq!(status, 400, "{body}");
    let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap();
    assert!(log.contains("certificate has expired"), "{log}");

    // A disabled device loses access at once (the decision is the server's current one).
    let (status, _) = server.post(
        &format!("/v1/admin/devices/{}/disable", good.id()),
        Some(&server.admin),
        &json!({}),
    );
    assert_eq!(status, 204);
    let (status, body) = curl(&nginx, &tls_ca, Some((&good_cert, good.key.path())), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("disabled"), "{body}");
}

#[test]
fn authz_believes_forwarded_certificates_only_from_trusted_proxies_and_verifies_them() {
    use base64::Engine as _;
    let database = Database::new(Db::Sqlite);
    // Envoy's XFCC, from the default trusted proxies (loopback).
    let server = Server::start(
        &database,
        &format!("{SOFTWARE}[forward_auth]\nproxy = \"envoy\"\n"),
    );
    let device = SoftDevice::new();
    let token = server.enrollment_token("carol@example.com");
    assert_eq!(device.enroll(&server, &token).0, 201);
    device.deliver(&server, &posture_test_support::healthy_report());
    let (status, issued) = device.certificate(&server);
    assert_eq!(status, 201, "{issued}");
    let pem = issued["certificate"].as_str().unwrap();
    let escaped: String = pem
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let xfcc = format!("By=spiffe://example/proxy;Hash=00;Cert=\"{escaped}\";URI=urn:x");
    let url = format!("{}/v1/authz/some/original/path", server.url);
    let client = server.http();
    let (status, headers, _) = client.authz("POST", &url, &[("X-Forwarded-Client-Cert", &xfcc)]);
    assert_eq!(status, 200);
    assert_eq!(headers["x-posture-device"], device.id());
    assert_eq!(headers["x-posture-owner"], "carol@example.com");
    assert_eq!(headers["x-posture-compliant"], "true");
    assert_eq!(headers["x-posture-key-assurance"], "software");
    // Without a certificate: 401.
    let (status, headers, _) = client.authz("GET", &url, &[]);
    assert_eq!(
        (status, headers["x-posture-error"].as_str()),
        (401, "no_client_certificate")
    );
    // A certificate from another CA (the test's TLS certificate), or in another proxy's
    // form: 401, never trusted.
    let (_, other_chain, _) = test_pki("other");
    let other: String = other_chain
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, headers, body) = client.authz(
        "GET",
        &url,
        &[("X-Forwarded-Client-Cert", &format!("Cert=\"{other}\""))],
    );
    assert_eq!(
        (status, headers["x-posture-error"].as_str()),
        (401, "invalid_client_certificate"),
        "{body}"
    );
    let der = posture_core::devcert::forwarded_certificate(
        posture_core::devcert::ForwardedFormat::Envoy,
        &xfcc,
    )
    .unwrap();
    let traefik = base64::engine::general_purpose::STANDARD.encode(&der);
    let (status, _, _) = client.authz("GET", &url, &[("X-Forwarded-Client-Cert", &traefik)]);
    assert_eq!(status, 401);
    // Non-compliant now: 403, the reason in the body and a header.
    device.deliver(&server, &posture_test_support::laptop_report());
    let (status, headers, body) = client.authz("GET", &url, &[("X-Forwarded-Client-Cert", &xfcc)]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(headers["x-posture-compliant"], "false");
    assert!(headers["x-posture-reason"].contains("firewall"));
    assert!(
        body.contains("fix: Enable the firewall: sudo ufw enable"),
        "{body}"
    );
    drop(server);

    // Traefik's form, but 127.0.0.1 is not a trusted proxy of this server.
    let database = Database::new(Db::Sqlite);
    let server = Server::start(
        &database,
        &format!(
            "{SOFTWARE}[forward_auth]\nproxy = \"traefik\"\ntrusted_proxies = [\"10.9.9.9\"]\n"
        ),
    );
    let (status, headers, _) = server.http().authz(
        "GET",
        &format!("{}/v1/authz", server.url),
        &[("X-Forwarded-Tls-Client-Cert", &traefik)],
    );
    assert_eq!(
        (status, headers["x-posture-error"].as_str()),
        (403, "untrusted_proxy")
    );
}

#[test]
fn a_tpm_devices_daemon_fetches_its_certificate_and_posture_cert_writes_it() {
    let database = Database::new(Db::Sqlite);
    let device = PostureDevice::new(true);
    let soft = PostureDevice::new(false);
    let files = tempfile::tempdir().unwrap();
    let ek_roots = files.path().join("ek-roots.pem");
    std::fs::write(&ek_roots, device.swtpm.as_ref().unwrap().ca_bundle()).unwrap();
    // Compliant means a CA-verified TPM key here, whatever this machine's facts are.
    let policy = files.path().join("policy.toml");
    std::fs::write(&policy, "required_key_assurance = \"tpm\"\n").unwrap();
    let server = Server::start(
        &database,
        &format!(
            "policy = {policy:?}\n[enrollment]\nek_roots = [{ek_roots:?}]\nallow_software_keys = true\n"
        ),
    );
    for d in [&device, &soft] {
        d.configure(&server, "");
        let out = d.enroll(&server, &server.enrollment_token("dana@example.com"));
        assert!(
            out.status.success(),
            "enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let id = {
        let out = device.command(&["key", "--json"]).output().unwrap();
        let key: Value = serde_json::from_slice(&out.stdout).unwrap();
        key["kid"].as_str().unwrap().to_owned()
    };

    // The daemon delivers, the server finds it compliant, the daemon gets a certificate.
    let mut daemon = device.daemon();
    let stored = device.dir.path().join("state/device-cert.pem");
    wait_for(
        "the daemon's device certificate",
        Duration::from_secs(120),
        || stored.exists(),
    );
    // SIGTERM: the daemon flushes its TPM objects (swtpm has no resource manager).
    let status = Command::new("kill")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    daemon.wait().unwrap();

    // `posture cert` writes it with the CA and, the key being in the TPM, a reference.
    let out_dir = files.path().join("out");
    let out_arg = format!("--out={}", out_dir.display());
    let out = device.command(&["cert", &out_arg]).output().unwrap();
    assert!(
        out.status.success(),
        "cert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = std::fs::read(out_dir.join("cert.pem")).unwrap();
    assert_eq!(
        cert,
        std::fs::read(&stored).unwrap(),
        "the stored one, still fresh"
    );
    assert!(std::fs::read_to_string(out_dir.join("key.txt"))
        .unwrap()
        .contains("tpm2"));
    let tpm_key = std::fs::read_to_string(out_dir.join("key.pem")).unwrap();
    assert!(
        tpm_key.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"),
        "{tpm_key}"
    );
    let ca_dir = server.dir.path().join("state/device-ca");
    let ca = posture_core::devcert::DeviceCa::load(
        &ca_dir.join(posture_core::devcert::CA_CERT),
        &ca_dir.join(posture_core::devcert::CA_KEY),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(out_dir.join("ca.pem")).unwrap(),
        ca.cert_pem().unwrap()
    );
    let der = posture_core::devcert::forwarded_certificate(
        posture_core::devcert::ForwardedFormat::Nginx,
        &String::from_utf8(cert)
            .unwrap()
            .replace('\n', "%0A")
            .replace(' ', "%20"),
    )
    .unwrap();
    let verified = ca.verify(&der, SystemTime::now()).unwrap();
    assert_eq!(verified.device_id, id);
    assert_eq!(verified.key_assurance, "tpm");

    // OpenSSL loads the TPM-held key through the tpm2 provider and signs with it: a
    // self-signed certificate made with key.pem carries the device certificate's key.
    if posture_test_support::can_run(tpm2_provider()) {
        let conf = files.path().join("tpm2-openssl.cnf");
        std::fs::write(&conf, TPM2_OPENSSL_CNF).unwrap();
        let selfsigned = files.path().join("selfsigned.pem");
        let out = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-x509",
                "-subj",
                "/CN=tpm-key-check",
                "-days",
                "1",
                "-key",
            ])
            .arg(out_dir.join("key.pem"))
            .arg("-out")
            .arg(&selfsigned)
            .env("OPENSSL_CONF", &conf)
            .env("TPM2OPENSSL_TCTI", device.swtpm.as_ref().unwrap().tcti())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl with the TPM key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pubkey = |cert: &Path| {
            let out = Command::new("openssl")
                .args(["x509", "-noout", "-pubkey", "-in"])
                .arg(cert)
                .env_remove("OPENSSL_CONF")
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout
        };
        assert_eq!(pubkey(&selfsigned), pubkey(&out_dir.join("cert.pem")));
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&selfsigned)
            .arg(&selfsigned)
            .env_remove("OPENSSL_CONF")
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }

    // `--renew` asks the server again: a new certificate for the same TPM key.
    let out = device
        .command(&["cert", "--renew", &out_arg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cert --renew: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(std::fs::read(out_dir.join("cert.pem")).unwrap(), der);

    // A software-key device is not compliant under this policy: no certificate.
    let soft_arg = format!("--out={}", files.path().join("soft").display());
    let out = soft.command(&["cert", &soft_arg]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not_compliant"), "{stderr}");
    assert!(stderr.contains("key"), "{stderr}");
    assert!(!files.path().join("soft/cert.pem").exists());
}
// Shared Signals (SSF/CAEP) and Tailscale

mod ssf;
