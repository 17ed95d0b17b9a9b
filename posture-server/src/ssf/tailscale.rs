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
//! stops vouching for its devices. The API token (or an OAuth client's secret, exchanged
//! at `/api/v2/oauth/token` for short-lived tokens) is read from an owner-only file and is
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

/// How the adapter authenticates.
enum Auth {
    /// An API access token.
    Token(Zeroizing<String>),
    /// An OAuth client, exchanged for short-lived access tokens (cached until a minute
    /// before they expire).
    OAuth {
        id: String,
        secret: Zeroizing<String>,
        cached: tokio::sync::Mutex<Option<(Zeroizing<String>, i64)>>,
    },
}

/// The configured adapter.
pub struct Tailscale {
    api_url: String,
    tailnet: String,
    auth: Auth,
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

/// A secret from an owner-only file.
fn read_secret(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    if let Some(problem) =
        posture_core::files::private_problem(path, posture_core::files::PrivateKind::File)
            .with_context(|| format!("cannot read {}", path.display()))?
    {
        anyhow::bail!(
            "{}: {problem} (a Tailscale secret must be private)",
            path.display()
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let secret = Zeroizing::new(text.trim().to_owned());
    if secret.is_empty() || secret.contains(char::is_whitespace) {
        anyhow::bail!("{}: not a Tailscale key", path.display());
    }
    Ok(secret)
}

impl Tailscale {
    /// Reads the API token or the OAuth client secret (from owner-only files).
    pub fn new(config: &TailscaleConfig, http: reqwest::Client) -> anyhow::Result<Self> {
        let auth = match (
            &config.api_key_file,
            &config.oauth_client_id,
            &config.oauth_client_secret_file,
        ) {
            (Some(path), None, None) => Auth::Token(read_secret(path)?),
            (None, Some(id), Some(path)) => Auth::OAuth {
                id: id.clone(),
                secret: read_secret(path)?,
                cached: tokio::sync::Mutex::new(None),
            },
            _ => anyhow::bail!(
                "[tailscale] needs api_key_file, or oauth_client_id with oauth_client_secret_file"
            ),
        };
        Ok(Self {
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            tailnet: config.tailnet.clone(),
            auth,
            device_attribute: config.device_attribute.clone(),
            expiry: config.expiry,
            http,
        })
    }

    /// The bearer token for the next request.
    async fn bearer(&self) -> Result<Zeroizing<String>, String> {
        let (id, secret, cached) = match &self.auth {
            Auth::Token(token) => return Ok(token.clone()),
            Auth::OAuth { id, secret, cached } => (id, secret, cached),
        };
        let mut cached = cached.lock().await;
        let now = crate::now();
        if let Some((token, until)) = cached.as_ref() {
            if *until > now + 60 {
                return Ok(token.clone());
            }
        }
        let form = Zeroizing::new(format!(
            "client_id={}&client_secret={}",
            urlencode(id),
            urlencode(secret)
        ));
        let response = self
            .http
            .post(format!("{}/api/v2/oauth/token", self.api_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("OAuth token: HTTP {}", response.status().as_u16()));
        }
        let bytes = Zeroizing::new(
            response
                .bytes()
                .await
                .map_err(|e| e.without_url().to_string())?
                .to_vec(),
        );
        let answer: Value =
            serde_json::from_slice(&bytes).map_err(|_| "OAuth token: invalid JSON".to_owned())?;
        let token = Zeroizing::new(
            answer
                .get("access_token")
                .and_then(Value::as_str)
                .ok_or("OAuth token: no access_token")?
                .to_owned(),
        );
        let expires_in = answer
            .get("expires_in")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        *cached = Some((token.clone(), now + expires_in));
        Ok(token)
    }

    async fn get(&self, path: &str) -> Result<reqwest::RequestBuilder, String> {
        Ok(self
            .http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(self.bearer().await?.as_str()))
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
            .json(
                self.get(&format!(
                    "/api/v2/tailnet/{}/devices",
                    urlencode(&self.tailnet)
                ))
                .await?,
            )
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
                        .json(
                            self.get(&format!("/api/v2/device/{}/attributes", urlencode(&id)))
                                .await?,
                        )
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
            .bearer_auth(self.bearer().await?.as_str())
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
