//! `edr` check: the catalogue, installed-detection on fixture trees, the decision on given
//! process lists, and running-detection live with a real process under a catalogue name.

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside #[test] functions may unwrap too (clippy.toml only covers #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use posture_checks::edr::catalogue::{self, Health, Os};
use posture_checks::edr::{self, process_matches, ProcessInfo};
use posture_checks::{ChecksConfig, Context};
use posture_core::{Finding, Status};
use serde_json::Value;

const REQUIRED_PRODUCTS: &[&str] = &[
    "crowdstrike",
    "sentinelone",
    "defender_endpoint",
    "elastic_defend",
    "sophos",
    "trend_micro",
    "carbon_black",
    "wazuh",
    "osquery",
    "clamav",
];

#[test]
fn catalogue_parses_and_every_product_has_all_three_oses() {
    let catalogue = catalogue::builtin().unwrap();
    for id in REQUIRED_PRODUCTS {
        let product = catalogue
            .products
            .iter()
            .find(|p| p.id == *id)
            .unwrap_or_else(|| panic!("{id} missing"));
        for os in [Os::Linux, Os::Macos, Os::Windows] {
            let entry = product
                .entry(os)
                .unwrap_or_else(|| panic!("{id} has no {os:?} entry"));
            assert!(!entry.processes.is_empty(), "{id} {os:?}: no processes");
            assert!(!entry.paths.is_empty(), "{id} {os:?}: no install paths");
            if let Some(Health::Command { command, .. }) = &entry.health {
                assert!(
                    command[0].starts_with('/'),
                    "{id} {os:?}: health command must be an absolute path"
                );
            }
        }
    }
}

/// Issue 17: at least 20 products with a Linux agent, each with everything the running
/// check needs (processes, service units, install paths, executable directories).
#[test]
fn catalogue_has_twenty_linux_agents_with_processes_units_paths_and_dirs() {
    let catalogue = catalogue::builtin().unwrap();
    let linux: Vec<_> = catalogue
        .products
        .iter()
        .filter_map(|p| p.entry(Os::Linux).map(|e| (p.id.as_str(), e)))
        .collect();
    assert!(linux.len() >= 20, "{} Linux agents", linux.len());
    for (id, entry) in linux {
        assert!(!entry.processes.is_empty(), "{id}: no processes");
        assert!(!entry.services.is_empty(), "{id}: no service units");
        assert!(
            entry.services.iter().all(|s| s.ends_with(".service")),
            "{id}: services are systemd units"
        );
        assert!(!entry.paths.is_empty(), "{id}: no install paths");
        assert!(
            !entry.exe_dirs.is_empty(),
            "{id}: no executable directories"
        );
        for path in entry.paths.iter().chain(&entry.exe_dirs) {
            assert!(path.starts_with('/'), "{id}: {path} is not absolute");
        }
        for dir in &entry.exe_dirs {
            assert!(
                !matches!(dir.as_str(), "/" | "/tmp" | "/var/tmp" | "/home"),
                "{id}: {dir} is not an install directory"
            );
        }
    }
    for id in [
        "cortex_xdr",
        "cybereason",
        "trellix_ens",
        "bitdefender_gravityzone",
        "eset",
        "kaspersky",
        "qualys",
        "rapid7_insight",
        "tanium",
        "huntress",
    ] {
        assert!(
            catalogue.products.iter().any(|p| p.id == id),
            "{id} missing"
        );
    }
}

#[test]
fn catalogue_rejects_unknown_keys_and_duplicate_ids() {
    let typo = "[[product]]\nid = \"x\"\nname = \"X\"\n[product.linux]\nprocess = [\"x\"]\n";
    assert!(catalogue::parse(typo)
        .unwrap_err()
        .to_string()
        .contains("process"));
    let incomplete = "[[product]]\nid = \"x\"\nname = \"X\"\n[product.linux]\nprocesses = [\"x\"]\nservices = [\"x.service\"]\npaths = [\"/opt/x\"]\n";
    assert!(catalogue::validate(&catalogue::parse(incomplete).unwrap())
        .unwrap_err()
        .to_string()
        .contains("needs `exe_dirs`"));
    let dup = "[[product]]\nid = \"x\"\nname = \"X\"\n[[product]]\nid = \"x\"\nname = \"Y\"\n";
    assert!(catalogue::parse(dup)
        .unwrap_err()
        .to_string()
        .contains("duplicate id `x`"));
}

fn proc_info(name: &str, exe: Option<&str>) -> ProcessInfo {
    ProcessInfo::named(name, exe)
}

