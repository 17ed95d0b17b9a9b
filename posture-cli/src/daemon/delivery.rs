//! Delivers the outbox, oldest first, with exponential backoff and jitter.
//!
//! An item leaves the outbox only when the receiver answered 2xx, or refused it for good
//! (a 4xx other than 408/429: RFC 8935 §2.3 says a 400 means "do not send this again").
//! Anything else (connection refused, timeout, 5xx) is retried. With an empty outbox the
//! task sleeps on a notification: no polling.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::outbox::Item;
use super::{blocking, random_below, stopped, Shared};

/// How long a clean shutdown keeps trying to deliver what is queued.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Longest a single delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Outcome of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered(u16),
    Rejected(u16),
    Retry(String),
}

/// Exponential backoff with "equal jitter": half the delay fixed, half random.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(20));
        self.failures = self.failures.saturating_add(1);
        let delay = self.initial.saturating_mul(factor).min(self.max);
        delay / 2 + random_below(delay / 2)
    }
}

fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        // No idle pooled connections: they would keep a reaper timer running, and the
        // daemon sends a few requests per quarter hour.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("posture/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A report for a posture-server: fetch a fresh nonce, sign the report bound to it and
/// to the server's audience, post the evidence. The report stays queued until the server
/// acknowledged it (or refused it for good).
async fn attempt_server(shared: &Shared, client: &reqwest::Client, item: &Item) -> Outcome {
    use crate::server_client::{self, ServerError};
    let Some(challenge_url) = shared.settings.borrow().daemon.challenge_url() else {
        return Outcome::Retry("no challenge_url".into());
    };
    let report: posture_core::Report = match serde_json::from_str(&item.body) {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(error = %e, "outbox: unreadable report");
            return Outcome::Rejected(0);
        }
    };
    let result = async {
        let challenge = server_client::challenge(client, &challenge_url).await?;
        let signed = shared
            .evidence
            .sign(
                &report,
                Some(&challenge.nonce),
                Some(&challenge.audience),
                None,
            )
            .map_err(|e| ServerError::Protocol(format!("cannot sign evidence: {e}")))?;
        server_client::post_evidence(client, &item.url, &signed.token).await
    }
    .await;
    match result {
        Ok(answer) => {
            // The device certificate follows compliance: renewed (at 2/3 of its
            // lifetime) only after evidence the server found compliant.
            if answer.get("status").and_then(|s| s.as_str()) == Some("compliant") {
                let base =
                    crate::cmd_cert::base_url(challenge_url.trim_end_matches("/v1/challenge"));
                crate::cmd_cert::renew_if_due(
                    client,
                    &base,
                    shared.evidence.signer(),
                    &shared.state_dir,
                )
                .await;
            }
            Outcome::Delivered(201)
        }
        Err(e) if e.retryable() => Outcome::Retry(e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "posture-server refused the evidence");
            match e {
                ServerError::Refused { status, .. } => Outcome::Rejected(status),
                _ => Outcome::Rejected(0),
            }
        }
    }
}

async fn attempt(shared: &Shared, client: &reqwest::Client, item: &Item) -> Outcome {
    if item.kind == super::scheduler::SERVER_EVIDENCE {
        return attempt_server(shared, client, item).await;
    }
    let response = client
        .post(&item.url)
        .header(reqwest::header::CONTENT_TYPE, &item.content_type)
        .header(reqwest::header::ACCEPT, "application/json")
        .header("X-Posture-Jti", &item.jti)
        .body(item.body.clone())
        .send()
        .await;
    match response {
        // Without the URL: a receiver URL may carry a token in its query.
        Err(e) => Outcome::Retry(e.without_url().to_string()),
        Ok(r) => {
            let status = r.status();
            if status.is_success() {
                Outcome::Delivered(status.as_u16())
            } else if status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            {
                Outcome::Retry(format!("receiver answered {status}"))
            } else {
                Outcome::Rejected(status.as_u16())
            }
        }
    }
}

/// Delivers until shutdown, then tries for a few seconds more to flush the outbox.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let client = match client() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "delivery disabled: cannot build the HTTP client");
            return;
        }
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        let daemon = shared.settings.borrow().daemon.clone();
        let mut backoff = Backoff {
            initial: daemon.retry_initial,
            max: daemon.retry_max,
            failures: 0,
        };
        // Deliver until the outbox is empty, backing off while the receiver is away.
        loop {
            if *shutdown.borrow() {
                break;
            }
            match deliver_oldest(&shared, &client).await {
                Some(Outcome::Retry(reason)) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%reason, retry_in = ?delay, queued = shared.outbox.len(), "delivery failed; will retry");
                    shared.activity.delivery_failed();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stopped(&mut shutdown) => break,
                    }
                }
                Some(_) => backoff.failures = 0,
                None => break,
            }
        }
        tokio::select! {
            () = shared.outbox_wake.notified() => {}
            () = stopped(&mut shutdown) => break,
        }
    }
    flush(&shared, &client).await;
}

/// On shutdown: deliver what can be delivered in [`SHUTDOWN_FLUSH`]; the rest stays on disk.
async fn flush(shared: &Shared, client: &reqwest::Client) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_FLUSH;
    while shared.outbox.len() > 0 {
        match tokio::time::timeout_at(deadline, deliver_oldest(shared, client)).await {
            Ok(Some(Outcome::Delivered(_) | Outcome::Rejected(_))) => {}
            Ok(None) => break,
            Ok(Some(Outcome::Retry(_))) | Err(_) => {
                tracing::info!(
                    queued = shared.outbox.len(),
                    "shutdown: undelivered items stay in the outbox for the next start"
                );
                break;
            }
        }
    }
}

/// Tries the oldest item once. `None` when the outbox is empty.
async fn deliver_oldest(shared: &Shared, client: &reqwest::Client) -> Option<Outcome> {
    let outbox = Arc::clone(&shared.outbox);
    let (entry, item) = match blocking(move || outbox.peek()).await {
        Ok(Some(next)) => next,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %e, "outbox: cannot read the oldest item");
            return Some(Outcome::Retry(e.to_string()));
        }
    };
    let outcome = attempt(shared, client, &item).await;
    match &outcome {
        Outcome::Delivered(status) => {
            tracing::info!(jti = %item.jti, kind = %item.kind, status, "delivered")
        }
        Outcome::Rejected(status) => tracing::error!(
            jti = %item.jti, kind = %item.kind, status,
            "receiver refused the item; dropping it (retrying would not help)"
        ),
        Outcome::Retry(_) => return Some(outcome),
    }
    let outbox = Arc::clone(&shared.outbox);
    if let Err(e) = blocking(move || outbox.remove(entry.seq)).await {
        // It will be sent again with the same jti; receivers de-duplicate.
        tracing::error!(error = %e, "outbox: cannot remove a delivered item");
    }
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            failures: 0,
        };
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay()).collect();
        for (delay, full) in delays.iter().zip([1u64, 2, 4, 8, 8, 8]) {
            let full = Duration::from_secs(full);
            assert!(
                *delay >= full / 2 && *delay <= full,
                "{delay:?} vs {full:?}"
            );
        }
    }
}
