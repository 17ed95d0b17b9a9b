//! When to collect: a full collection at start and every interval (with jitter), and a
//! debounced re-collection of just the affected checks when the system changes.
//!
//! Between scheduled work the task waits on one timer (the next full collection) and on
//! the trigger channel; nothing polls.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use posture_agent::config::Config;
use posture_core::Report;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::outbox::{write_atomically, Item};
use super::{blocking, random_below, stopped, Shared};

/// A reason to collect again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The checks to re-collect; empty means a full collection.
    pub checks: Vec<&'static str>,
    /// What happened, for the log.
    pub cause: String,
}

impl Trigger {
    /// A full collection.
    pub fn full(cause: impl Into<String>) -> Self {
        Self {
            checks: Vec::new(),
            cause: cause.into(),
        }
    }
}

/// Runs the schedule until shutdown. The first full collection has already run.
pub async fn run(
    shared: Arc<Shared>,
    mut triggers: mpsc::Receiver<Trigger>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_full = next_full_at(&shared.settings.borrow());
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_full) => {
                collect(&shared, None, "interval").await;
                next_full = next_full_at(&shared.settings.borrow());
            }
            trigger = triggers.recv() => {
                // The scheduler's own sender lives in `shared`, so the channel never closes.
                let Some(trigger) = trigger else { break };
                let debounce = shared.settings.borrow().daemon.debounce;
                let mut pending = Pending::default();
                pending.add(trigger);
                let quiet_until = tokio::time::sleep(debounce);
                tokio::pin!(quiet_until);
                loop {
                    tokio::select! {
                        () = &mut quiet_until => break,
                        Some(more) = triggers.recv() => pending.add(more),
                    }
                }
                let cause = pending.causes.into_iter().collect::<Vec<_>>().join(", ");
                if pending.full {
                    collect(&shared, None, &cause).await;
                    next_full = next_full_at(&shared.settings.borrow());
                } else {
                    collect(&shared, Some(pending.checks.into_iter().collect()), &cause).await;
                }
            }
            () = stopped(&mut shutdown) => break,
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    full: bool,
    checks: BTreeSet<&'static str>,
    causes: BTreeSet<String>,
}

impl Pending {
    fn add(&mut self, trigger: Trigger) {
        self.full |= trigger.checks.is_empty();
        self.checks.extend(trigger.checks);
        self.causes.insert(trigger.cause);
    }
}

fn next_full_at(config: &Config) -> Instant {
    Instant::now() + config.daemon.interval + random_below(config.daemon.jitter)
}

/// Collects (all checks, or `only`), publishes the report, and queues evidence and
/// compliance-change events.
pub async fn collect(shared: &Arc<Shared>, only: Option<Vec<&'static str>>, cause: &str) {
    let config = Arc::clone(&shared.settings.borrow());
    let ids: Vec<String> = only.iter().flatten().map(|id| (*id).to_owned()).collect();
    // The same options as `posture check`, with the state directory: patch_level keeps
    // its memory of pending updates and its apt list cache.
    let options = posture_agent::collect::options(&config, &shared.state_dir, &ids);
    let started = std::time::Instant::now();
    // The runner blocks (one thread per check, each with a timeout); keep it off the
    // runtime thread. The blocking pool's threads exit when idle.
    let report = match tokio::task::spawn_blocking(move || posture_checks::collect(&options)).await
    {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => {
            tracing::error!(error = %e, %cause, "collection failed");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, %cause, "collection task failed");
            return;
        }
    };
    let previous = shared.report.borrow().clone();
    let report = match (&only, previous) {
        (Some(_), Some(previous)) => merge(&previous, report),
        _ => report,
    };
    tracing::info!(
        %cause,
        checks = ?only.unwrap_or_default(),
        pass = report.summary.pass,
        fail = report.summary.fail,
        unknown = report.summary.unknown,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "collected"
    );
    let report = Arc::new(report);
    shared.report.send_replace(Some(Arc::clone(&report)));
    after_collection(shared, &config, &report).await;
    shared.activity.collected(cause, &ids);
    // What the collection used and the idle daemon does not need goes back to the OS
    // (procfs reads and madvise: no disk I/O, quick on the runtime thread).
    super::memory::release_after_collection();
}

/// The previous report with the re-collected findings replacing theirs.
fn merge(previous: &Report, partial: Report) -> Report {
    let mut findings = previous.findings.clone();
    for fresh in partial.findings {
        match findings.iter_mut().find(|f| f.id == fresh.id) {
            Some(slot) => *slot = fresh,
            None => findings.push(fresh),
        }
    }
    Report::new(partial.device, partial.os, partial.collected_at, findings)
}

