//! `edr` check: the catalogue, installed-detection on fixture trees, the decision on given
//! process lists, and running-detection live with a real process under a catalogue name.

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

#[test]
fn catalogue_rejects_unknown_keys_and_duplicate_ids() {
    let typo = "[[product]]\nid = \"x\"\nname = \"X\"\n[product.linux]\nprocess = [\"x\"]\n";
    assert!(catalogue::parse(typo)
        .unwrap_err()
        .to_string()
        .contains("process"));
    let dup = "[[product]]\nid = \"x\"\nname = \"X\"\n[[product]]\nid = \"x\"\nname = \"Y\"\n";
    assert!(catalogue::parse(dup)
        .unwrap_err()
        .to_string()
        .contains("duplicate id `x`"));
}

fn proc_info(name: &str, exe: Option<&str>) -> ProcessInfo {
    ProcessInfo {
        name: name.into(),
        exe: exe.map(Into::into),
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
            "/opt/CrowdStrike/falconctl"
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
        proc_info("falcon-sensor", Some("/opt/CrowdStrike/falcon-sensor")),
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
    let processes = [proc_info("falcon-sensor", None)];
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
    let finding =
        edr::check_with_processes(&ctx, Some(&[proc_info("clamd", Some("/usr/sbin/clamd"))]));
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
    let finding = edr::check_with_processes(&ctx, Some(&[proc_info("clamd", None)]));
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

// ---- live: a real process under a catalogue name ---------------------------------------

/// Starts a copy of `sleep` named `name` from a temp dir; killed on drop.
struct FakeAgent {
    child: Child,
    _dir: tempfile::TempDir,
}

impl FakeAgent {
    fn start(name: &str) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join(name);
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap();
        std::fs::copy(sleep, &exe).unwrap();
        let child = Command::new(&exe).arg("300").spawn().unwrap();
        FakeAgent { child, _dir: dir }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn live_running_process_is_detected() {
    let agent = FakeAgent::start("osqueryd");
    let finding = edr::check(&Context::system(config(&["osquery"])));
    drop(agent);
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    let osquery = product(&finding, "osquery");
    assert_eq!(osquery["running"], true);
    assert!(osquery["processes"][0]
        .as_str()
        .unwrap()
        .starts_with("osqueryd"));
    assert!(finding.observed["running"]
        .as_array()
        .unwrap()
        .contains(&Value::from("osquery")));
}

#[test]
fn live_long_process_name_is_detected_despite_truncation() {
    // "sophos_threat_detector" is 22 bytes: the kernel shows it as "sophos_threat_d".
    let agent = FakeAgent::start("sophos_threat_detector");
    let finding = edr::check(&Context::system(config(&["sophos"])));
    drop(agent);
    assert_eq!(finding.status, Status::Pass, "{finding:?}");
    assert_eq!(product(&finding, "sophos")["running"], true);
}

#[test]
fn live_required_product_not_running_fails() {
    // Nothing on this test machine is Carbon Black.
    let finding = edr::check(&Context::system(config(&["carbon_black"])));
    assert_eq!(finding.status, Status::Fail, "{finding:?}");
    assert_eq!(product(&finding, "carbon_black")["running"], false);
}
