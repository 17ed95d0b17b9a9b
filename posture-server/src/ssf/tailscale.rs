//! The Tailscale adapter: on each compliance transition (the same durable transitions as
//! the SSF events, queued in `tailscale_queue`) it sets two custom device posture
//! attributes on the matching tailnet device, with an expiry:
//! `custom:posture_compliant` (boolean) and `custom:posture_assurance` (`tpm`,
//! `tpm-unverified` or `software`), through
//! `POST /api/v2/device/{deviceId}/attributes/{attributeKey}` with
//! `{"value": ..., "expiry": RFC 3339}`. Devices are found in
//! `GET /api/v2/tailnet/{tailnet}/devices` by host name, or by a configured custom
//! attribute holding the posture device id (`GET /api/v2/device/{id}/attributes`).
//! Compliant devices are refreshed at half the expiry, so a server that stops running
//! stops vouching for its devices. The API token is read from an owner-only file and is
//! never logged.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::db::{self, TailscaleDue};
use super::deliver::backoff;
use super::Transmitter;
use crate::config::TailscaleConfig;
use crate::domain::{rfc3339, Server};

/// The attribute saying whether the device is compliant.
pub const COMPLIANT: &str = "custom:posture_compliant";
/// The attribute saying how the device key was proven.
pub const ASSURANCE: &str = "custom:posture_assurance";
/// How long a leased update is this replica's.
const LEASE: i64 = 120;
/// Updates not done within this time are dropped (a newer one or a refresh follows).
const GIVE_UP: i64 = 24 * 3600;

/// The configured adapter.
pub struct Tailscale {
    api_url: String,
    tailnet: String,
    token: Zeroizing<String>,
    device_attribute: Option<String>,
    /// How long attributes hold.
    pub expiry: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for Tailscale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Tailscale")
            .field("api_url", &self.api_url)
            .field("tailnet", &self.tailnet)
            .finish_non_exhaustive()
    }
}

impl Tailscale {
    /// Reads the API token (from an owner-only file).
    pub fn new(config: &TailscaleConfig, http: reqwest::Client) -> anyhow::Result<Self> {
        let path = &config.api_key_file;
        if let Some(problem) =
            posture_core::files::private_problem(path, posture_core::files::PrivateKind::File)
                .with_context(|| format!("cannot read {}", path.display()))?
        {
            anyhow::bail!(
                "{}: {problem} (the Tailscale API key must be private)",
                path.display()
            );
        }
        let token = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .trim()
                .to_owned(),
        );
        if token.is_empty() || token.contains(char::is_whitespace) {
            anyhow::bail!("{}: not an API access token", path.display());
        }
        Ok(Self {
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            tailnet: config.tailnet.clone(),
            token,
            device_attribute: config.device_attribute.clone(),
            expiry: config.expiry,
            http,
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(self.token.as_str())
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))
    }

    /// The tailnet device for a posture device, if there is one.
    async fn find(&self, device_id: &str, host: Option<&str>) -> Result<Option<String>, String> {
        let list = self
            .json(self.get(&format!(
                "/api/v2/tailnet/{}/devices",
                urlencode(&self.tailnet)
            )))
            .await?;
        let devices = list
            .get("devices")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let id_of = |d: &Value| {
            d.get("nodeId")
                .or_else(|| d.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match &self.device_attribute {
            Some(attribute) => {
                for device in &devices {
                    let Some(id) = id_of(device) else { continue };
                    let attributes = self
                        .json(self.get(&format!("/api/v2/device/{}/attributes", urlencode(&id))))
                        .await?;
                    if attributes
                        .get("attributes")
                        .and_then(|a| a.get(attribute))
                        .and_then(Value::as_str)
                        == Some(device_id)
                    {
                        return Ok(Some(id));
                    }
                }
                Ok(None)
            }
            None => {
                let Some(host) = host.map(str::to_lowercase) else {
                    return Ok(None);
                };
                // `hostname` is the machine's own name; `name` is the MagicDNS name
                // (`host.tailnet.ts.net`), whose first label is the tailnet's name for it.
                let matches = |d: &&Value| {
                    d.get("hostname")
                        .and_then(Value::as_str)
                        .map(str::to_lowercase)
                        == Some(host.clone())
                        || d.get("name")
                            .and_then(Value::as_str)
                            .and_then(|n| n.split('.').next())
                            .map(str::to_lowercase)
                            == Some(host.clone())
                };
                let found: Vec<&Value> = devices.iter().filter(matches).collect();
                match found.as_slice() {
                    [one] => Ok(id_of(one)),
                    [] => Ok(None),
                    _ => Err(format!("{} tailnet devices are named {host}", found.len())),
                }
            }
        }
    }

    async fn set(&self, node: &str, key: &str, value: Value, expiry: &str) -> Result<(), String> {
        let response = self
            .http
            .post(format!(
                "{}/api/v2/device/{}/attributes/{}",
                self.api_url,
                urlencode(node),
                urlencode(key)
            ))
            .bearer_auth(self.token.as_str())
            .header("content-type", "application/json")
            .body(json!({ "value": value, "expiry": expiry }).to_string())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("{key}: HTTP {}", response.status().as_u16()))
        }
    }

    /// Sends one update: `Ok(false)` when no tailnet device matches.
    async fn send(&self, update: &TailscaleDue, now: i64) -> Result<bool, String> {
        let Some(node) = self.find(&update.device_id, update.host.as_deref()).await? else {
            return Ok(false);
        };
        let expiry = rfc3339(now + self.expiry.as_secs() as i64);
        self.set(&node, COMPLIANT, json!(update.compliant), &expiry)
            .await?;
        self.set(&node, ASSURANCE, json!(update.assurance), &expiry)
            .await?;
        Ok(true)
    }
}

/// Percent-encodes a path segment (`:` of attribute keys stays: it is allowed there).
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The Tailscale worker of this replica.
pub async fn queue_loop(server: Arc<Server>, transmitter: Arc<Transmitter>) {
    let Some(tailscale) = &transmitter.tailscale else {
        return;
    };
    loop {
        let now = crate::now();
        match db::take_tailscale(server.store.pool(), now, LEASE).await {
            Ok(due) => {
                for update in due {
                    let pool = server.store.pool();
                    let result = match tailscale.send(&update, now).await {
                        Ok(true) => db::tailscale_done(pool, update.id).await,
                        Ok(false) => {
                            tracing::info!(device = %update.device_id,
                                "Tailscale: no tailnet device matches; nothing set");
                            db::tailscale_done(pool, update.id).await
                        }
                        Err(error) if now - update.created_at > GIVE_UP => {
                            tracing::warn!(device = %update.device_id, %error,
                                "Tailscale: update dropped after a day of failures");
                            db::tailscale_done(pool, update.id).await
                        }
                        Err(error) => {
                            tracing::info!(device = %update.device_id, %error,
                                "Tailscale update failed; retrying");
                            db::tailscale_retry(
                                pool,
                                update.id,
                                now + backoff(update.attempts),
                                &error,
                            )
                            .await
                        }
                    };
                    if let Err(e) = result {
                        tracing::warn!(error = %e, lease_until = update.next_attempt,
                            "Tailscale: cannot record the outcome");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Tailscale: cannot read the queue"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), transmitter.events.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::urlencode;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            urlencode("custom:posture_compliant"),
            "custom:posture_compliant"
        );
        assert_eq!(urlencode("a/b c"), "a%2Fb%20c");
    }
}
