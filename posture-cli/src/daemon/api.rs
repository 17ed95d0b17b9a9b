//! The local API: HTTP/1.1 with JSON over a unix socket, or on Windows over a named pipe
//! (`\\.\pipe\posture`; the pipe's own parts are in `winpipe`).
//!
//! - `GET /v1/health`: liveness, version, the device key's public JWK, outbox length.
//! - `GET /v1/report`: the latest report.
//! - `GET /v1/compliance`: the latest report's verdict under the configured policy
//!   (`{"compliant": bool, "reasons": [...]}`), the one `posture status` shows.
//! - `POST /v1/evidence` with `{"nonce": "...", "audience": "..."}`: freshly signed evidence.
//!
//! hyper does the HTTP parsing (it is already in the tree for reqwest, and its parser is
//! fuzzed); this module adds the limits: connections served at once (the rest wait in the
//! socket backlog), connections served per uid (more from that uid wait for one of its
//! own slots, at most 256, so one user cannot hold every slot), header buffer size, body size, a read deadline for head and body
//! (`read_timeout`, 2 s) and a deadline per connection. One request per connection:
//! nothing idles on a keep-alive.
//!
//! Every caller's uid (from `SO_PEERCRED`) and its groups from the account database
//! (`getgrouplist`, never `/proc/PID/status`, whose pid may be reused) are checked against
//! the allow-list and logged. The caller's executable is read through a pidfd of the peer
//! (`SO_PEERPIDFD`), so it is the connecting process's and not a later process's with the
//! same pid; evidence carries both in its `requester` claim, and `allowed_clients`
//! restricts which executables may ask for evidence for which audiences.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

use posture_core::evidence::Requester;

use super::peer::{Identity, Own};
use super::{stopped, Shared};

/// hyper's read buffer (and so the largest request head). hyper requires at least 8192.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Nonce length bounds (bytes): the evidence's own (RFC 9711: 8 to 64), so a nonce the
/// signer would refuse is a 400 here, not a 500 later.
const NONCE_LEN: std::ops::RangeInclusive<usize> = posture_core::evidence::NONCE_LEN;
const AUDIENCE_MAX: usize = 512;

/// The peer of a connection.
#[derive(Debug, Clone)]
struct Caller {
    identity: Identity,
    pid: Option<u32>,
    allowed: bool,
    /// The connecting process's executable, when it could be told race-free.
    exe: Option<PathBuf>,
}

/// Connections of one user beyond its served ones wait for one of its slots; beyond this
/// many waiting, more are closed at once.
const MAX_WAITING_PER_UID: usize = 256;

/// Per user (uid, or SID on Windows): a semaphore of `max_connections_per_uid` served
/// connections, and how many wait for one.
#[derive(Debug, Default)]
struct PerUid(Mutex<HashMap<String, (Arc<Semaphore>, usize)>>);

impl PerUid {
    /// The user's semaphore and a waiting ticket, or `None` when too many already wait.
    fn enqueue(self: &Arc<Self>, user: &str, max: usize) -> Option<(Arc<Semaphore>, Waiting)> {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (semaphore, waiting) = table
            .entry(user.to_owned())
            .or_insert_with(|| (Arc::new(Semaphore::new(max)), 0));
        if *waiting >= MAX_WAITING_PER_UID {
            return None;
        }
        *waiting += 1;
        Some((
            Arc::clone(semaphore),
            Waiting {
                table: Arc::clone(self),
                user: user.to_owned(),
            },
        ))
    }
}

/// One connection waiting for its user's slot; counted until dropped.
#[derive(Debug)]
struct Waiting {
    table: Arc<PerUid>,
    user: String,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut table = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, waiting)) = table.get_mut(&self.user) {
            *waiting = waiting.saturating_sub(1);
        }
    }
}

/// The connection limits every transport shares.
#[derive(Debug)]
struct Limits {
    slots: Arc<Semaphore>,
    per_uid: Arc<PerUid>,
    own: Own,
}

impl Limits {
    fn new(shared: &Shared, own: Own) -> Self {
        let max = shared.settings.borrow().daemon.max_connections;
        Limits {
            slots: Arc::new(Semaphore::new(max)),
            per_uid: Arc::new(PerUid::default()),
            own,
        }
    }

    /// A shared slot, taken before accepting, so excess clients wait in the kernel's
    /// backlog (or for a pipe instance) instead of costing memory here. `None` at shutdown.
    async fn slot(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::select! {
            permit = Arc::clone(&self.slots).acquire_owned() => permit.ok(),
            () = stopped(shutdown) => None,
        }
    }

