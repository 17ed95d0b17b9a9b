//! The agent layer gives every front end the same answers: `posture check`, `posture
//! status` (answered by a running daemon) and the C agent (`libposture`) reach the same
//! verdict with the same config, and the CLI and a daemon of the same user sign with the
//! same device key.
// Linux end to end (daemon sockets, Linux checks against this machine).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use posture_integration_tests::{posture_bin, workspace_root};
use serde_json::Value;

/// A device tree (the checks read below it, not this machine), a config and a policy.
struct Device {
    dir: tempfile::TempDir,
}

impl Device {
    fn new(policy: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        posture_test_support::write_device_root(&dir.path().join("root"));
        std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
        // Readable by the ordinary user the key test runs the daemon as.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Device { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The config: only `os` runs (over the fixture root); `daemon` adds to `[daemon]`.
    fn write_config(&self, daemon: &str) -> PathBuf {
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
        let config = format!(
            "[checks]\ndisabled = [{disabled}]\n\n[compliance]\npolicy = {:?}\n\n[key]\nbackend = \"software\"\n\n[daemon]\nroot = {:?}\ninterval = \"1h\"\nwatch = false\n{daemon}",
            self.path("policy.toml"),
            self.path("root"),
        );
        let path = self.path("config.toml");
        std::fs::write(&path, config).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

fn posture(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(posture_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("POSTURE_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(mut command: Command, socket: &Path) -> Daemon {
    let mut daemon = Daemon(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        if socket.exists()
            && std::os::unix::net::UnixStream::connect(socket).is_ok()
            && get(socket, "/v1/compliance").0 == 200
        {
            return daemon;
        }
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!("the daemon exited with {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the daemon did not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One GET over the daemon's socket: status code and JSON body.
fn get(socket: &Path, path: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return (0, Value::Null);
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Where this cargo invocation put libposture.so: beside this test binary in `deps/`
/// (building posture-ffi's own tests puts it there; cargo copies it one level up only for
/// `cargo build`), else one level up.
fn libposture_dir() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let candidates = [deps.clone(), deps.parent().unwrap().to_owned()];
    candidates
        .iter()
        .find(|dir| dir.join("libposture.so").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "libposture.so is not built in {} or its parent: run the workspace's tests \
                 (cargo nextest run --workspace)",
                deps.display()
            )
        })
}

/// Compiles a C program that asks libposture's agent for the report and its verdict.
fn c_agent(dir: &Path) -> PathBuf {
    let source = dir.join("agent.c");
    std::fs::write(
        &source,
        r#"#include <posture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the agent's verdict ({"compliant": ..., "reasons": [...]}) for the config file in
   argv[1]. */
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  FILE *f = fopen(argv[1], "rb");
  if (f == NULL) return 2;
  static char config[65536];
  size_t n = fread(config, 1, sizeof config, f);
  fclose(f);
  posture_buf *report = NULL, *out = NULL;
  posture_status s = posture_agent_collect_json((const uint8_t *)config, n, &report, &out);
  if (s != POSTURE_STATUS_OK) {
    fprintf(stderr, "posture_agent_collect_json: %u\n", (unsigned)s);
    return 2;
  }
  fwrite(posture_buf_data(out), 1, posture_buf_len(out), stdout);
  posture_buf_free(out);
  posture_buf_free(report);
  return 0;
}
"#,
    )
    .unwrap();
    let lib_dir = libposture_dir();
    let exe = dir.join("agent");
    let output = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&source)
        .arg("-I")
        .arg(workspace_root().join("posture-ffi/include"))
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lposture")
        .output()
        .expect("a C compiler (cc) is installed (scripts/setup.sh)");
    assert!(
        output.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

#[test]
fn check_status_and_the_c_agent_give_the_same_verdict() {
    // Debian 12 passes the os check, so "every check passed" would say compliant; the
    // configured policy wants Debian 13. Every front end must apply the policy.
    let device = Device::new("required_checks = [\"os\"]\n[min_os_version]\ndebian = \"13\"\n");
    let socket = device.path("posture.sock");
    let config = device.write_config(&format!(
        "socket = {socket:?}\nstate_dir = {:?}\nallow_uids = [{}]\n",
        device.path("state"),
        euid()
    ));

    let check = posture(&config, &["check"]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("NOT COMPLIANT"), "{text}");
    assert!(text.contains("min_os_version"), "{text}");

    let mut command = Command::new(posture_bin());
    command.arg("--config").arg(&config).arg("daemon");
    let _daemon = start_daemon(command, &socket);
    let status = posture(&config, &["status"]);
    assert_eq!(
        status.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("min_os_version"));
    let (_, daemon_verdict) = get(&socket, "/v1/compliance");

    let exe = c_agent(device.dir.path());
    let output = Command::new(&exe).arg(&config).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let c: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(c["compliant"], false);
    assert_eq!(c, daemon_verdict, "C agent and daemon agree");
    assert_eq!(c["reasons"][0]["rule"], "min_os_version");

    // And all three agree when the policy is met.
    std::fs::write(device.path("policy.toml"), "required_checks = [\"os\"]\n").unwrap();
    assert_eq!(posture(&config, &["check"]).status.code(), Some(0));
    let c: Value =
        serde_json::from_slice(&Command::new(&exe).arg(&config).output().unwrap().stdout).unwrap();
    assert_eq!(c["compliant"], true);
}

fn euid() -> u32 {
    posture_core::process::effective_uid()
}

#[test]
fn a_users_cli_and_daemon_sign_with_the_same_key() {
    // As an ordinary user with default paths (no state_dir, no POSTURE_STATE_DIR): when
    // the test runs as root, as `nobody` in a home of its own.
    let device = Device::new("required_checks = [\"os\"]\n");
    let home = device.path("home");
    let runtime = device.path("run");
    for dir in [&home, &runtime] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let as_root = euid() == 0;
    if as_root {
        for dir in [&home, &runtime] {
            let status = Command::new("chown")
                .args(["65534:65534"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    // Root may connect to the user's socket.
    let config = device.write_config("allow_uids = [0]\n");
    let as_user = |args: &[&str]| {
        let mut command = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            c.arg(posture_bin());
            c
        } else {
            Command::new(posture_bin())
        };
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_clear()
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("PATH", "/usr/bin:/bin");
        command
    };
    let key = as_user(&["key", "--json"]).output().unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key: Value = serde_json::from_slice(&key.stdout).unwrap();
    assert_eq!(
        key["path"].as_str().unwrap(),
        home.join(".local/share/posture/keys/device-key.p8.pem")
            .to_str()
            .unwrap()
    );
    let socket = runtime.join("posture/posture.sock");
    let _daemon = start_daemon(as_user(&["daemon"]), &socket);
    let (status, health) = get(&socket, "/v1/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["key"]["kid"], key["kid"], "one device key per user");
}
