//! Runs the enabled checks concurrently, each bounded by the configured timeout, and
//! assembles the report.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use posture_core::{Finding, Privilege, Report, Timestamp};

use crate::{device, os, Cancel, CheckDef, ChecksConfig, Context, Error, CHECKS};

/// What to collect, and from where.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The checks' configuration.
    pub config: ChecksConfig,
    /// Run only these check ids (empty: every enabled check).
    pub only: Vec<String>,
    /// Context override for tests (a fixture root); `None` means this machine.
    pub context: Option<Context>,
    /// Where checks keep state between runs (see [`Context::state_dir`]); used for this
    /// machine's context.
    pub state_dir: Option<std::path::PathBuf>,
}

impl CollectOptions {
    /// Every enabled check on this machine.
    pub fn new(config: ChecksConfig) -> Self {
        Self {
            config,
            only: Vec::new(),
            context: None,
            state_dir: None,
        }
    }
}

/// Collects a report: every selected check runs on its own thread; a check still running
/// when the timeout expires is reported `unknown` with reason `timeout`, its context is
/// cancelled (see [`Context::cancelled`]; its commands are killed), and it is not started
/// again until it has finished: at most one thread per check is ever left behind.
pub fn collect(options: &CollectOptions) -> Result<Report, Error> {
    options.config.validate()?;
    let selected = select(options)?;
    let ctx = options.context.clone().unwrap_or_else(|| {
        let ctx = Context::system(options.config.clone());
        match &options.state_dir {
            Some(dir) => ctx.with_state_dir(dir),
            None => ctx,
        }
    });
    let started_at = Timestamp::from_system_time(SystemTime::now());
    let findings = collect_checks(&selected, &ctx)?;
    let device = device::device_identity(&ctx);
    let os_facts = os::os_facts(&ctx);
    let privilege = if posture_core::process::is_root() {
        Privilege::Root
    } else {
        Privilege::User
    };
    Ok(Report::new(device, os_facts, started_at, findings).with_privilege(privilege))
}

/// A check thread that outlived its collection.
#[derive(Debug)]
struct Straggler {
    handle: JoinHandle<()>,
    cancel: Cancel,
}

