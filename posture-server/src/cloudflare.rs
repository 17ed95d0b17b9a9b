//! Cloudflare Zero Trust custom device posture integration (service-to-service).
//!
//! Cloudflare's WARP service calls `POST /v1/integrations/cloudflare/posture` through a
//! Cloudflare Access application, with `{"devices": [{"device_id", "email",
//! "serial_number", "mac_address", "virtual_ipv4", "hostname"}, ...]}` (at most 1,000
//! devices; only `device_id` is always present, other fields may be empty or missing),
//! and expects `{"result": {"<device_id>": {"s2s_id": "...", "score": 0..=100}}}` with
//! an entry for **every** device it sent; `s2s_id` is the empty string when no device
//! matched. This follows Cloudflare's published contract (the custom device posture
//! integration page and its example worker's `spec.yaml`).
//!
//! Every request must carry `Cf-Access-Jwt-Assertion`: an RS256 JWT issued by the team's
//! Access (`iss` = `https://TEAM_DOMAIN`) for the configured application (`aud` contains
//! its AUD tag), within `nbf`/`exp`, signed by one of the team's keys from
//! `https://TEAM_DOMAIN/cdn-cgi/access/certs` (fetched and cached here). A request
//! without it is 401, with an invalid one 403, and nothing about any device is answered.
//!
//! ## Mapping and scores
//! A Cloudflare device is matched to a posture device by the hardware serial number of
//! the posture device's latest report, else by host name (compared in lower case):
//! - serial: the posture devices whose serial equals Cloudflare's `serial_number`;
//! - host name, only when no device has that serial: the posture devices with that host
//!   name whose own serial is unknown or equal to Cloudflare's (a device with another
//!   serial is another machine with the same name).
//!
//! Exactly one candidate: `s2s_id` is its posture device id and the score is 100 when its
//! decision (as `GET /v1/devices/{id}/decision`) is allow, else 0 (non-compliant, stale,
//! disabled, no evidence yet). No candidate, or more than one (two devices share a host
//! name or a serial): `s2s_id` is `""` and the score 0 — an ambiguous match never lends
//! one device's score to another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use posture_core::jose::b64url_decode;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::{BigUint, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::config::CloudflareConfig;
use crate::domain::{decide, Server};
use crate::error::ApiError;

/// Most devices Cloudflare sends in one request (its documented maximum).
pub const MAX_DEVICES: usize = 1000;
/// Largest request body: 1,000 devices with every field filled.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest accepted identity field (ids, e-mail, serial, host name).
const MAX_FIELD_CHARS: usize = 512;
/// Longest accepted Access token.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: i64 = 60;
/// Cached keys are fetched again after this long (Cloudflare rotates them every few
/// weeks and publishes the next key in advance).
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// A token with a `kid` not in the cache fetches the keys again, at most this often (a
/// stream of unknown `kid`s must not turn into a stream of fetches).
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// Largest certs document accepted.
const MAX_CERTS_BYTES: usize = 256 * 1024;

/// One device of Cloudflare's request. Fields may be missing or empty; fields Cloudflare
/// adds later are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct CfDevice {
    /// WARP's device UUID (always present).
    pub device_id: String,
    /// The WARP user's e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Hardware serial number.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// MAC address.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// WARP virtual IPv4 address.
    #[serde(default)]
    pub virtual_ipv4: Option<String>,
    /// Host name.
    #[serde(default)]
    pub hostname: Option<String>,
}

/// Cloudflare's request body.
#[derive(Debug, Deserialize)]
pub struct PostureRequest {
    /// The devices to score (the example worker's test request spells it `Devices`).
    #[serde(alias = "Devices")]
    pub devices: Vec<CfDevice>,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The posture device id, or `""` when no single device matched.
    pub s2s_id: String,
    /// 100 compliant, 0 otherwise.
    pub score: u8,
}

/// The response body.
#[derive(Debug, Serialize)]
pub struct PostureResponse {
    /// Per Cloudflare `device_id`.
    pub result: HashMap<String, Evaluation>,
}

// ---------------------------------------------------------------------------------------
// Access tokens