    /// An accepted, identified connection: queued under its user's slots, checked
    /// against the allow-list (`exe` is only asked for an allowed caller) and served on
    /// its own task.
    fn admit<S>(
        &self,
        stream: S,
        identity: Identity,
        pid: Option<u32>,
        exe: impl FnOnce(&S) -> Option<PathBuf>,
        permit: tokio::sync::OwnedSemaphorePermit,
        shared: &Arc<Shared>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let per_uid_max = shared.settings.borrow().daemon.max_connections_per_uid;
        let Some((uid_slots, waiting)) = self.per_uid.enqueue(&identity.user_key(), per_uid_max)
        else {
            tracing::warn!(
                peer = %identity,
                pid = pid.unwrap_or_default(),
                "too many connections from this user; closing"
            );
            return;
        };
        // Connections of a user beyond its share wait for that user's slot without
        // holding one of the shared slots, so one user cannot hold them all.
        drop(permit);
        let allowed =
            super::peer::allows_identity(&shared.settings.borrow().daemon, &identity, &self.own);
        let exe = if allowed { exe(&stream) } else { None };
        let caller = Caller {
            identity,
            pid,
            allowed,
            exe,
        };
        let shared = Arc::clone(shared);
        let slots = Arc::clone(&self.slots);
        tokio::spawn(async move {
            let Ok(uid_slot) = uid_slots.acquire_owned().await else {
                return;
            };
            drop(waiting);
            let Ok(permit) = slots.acquire_owned().await else {
                return;
            };
            serve_connection(stream, caller, shared).await;
            drop(uid_slot);
            drop(permit);
        });
    }
}

/// The executable of the process that connected on `stream`, told without a pid-reuse
/// race: the kernel's pidfd of the peer (`SO_PEERPIDFD`, Linux 6.5) pins the process;
/// `/proc/PID` is opened, and then the pidfd's process is confirmed alive, so the pid was
/// not reused in between and the directory is that process's. `None` when the kernel has
/// no `SO_PEERPIDFD`, the process is gone or its executable was deleted.
#[cfg(target_os = "linux")]
fn peer_exe(stream: &UnixStream, pid: i32) -> Option<PathBuf> {
    use rustix::fs::{openat, readlinkat, Mode, OFlags, CWD};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    let mut raw: libc::c_int = -1;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).ok()?;
    // SAFETY: `raw` and `len` are live locals of the sizes getsockopt is told; the socket
    // fd is valid for the duration of the call (borrowed from `stream`).
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            std::ptr::addr_of_mut!(raw).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 || raw < 0 {
        return None;
    }
    // SAFETY: on success the kernel created a new pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let dir = openat(
        CWD,
        format!("/proc/{pid}"),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    // SAFETY: pidfd_send_signal with signal 0 only checks that the process exists; the
    // pidfd is a valid fd owned by this function, the siginfo pointer may be null.
    let alive = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::c_void>(),
            0,
        )
    } == 0;
    if !alive {
        return None;
    }
    let exe = readlinkat(&dir, "exe", Vec::new()).ok()?;
    let exe = PathBuf::from(exe.to_string_lossy().into_owned());
    if exe.to_string_lossy().ends_with(" (deleted)") {
        return None;
    }
    Some(exe)
}

/// Off Linux there is no pidfd of the peer: the executable cannot be told race-free, so
/// it is not told (`allowed_clients` then refuses evidence requests, as on an old kernel).
#[cfg(all(unix, not(target_os = "linux")))]
fn peer_exe(_stream: &UnixStream, _pid: i32) -> Option<PathBuf> {
    None
}

/// Accepts connections on the unix socket until shutdown.
#[cfg(unix)]
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = Limits::new(&shared, Own::Uid(posture_core::process::effective_uid()));
    loop {
        let Some(permit) = limits.slot(&mut shutdown).await else {
            break;
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
        shared.api_activity.notify_one();
        let cred = match stream.peer_cred() {
            Ok(cred) => cred,
            Err(e) => {
                tracing::warn!(error = %e, "no peer credentials; refusing the connection");
                continue;
            }
        };
        // The uid is the kernel's; the groups come from the account database, not from
        // /proc/PID (whose pid may already be another process's).
        let mut groups = vec![cred.gid()];
        groups.extend(super::peer::account_groups(cred.uid()));
        let identity = Identity::Unix {
            uid: cred.uid(),
            gid: cred.gid(),
            groups,
        };
        let pid = cred.pid();
        limits.admit(
            stream,
            identity,
            pid.and_then(|p| u32::try_from(p).ok()),
            |stream| pid.and_then(|p| peer_exe(stream, p)),
            permit,
            &shared,
        );
    }
}

