//! Thin JSON handlers of `/v1`: parse, call [`crate::domain`], map the outcome.
//!
//! | method and path | who | what |
//! | --- | --- | --- |
//! | `GET /v1/health` | anyone | 200 when the database answers, else 503 |
//! | `GET /v1/challenge` | devices | a single-use nonce and the audience for evidence |
//! | `POST /v1/evidence` | devices | compact JWS bound to a nonce |
//! | `POST /v1/enroll/tpm/begin` | devices | `{token, request}` → `{enrollment_id, challenge}` |
//! | `POST /v1/enroll/tpm/finish` | devices | `{enrollment_id, response}` → the enrolled device |
//! | `POST /v1/enroll/software` | devices | `{token, jwk, proof}` → the enrolled device |
//! | `GET /v1/attestation-ca/root.pem`, `/intermediate.pem` | anyone | the attestation CA's certificates (relying parties trust the root) |
//! | `GET /v1/device-ca.pem` | anyone | the device CA's certificate (proxies trust it for client certificates) |
//! | `POST /v1/device-certificate` | devices | `{device_id, csr}` → a short-lived client certificate, while compliant |
//! | `GET /v1/authz` (any method, any subpath) | trusted proxies | forward auth: 200 / 401 / 403 from the forwarded client certificate |
//! | `POST /v1/integrations/cloudflare/posture` | Cloudflare (Access token) | scores of Cloudflare's devices ([`crate::cloudflare`]) |
//! | `GET /v1/devices` | reader | every device |
//! | `GET /v1/devices/{id}` | reader | one device: findings, history, changes |
//! | `GET /v1/devices/{id}/decision` | reader | allow/deny with reasons |
//! | `POST /v1/admin/enrollment-tokens` | admin | `{owner, ttl?}` → a token (shown once) |
//! | `GET /v1/admin/enrollment-tokens` | admin | every token (never the secret) |
//! | `POST /v1/admin/api-tokens` | admin | `{name, role}` → a token (shown once) |
//! | `POST /v1/admin/login-links` | admin | a one-time dashboard login link |
//! | `POST /v1/admin/devices/{id}/disable` and `/enable` | admin | |
//! | `DELETE /v1/admin/devices/{id}` | admin | the device and its history |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use posture_core::attestation::{EnrollmentRequest, EnrollmentResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::domain::{self, Server};
use crate::error::ApiError;
use crate::store::{CredentialKind, Role};

/// The client's address, set per connection by [`crate::serve`].
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Reads a body of at most `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    })
}

async fn read_json<T: DeserializeOwned>(server: &Server, body: Body) -> Result<T, ApiError> {
    let bytes = read_body(body, server.config.limits.max_body_bytes).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request: {e}")))
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Checks the bearer token: `need` Reader accepts reader and admin tokens.
pub async fn authorize(server: &Server, headers: &HeaderMap, need: Role) -> Result<Role, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let hash = crate::secret::hash(token);
    let role = match server.credentials.get(&hash) {
        Some(role) => role,
        None => {
            let role = server
                .store
                .credential_role(&hash, CredentialKind::Api, crate::now())
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            // API tokens do not expire (see crate::cache).
            server.credentials.insert(&hash, role, None);
            role
        }
    };
    if need == Role::Admin && role != Role::Admin {
        return Err(ApiError::forbidden(
            "forbidden",
            "this needs an admin token",
        ));
    }
    Ok(role)
}

fn limit_client(server: &Server, peer: Option<Extension<Peer>>) -> Result<(), ApiError> {
    let key = peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(Peer(a))| a.ip().to_string(),
    );
    if server.client_limiter.allow(&key) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this address",
        ))
    }
}

type Shared = State<Arc<Server>>;

/// `GET /v1/health`.
pub async fn health(State(server): Shared) -> Response {
    match server.store.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok", "database": server.store.backend() }))
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /v1/challenge`.
pub async fn challenge(
    State(server): Shared,
    peer: Option<Extension<Peer>>,
) -> Result<impl IntoResponse, ApiError> {
    limit_client(&server, peer)?;
    let challenge = domain::challenge(&server);
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(challenge),
    ))
}