/// A process as `/proc` shows a product's real process: root, running the file at
/// `exe` in the tree (which must exist), in the system service `unit`.
fn verified(root: &Path, name: &str, exe: &str, unit: &str) -> ProcessInfo {
    use std::os::unix::fs::MetadataExt;
    let on_disk = root.join(exe.trim_start_matches('/'));
    let meta = std::fs::metadata(&on_disk).unwrap();
    ProcessInfo {
        pid: 4242,
        name: name.into(),
        exe: Some(on_disk.to_str().unwrap().to_owned()),
        uids: Some((0, 0)),
        exe_file: Some(edr::process::FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }),
        cgroup: Some(format!("0::/system.slice/{unit}\n")),
    }
}

#[test]
fn process_matching_handles_truncated_names_exe_and_case() {
    let names = vec![
        "sophos_threat_detector".to_owned(),
        "MsSense.exe".to_owned(),
    ];
    // Linux comm is cut to 15 bytes.
    assert!(process_matches(&proc_info("sophos_threat_d", None), &names));
    assert!(!process_matches(&proc_info("sophos_threat", None), &names));
    // The executable's file name counts when the name differs (e.g. a renamed thread).
    assert!(process_matches(
        &proc_info(
            "worker",
            Some("/opt/sophos-spl/plugins/av/sbin/sophos_threat_detector")
        ),
        &names
    ));
    assert!(process_matches(
        &proc_info(
            "x",
            Some(r"C:\Program Files\Windows Defender Advanced Threat Protection\MSSENSE.EXE")
        ),
        &names
    ));
    assert!(!process_matches(
        &proc_info("sleep", Some("/usr/bin/sleep")),
        &names
    ));
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config(required: &[&str]) -> ChecksConfig {
    let mut config = ChecksConfig::default();
    config.edr.required = required.iter().map(|s| s.to_string()).collect();
    config
}

fn product<'a>(finding: &'a Finding, id: &str) -> &'a Value {
    finding.observed["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {:?}", finding.observed))
}

/// A device with the CrowdStrike Falcon sensor installed as its rpm/deb installs it.
fn falcon_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "/usr/lib/systemd/system/falcon-sensor.service",
        "[Unit]\nDescription=CrowdStrike Falcon Sensor\n[Service]\nType=forking\nExecStart=/opt/CrowdStrike/falcond\n[Install]\nWantedBy=multi-user.target\n",
    );
    write(dir.path(), "/opt/CrowdStrike/falconctl", "");
    write(dir.path(), "/opt/CrowdStrike/falcon-sensor", "");
    dir
}

#[test]
fn fixture_detects_installed_but_cannot_tell_running() {
    let dir = falcon_tree();
    let ctx = Context::fixture(dir.path(), config(&[]), SystemTime::now());
    let finding = edr::check(&ctx);
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding
        .reason
        .as_deref()
        .unwrap()
        .contains("CrowdStrike Falcon"));
    let falcon = product(&finding, "crowdstrike");
    assert_eq!(falcon["installed"], true);
    assert!(falcon["running"].is_null());
    assert!(falcon["healthy"].is_null());
    assert_eq!(
        falcon["sources"],
        serde_json::json!([
            "/usr/lib/systemd/system/falcon-sensor.service",
            "/opt/CrowdStrike/falconctl",
            "/opt/CrowdStrike/falcon-sensor"
        ])
    );
    assert_eq!(finding.observed["running"], serde_json::json!([]));
    // Products that are neither installed, running nor required are not listed.
    assert_eq!(finding.observed["products"].as_array().unwrap().len(), 1);
}

#[test]
fn running_product_passes_and_is_listed_in_running() {
    let dir = falcon_tree();
    let ctx = Context::fixture(dir.path(), config(&[]), SystemTime::now());
    let processes = [
        proc_info("systemd", Some("/usr/lib/systemd/systemd")),
        verified(
            dir.path(),
            "falcon-sensor",
            "/opt/CrowdStrike/falcon-sensor",
            "falcon-sensor.service",
        ),
    ];
    let finding = edr::check_with_processes(&ctx, Some(&processes));
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(
        finding.observed["running"],
        serde_json::json!(["crowdstrike"])
    );
    let falcon = product(&finding, "crowdstrike");
    assert_eq!(falcon["running"], true);
    // No health command runs against a fixture root.
    assert!(falcon["healthy"].is_null());
    assert!(finding.source.iter().any(|s| s == "process list"));
}

#[test]
fn required_product_absent_fails_naming_it() {
    let dir = falcon_tree();
    let ctx = Context::fixture(dir.path(), config(&["sentinelone"]), SystemTime::now());
    let processes = [verified(
        dir.path(),
        "falcon-sensor",
        "/opt/CrowdStrike/falcon-sensor",
        "falcon-sensor.service",
    )];
    let finding = edr::check_with_processes(&ctx, Some(&processes));
    assert_eq!(finding.status, Status::Fail);
    assert!(
        finding.summary.contains("SentinelOne"),
        "{}",
        finding.summary
    );
    assert!(finding
        .remediation
        .as_ref()
        .unwrap()
        .text
        .contains("SentinelOne"));
    // Falcon still runs and is reported; the policy engine sees both facts.
    assert_eq!(
        finding.observed["running"],
        serde_json::json!(["crowdstrike"])
    );
    assert_eq!(product(&finding, "sentinelone")["installed"], false);
}

