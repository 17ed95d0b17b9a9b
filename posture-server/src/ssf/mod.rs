//! The Shared Signals transmitter (OpenID SSF 1.0, CAEP 1.0) and the Tailscale adapter.
//!
//! ## Where events come from
//! Compliance transitions are derived from the database, never from a request in memory,
//! so nothing is lost when a replica dies: the *pump* (one database transaction, one
//! replica at a time — `BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL)
//! 1. claims the rows of `changes` (written by ingestion in the evidence's own
//!    transaction) not yet claimed: a change is claimed by inserting its id into
//!    `ssf_consumed`; a watermark below which everything is claimed advances only past
//!    ids claimed more than [`SAFETY_WINDOW`] ago. PostgreSQL identity values are not
//!    commit-ordered, so a plain `id > cursor` scan would skip a change whose
//!    transaction committed after a later one; this one does not.
//! 2. sweeps for transitions without evidence: a device disabled, enabled, deleted, or
//!    gone stale (its evidence older than the freshness limit) — each is no longer (or
//!    again) compliant for the decision API, so receivers hear it too.
//!
//!    Every transition is judged against `ssf_reported`, the status last announced for
//!    the device: an event is made only when the effective status (`compliant` or
//!    `not-compliant`, as `GET /v1/devices/{id}/decision` answers) differs from it, so
//!    there is never an event when the status did not change.
//! 3. turns each transition into one signed SET per stream (`ssf_events`, the durable
//!    outbox) and, with `[tailscale]`, one row of `tailscale_queue`, in the same
//!    transaction.
//!
//! ## Delivery
//! Push streams (RFC 8935) are sent by [`deliver`]: a row is leased, POSTed, deleted on
//! `202 Accepted`, retried with exponential backoff (1 s doubling to 1 h) otherwise, and
//! dropped after `[ssf] retry_for`. Poll streams (RFC 8936) are read by the receiver
//! (`POST /ssf/poll/{stream_id}`); a SET stays until acknowledged.

pub mod db;
pub mod deliver;
pub mod http;
pub mod keys;
pub mod tailscale;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::Server;
pub use keys::{Alg, SigningKeys};

/// The event type this transmitter sends.
pub const DEVICE_COMPLIANCE_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";
/// The SSF verification event.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// RFC 8935 push delivery.
pub const PUSH: &str = "urn:ietf:rfc:8935";
/// RFC 8936 poll delivery.
pub const POLL: &str = "urn:ietf:rfc:8936";
/// How long after a change is claimed the watermark may pass it (see the module docs).
pub const SAFETY_WINDOW: Duration = Duration::from_secs(600);
/// How often the whole fleet is swept for transitions without evidence.
pub const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Shortest time between two verification requests of a stream (else 429).
pub const MIN_VERIFICATION_INTERVAL: i64 = 5;

/// How a stream names the subject of its events (RFC 9493 formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectFormat {
    /// `complex` with `device` (`iss_sub`, the device id) and `user` (`email`, the owner).
    Complex,
    /// `opaque`: the device id.
    Opaque,
    /// `email`: the device's owner.
    Email,
    /// `iss_sub`: this issuer and the device id.
    IssSub,
}

/// A stream's delivery method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// [`PUSH`] or [`POLL`].
    pub method: String,
    /// Push: the receiver's URL; poll: this transmitter's poll URL for the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` header to send (stored, never shown back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_header: Option<String>,
}

/// A stream's configuration (SSF 1.0 section "Stream Configuration"), with two posture
/// extensions: `subject_format` and `signing_alg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// Transmitter-supplied id.
    pub stream_id: String,
    /// The issuer.
    pub iss: String,
    /// The audience of its SETs.
    pub aud: String,
    /// What this transmitter can send.
    pub events_supported: Vec<String>,
    /// What the receiver asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_requested: Option<Vec<String>>,
    /// What is sent: supported ∩ requested.
    pub events_delivered: Vec<String>,
    /// How.
    pub delivery: Delivery,
    /// Seconds between verification requests.
    pub min_verification_interval: i64,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// posture extension: the `sub_id` format of its events.
    pub subject_format: SubjectFormat,
    /// posture extension: `ES256` (default) or `RS256`.
    pub signing_alg: Alg,
}