/// The check threads still running after their collection's timeout, by check id. A
/// check is not started again while its straggler runs.
fn registry() -> MutexGuard<'static, HashMap<&'static str, Straggler>> {
    static STRAGGLERS: OnceLock<Mutex<HashMap<&'static str, Straggler>>> = OnceLock::new();
    STRAGGLERS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Joins the stragglers that have finished; returns the ids of those still running.
fn reap(stragglers: &mut HashMap<&'static str, Straggler>) -> Vec<&'static str> {
    let finished: Vec<&'static str> = stragglers
        .iter()
        .filter(|(_, s)| s.handle.is_finished())
        .map(|(id, _)| *id)
        .collect();
    for id in finished {
        if let Some(straggler) = stragglers.remove(id) {
            // A finished thread: join returns at once (Err only if it panicked, and
            // `run_one` catches panics).
            let _ = straggler.handle.join();
        }
    }
    let mut running: Vec<&'static str> = stragglers.keys().copied().collect();
    running.sort_unstable();
    running
}

/// The ids of checks whose thread is still running after its collection timed out.
pub fn stragglers() -> Vec<&'static str> {
    reap(&mut registry())
}

/// Cancels every check still running from an earlier collection and waits up to `grace`
/// for them to end. Returns the ids of those still running (a check that ignores its
/// cancellation and blocks in the kernel). A process about to exit (the C library's
/// users, a CLI) calls this so no check thread is alive at exit.
pub fn wait_for_stragglers(grace: Duration) -> Vec<&'static str> {
    let deadline = Instant::now() + grace;
    loop {
        let running = {
            let mut stragglers = registry();
            for straggler in stragglers.values() {
                straggler.cancel.cancel();
            }
            reap(&mut stragglers)
        };
        if running.is_empty() || Instant::now() >= deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `checks` concurrently against `ctx` (with a cancellation flag of their own), each
/// bounded by `ctx.config.timeout`, and returns one finding per check in the same order.
/// This is what [`collect`] does between choosing the checks and assembling the report.
pub fn collect_checks(checks: &[&'static CheckDef], ctx: &Context) -> Result<Vec<Finding>, Error> {
    let mut ctx = ctx.clone();
    ctx.cancel = Cancel::new();
    // Files are read afresh by every collection (the daemon's run every few minutes).
    ctx.shared = crate::context::SharedReads::default();
    let ctx = Arc::new(ctx);
    let timeout = humantime::format_duration(ctx.config.timeout);
    let deadline = Instant::now() + ctx.config.timeout;
    let (sender, receiver) = mpsc::channel::<(usize, Finding)>();
    let mut findings: Vec<Option<Finding>> = vec![None; checks.len()];
    let mut threads: Vec<(usize, &'static str, JoinHandle<()>)> = Vec::new();
    {
        let mut stragglers = registry();
        let still_running = reap(&mut stragglers);
        for (index, check) in checks.iter().enumerate() {
            if still_running.contains(&check.id) {
                if let Some(slot) = findings.get_mut(index) {
                    *slot = Some(
                        Finding::unknown(
                            check.id,
                            format!(
                                "timeout: an earlier run of this check passed its {timeout} \
                                 timeout and has not finished yet"
                            ),
                        )
                        .observe("timeout", timeout.to_string()),
                    );
                }
                continue;
            }
            let sender = sender.clone();
            let thread_ctx = Arc::clone(&ctx);
            let check = **check;
            let handle = std::thread::Builder::new()
                .name(format!("check-{}", check.id))
                .spawn(move || {
                    let finding = run_one(&check, &thread_ctx);
                    // The receiver is gone only after the deadline; then nobody wants it.
                    let _ = sender.send((index, finding));
                })
                .map_err(Error::Thread)?;
            threads.push((index, check.id, handle));
        }
    }
    drop(sender);

    let mut pending = threads.len();
    while pending > 0 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok((index, finding)) => {
                if let Some(slot) = findings.get_mut(index) {
                    *slot = Some(finding);
                }
                pending -= 1;
            }
            Err(_) => break,
        }
    }
    // Whatever still runs is no longer wanted: tell it, and keep its thread on record so
    // it is joined later and not started again meanwhile.
    ctx.cancel.cancel();
    {
        let mut stragglers = registry();
        for (index, id, handle) in threads {
            let answered = findings.get(index).is_some_and(Option::is_some);
            if answered {
                // It has sent its finding and is returning: join it now.
                let _ = handle.join();
            } else {
                stragglers.insert(
                    id,
                    Straggler {
                        handle,
                        cancel: ctx.cancel.clone(),
                    },
                );
            }
        }
    }

    Ok(findings
        .into_iter()
        .zip(checks)
        .map(|(finding, check)| {
            finding.unwrap_or_else(|| {
                Finding::unknown(
                    check.id,
                    format!("timeout: did not finish within {timeout}"),
                )
                .observe("timeout", timeout.to_string())
            })
        })
        .collect())
}

fn select(options: &CollectOptions) -> Result<Vec<&'static CheckDef>, Error> {
    for id in &options.only {
        if crate::check_by_id(id).is_none() {
            return Err(Error::UnknownCheck(id.clone()));
        }
    }
    Ok(CHECKS
        .iter()
        .filter(|c| options.only.is_empty() || options.only.iter().any(|id| id == c.id))
        .filter(|c| options.config.is_enabled(c.id))
        .collect())
}

fn run_one(check: &CheckDef, ctx: &Context) -> Finding {
    let finding = catch_unwind(AssertUnwindSafe(|| (check.run)(ctx))).unwrap_or_else(|_| {
        Finding::unknown(
            check.id,
            "internal error: the check panicked (please report this)",
        )
    });
    // A check that breaks the model's invariants is a bug; never let it through as-is.
    match finding.check_invariants() {
        Ok(()) if finding.id == check.id => finding,
        _ => Finding::unknown(
            check.id,
            "internal error: the check produced an invalid finding",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hangs(_: &Context) -> Finding {
        std::thread::sleep(std::time::Duration::from_secs(30));
        Finding::pass("hangs", "never reached in time")
    }

    fn quick(_: &Context) -> Finding {
        Finding::pass("quick", "done")
    }

    fn panics(_: &Context) -> Finding {
        let values: Vec<u8> = Vec::new();
        Finding::pass("panics", format!("{}", values[3]))
    }

    static HANGS: CheckDef = CheckDef {
        id: "hangs",
        title: "Hangs",
        run: hangs,
    };
    static QUICK: CheckDef = CheckDef {
        id: "quick",
        title: "Quick",
        run: quick,
    };
    static PANICS: CheckDef = CheckDef {
        id: "panics",
        title: "Panics",
        run: panics,
    };

    fn run_fixture(checks: &[&'static CheckDef], timeout: std::time::Duration) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let config = ChecksConfig {
            timeout,
            ..ChecksConfig::default()
        };
        let ctx = Context::fixture(dir.path(), config, SystemTime::now());
        collect_checks(checks, &ctx).unwrap()
    }

    #[test]
    fn hung_check_becomes_unknown_timeout_and_others_still_report() {
        // The hung check sleeps 30 s; the timeout is generous enough for the quick one
        // to finish on a loaded machine.
        let findings = run_fixture(&[&HANGS, &QUICK], std::time::Duration::from_secs(3));
        assert_eq!(findings[0].id, "hangs");
        assert_eq!(findings[0].status, posture_core::Status::Unknown);
        assert!(findings[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("timeout"));
        assert_eq!(findings[1].id, "quick");
        assert_eq!(findings[1].status, posture_core::Status::Pass);
    }

    #[test]
    fn panicking_check_becomes_unknown_internal_error() {
        let findings = run_fixture(&[&PANICS, &QUICK], std::time::Duration::from_secs(30));
        assert_eq!(findings[0].status, posture_core::Status::Unknown);
        assert!(findings[0].reason.as_deref().unwrap().contains("panicked"));
        assert_eq!(findings[1].status, posture_core::Status::Pass);
    }

    #[test]
    fn only_unknown_id_is_an_error() {
        let mut options = CollectOptions::new(ChecksConfig::default());
        options.only = vec!["nope".into()];
        assert!(matches!(collect(&options), Err(Error::UnknownCheck(id)) if id == "nope"));
    }

    #[test]
    fn disabled_checks_do_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let config = ChecksConfig {
            disabled: CHECKS
                .iter()
                .map(|c| c.id.to_string())
                .filter(|id| id != "os")
                .collect(),
            ..ChecksConfig::default()
        };
        let mut options = CollectOptions::new(config.clone());
        options.context = Some(Context::fixture(dir.path(), config, SystemTime::now()));
        let report = collect(&options).unwrap();
        let ids: Vec<_> = report.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, vec!["os"]);
    }
}
