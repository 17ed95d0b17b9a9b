//! The transmitter's HTTP endpoints: discovery, JWKS, stream management (SSF 1.0
//! section 8), and the RFC 8936 poll endpoint. Stream management needs an admin API token
//! (a stream makes this server send data to a URL); reading a stream, its status, and
//! polling need a reader token (what an IdP holds).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    db, Alg, Delivery, StreamConfig, SubjectFormat, Transmitter, DEVICE_COMPLIANCE_CHANGE,
    MIN_VERIFICATION_INTERVAL, POLL, PUSH, VERIFICATION,
};
use crate::domain::Server;
use crate::error::ApiError;
use crate::store::Role;
use crate::v1::{authorize, read_body};

type Shared = State<Arc<Server>>;

/// Largest management or poll request body.
const MAX_BODY: usize = 64 * 1024;
/// Most SETs one poll answer carries.
const MAX_EVENTS: i64 = 1000;
/// How long a poll without `returnImmediately` waits for an event.
const LONG_POLL: Duration = Duration::from_secs(25);

/// The transmitter and its issuer, or 404 when SSF is off (no https issuer).
fn transmitter(server: &Server) -> Result<(&Transmitter, String), ApiError> {
    let transmitter = server.ssf.as_deref().ok_or_else(ssf_off)?;
    let issuer = transmitter.issuer.clone().ok_or_else(ssf_off)?;
    Ok((transmitter, issuer))
}

/// The signing keys (present whenever there is an issuer).
fn keys(transmitter: &Transmitter) -> Result<&super::SigningKeys, ApiError> {
    transmitter.keys.as_ref().ok_or_else(ssf_off)
}

fn ssf_off() -> ApiError {
    ApiError::not_found(
        "ssf_off",
        "the Shared Signals transmitter is off: set an https public_url or [ssf] issuer",
    )
}

/// `GET /.well-known/ssf-configuration`: Transmitter Configuration Metadata.
pub async fn configuration(State(server): Shared) -> Result<Response, ApiError> {
    let (_, issuer) = transmitter(&server)?;
    Ok(Json(json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/ssf/jwks"),
        "delivery_methods_supported": [PUSH, POLL],
        "configuration_endpoint": format!("{issuer}/ssf/streams"),
        "status_endpoint": format!("{issuer}/ssf/status"),
        "add_subject_endpoint": format!("{issuer}/ssf/subjects/add"),
        "remove_subject_endpoint": format!("{issuer}/ssf/subjects/remove"),
        "verification_endpoint": format!("{issuer}/ssf/verify"),
        // posture-server's API tokens are static bearer tokens (RFC 6750).
        "authorization_schemes": [{ "spec_urn": "urn:ietf:rfc:6750" }],
        "default_subjects": "ALL",
    }))
    .into_response())
}

/// `GET /ssf/jwks`: the public SET signing keys.
pub async fn jwks(State(server): Shared) -> Result<Response, ApiError> {
    let (transmitter, _) = transmitter(&server)?;
    Ok(Json(keys(transmitter)?.jwks()).into_response())
}

async fn read_json(body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body, MAX_BODY).await?;
    if bytes.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("bad_json", format!("invalid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "bad_json",
            "a JSON object is required",
        ));
    }
    Ok(value)
}

fn field<T: serde::de::DeserializeOwned>(body: &Value, name: &str) -> Result<Option<T>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| ApiError::bad_request("bad_stream", format!("{name}: {e}"))),
    }
}

fn no_stream() -> ApiError {
    ApiError::not_found("no_stream", "no such stream")
}

fn stream_id(body: &Value) -> Result<String, ApiError> {
    field::<String>(body, "stream_id")?
        .ok_or_else(|| ApiError::bad_request("bad_stream", "stream_id is required"))
}

/// Whether a push endpoint may be used: https, or http on loopback (a receiver on the
/// same machine).
fn check_push_url(url: &str) -> Result<(), ApiError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ApiError::bad_request("bad_stream", format!("endpoint_url: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(ApiError::bad_request(
            "bad_stream",
            "endpoint_url must be https (http only on loopback)",
        )),
    }
}