impl StreamConfig {
    /// The configuration as shown to receivers: without the push authorization secret.
    pub fn public(&self) -> Value {
        let mut shown = self.clone();
        shown.delivery.authorization_header = None;
        serde_json::to_value(shown).unwrap_or(Value::Null)
    }
}

/// The transmitter of one replica.
#[derive(Debug)]
pub struct Transmitter {
    /// The https issuer (`None`: SSF off, only the Tailscale adapter runs).
    pub issuer: Option<String>,
    /// SET signing keys (with an issuer only: a server without SSF makes none).
    pub keys: Option<SigningKeys>,
    /// Runs the pump with a sweep now (after an admin action).
    pub pump_now: tokio::sync::Notify,
    /// Wakes the delivery workers and long polls when events were made.
    pub events: tokio::sync::Notify,
    /// The Tailscale adapter, where configured.
    pub tailscale: Option<tailscale::Tailscale>,
    http: reqwest::Client,
}

impl Transmitter {
    /// Loads (or makes) the signing keys in `key_dir` when there is an issuer, and reads
    /// the Tailscale secret.
    pub fn new(server: &Server, key_dir: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let issuer = server.config.ssf_issuer();
        let keys = match issuer {
            Some(_) => Some(
                SigningKeys::load_or_create(key_dir)
                    .with_context(|| format!("SSF signing keys in {}", key_dir.display()))?,
            ),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("HTTP client")?;
        let tailscale = match &server.config.tailscale {
            Some(config) => Some(tailscale::Tailscale::new(config, http.clone())?),
            None => None,
        };
        Ok(Self {
            issuer,
            keys,
            pump_now: tokio::sync::Notify::new(),
            events: tokio::sync::Notify::new(),
            tailscale,
            http,
        })
    }

    /// The HTTP client for push delivery.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// Starts the pump and the delivery workers of this replica.
pub fn spawn(server: Arc<Server>) {
    let Some(transmitter) = server.ssf.clone() else {
        return;
    };
    tokio::spawn(pump_loop(Arc::clone(&server), Arc::clone(&transmitter)));
    tokio::spawn(deliver::push_loop(
        Arc::clone(&server),
        Arc::clone(&transmitter),
    ));
    if transmitter.tailscale.is_some() {
        tokio::spawn(tailscale::queue_loop(server, transmitter));
    }
}

async fn pump_loop(server: Arc<Server>, transmitter: Arc<Transmitter>) {
    let mut last_sweep = 0;
    loop {
        let now = crate::now();
        let sweep = now - last_sweep >= SWEEP_EVERY.as_secs() as i64;
        match db::pump(&server, &transmitter, now, sweep).await {
            Ok(made) => {
                if sweep {
                    last_sweep = now;
                }
                if made > 0 {
                    tracing::info!(events = made, "compliance transitions announced");
                    transmitter.events.notify_waiters();
                }
            }
            Err(e) => tracing::warn!(error = %e, "SSF pump failed; retrying"),
        }
        // An admin action asks for a sweep now.
        let woken =
            tokio::time::timeout(Duration::from_secs(1), transmitter.pump_now.notified()).await;
        if woken.is_ok() {
            last_sweep = 0;
        }
    }
}

/// A change of a device's effective compliance.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The device.
    pub device_id: String,
    /// Its owner.
    pub owner: String,
    /// Its host name, when known.
    pub host: Option<String>,
    /// Its key assurance.
    pub assurance: String,
    /// `compliant` or `not-compliant`.
    pub previous: &'static str,
    /// `compliant` or `not-compliant`.
    pub current: &'static str,
    /// When it changed.
    pub at: i64,
    /// CAEP `initiating_entity`: `policy`, `admin` or `system`.
    pub initiator: &'static str,
    /// For admins: the failed rules.
    pub reason_admin: String,
    /// For the user: what to do.
    pub reason_user: String,
}

/// `compliant` or `not-compliant`.
pub fn caep_status(compliant: bool) -> &'static str {
    if compliant {
        "compliant"
    } else {
        "not-compliant"
    }
}

