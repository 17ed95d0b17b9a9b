//! The local API: HTTP/1.1 with JSON over a unix socket.
//!
//! - `GET /v1/health`: liveness, version, the device key's public JWK, outbox length.
//! - `GET /v1/report`: the latest report.
//! - `GET /v1/compliance`: the latest report's verdict under the configured policy
//!   (`{"compliant": bool, "reasons": [...]}`), the one `posture status` shows.
//! - `POST /v1/evidence` with `{"nonce": "...", "audience": "..."}`: freshly signed evidence.
//!
//! hyper does the HTTP parsing (it is already in the tree for reqwest, and its parser is
//! fuzzed); this module adds the limits: connections served at once (the rest wait in the
//! socket backlog), header buffer size, body size, and a deadline per connection. One
//! request per connection: nothing idles on a keep-alive. Every caller's uid and pid (from
//! `SO_PEERCRED`) is checked against the allow-list and logged.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

use super::{settings, stopped, Shared};

/// hyper's read buffer (and so the largest request head). hyper requires at least 8192.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Nonce length bounds (bytes). EAT (RFC 9711) nonces are 8 to 64 bytes; base64 or hex
/// encodings of those fit in 256.
const NONCE_LEN: std::ops::RangeInclusive<usize> = 8..=256;
const AUDIENCE_MAX: usize = 512;

/// The peer of a connection.
#[derive(Debug, Clone, Copy)]
struct Caller {
    uid: u32,
    gid: u32,
    pid: Option<i32>,
    allowed: bool,
}

/// Accepts connections until shutdown.
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = shared.settings.borrow().daemon.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    loop {
        // Take a slot before accepting, so excess clients wait in the kernel's backlog
        // instead of costing memory here.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopped(&mut shutdown) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let caller = match stream.peer_cred() {
            Ok(cred) => {
                let mut groups = vec![cred.gid()];
                if let Some(pid) = cred.pid() {
                    // The uid check is race-free; supplementary groups come from procfs.
                    groups.extend(settings::process_groups(pid));
                }
                let allowed = shared.settings.borrow().daemon.allows(cred.uid(), &groups);
                Caller {
                    uid: cred.uid(),
                    gid: cred.gid(),
                    pid: cred.pid(),
                    allowed,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "no peer credentials; refusing the connection");
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_connection(stream, caller, shared).await;
            drop(permit);
        });
    }
}

async fn serve_connection(stream: UnixStream, caller: Caller, shared: Arc<Shared>) {
    let timeout = shared.settings.borrow().daemon.request_timeout;
    let service_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        async move { Ok::<_, Infallible>(handle(request, caller, &shared).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false)
        // Clients may shut down their write side after the request; answer them anyway.
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(timeout, connection).await {
        Ok(Ok(())) => {}
        // Malformed or oversized requests: hyper has already answered 400/431 where it
        // could; the connection is simply closed.
        Ok(Err(e)) => {
            tracing::info!(uid = caller.uid, pid = caller.pid.unwrap_or_default(), error = %e, "bad request")
        }
        Err(_) => tracing::info!(
            uid = caller.uid,
            pid = caller.pid.unwrap_or_default(),
            "connection timed out"
        ),
    }
}

async fn handle(
    request: Request<Incoming>,
    caller: Caller,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = if caller.allowed {
        route(request, shared).await
    } else {
        error(
            StatusCode::FORBIDDEN,
            "this user may not use the posture API (see [daemon] allow_uids)",
        )
    };
    let status = response.status().as_u16();
    if caller.allowed {
        tracing::info!(uid = caller.uid, gid = caller.gid, pid = caller.pid.unwrap_or_default(), %method, %path, status, "request");
    } else {
        tracing::warn!(uid = caller.uid, gid = caller.gid, pid = caller.pid.unwrap_or_default(), %method, %path, status, "refused caller not on the allow-list");
    }
    response
}

async fn route(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/health") => health(shared),
        (&Method::GET, "/v1/report") => match shared.report.borrow().clone() {
            Some(report) => json_response(StatusCode::OK, &*report),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the first collection has not finished yet",
            ),
        },
        (&Method::GET, "/v1/compliance") => match shared.assessment.borrow().clone() {
            Some(assessment) => json_response(StatusCode::OK, &*assessment),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the first collection has not finished yet",
            ),
        },
        (&Method::POST, "/v1/evidence") => evidence(request, shared).await,
        (_, "/v1/health" | "/v1/report" | "/v1/compliance" | "/v1/evidence") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

fn health(shared: &Shared) -> Response<Full<Bytes>> {
    let report = shared.report.borrow().clone();
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "collected_at": report.as_ref().map(|r| r.collected_at),
            "outbox": shared.outbox.len(),
            "key": shared.evidence.public_jwk(),
        }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceRequest {
    nonce: String,
    #[serde(default)]
    audience: Option<String>,
}

async fn evidence(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let max = shared.settings.borrow().daemon.max_request_bytes;
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json",
        );
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let body = match Limited::new(request.into_body(), max).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        Err(_) => return error(StatusCode::BAD_REQUEST, "incomplete request body"),
    };
    let request: EvidenceRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid request: {e}")),
    };
    if !NONCE_LEN.contains(&request.nonce.len()) {
        return error(StatusCode::BAD_REQUEST, "nonce must be 8 to 256 bytes");
    }
    if request
        .audience
        .as_ref()
        .is_some_and(|a| a.len() > AUDIENCE_MAX)
    {
        return error(StatusCode::BAD_REQUEST, "audience is too long");
    }
    let Some(report) = shared.report.borrow().clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the first collection has not finished yet",
        );
    };
    match shared
        .evidence
        .sign(&report, Some(&request.nonce), request.audience.as_deref())
    {
        Ok(signed) => json_response(
            StatusCode::OK,
            &json!({ "evidence": signed.token, "collected_at": report.collected_at }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "signing evidence failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "signing evidence failed")
        }
    }
}

fn json_response<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
) -> Response<Full<Bytes>> {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            *response.status_mut() = status;
            response.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => {
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"{\"error\":\"encoding failed\"}",
            )));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message }))
}