/// Why an Access token was refused (the message says which check failed; never the
/// token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// No `Cf-Access-Jwt-Assertion` header.
    #[error("missing Cf-Access-Jwt-Assertion header")]
    Missing,
    /// Not a valid token for this application.
    #[error("invalid Cloudflare Access token: {0}")]
    Invalid(String),
    /// The team's keys could not be fetched.
    #[error("cannot fetch the Cloudflare Access signing keys: {0}")]
    Keys(String),
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Missing => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "access_token_missing",
                e.to_string(),
            ),
            AccessError::Invalid(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "access_token_invalid", e.to_string())
            }
            AccessError::Keys(ref why) => {
                tracing::error!(error = %why, "Cloudflare Access keys unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "access_keys_unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

#[derive(Debug, Default)]
struct CachedKeys {
    keys: HashMap<String, RsaPublicKey>,
    /// The last successful fetch.
    fetched: Option<Instant>,
    /// The last attempt, successful or not.
    attempted: Option<Instant>,
}

/// The team's Access signing keys, fetched on first use and cached.
#[derive(Debug)]
pub struct AccessKeys {
    config: CloudflareConfig,
    client: reqwest::Client,
    cache: tokio::sync::Mutex<CachedKeys>,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

impl AccessKeys {
    /// For this configuration (validated first).
    pub fn new(config: CloudflareConfig) -> Result<Self, String> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            config,
            client,
            cache: tokio::sync::Mutex::new(CachedKeys::default()),
        })
    }

    /// Checks an Access token: RS256 with a team key, issuer, audience, `exp`, `nbf`.
    pub async fn verify(&self, token: Option<&str>, now: i64) -> Result<(), AccessError> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let token = token.ok_or(AccessError::Missing)?;
        let invalid = |why: &str| AccessError::Invalid(why.to_owned());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too large"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a compact JWS"));
        };
        let header: Header = b64url_decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("unreadable header"))?;
        // Access signs with RS256 only; anything else (none, HS256 with a public key as
        // secret, ...) is refused before any key is looked at.
        if header.alg != "RS256" {
            return Err(invalid("alg must be RS256"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no kid"))?;
        let signature = b64url_decode(s).map_err(|_| invalid("unreadable signature"))?;
        let signature =
            Signature::try_from(signature.as_slice()).map_err(|_| invalid("bad signature"))?;
        let key = self
            .key(&kid)
            .await?
            .ok_or_else(|| invalid("unknown kid"))?;
        let signed = &token[..h.len() + 1 + c.len()];
        VerifyingKey::<Sha256>::new(key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| invalid("bad signature"))?;

        let claims: Claims = b64url_decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("unreadable claims"))?;
        if claims.iss.as_deref() != Some(self.config.issuer().as_str()) {
            return Err(invalid("wrong issuer"));
        }
        let audience = self.config.audience.as_str();
        let aud_ok = match &claims.aud {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(invalid("wrong audience"));
        }
        let exp = claims.exp.ok_or_else(|| invalid("no exp"))?;
        if now > exp.saturating_add(LEEWAY_SECS) {
            return Err(invalid("expired"));
        }
        if claims
            .nbf
            .is_some_and(|nbf| now < nbf.saturating_sub(LEEWAY_SECS))
        {
            return Err(invalid("not yet valid"));
        }
        Ok(())
    }

    /// The key with this `kid`, fetching the keys when the cache is old, or when the
    /// `kid` is unknown and the last fetch is not recent.
    async fn key(&self, kid: &str) -> Result<Option<RsaPublicKey>, AccessError> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched.map(|t| t.elapsed());
        // While Cloudflare cannot be reached, one attempt per REFETCH_AFTER, not one per
        // request (each may wait for the client's timeout).
        let may_try = cache.attempted.is_none_or(|t| t.elapsed() > REFETCH_AFTER);
        let expired = age.is_none_or(|a| a > KEYS_MAX_AGE);
        let unknown = !cache.keys.contains_key(kid);
        if may_try && (expired || unknown) {
            cache.attempted = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched = Some(Instant::now());
                }
                // Old keys stay usable while Cloudflare cannot be reached.
                Err(e) if cache.keys.is_empty() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "keeping the cached Access keys"),
            }
        }
        if cache.keys.is_empty() {
            return Err(AccessError::Keys(
                "the last fetch failed; trying again shortly".into(),
            ));
        }
        Ok(cache.keys.get(kid).cloned())
    }

    async fn fetch(&self) -> Result<HashMap<String, RsaPublicKey>, AccessError> {
        let keys_err = |e: String| AccessError::Keys(e);
        let url = self.config.certs_url();
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| keys_err(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(keys_err(format!("{url}: HTTP {}", response.status())));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_CERTS_BYTES as u64)
        {
            return Err(keys_err(format!("{url}: too large")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| keys_err(format!("{url}: {e}")))?;
        if body.len() > MAX_CERTS_BYTES {
            return Err(keys_err(format!("{url}: too large")));
        }
        parse_certs(&body).map_err(|e| keys_err(format!("{url}: {e}")))
    }
}

/// The RSA keys of an Access certs document (`{"keys": [JWK, ...], ...}`); other key
/// types are skipped.
pub fn parse_certs(body: &[u8]) -> Result<HashMap<String, RsaPublicKey>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    let jwks: Jwks = serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty") != Some("RSA") || field("alg").is_some_and(|a| a != "RS256") {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (field("kid"), field("n"), field("e")) else {
            continue;
        };
        let n = b64url_decode(n).map_err(|_| format!("key {kid}: bad n"))?;
        let e = b64url_decode(e).map_err(|_| format!("key {kid}: bad e"))?;
        // RsaPublicKey::new refuses moduli above 4096 bits and tiny exponents.
        let key = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
            .map_err(|e| format!("key {kid}: {e}"))?;
        if key_bits(&key) < 2048 {
            return Err(format!("key {kid}: smaller than 2048 bits"));
        }
        keys.insert(kid.to_owned(), key);
    }
    if keys.is_empty() {
        return Err("no RS256 keys".into());
    }
    Ok(keys)
}