#[test]
fn installed_but_not_running_fails() {
    let dir = falcon_tree();
    let ctx = Context::fixture(dir.path(), config(&[]), SystemTime::now());
    let finding = edr::check_with_processes(&ctx, Some(&[proc_info("bash", None)]));
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(
        finding.summary,
        "CrowdStrike Falcon is installed but not running"
    );
}

#[test]
fn no_product_fails_with_remediation_to_contact_it() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::fixture(dir.path(), config(&[]), SystemTime::now());
    let finding = edr::check_with_processes(&ctx, Some(&[proc_info("bash", None)]));
    assert_eq!(finding.status, Status::Fail);
    let remediation = finding.remediation.unwrap().text;
    assert!(remediation.contains("Install your organisation's endpoint security"));
    assert!(remediation.contains("Contact IT"));
    assert_eq!(finding.observed["products"], serde_json::json!([]));
}

#[test]
fn unknown_required_id_is_unknown_not_pass() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::fixture(dir.path(), config(&["crowdstrik"]), SystemTime::now());
    let finding = edr::check_with_processes(&ctx, Some(&[proc_info("falcon-sensor", None)]));
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("crowdstrik"));
}

/// A device with ClamAV as Debian installs it, signatures last updated `age` ago.
fn clamav_tree(age: Duration, now: SystemTime) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "/lib/systemd/system/clamav-daemon.service",
        "[Unit]\nDescription=Clam AntiVirus userspace daemon\n",
    );
    write(dir.path(), "/usr/sbin/clamd", "");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/edr/clamav-var-lib");
    let db = dir.path().join("var/lib/clamav");
    std::fs::create_dir_all(&db).unwrap();
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        let target = db.join(entry.file_name());
        std::fs::copy(entry.path(), &target).unwrap();
        let file = std::fs::File::options().write(true).open(&target).unwrap();
        file.set_modified(now - age).unwrap();
    }
    dir
}

#[test]
fn clamav_with_fresh_signatures_is_healthy() {
    let now = SystemTime::now();
    let dir = clamav_tree(Duration::from_secs(2 * 86_400), now);
    let ctx = Context::fixture(dir.path(), config(&["clamav"]), now);
    let clamd = verified(
        dir.path(),
        "clamd",
        "/usr/sbin/clamd",
        "clamav-daemon.service",
    );
    let finding = edr::check_with_processes(&ctx, Some(&[clamd]));
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    let clamav = product(&finding, "clamav");
    assert_eq!(clamav["healthy"], true);
    assert!(clamav["health"]["detail"]
        .as_str()
        .unwrap()
        .contains("2 day(s) old"));
    assert!(finding.source.iter().any(|s| s == "/var/lib/clamav"));
}

#[test]
fn clamav_with_stale_signatures_fails_as_unhealthy() {
    let now = SystemTime::now();
    let dir = clamav_tree(Duration::from_secs(30 * 86_400), now);
    let ctx = Context::fixture(dir.path(), config(&[]), now);
    let clamd = verified(
        dir.path(),
        "clamd",
        "/usr/sbin/clamd",
        "clamav-daemon.service",
    );
    let finding = edr::check_with_processes(&ctx, Some(&[clamd]));
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    assert!(
        finding.summary.contains("not healthy"),
        "{}",
        finding.summary
    );
    assert_eq!(product(&finding, "clamav")["healthy"], false);
    // Still running: the policy engine may decide differently from the check.
    assert_eq!(finding.observed["running"], serde_json::json!(["clamav"]));
}

// ---- live: real processes (issue 11, item 1) ---------------------------------------------

fn sleep_binary() -> &'static str {
    ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap()
}

/// A copy of `sleep` at `relative` below a fresh temp dir (dirs 0755, file 0755), started
/// as `user` (`None`: as this test, root) through `setpriv`; killed on drop.
struct Agent {
    child: Child,
    dir: tempfile::TempDir,
    exe: std::path::PathBuf,
}

impl Agent {
    fn start(relative: &str, user: Option<u32>) -> Agent {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join(relative);
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::copy(sleep_binary(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = match user {
            None => Command::new(&exe).arg("300").spawn().unwrap(),
            Some(uid) => Command::new("setpriv")
                .args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".to_owned(),
                ])
                .arg(&exe)
                .arg("300")
                .spawn()
                .expect("setpriv (util-linux) is needed to start a process as another user"),
        };
        let agent = Agent { child, dir, exe };
        // setpriv execs the agent: wait until the pid runs the copy, not setpriv.
        let started = std::time::Instant::now();
        while agent.process().exe_file.is_none()
            || agent.process().exe.as_deref() != agent.exe.to_str()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "agent did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        agent
    }