/// `POST /v1/evidence`.
pub async fn evidence(State(server): Shared, body: Body) -> Result<impl IntoResponse, ApiError> {
    let limit = posture_core::evidence::MAX_EVIDENCE_BYTES + 1024;
    let bytes = read_body(body, limit).await?;
    let accepted = domain::ingest(&server, &bytes).await?;
    Ok((StatusCode::CREATED, Json(accepted)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TpmBegin {
    token: String,
    request: EnrollmentRequest,
}

/// `POST /v1/enroll/tpm/begin`.
pub async fn tpm_begin(
    State(server): Shared,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    limit_client(&server, peer)?;
    let begin: TpmBegin = read_json(&server, body).await?;
    Ok(Json(
        domain::tpm_begin(&server, &begin.token, &begin.request).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TpmFinish {
    enrollment_id: String,
    response: EnrollmentResponse,
}

/// `POST /v1/enroll/tpm/finish`.
pub async fn tpm_finish(
    State(server): Shared,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    limit_client(&server, peer)?;
    let finish: TpmFinish = read_json(&server, body).await?;
    let enrolled = domain::tpm_finish(&server, &finish.enrollment_id, &finish.response).await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// `GET /v1/attestation-ca/{file}`: `root.pem` or `intermediate.pem`.
pub async fn attestation_ca(
    State(server): Shared,
    Path(file): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let ca = server.attestation_ca.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "no_attestation_ca",
            "this server has no attestation CA ([enrollment] attestation_ca)",
        )
    })?;
    let pem = match file.as_str() {
        "root.pem" => ca.root_pem(),
        "intermediate.pem" => ca.intermediate_pem(),
        _ => {
            return Err(ApiError::not_found(
                "not_found",
                "root.pem or intermediate.pem",
            ))
        }
    }
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        pem,
    ))
}

/// `GET /v1/device-ca.pem`.
pub async fn device_ca(State(server): Shared) -> Result<impl IntoResponse, ApiError> {
    let ca = server
        .device_ca
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no_device_ca", "this server has no device CA"))?;
    let pem = ca
        .cert_pem()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        pem,
    ))
}