fn key_bits(key: &RsaPublicKey) -> usize {
    use rsa::traits::PublicKeyParts as _;
    key.n().bits()
}

// ---------------------------------------------------------------------------------------
// Scores

fn field(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Checks the request's shape: 1 to [`MAX_DEVICES`] devices, each with a `device_id`,
/// no field longer than 512 characters.
pub fn check_request(request: &PostureRequest) -> Result<(), ApiError> {
    if request.devices.len() > MAX_DEVICES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_devices",
            format!(
                "{} devices in one request; at most {MAX_DEVICES}",
                request.devices.len()
            ),
        ));
    }
    for device in &request.devices {
        if device.device_id.trim().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_device",
                "every device needs a device_id",
            ));
        }
        let fields = [
            Some(&device.device_id),
            device.email.as_ref(),
            device.serial_number.as_ref(),
            device.mac_address.as_ref(),
            device.virtual_ipv4.as_ref(),
            device.hostname.as_ref(),
        ];
        if fields
            .iter()
            .flatten()
            .any(|f| f.chars().count() > MAX_FIELD_CHARS)
        {
            return Err(ApiError::bad_request(
                "invalid_device",
                format!(
                    "a field of device {:?} is longer than {MAX_FIELD_CHARS} characters",
                    device.device_id.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// Scores every device of the request (see the module documentation).
pub async fn scores(server: &Server, devices: &[CfDevice]) -> Result<PostureResponse, ApiError> {
    let mut serials: Vec<String> = devices
        .iter()
        .filter_map(|d| field(&d.serial_number))
        .map(str::to_owned)
        .collect();
    let mut hosts: Vec<String> = devices
        .iter()
        .filter_map(|d| field(&d.hostname))
        .map(str::to_ascii_lowercase)
        .collect();
    serials.sort();
    serials.dedup();
    hosts.sort();
    hosts.dedup();
    let found = server.store.devices_by_identity(&serials, &hosts).await?;
    let now = crate::now();
    let mut result = HashMap::new();
    for cf in devices {
        let serial = field(&cf.serial_number);
        let by_serial: Vec<_> = match serial {
            Some(s) => found
                .iter()
                .filter(|d| d.serial_number.as_deref() == Some(s))
                .collect(),
            None => Vec::new(),
        };
        let candidates = if !by_serial.is_empty() {
            by_serial
        } else {
            match field(&cf.hostname).map(str::to_ascii_lowercase) {
                Some(host) => found
                    .iter()
                    .filter(|d| {
                        d.device
                            .host
                            .as_deref()
                            .is_some_and(|h| h.to_ascii_lowercase() == host)
                    })
                    .filter(|d| match (serial, d.serial_number.as_deref()) {
                        (Some(theirs), Some(ours)) => theirs == ours,
                        _ => true,
                    })
                    .collect(),
                None => Vec::new(),
            }
        };
        let evaluation = match candidates.as_slice() {
            [one] => Evaluation {
                s2s_id: one.device.id.clone(),
                score: if decide(server, &one.device, now).decision == "allow" {
                    100
                } else {
                    0
                },
            },
            // None, or ambiguous: never another device's score.
            _ => Evaluation {
                s2s_id: String::new(),
                score: 0,
            },
        };
        result.insert(cf.device_id.clone(), evaluation);
    }
    Ok(PostureResponse { result })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_without_rsa_keys_are_refused() {
        assert!(parse_certs(br#"{"keys":[]}"#).is_err());
        assert!(parse_certs(br#"{"keys":[{"kty":"EC","kid":"a"}]}"#).is_err());
        assert!(parse_certs(b"not json").is_err());
    }

    #[test]
    fn too_many_devices_is_a_clear_4xx() {
        let devices = (0..=MAX_DEVICES)
            .map(|i| CfDevice {
                device_id: format!("d{i}"),
                email: None,
                serial_number: None,
                mac_address: None,
                virtual_ipv4: None,
                hostname: None,
            })
            .collect();
        let err = check_request(&PostureRequest { devices }).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.code, "too_many_devices");
    }
}