/// Accepts connections on the named pipe `pipe` until shutdown, starting with the
/// daemon's `first` instance (created with `FILE_FLAG_FIRST_PIPE_INSTANCE`, so nobody
/// else owns the name). A new instance is created as each one connects, with the
/// current allow-list's DACL; each client is identified by its process's token.
#[cfg(windows)]
pub async fn serve_pipe(
    first: tokio::net::windows::named_pipe::NamedPipeServer,
    pipe: PathBuf,
    own_sid: String,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    use super::winpipe;

    let limits = Limits::new(&shared, Own::Sid(own_sid.clone()));
    let mut server = first;
    loop {
        let Some(permit) = limits.slot(&mut shutdown).await else {
            break;
        };
        let connected = tokio::select! {
            connected = server.connect() => connected,
            () = stopped(&mut shutdown) => break,
        };
        // The next instance before this one is handed off, so a client always finds one.
        let sddl = super::peer::pipe_sddl(&shared.settings.borrow().daemon, &own_sid);
        let next = match winpipe::create(&pipe, false, &sddl) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "cannot create the next pipe instance; the local API stops");
                break;
            }
        };
        let stream = std::mem::replace(&mut server, next);
        if let Err(e) = connected {
            tracing::warn!(error = %e, "pipe connect failed");
            continue;
        }
        shared.api_activity.notify_one();
        let peer = match winpipe::client(&stream) {
            Ok(peer) => peer,
            Err(e) => {
                tracing::warn!(error = %e, "cannot identify the pipe's client; refusing the connection");
                continue;
            }
        };
        limits.admit(
            stream,
            peer.identity,
            Some(peer.pid),
            move |_| peer.exe,
            permit,
            &shared,
        );
    }
}

async fn serve_connection<S>(stream: S, caller: Caller, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (timeout, read_timeout) = {
        let settings = shared.settings.borrow();
        (
            settings.daemon.request_timeout,
            settings.daemon.read_timeout,
        )
    };
    let service_shared = Arc::clone(&shared);
    let peer = caller.identity.to_string();
    let pid = caller.pid;
    let caller = Arc::new(caller);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        let caller = Arc::clone(&caller);
        async move { Ok::<_, Infallible>(handle(request, &caller, &shared).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // A slow client is cut off after `read_timeout` (2 s), not after the whole
        // request timeout; the body has its own deadline in `evidence`.
        .header_read_timeout(read_timeout)
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
            tracing::info!(peer, pid = pid.unwrap_or_default(), error = %e, "bad request")
        }
        Err(_) => tracing::info!(peer, pid = pid.unwrap_or_default(), "connection timed out"),
    }
}

async fn handle(
    request: Request<Incoming>,
    caller: &Caller,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = if caller.allowed {
        route(request, caller, shared).await
    } else {
        error(
            StatusCode::FORBIDDEN,
            if caller.identity.sid().is_some() {
                "this user may not use the posture API (see [daemon] allow_sids)"
            } else {
                "this user may not use the posture API (see [daemon] allow_uids)"
            },
        )
    };
    let status = response.status().as_u16();
    if caller.allowed {
        tracing::info!(peer = %caller.identity, pid = caller.pid.unwrap_or_default(), %method, %path, status, "request");
    } else {
        tracing::warn!(peer = %caller.identity, pid = caller.pid.unwrap_or_default(), %method, %path, status, "refused caller not on the allow-list");
    }
    response
}

async fn route(
    request: Request<Incoming>,
    caller: &Caller,
    shared: &Shared,
) -> Response<Full<Bytes>> {
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
        (&Method::POST, "/v1/evidence") => evidence(request, caller, shared).await,
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
            "activity": shared.activity.snapshot(),
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

async fn evidence(
    request: Request<Incoming>,
    caller: &Caller,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let (max, read_timeout) = {
        let settings = shared.settings.borrow();
        (
            settings.daemon.max_request_bytes,
            settings.daemon.read_timeout,
        )
    };
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
    let body = Limited::new(request.into_body(), max).collect();
    let Ok(body) = tokio::time::timeout(read_timeout, body).await else {
        return error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        );
    };
    let body = match body {
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
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "nonce must be {} to {} bytes",
                NONCE_LEN.start(),
                NONCE_LEN.end()
            ),
        );
    }
    if request
        .audience
        .as_ref()
        .is_some_and(|a| a.len() > AUDIENCE_MAX)
    {
        return error(StatusCode::BAD_REQUEST, "audience is too long");
    }
    let may = super::peer::client_may_request(
        &shared.settings.borrow().daemon,
        &caller.identity,
        caller.exe.as_deref(),
        request.audience.as_deref(),
    );
    if !may {
        tracing::warn!(
            peer = %caller.identity,
            pid = caller.pid.unwrap_or_default(),
            exe = %caller.exe.as_deref().unwrap_or(Path::new("?")).display(),
            audience = request.audience.as_deref().unwrap_or(""),
            "refused an evidence request not in [daemon] allowed_clients"
        );
        return error(
            StatusCode::FORBIDDEN,
            "this program may not ask for evidence for this audience (see [daemon] allowed_clients)",
        );
    }
    let Some(report) = shared.report.borrow().clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the first collection has not finished yet",
        );
    };
    let requester = Requester {
        uid: caller.identity.uid(),
        sid: caller.identity.sid().map(str::to_owned),
        exe: caller.exe.as_ref().map(|e| e.display().to_string()),
    };
    match shared.evidence.sign(
        &report,
        Some(&request.nonce),
        request.audience.as_deref(),
        Some(&requester),
    ) {
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