    fn process(&self) -> ProcessInfo {
        edr::process::read_process(self.child.id()).unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_root() {
    assert_eq!(
        edr::process::read_process(std::process::id()).unwrap().uids,
        Some((0, 0)),
        "these tests start processes as another user and need root (CI runs as root)"
    );
}

#[test]
fn regression_fake_agent_started_by_another_user_does_not_count() {
    // Issue 11: a copy of /bin/sleep named s1-agent, started by `nobody`, made root's
    // `posture check --only edr` pass with "running: SentinelOne".
    assert_root();
    let agent = Agent::start("s1-agent", Some(65534));
    let finding = edr::check(&Context::system(config(&["sentinelone"])));
    let seen = agent.process();
    drop(agent);
    assert_eq!(seen.uids, Some((65534, 65534)));
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    let s1 = product(&finding, "sentinelone");
    assert_eq!(s1["running"], false);
    let rejected = s1["rejected"].to_string();
    assert!(rejected.contains("runs as uid 65534"), "{rejected}");
}

#[test]
fn root_process_outside_the_install_directories_does_not_count() {
    assert_root();
    // Right name, run by root, but a copy in a temp dir.
    let agent = Agent::start("osqueryd", None);
    let finding = edr::check(&Context::system(config(&["osquery"])));
    drop(agent);
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    let rejected = product(&finding, "osquery")["rejected"].to_string();
    assert!(
        rejected.contains("not in the product's install directories"),
        "{rejected}"
    );
}

/// The builtin SentinelOne entry without its service unit, for a test machine that has
/// no systemd.
fn catalogue_without_units() -> catalogue::Catalogue {
    catalogue::parse(
        r#"[[product]]
id = "sentinelone"
name = "SentinelOne"
[product.linux]
processes = ["s1-agent"]
paths = ["/opt/sentinelone"]
exe_dirs = ["/opt/sentinelone"]
"#,
    )
    .unwrap()
}

#[test]
fn real_process_at_the_right_path_counts_and_checks_each_condition() {
    assert_root();
    // A root process running the root-owned file at /opt/sentinelone/bin/s1-agent (below
    // a temp root).
    let agent = Agent::start("opt/sentinelone/bin/s1-agent", None);
    let ctx = Context::fixture(
        agent.dir.path(),
        config(&["sentinelone"]),
        SystemTime::now(),
    );
    let processes = edr::live_processes();
    let finding = edr::check_with_catalogue(&ctx, &catalogue_without_units(), Some(&processes));
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(product(&finding, "sentinelone")["running"], true);

    // With the catalogue's unit: this process is not in sentinelone.service.
    let finding = edr::check_with_processes(&ctx, Some(&processes));
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    let rejected = product(&finding, "sentinelone")["rejected"].to_string();
    assert!(rejected.contains("sentinelone.service"), "{rejected}");

    // An install directory that another user can write to: not trusted.
    use std::os::unix::fs::PermissionsExt;
    let bin = agent.dir.path().join("opt/sentinelone/bin");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
    let finding = edr::check_with_catalogue(
        &ctx,
        &catalogue_without_units(),
        Some(&edr::live_processes()),
    );
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    let rejected = product(&finding, "sentinelone")["rejected"].to_string();
    assert!(
        rejected.contains("can be written by users other than root"),
        "{rejected}"
    );
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The executable replaced on disk after the start (an update, or an attacker's
    // swap): the running image is no longer the file at that path.
    std::fs::remove_file(&agent.exe).unwrap();
    std::fs::copy(sleep_binary(), &agent.exe).unwrap();
    let finding = edr::check_with_catalogue(
        &ctx,
        &catalogue_without_units(),
        Some(&edr::live_processes()),
    );
    drop(agent);
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    let rejected = product(&finding, "sentinelone")["rejected"].to_string();
    assert!(rejected.contains("deleted"), "{rejected}");
}

#[test]
fn every_linux_entry_names_its_install_directories() {
    for product in &catalogue::builtin().unwrap().products {
        let linux = product.entry(Os::Linux).unwrap();
        assert!(!linux.exe_dirs.is_empty(), "{}: no exe_dirs", product.id);
        for dir in &linux.exe_dirs {
            assert!(dir.starts_with('/') && dir != "/", "{}: {dir}", product.id);
        }
    }
}

#[test]
fn live_required_product_not_running_fails() {
    // Nothing on this test machine is Carbon Black.
    let finding = edr::check(&Context::system(config(&["carbon_black"])));
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    assert_eq!(product(&finding, "carbon_black")["running"], false);
}
