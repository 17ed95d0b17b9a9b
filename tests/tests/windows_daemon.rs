//! The Windows daemon under Wine (issue 15 §4; `scripts/cross.sh` builds `posture.exe`
//! first): `posture.exe daemon` in the foreground serves its named pipe, `posture.exe
//! status` gets the daemon's report over it, a caller whose SID is not in `allow_sids`
//! is refused with the clear error while Wine's own SID is let in, and a second daemon
//! on the same pipe name refuses to start (`FILE_FLAG_FIRST_PIPE_INSTANCE`).
//!
//! Every `posture.exe` runs through `scripts/wine/run.sh` in the one Wine prefix under
//! the target directory, so they share a wineserver and so the pipe namespace.

// Test helpers outside #[test] functions are not covered by clippy.toml's test allowance.
// Runs Windows executables under Wine from Linux.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use posture_integration_tests::workspace_root;

/// The Windows build's target directory and `posture.exe`, or why the test cannot run.
fn windows_posture() -> Result<(PathBuf, PathBuf), String> {
    let exe_path = std::env::current_exe().map_err(|e| e.to_string())?;
    // <target>/debug/deps/windows_daemon-<hash>: the target directory is three levels up.
    let target = exe_path
        .ancestors()
        .nth(3)
        .ok_or("no target directory")?
        .to_owned();
    let exe = target.join("x86_64-pc-windows-gnu/debug/posture.exe");
    let wine = ["/usr/bin/wine64", "/usr/lib/wine/wine64"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !wine {
        return Err("wine64 is not installed".to_owned());
    }
    if !exe.is_file() {
        return Err(format!(
            "{} is not built (scripts/cross.sh builds it)",
            exe.display()
        ));
    }
    Ok((target, exe))
}

/// A Linux path as Wine's `Z:` drive names it.
fn wine_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

struct Wine {
    target: PathBuf,
    exe: PathBuf,
}

impl Wine {
    fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(workspace_root().join("scripts/wine/run.sh"));
        command
            .arg(&self.exe)
            .arg("--config")
            .arg(wine_path(config))
            .args(args)
            .env("CARGO_TARGET_DIR", &self.target)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, config: &Path, args: &[&str]) -> Output {
        self.command(config, args).output().unwrap()
    }
}

/// A daemon in the foreground, killed when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(wine: &Wine, config: &Path, log: PathBuf) -> Daemon {
        let child = wine
            .command(config, &["daemon", "--log-level", "debug"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for a daemon on its own pipe and state directory below `dir`.
fn write_config(dir: &Path, pipe: &str, extra: &str) -> PathBuf {
    let state = dir.join("state");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = '\\\\.\\pipe\\{pipe}'\nstate_dir = '{}'\ninterval = \"1h\"\nwatch = false\n{extra}",
            wine_path(&state)
        ),
    )
    .unwrap();
    config
}

/// `posture.exe status --json` until the daemon has its first report (or `deadline`):
/// the last output.
fn status_when_ready(wine: &Wine, config: &Path, daemon: &mut Daemon) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let output = wine.run(config, &["status", "--json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let waiting = stderr.contains("still collecting") || stderr.contains("not running");
        if !waiting || Instant::now() > deadline {
            return output;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("the daemon exited ({status}): {}", daemon.log());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn report_of(output: &Output, daemon: &Daemon) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no report from status ({e}): stderr {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            daemon.log()
        )
    })
}