/// The reasons of a transition from a decision's failed rules.
pub fn reasons(current: &str, failed: &[posture_core::policy::Reason]) -> (String, String) {
    if current == "compliant" || failed.is_empty() {
        return (
            "every policy rule passes".into(),
            "Your device meets the security policy.".into(),
        );
    }
    let admin = failed
        .iter()
        .map(|r| format!("{}: {}", r.rule, r.message))
        .collect::<Vec<_>>()
        .join("; ");
    let user = failed
        .iter()
        .map(|r| match &r.remediation {
            Some(fix) => fix.text.clone(),
            None => r.message.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    (admin, user)
}

/// The `sub_id` of a device's events in `format`.
pub fn subject(format: SubjectFormat, issuer: &str, device_id: &str, owner: &str) -> Value {
    let device = json!({ "format": "iss_sub", "iss": issuer, "sub": device_id });
    let user = json!({ "format": "email", "email": owner });
    match format {
        SubjectFormat::Complex => json!({ "format": "complex", "device": device, "user": user }),
        SubjectFormat::Opaque => json!({ "format": "opaque", "id": device_id }),
        SubjectFormat::Email => user,
        SubjectFormat::IssSub => device,
    }
}

/// The keys a subject given to add/remove subject is matched by: `device:ID` and
/// `email:ADDRESS` (an event is left out of a stream when any of its keys was removed).
pub fn subject_keys(subject: &Value, issuer: &str) -> Result<Vec<String>, String> {
    let field = |name: &str| {
        subject
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("subject without {name}"))
    };
    match subject.get("format").and_then(Value::as_str) {
        Some("email") => Ok(vec![format!("email:{}", field("email")?.to_lowercase())]),
        Some("opaque") => Ok(vec![format!("device:{}", field("id")?)]),
        Some("iss_sub") => {
            if field("iss")?.trim_end_matches('/') != issuer {
                return Err("iss_sub subjects must name this issuer".into());
            }
            Ok(vec![format!("device:{}", field("sub")?)])
        }
        Some("complex") => {
            let mut keys = Vec::new();
            for member in ["device", "user"] {
                if let Some(inner) = subject.get(member) {
                    keys.extend(subject_keys(inner, issuer)?);
                }
            }
            if keys.is_empty() {
                return Err("a complex subject needs a device or user member".into());
            }
            Ok(keys)
        }
        Some(other) => Err(format!("subject format {other:?} is not supported")),
        None => Err("subject without format".into()),
    }
}

/// The claims of a device-compliance-change SET for one stream.
pub fn compliance_claims(
    stream: &StreamConfig,
    transition: &Transition,
    txn: &str,
    now: i64,
) -> Value {
    json!({
        "iss": stream.iss,
        "jti": crate::secret::random_token(16),
        "iat": now,
        "aud": stream.aud,
        "txn": txn,
        "sub_id": subject(stream.subject_format, &stream.iss, &transition.device_id, &transition.owner),
        "events": {
            DEVICE_COMPLIANCE_CHANGE: {
                "previous_status": transition.previous,
                "current_status": transition.current,
                "event_timestamp": transition.at,
                "initiating_entity": transition.initiator,
                "reason_admin": { "en": transition.reason_admin },
                "reason_user": { "en": transition.reason_user },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_in_every_format_and_their_keys() {
        let iss = "https://p.example";
        let complex = subject(SubjectFormat::Complex, iss, "dev1", "a@example.com");
        assert_eq!(complex["device"]["sub"], "dev1");
        assert_eq!(complex["user"]["email"], "a@example.com");
        assert_eq!(
            subject_keys(&complex, iss).unwrap(),
            vec!["device:dev1", "email:a@example.com"]
        );
        let opaque = subject(SubjectFormat::Opaque, iss, "dev1", "a@example.com");
        assert_eq!(opaque, json!({"format": "opaque", "id": "dev1"}));
        let email = subject(SubjectFormat::Email, iss, "dev1", "A@example.com");
        assert_eq!(
            subject_keys(&email, iss).unwrap(),
            vec!["email:a@example.com"]
        );
        let iss_sub = subject(SubjectFormat::IssSub, iss, "dev1", "a@example.com");
        assert_eq!(subject_keys(&iss_sub, iss).unwrap(), vec!["device:dev1"]);
        assert!(subject_keys(&iss_sub, "https://other.example").is_err());
        assert!(subject_keys(&json!({"format": "phone_number"}), iss).is_err());
    }
}
