//! Push delivery (RFC 8935): each due SET is POSTed as `application/secevent+jwt` with
//! the stream's `Authorization` header; `202 Accepted` deletes it, a `400` whose body
//! names an RFC 8935 error is a refusal that retrying cannot fix (dropped, logged), and
//! anything else (connection refused, 5xx, ...) is retried with exponential backoff until
//! `[ssf] retry_for` has passed.

use std::sync::Arc;
use std::time::Duration;

use super::db::{self, Due};
use super::Transmitter;
use crate::domain::Server;

/// How long a leased event is someone's (one HTTP request and its timeout).
const LEASE: i64 = 60;
/// The longest wait between two tries.
const MAX_BACKOFF: i64 = 3600;

/// The wait before try number `attempts + 1`: 1 s, 2 s, 4 s, ... up to an hour.
pub fn backoff(attempts: i64) -> i64 {
    1i64.checked_shl(attempts.clamp(0, 30) as u32)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// The push worker of this replica.
pub async fn push_loop(server: Arc<Server>, transmitter: Arc<Transmitter>) {
    loop {
        let now = crate::now();
        match db::take_due(server.store.pool(), now, LEASE).await {
            Ok(due) => {
                for event in due {
                    deliver(&server, &transmitter, event).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "SSF push: cannot read the queue"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), transmitter.events.notified()).await;
    }
}

async fn deliver(server: &Server, transmitter: &Transmitter, event: Due) {
    let stream = &event.stream.stream_id;
    let Some(url) = &event.stream.delivery.endpoint_url else {
        let _ = db::event_done(server.store.pool(), event.id).await;
        return;
    };
    let mut request = transmitter
        .http()
        .post(url)
        .header("content-type", "application/secevent+jwt")
        .header("accept", "application/json")
        .body(event.set_jwt.clone());
    if let Some(auth) = &event.stream.delivery.authorization_header {
        request = request.header("authorization", auth);
    }
    let outcome = match request.send().await {
        Ok(response) if response.status().as_u16() == 202 => Ok(()),
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            let refused = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .filter(|_| status == 400)
                .and_then(|v| v.get("err").and_then(|e| e.as_str()).map(str::to_owned));
            match refused {
                Some(err) => Err((true, format!("refused by the receiver: {err}"))),
                None => Err((false, format!("HTTP {status}"))),
            }
        }
        // The error names the URL but never the authorization header.
        Err(e) => Err((false, e.without_url().to_string())),
    };
    let pool = server.store.pool();
    let now = crate::now();
    let result = match outcome {
        Ok(()) => db::event_done(pool, event.id).await,
        Err((true, error)) => {
            tracing::warn!(stream = %stream, %error, "SSF push: SET refused, dropped");
            db::event_done(pool, event.id).await
        }
        Err((false, error)) => {
            let retry_for = server.config.ssf.retry_for.as_secs() as i64;
            if now - event.created_at > retry_for {
                tracing::warn!(stream = %stream, %error, attempts = event.attempts + 1,
                    "SSF push: receiver unreachable past retry_for, SET dropped");
                db::event_done(pool, event.id).await
            } else {
                tracing::info!(stream = %stream, %error, attempts = event.attempts + 1,
                    "SSF push failed; retrying");
                db::event_retry(pool, event.id, now + backoff(event.attempts), &error).await
            }
        }
    };
    if let Err(e) = result {
        // The lease expires and the event is tried again.
        tracing::warn!(error = %e, lease_until = event.next_attempt, "SSF push: cannot record the outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), 1);
        assert_eq!(backoff(1), 2);
        assert_eq!(backoff(5), 32);
        assert_eq!(backoff(12), 3600);
        assert_eq!(backoff(100), 3600);
    }
}