/// The receiver-supplied part of a stream from a create/replace (`base` = defaults) or
/// update (`base` = the current stream) request.
fn apply(mut config: StreamConfig, body: &Value, issuer: &str) -> Result<StreamConfig, ApiError> {
    // Transmitter-supplied values may be present but must be what they are.
    for (name, current) in [
        ("iss", json!(config.iss)),
        ("events_supported", json!(config.events_supported)),
        ("events_delivered", json!(config.events_delivered)),
        ("stream_id", json!(config.stream_id)),
        ("aud", json!(config.aud)),
    ] {
        if let Some(given) = body.get(name) {
            if *given != current {
                return Err(ApiError::bad_request(
                    "bad_stream",
                    format!("{name} is set by the transmitter and cannot be changed"),
                ));
            }
        }
    }
    if let Some(requested) = field::<Vec<String>>(body, "events_requested")? {
        config.events_requested = Some(requested);
    }
    if let Some(description) = field::<String>(body, "description")? {
        config.description = Some(description.chars().take(256).collect());
    }
    if let Some(format) = field::<SubjectFormat>(body, "subject_format")? {
        config.subject_format = format;
    }
    if let Some(alg) = field::<Alg>(body, "signing_alg")? {
        config.signing_alg = alg;
    }
    if let Some(delivery) = field::<Delivery>(body, "delivery")? {
        config.delivery = delivery;
    }
    match config.delivery.method.as_str() {
        PUSH => {
            let url = config.delivery.endpoint_url.as_deref().ok_or_else(|| {
                ApiError::bad_request("bad_stream", "push delivery needs endpoint_url")
            })?;
            check_push_url(url)?;
        }
        POLL => {
            config.delivery.endpoint_url = Some(format!("{issuer}/ssf/poll/{}", config.stream_id));
            config.delivery.authorization_header = None;
        }
        other => {
            return Err(ApiError::bad_request(
                "bad_stream",
                format!("delivery method {other:?} is not supported (use {PUSH} or {POLL})"),
            ))
        }
    }
    config.events_delivered = match &config.events_requested {
        Some(requested) => config
            .events_supported
            .iter()
            .filter(|e| requested.contains(e))
            .cloned()
            .collect(),
        None => config.events_supported.clone(),
    };
    Ok(config)
}

fn defaults(id: &str, issuer: &str, aud: String) -> StreamConfig {
    StreamConfig {
        stream_id: id.to_owned(),
        iss: issuer.to_owned(),
        aud,
        events_supported: vec![DEVICE_COMPLIANCE_CHANGE.to_owned()],
        events_requested: None,
        events_delivered: Vec::new(),
        // No delivery: poll (SSF 1.0, "Creating a Stream").
        delivery: Delivery {
            method: POLL.to_owned(),
            endpoint_url: None,
            authorization_header: None,
        },
        min_verification_interval: MIN_VERIFICATION_INTERVAL,
        description: None,
        subject_format: SubjectFormat::Complex,
        signing_alg: Alg::ES256,
    }
}

/// `POST /ssf/streams`: creates a stream (201).
pub async fn create_stream(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    let (transmitter, issuer) = transmitter(&server)?;
    let body = read_json(body).await?;
    let id = crate::secret::random_token(16);
    // `aud` is transmitter-supplied; the admin creating the stream chooses it (e.g. the
    // receiver's tenant URL), else it names the stream.
    let aud = field::<String>(&body, "aud")?
        .unwrap_or_else(|| format!("urn:posture-server:ssf-stream:{id}"));
    let mut request = body.clone();
    if let Some(object) = request.as_object_mut() {
        object.remove("aud");
    }
    let config = apply(defaults(&id, &issuer, aud), &request, &issuer)?;
    db::insert_stream(server.store.pool(), &config, crate::now()).await?;
    tracing::info!(stream = %id, method = %config.delivery.method, "SSF stream created");
    transmitter.pump_now.notify_one();
    Ok((StatusCode::CREATED, Json(config.public())).into_response())
}

/// `stream_id` in a query.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// The stream.
    pub stream_id: Option<String>,
}