async fn after_collection(shared: &Arc<Shared>, config: &Config, report: &Arc<Report>) {
    let assessment = shared.evidence.assess(report);
    shared
        .assessment
        .send_replace(Some(Arc::new(assessment.clone())));
    let previous = *shared.compliance.lock().await;
    if previous != Some(assessment.compliant) {
        if let Some(previous) = previous {
            tracing::warn!(
                previous,
                current = assessment.compliant,
                reasons = ?assessment.reasons,
                "compliance changed"
            );
            if let Some(url) = &config.daemon.caep_receiver {
                let set = shared.evidence.compliance_event(
                    report,
                    previous,
                    &assessment,
                    config.daemon.audience.as_deref(),
                );
                match set {
                    Ok(set) => {
                        enqueue(
                            shared,
                            "caep",
                            url,
                            "application/secevent+jwt",
                            set.token,
                            set.jti,
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot sign the compliance-change event")
                    }
                }
            }
        }
        // Recorded after the event is queued: a crash in between sends the event twice
        // rather than never.
        *shared.compliance.lock().await = Some(assessment.compliant);
        let path = shared.state_dir.join(COMPLIANCE_FILE);
        let bytes = serde_json::json!({ "compliant": assessment.compliant }).to_string();
        if let Err(e) = blocking(move || write_atomically(&path, bytes.as_bytes())).await {
            tracing::error!(error = %e, "cannot record the compliance state");
        }
    }
    if let (Some(url), Some(_)) = (&config.daemon.server_url, config.daemon.challenge_url()) {
        // A posture-server: the report waits in the outbox and is signed at delivery,
        // bound to a nonce fetched just before (see delivery.rs).
        match serde_json::to_string(report.as_ref()) {
            Ok(body) => {
                let mut id = [0u8; 16];
                let jti = match getrandom::getrandom(&mut id) {
                    Ok(()) => posture_core::hex::encode(&id),
                    Err(_) => format!("{}", report.collected_at),
                };
                enqueue(shared, SERVER_EVIDENCE, url, "application/json", body, jti).await
            }
            Err(e) => tracing::error!(error = %e, "cannot queue the report"),
        }
    } else if let Some(url) = &config.daemon.server_url {
        match shared
            .evidence
            .sign(report, None, config.daemon.audience.as_deref(), None)
        {
            Ok(signed) => {
                enqueue(
                    shared,
                    "evidence",
                    url,
                    "application/eat+jwt",
                    signed.token,
                    signed.jti,
                )
                .await
            }
            Err(e) => tracing::error!(error = %e, "cannot sign evidence"),
        }
    }
}

/// Outbox kind of a report for a posture-server, signed at delivery time.
pub const SERVER_EVIDENCE: &str = "server-evidence";

/// Where the last known compliance is kept, so a restart neither misses nor invents a change.
pub const COMPLIANCE_FILE: &str = "compliance.json";

/// Reads the recorded compliance state, if any.
pub fn load_compliance(state_dir: &std::path::Path) -> Option<bool> {
    let text = std::fs::read_to_string(state_dir.join(COMPLIANCE_FILE)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()?
        .get("compliant")?
        .as_bool()
}

async fn enqueue(
    shared: &Arc<Shared>,
    kind: &str,
    url: &str,
    content_type: &str,
    token: String,
    jti: String,
) {
    let item = Item {
        jti,
        kind: kind.to_owned(),
        url: url.to_owned(),
        content_type: content_type.to_owned(),
        body: token,
        queued_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    let outbox = Arc::clone(&shared.outbox);
    match blocking(move || outbox.push(&item)).await {
        Ok(entry) => {
            tracing::debug!(jti = %entry.jti, %kind, "queued");
            shared.outbox_wake.notify_one();
        }
        Err(e) => tracing::error!(error = %e, %kind, "cannot queue for delivery"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::{Finding, Remediation, Status};

    fn report(findings: Vec<Finding>) -> Report {
        posture_test_support::report_with(findings)
    }

    #[test]
    fn partial_collection_replaces_only_its_findings() {
        let previous = report(vec![
            Finding::pass("os", "Debian 12"),
            Finding::pass("firewall", "nftables"),
        ]);
        let partial = report(vec![Finding::fail(
            "firewall",
            "off",
            Remediation::new("turn it on"),
        )]);
        let merged = merge(&previous, partial);
        assert_eq!(merged.finding("os").unwrap().status, Status::Pass);
        assert_eq!(merged.finding("firewall").unwrap().status, Status::Fail);
        assert_eq!(merged.summary.fail, 1);
        assert_eq!(merged.summary.pass, 1);
    }

    #[test]
    fn pending_triggers_union_and_full_wins() {
        let mut pending = Pending::default();
        pending.add(Trigger {
            checks: vec!["os"],
            cause: "a".into(),
        });
        pending.add(Trigger {
            checks: vec!["firewall", "os"],
            cause: "b".into(),
        });
        assert!(!pending.full);
        assert_eq!(pending.checks.len(), 2);
        pending.add(Trigger::full("resume"));
        assert!(pending.full);
    }
}