/// `POST /v1/device-certificate`.
pub async fn device_certificate(
    State(server): Shared,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    limit_client(&server, peer)?;
    let request: crate::devcerts::CertificateRequest = read_json(&server, body).await?;
    let issued = crate::devcerts::issue(&server, &request).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// `GET /v1/authz` (and any other method and subpath: proxies keep the request's).
pub async fn authz(
    State(server): Shared,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    let ip = peer.map(|Extension(Peer(a))| a.ip());
    crate::devcerts::authz(&server, &headers, ip).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftwareEnroll {
    token: String,
    jwk: serde_json::Value,
    proof: String,
}

/// `POST /v1/enroll/software`.
pub async fn software_enroll(
    State(server): Shared,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    limit_client(&server, peer)?;
    let enroll: SoftwareEnroll = read_json(&server, body).await?;
    let enrolled = domain::software_enroll(
        &server,
        &enroll.token,
        &enroll.jwk.to_string(),
        &enroll.proof,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// `GET /v1/devices`.
pub async fn devices(
    State(server): Shared,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Reader).await?;
    let now = crate::now();
    let devices: Vec<_> = server
        .store
        .devices()
        .await?
        .into_iter()
        .map(|d| {
            let status = domain::display_status(&server, &d, now);
            let mut value = serde_json::to_value(&d).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("display_status".into(), status.into());
            }
            value
        })
        .collect();
    Ok(Json(serde_json::json!({ "devices": devices })))
}

/// `GET /v1/devices/{id}`.
pub async fn device(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Reader).await?;
    let device = server.store.device(&id).await?.ok_or_else(no_device)?;
    let report: Option<serde_json::Value> = device
        .report_json
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let history = server.store.history(&id, 50).await?;
    let changes = server.store.changes(&id, 50).await?;
    let now = crate::now();
    Ok(Json(serde_json::json!({
        "device": device,
        "display_status": domain::display_status(&server, &device, now),
        "decision": domain::decide(&server, &device, now),
        "report": report,
        "history": history,
        "changes": changes,
    })))
}

fn no_device() -> ApiError {
    ApiError::not_found("unknown_device", "no such device")
}

/// `GET /v1/devices/{id}/decision`.
pub async fn decision(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Reader).await?;
    let device = server
        .store
        .device_state(&id)
        .await?
        .ok_or_else(no_device)?;
    Ok(Json(domain::decide(&server, &device, crate::now())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEnrollmentToken {
    owner: String,
    #[serde(default)]
    ttl: Option<String>,
}

/// `POST /v1/admin/enrollment-tokens`.
pub async fn create_enrollment_token(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    let new: NewEnrollmentToken = read_json(&server, body).await?;
    let ttl = match new.ttl.as_deref() {
        Some(text) => parse_ttl(text)?,
        None => server.config.enrollment.token_ttl,
    };
    let created = domain::create_enrollment_token(server.store.as_ref(), &new.owner, ttl).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

fn parse_ttl(text: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(text)
        .map_err(|e| ApiError::bad_request("invalid_ttl", format!("ttl {text:?}: {e}")))
}

/// `GET /v1/admin/enrollment-tokens`.
pub async fn enrollment_tokens(
    State(server): Shared,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    Ok(Json(
        serde_json::json!({ "tokens": server.store.enrollment_tokens().await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiToken {
    name: String,
    role: String,
}

/// `POST /v1/admin/api-tokens`.
pub async fn create_api_token(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    let new: NewApiToken = read_json(&server, body).await?;
    let role = Role::parse(&new.role)
        .ok_or_else(|| ApiError::bad_request("invalid_role", "role is admin or reader"))?;
    let token = domain::create_api_token(server.store.as_ref(), &new.name, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "role": role, "name": new.name })),
    ))
}

/// `POST /v1/admin/login-links`.
pub async fn create_login_link(
    State(server): Shared,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    let path = domain::create_login_link(server.store.as_ref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "url": format!("{}{path}", server.config.public_url()) })),
    ))
}

/// `POST /v1/admin/devices/{id}/disable`.
pub async fn disable(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_disabled(&server, &headers, &id, true).await
}

/// `POST /v1/admin/devices/{id}/enable`.
pub async fn enable(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_disabled(&server, &headers, &id, false).await
}

async fn set_disabled(
    server: &Server,
    headers: &HeaderMap,
    id: &str,
    disabled: bool,
) -> Result<StatusCode, ApiError> {
    authorize(server, headers, Role::Admin).await?;
    if server.store.set_disabled(id, disabled).await? {
        server.announce_changes();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_device())
    }
}

/// `DELETE /v1/admin/devices/{id}`.
pub async fn delete(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&server, &headers, Role::Admin).await?;
    if server.store.delete_device(&id).await? {
        server.announce_changes();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_device())
    }
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

/// `POST /v1/integrations/cloudflare/posture`: Cloudflare Zero Trust's custom device
/// posture call. The Access token is checked before the body is read.
pub async fn cloudflare_posture(
    State(server): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(keys) = &server.cloudflare else {
        return Err(ApiError::not_found(
            "not_configured",
            "the Cloudflare integration is not configured ([cloudflare] in the server config)",
        ));
    };
    let token = headers
        .get("cf-access-jwt-assertion")
        .and_then(|v| v.to_str().ok());
    keys.verify(token, crate::now()).await?;
    let bytes = read_body(body, crate::cloudflare::MAX_BODY_BYTES).await?;
    let request: crate::cloudflare::PostureRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request: {e}")))?;
    crate::cloudflare::check_request(&request)?;
    let response = crate::cloudflare::scores(&server, &request.devices).await?;
    Ok(Json(response).into_response())
}