impl StreamQuery {
    /// The stream id, where the endpoint needs one.
    fn required(self) -> Result<String, ApiError> {
        self.stream_id
            .ok_or_else(|| ApiError::bad_request("bad_stream", "stream_id is required"))
    }
}

/// `GET /ssf/streams[?stream_id=]`: one stream, or the list.
pub async fn read_stream(
    State(server): Shared,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    authorize(&server, &headers, Role::Reader).await?;
    transmitter(&server)?;
    match query.stream_id {
        Some(id) => {
            let stream = db::stream(server.store.pool(), &id)
                .await?
                .ok_or_else(no_stream)?;
            Ok(Json(stream.config.public()).into_response())
        }
        None => {
            let streams = db::streams(server.store.pool()).await?;
            let list: Vec<Value> = streams.iter().map(|s| s.config.public()).collect();
            Ok(Json(list).into_response())
        }
    }
}

/// `PATCH /ssf/streams`: changes the receiver-supplied values given.
pub async fn update_stream(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    change_stream(&server, &headers, body, false).await
}

/// `PUT /ssf/streams`: replaces every receiver-supplied value.
pub async fn replace_stream(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    change_stream(&server, &headers, body, true).await
}

async fn change_stream(
    server: &Server,
    headers: &HeaderMap,
    body: Body,
    replace: bool,
) -> Result<Response, ApiError> {
    authorize(server, headers, Role::Admin).await?;
    let (_, issuer) = transmitter(server)?;
    let body = read_json(body).await?;
    let id = stream_id(&body)?;
    let current = db::stream(server.store.pool(), &id)
        .await?
        .ok_or_else(no_stream)?
        .config;
    let base = if replace {
        // Missing receiver-supplied values go back to their defaults.
        let mut base = defaults(&id, &issuer, current.aud.clone());
        base.events_delivered = current.events_delivered.clone();
        base
    } else {
        current
    };
    let config = apply(base, &body, &issuer)?;
    if !db::update_stream(server.store.pool(), &config).await? {
        return Err(no_stream());
    }
    Ok(Json(config.public()).into_response())
}

/// `DELETE /ssf/streams?stream_id=`.
pub async fn delete_stream(
    State(server): Shared,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    transmitter(&server)?;
    let id = query.required()?;
    if db::delete_stream(server.store.pool(), &id).await? {
        tracing::info!(stream = %id, "SSF stream deleted");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_stream())
    }
}

/// `GET /ssf/status?stream_id=`.
pub async fn read_status(
    State(server): Shared,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    authorize(&server, &headers, Role::Reader).await?;
    transmitter(&server)?;
    let id = query.required()?;
    let stream = db::stream(server.store.pool(), &id)
        .await?
        .ok_or_else(no_stream)?;
    Ok(Json(status_body(&id, &stream.status, stream.reason.as_deref())).into_response())
}

fn status_body(id: &str, status: &str, reason: Option<&str>) -> Value {
    let mut body = json!({ "stream_id": id, "status": status });
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    body
}

/// `POST /ssf/status`: `enabled`, `paused` (events held) or `disabled` (events dropped).
pub async fn update_status(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    let (transmitter, _) = transmitter(&server)?;
    let body = read_json(body).await?;
    let id = stream_id(&body)?;
    let status = field::<String>(&body, "status")?.unwrap_or_default();
    if !matches!(status.as_str(), "enabled" | "paused" | "disabled") {
        return Err(ApiError::bad_request(
            "bad_status",
            "status must be enabled, paused or disabled",
        ));
    }
    let reason = field::<String>(&body, "reason")?;
    if !db::set_status(server.store.pool(), &id, &status, reason.as_deref()).await? {
        return Err(no_stream());
    }
    transmitter.events.notify_waiters();
    Ok(Json(status_body(&id, &status, reason.as_deref())).into_response())
}

