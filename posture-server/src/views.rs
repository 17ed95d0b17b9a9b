//! The dashboard: server-rendered HTML (maud escapes every value), no JavaScript, one
//! stylesheet from this server (the CSP allows nothing else).
//!
//! People sign in with an admin token (`POST /ui/login`) or a one-time link
//! (`posture-server login-link`); the session is an `HttpOnly`, `SameSite=Strict` cookie
//! whose hash is stored like any other credential.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use posture_core::{Finding, Report, Status};
use serde::Deserialize;

use crate::domain::{self, Server};
use crate::error::ApiError;
use crate::store::{CredentialKind, Device, Role};

const COOKIE: &str = "posture_session";

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.7rem 1.5rem;display:flex;justify-content:space-between;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:1.2rem 1.5rem;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef0f3;font-weight:600}
.cards{display:flex;gap:1rem;margin:0 0 1.2rem}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:.8rem 1.2rem;min-width:9rem}
.card b{display:block;font-size:1.8rem}
.status{font-weight:600;padding:.1rem .45rem;border-radius:4px;white-space:nowrap}
.compliant,.pass,.allow{background:#e3f6e8;color:#17642f}
.noncompliant,.fail,.deny{background:#fde8e8;color:#9b1c1c}
.stale,.unknown,.new,.disabled{background:#fff4d6;color:#7a5500}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;background:#fff;padding:.8rem 1rem;border:1px solid #e3e6ea}
dt{font-weight:600}
.facts{font-family:ui-monospace,monospace;font-size:13px;margin:0;padding:0;list-style:none}
.fix{margin:.3rem 0 0}
form.inline{display:inline}
button{font:inherit}
"#;

fn page(title: &str, signed_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · posture" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    a href="/ui" { "posture · fleet" }
                    @if signed_in {
                        form.inline method="post" action="/ui/logout" { button type="submit" { "Sign out" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

fn error_page(e: &ApiError) -> Response {
    html_response(
        e.status,
        page(
            "Error",
            false,
            html! { h1 { "Something went wrong" } p { (e.message) } p.code { "code: " (e.code) } },
        ),
    )
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether the request carries a valid admin session.
async fn signed_in(server: &Server, headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(secret) = cookie(headers) else {
        return Ok(false);
    };
    let role = server
        .store
        .credential_role(
            &crate::secret::hash(secret),
            CredentialKind::Session,
            crate::now(),
        )
        .await?;
    Ok(role == Some(Role::Admin))
}

/// `GET /ui/style.css`.
pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
}

fn ago(now: i64, t: i64) -> String {
    let s = now.saturating_sub(t).max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

fn when(now: i64, t: Option<i64>) -> Markup {
    match t {
        Some(t) => {
            html! { time datetime=(domain::rfc3339(t)) title=(domain::rfc3339(t)) { (ago(now, t)) } }
        }
        None => html! { "never" },
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "compliant" => "Compliant",
        "noncompliant" => "Not compliant",
        "stale" => "Stale",
        "disabled" => "Disabled",
        _ => "No evidence yet",
    }
}

/// `GET /ui`: the fleet at a glance.
pub async fn fleet(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    match fleet_page(&server, &headers).await {
        Ok(r) => r,
        Err(e) => error_page(&e),
    }
}

async fn fleet_page(server: &Server, headers: &HeaderMap) -> Result<Response, ApiError> {
    if !signed_in(server, headers).await? {
        return Ok(Redirect::to("/ui/login").into_response());
    }
    let now = crate::now();
    let devices = server.store.devices().await?;
    let rows: Vec<(&Device, &str)> = devices
        .iter()
        .map(|d| (d, domain::display_status(server, d, now)))
        .collect();
    let count = |s: &str| rows.iter().filter(|(_, st)| *st == s).count();
    let body = html! {
        h1 { "Fleet" }
        section.cards aria-label="Summary" {
            div.card #count-compliant { b { (count("compliant")) } "Compliant" }
            div.card #count-noncompliant { b { (count("noncompliant")) } "Not compliant" }
            div.card #count-stale { b { (count("stale")) } "Stale" }
            div.card #count-other { b { (count("new") + count("disabled")) } "New or disabled" }
        }
        @if rows.is_empty() {
            p { "No device is enrolled yet. Create an enrollment token with "
                code { "posture-server token create --owner you@example.com" }
                " and run " code { "posture enroll --server URL --token TOKEN" } " on the device." }
        } @else {
            table #devices {
                thead { tr { th { "Owner" } th { "Host" } th { "Status" } th { "Last seen" } th { "Failing checks" } th { "Key" } } }
                tbody {
                    @for (d, status) in &rows {
                        tr {
                            td { (d.owner) }
                            td { a href={ "/ui/devices/" (d.id) } { (d.host.as_deref().unwrap_or("(unknown host)")) } }
                            td { span class={ "status " (status) } { (status_label(status)) } }
                            td { (when(now, d.last_seen)) }
                            td { @if d.failing.is_empty() { "—" } @else { (d.failing.join(", ")) } }
                            td { (d.key_assurance) }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(StatusCode::OK, page("Fleet", true, body)))
}

/// `GET /ui/devices/{id}`: one device with each finding, its facts and its remediation,
/// and the history of compliance changes.
pub async fn device(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match device_page(&server, &headers, &id).await {
        Ok(r) => r,
        Err(e) => error_page(&e),
    }
}

fn fact_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn finding_row(f: &Finding) -> Markup {
    let status = f.status.as_str();
    html! {
        tr id={ "finding-" (f.id) } {
            td { b { (f.id) } }
            td { span class={ "status " (status) } { (status) } }
            td {
                (f.summary)
                @if let Some(reason) = &f.reason { br; small { "could not tell: " (reason) } }
                @if let Some(fix) = &f.remediation {
                    p.fix { "Fix: " (fix.text)
                        @if let Some(url) = &fix.url { " " a href=(url) rel="noopener noreferrer" { "more" } } }
                }
            }
            td {
                ul.facts {
                    @for (k, v) in &f.observed { li { (k) ": " (fact_value(v)) } }
                }
            }
        }
    }
}

async fn device_page(server: &Server, headers: &HeaderMap, id: &str) -> Result<Response, ApiError> {
    if !signed_in(server, headers).await? {
        return Ok(Redirect::to("/ui/login").into_response());
    }
    let Some(device) = server.store.device(id).await? else {
        return Err(ApiError::not_found("unknown_device", "no such device"));
    };
    let now = crate::now();
    let status = domain::display_status(server, &device, now);
    let decision = domain::decide(server, &device, now);
    let report: Option<Report> = device
        .report_json
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let changes = server.store.changes(id, 50).await?;
    let history = server.store.history(id, 20).await?;
    let host = device
        .host
        .clone()
        .unwrap_or_else(|| "(unknown host)".into());
    let body = html! {
        h1 { (host) " " span class={ "status " (status) } { (status_label(status)) } }
        dl {
            dt { "Owner" } dd { (device.owner) }
            dt { "Device id" } dd { code { (device.id) } }
            dt { "Decision" } dd { span class={ "status " (decision.decision) } { (decision.decision) } }
            dt { "Last seen" } dd { (when(now, device.last_seen)) }
            dt { "Key assurance" } dd { (device.key_assurance) " (" (device.key_kind) " key)" }
            dt { "EK trust" } dd { (device.ek_trust) }
            dt { "Enrolled" } dd { (when(now, Some(device.enrolled_at))) }
            @if let Some(r) = &report {
                dt { "OS" } dd { (r.os.name) ", kernel " (r.os.kernel) }
                dt { "Agent" } dd { (r.agent.name) " " (r.agent.version) }
            }
        }
        @if !decision.reasons.is_empty() {
            h2 { "Why it is denied" }
            ul #reasons {
                @for r in &decision.reasons {
                    li { b { (r.rule) } ": " (r.message)
                        @if let Some(fix) = &r.remediation { " — fix: " (fix.text) } }
                }
            }
        }
        h2 { "Findings" }
        @match &report {
            Some(r) => {
                table #findings {
                    thead { tr { th { "Check" } th { "Status" } th { "What was found" } th { "Facts" } } }
                    tbody {
                        // Failing and unknown first: what needs attention.
                        @for f in r.findings.iter().filter(|f| f.status != Status::Pass) { (finding_row(f)) }
                        @for f in r.findings.iter().filter(|f| f.status == Status::Pass) { (finding_row(f)) }
                    }
                }
            }
            None => p { "No evidence received yet." }
        }
        h2 { "Compliance changes" }
        @if changes.is_empty() { p { "None yet." } } @else {
            table #changes {
                thead { tr { th { "When" } th { "From" } th { "To" } } }
                tbody { @for c in &changes { tr {
                    td { (domain::rfc3339(c.at)) }
                    td { span class={ "status " (c.from) } { (status_label(&c.from)) } }
                    td { span class={ "status " (c.to) } { (status_label(&c.to)) } }
                } } }
            }
        }
        h2 { "Recent evidence" }
        table #history {
            thead { tr { th { "Received" } th { "Status" } th { "Failing checks" } } }
            tbody { @for h in &history { tr {
                td { (domain::rfc3339(h.received_at)) }
                td { span class={ "status " (h.status) } { (status_label(&h.status)) } }
                td { @if h.failing.is_empty() { "—" } @else { (h.failing.join(", ")) } }
            } } }
        }
    };
    Ok(html_response(StatusCode::OK, page(&host, true, body)))
}

fn login_markup(message: Option<&str>) -> Markup {
    page(
        "Sign in",
        false,
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            form method="post" action="/ui/login" {
                label for="token" { "Admin token" } br;
                input #token type="password" name="token" autocomplete="off" size="60" required;
                " " button type="submit" { "Sign in" }
            }
            p { "Or open a one-time link from " code { "posture-server login-link" } "." }
        },
    )
}

/// `GET /ui/login`.
pub async fn login_form() -> Response {
    html_response(StatusCode::OK, login_markup(None))
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
}

fn session_cookie(server: &Server, secret: &str) -> String {
    let secure = if server.config.tls.is_some() || server.config.public_url().starts_with("https:")
    {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{COOKIE}={secret}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        domain::SESSION_TTL.as_secs()
    )
}

async fn start_session(server: &Server, next: &str) -> Response {
    match domain::create_session(server.store.as_ref(), Role::Admin).await {
        Ok(secret) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, session_cookie(server, &secret)),
                (header::LOCATION, next.to_owned()),
            ],
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}

/// `POST /ui/login`: an admin API token starts a session.
pub async fn login(State(server): State<Arc<Server>>, Form(form): Form<LoginForm>) -> Response {
    let role = server
        .store
        .credential_role(
            &crate::secret::hash(form.token.trim()),
            CredentialKind::Api,
            crate::now(),
        )
        .await;
    match role {
        Ok(Some(Role::Admin)) => start_session(&server, "/ui").await,
        Ok(_) => html_response(
            StatusCode::UNAUTHORIZED,
            login_markup(Some("That is not a valid admin token.")),
        ),
        Err(e) => error_page(&ApiError::from(e)),
    }
}

/// Where to go after a login link: `?next=/ui/...` (only dashboard paths).
#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// `GET /ui/login/{code}[?next=/ui/...]`: a one-time link starts a session.
pub async fn login_link(
    State(server): State<Arc<Server>>,
    Path(code): Path<String>,
    axum::extract::Query(next): axum::extract::Query<Next>,
) -> Response {
    let next = next
        .next
        .filter(|n| n.starts_with("/ui") && !n.contains("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/ui".to_owned());
    match server
        .store
        .take_login(&crate::secret::hash(&code), crate::now())
        .await
    {
        Ok(Some(Role::Admin)) => start_session(&server, &next).await,
        Ok(_) => html_response(
            StatusCode::UNAUTHORIZED,
            login_markup(Some("This link is unknown, expired or already used.")),
        ),
        Err(e) => error_page(&ApiError::from(e)),
    }
}

/// `POST /ui/logout`.
pub async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
            (header::LOCATION, "/ui/login".to_owned()),
        ],
    )
        .into_response()
}