#[test]
fn windows_daemon_serves_status_over_its_pipe_under_wine() {
    let needs = windows_posture();
    if !posture_test_support::can_run(needs.as_ref().map(|_| ()).map_err(Clone::clone)) {
        return;
    }
    let (target, exe) = needs.unwrap();
    let wine = Wine { target, exe };
    let tmp = tempfile::tempdir().unwrap();
    let pipe = format!("posture-test-{}", std::process::id());

    // 1. No allow-list: only the daemon's own user, which is the user status runs as.
    let open_dir = tmp.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    let config = write_config(&open_dir, &pipe, "");
    let mut daemon = Daemon::start(&wine, &config, open_dir.join("daemon.log"));
    let output = status_when_ready(&wine, &config, &mut daemon);
    let report = report_of(&output, &daemon);
    assert_eq!(report["os"]["family"], "windows", "{report}");
    assert!(report["findings"].as_array().is_some_and(|f| !f.is_empty()));

    // 2. Squatting: a second daemon on the same name must not start.
    let squat_dir = tmp.path().join("squat");
    std::fs::create_dir(&squat_dir).unwrap();
    let squat_config = write_config(&squat_dir, &pipe, "");
    let squat = wine.run(&squat_config, &["daemon"]);
    let stderr = String::from_utf8_lossy(&squat.stderr);
    assert!(!squat.status.success(), "a second daemon started: {stderr}");
    assert!(
        stderr.contains("already owns the pipe"),
        "not the squatting error: {stderr}"
    );
    // The first daemon still answers.
    let output = wine.run(&config, &["status", "--json"]);
    report_of(&output, &daemon);

    // Wine's user SID, as the daemon logged its caller.
    let log = daemon.log();
    let own_sid = log
        .split("peer=\"sid ")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .or_else(|| {
            log.split("peer=sid ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
        })
        .unwrap_or_else(|| panic!("no caller SID in the daemon's log:\n{log}"))
        .to_owned();
    assert!(own_sid.starts_with("S-1-5-"), "{own_sid}");
    drop(daemon);

    // 3. An allow-list without Wine's user or any of its groups: refused, clearly.
    let closed_dir = tmp.path().join("closed");
    std::fs::create_dir(&closed_dir).unwrap();
    let closed_pipe = format!("{pipe}-closed");
    let config = write_config(
        &closed_dir,
        &closed_pipe,
        "allow_sids = [\"S-1-5-21-1-2-3-4242\"]\n",
    );
    let mut daemon = Daemon::start(&wine, &config, closed_dir.join("daemon.log"));
    let output = status_when_ready(&wine, &config, &mut daemon);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a refused caller got an answer");
    assert!(
        stderr.contains("refused this user") && stderr.contains("allow_sids"),
        "not the refusal: {stderr}\n{}",
        daemon.log()
    );
    assert!(daemon
        .log()
        .contains("refused caller not on the allow-list"));
    drop(daemon);

    // 4. The same daemon with Wine's own SID on the list: served.
    let allowed_dir = tmp.path().join("allowed");
    std::fs::create_dir(&allowed_dir).unwrap();
    let config = write_config(
        &allowed_dir,
        &format!("{pipe}-allowed"),
        &format!("allow_sids = [\"S-1-5-21-1-2-3-4242\", \"{own_sid}\"]\n"),
    );
    let mut daemon = Daemon::start(&wine, &config, allowed_dir.join("daemon.log"));
    let output = status_when_ready(&wine, &config, &mut daemon);
    let report = report_of(&output, &daemon);
    assert_eq!(report["os"]["family"], "windows", "{report}");
}

/// `posture.exe daemon --service` under Wine's Service Control Manager: `sc create`,
/// `sc start` (the service reports RUNNING and answers `posture status` over its pipe),
/// `sc stop` (the daemon's graceful stop; the service reports STOPPED with exit code 0).
///
/// Wine runs services only while another Wine process lives (services.exe goes when the
/// last ordinary process has exited), so a `cmd /c pause` keeps the prefix up. The
/// service process is started by services.exe without run.sh's `WINEPATH`, so the
/// ProcessPrng shim DLL is copied beside a copy of `posture.exe`.
#[test]
fn windows_service_starts_serves_and_stops_under_wine_scm() {
    let needs = windows_posture();
    if !posture_test_support::can_run(needs.as_ref().map(|_| ()).map_err(Clone::clone)) {
        return;
    }
    let (target, exe) = needs.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(&exe, bin.join("posture.exe")).unwrap();
    let shim = target.join("wine-shim/bcryptprimitives.dll");
    if !shim.is_file() {
        // run.sh builds it on first use.
        let built = Command::new(workspace_root().join("scripts/wine/run.sh"))
            .args(["cmd", "/c", "exit"])
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(shim.is_file(), "no shim: {built:?}");
    }
    std::fs::copy(&shim, bin.join("bcryptprimitives.dll")).unwrap();
    let wine = Wine {
        target,
        exe: bin.join("posture.exe"),
    };
    let config = write_config(
        tmp.path(),
        &format!("posture-service-test-{}", std::process::id()),
        "",
    );
    let wine_cmd = |args: &[&str]| -> Output {
        Command::new(workspace_root().join("scripts/wine/run.sh"))
            .args(args)
            .env("CARGO_TARGET_DIR", &wine.target)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let mut keepalive = Command::new(workspace_root().join("scripts/wine/run.sh"))
        .args(["cmd", "/c", "pause"])
        .env("CARGO_TARGET_DIR", &wine.target)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query = |wanted: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = wine_cmd(&["sc", "query", "posture"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains(wanted) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    // A leftover from an interrupted run would make `sc create` fail.
    wine_cmd(&["sc", "delete", "posture"]);
    let bin_path = format!(
        "{} --config {} daemon --service",
        wine_path(&wine.exe),
        wine_path(&config)
    );
    let created = wine_cmd(&[
        "sc", "create", "posture", "binPath=", &bin_path, "start=", "demand",
    ]);
    assert!(created.status.success(), "sc create: {created:?}");
    let started = wine_cmd(&["sc", "start", "posture"]);
    assert!(started.status.success(), "sc start: {started:?}");
    let log = tmp.path().join("state/daemon.log");
    let state = query("4  RUNNING");
    assert!(
        state.contains("4  RUNNING"),
        "not running: {state}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let output = wine.run(&config, &["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no report from the service ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert_eq!(report["os"]["family"], "windows", "{report}");

    let stopped = wine_cmd(&["sc", "stop", "posture"]);
    assert!(stopped.status.success(), "sc stop: {stopped:?}");
    let state = query("1  STOPPED");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(state.contains("1  STOPPED"), "not stopped: {state}\n{text}");
    assert!(state.contains("WIN32_EXIT_CODE    : 0 "), "{state}");
    // The graceful stop ran: the API closed and the outbox was left for the next start.
    assert!(
        text.contains("stopping") && text.contains("stopped queued="),
        "{text}"
    );
    assert!(text.contains("request peer=sid "), "{text}");

    wine_cmd(&["sc", "delete", "posture"]);
    let _ = keepalive.kill();
    let _ = keepalive.wait();
}