/// `POST /ssf/subjects/add`: events about this subject are sent again (200).
pub async fn add_subject(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    subjects(&server, &headers, body, false).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /ssf/subjects/remove`: events about this subject are no longer sent (204).
pub async fn remove_subject(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    subjects(&server, &headers, body, true).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn subjects(
    server: &Server,
    headers: &HeaderMap,
    body: Body,
    remove: bool,
) -> Result<(), ApiError> {
    authorize(server, headers, Role::Admin).await?;
    let (_, issuer) = transmitter(server)?;
    let body = read_json(body).await?;
    let id = stream_id(&body)?;
    let subject = body
        .get("subject")
        .ok_or_else(|| ApiError::bad_request("bad_subject", "subject is required"))?;
    let keys = super::subject_keys(subject, &issuer)
        .map_err(|m| ApiError::bad_request("bad_subject", m))?;
    db::stream(server.store.pool(), &id)
        .await?
        .ok_or_else(no_stream)?;
    db::set_excluded(server.store.pool(), &id, &keys, remove).await?;
    Ok(())
}

/// `POST /ssf/verify`: queues a verification event (204; 429 when asked too often).
pub async fn verify(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&server, &headers, Role::Reader).await?;
    let (transmitter, _) = transmitter(&server)?;
    let body = read_json(body).await?;
    let id = stream_id(&body)?;
    let stream = db::stream(server.store.pool(), &id)
        .await?
        .ok_or_else(no_stream)?;
    if stream.status == "disabled" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stream_disabled",
            "the stream is disabled",
        ));
    }
    let mut event = json!({});
    if let Some(state) = field::<String>(&body, "state")? {
        event["state"] = json!(state);
    }
    let now = crate::now();
    let jti = crate::secret::random_token(16);
    let claims = json!({
        "iss": stream.config.iss,
        "jti": jti,
        "iat": now,
        "aud": stream.config.aud,
        "sub_id": { "format": "opaque", "id": id },
        "events": { VERIFICATION: event },
    });
    let set_jwt = keys(transmitter)?.sign(stream.config.signing_alg, &claims);
    let queued = db::queue_verification(
        server.store.pool(),
        &id,
        &jti,
        &set_jwt,
        now,
        stream.config.min_verification_interval,
    )
    .await?;
    if !queued {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_verifications",
            format!(
                "at most one verification every {} s",
                stream.config.min_verification_interval
            ),
        ));
    }
    transmitter.events.notify_waiters();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /ssf/poll/{stream_id}` (RFC 8936): acknowledges `ack` and `setErrs`, answers
/// `{"sets": {jti: SET}, "moreAvailable": bool}`; SETs not acknowledged come again.
pub async fn poll(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&server, &headers, Role::Reader).await?;
    let (transmitter, _) = transmitter(&server)?;
    let body = read_json(body).await?;
    let mut acked = field::<Vec<String>>(&body, "ack")?.unwrap_or_default();
    if let Some(errors) = field::<Map<String, Value>>(&body, "setErrs")? {
        for (jti, error) in errors {
            tracing::warn!(stream = %id, %jti, error = %error, "SSF poll: the receiver refused a SET");
            acked.push(jti);
        }
    }
    let max = field::<i64>(&body, "maxEvents")?
        .unwrap_or(100)
        .clamp(0, MAX_EVENTS);
    let immediately = field::<bool>(&body, "returnImmediately")?.unwrap_or(false);
    let stream = db::stream(server.store.pool(), &id)
        .await?
        .ok_or_else(no_stream)?;
    if stream.config.delivery.method != POLL {
        return Err(ApiError::bad_request(
            "not_poll",
            "this stream is delivered by push",
        ));
    }
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    let mut first = true;
    loop {
        let ack: &[String] = if first { &acked } else { &[] };
        first = false;
        let (sets, more) = if stream.status == "enabled" {
            db::poll(server.store.pool(), &id, ack, max).await?
        } else {
            // Paused: events are held, not handed out; acknowledgements still count.
            db::poll(server.store.pool(), &id, ack, 0).await?;
            (Vec::new(), false)
        };
        let waiting = max > 0 && stream.status == "enabled";
        if !sets.is_empty() || immediately || !waiting || tokio::time::Instant::now() >= deadline {
            let sets: Map<String, Value> = sets
                .into_iter()
                .map(|(jti, set)| (jti, Value::String(set)))
                .collect();
            return Ok(Json(json!({ "sets": sets, "moreAvailable": more })).into_response());
        }
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
            transmitter.events.notified(),
        )
        .await;
    }
}
