//! Device certificates and forward auth for proxies.
//!
//! - [`issue`]: `POST /v1/device-certificate`. The device sends a CSR signed by its
//!   enrolled key carrying a fresh nonce from `GET /v1/challenge` as challengePassword
//!   (see [`posture_core::devcert`]). The server checks the signature, that the key is
//!   the enrolled key of the device named in the request, spends the nonce (a replayed
//!   CSR is refused), decides with the server's current state, and issues a short-lived
//!   client certificate only to a device that is allowed right now. Nothing is stored: an
//!   issued certificate is not revoked, it expires.
//! - [`authz`]: `GET /v1/authz` (any method: Envoy's `ext_authz` keeps the request's).
//!   The proxy terminates mTLS against the device CA and forwards the client certificate
//!   in a header; the server believes that header only from a configured proxy, verifies
//!   the certificate against its own device CA and validity again, and answers 200 with
//!   `X-Posture-*` headers, 403 with the failed rules and their remediation, 401
//!   without a (valid) certificate.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use posture_core::attestation::EnrolledDevice;
use posture_core::devcert::{self, DevCertError, DeviceCa};
use posture_core::jose::Jwk;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domain::{self, DeviceDecision, Server};
use crate::error::ApiError;

/// The device CA from `[device_certificates]`, else from (or created in) the state
/// directory; `None` when there is neither (a library user with no state directory).
pub fn load_ca(config: &Config) -> anyhow::Result<Option<DeviceCa>> {
    use anyhow::Context as _;
    let certs = &config.device_certificates;
    match (&certs.ca_cert, &certs.ca_key) {
        (Some(cert), Some(key)) => DeviceCa::load(cert, key)
            .map(Some)
            .with_context(|| format!("cannot load the device CA {}", cert.display())),
        (None, None) => {
            let Some(state) = config
                .state_dir
                .clone()
                .or_else(crate::config::default_state_dir)
            else {
                return Ok(None);
            };
            let dir = devcert::ca_dir(&state);
            if config
                .database_url
                .as_deref()
                .is_some_and(|url| url.starts_with("postgres"))
            {
                // Each replica would make its own CA: certificates from one would be
                // refused by the others' /v1/authz.
                tracing::warn!(
                    dir = %dir.display(),
                    "device CA in this replica's state directory: replicas sharing the \
                     database must share one CA ([device_certificates] ca_cert, ca_key)"
                );
            }
            DeviceCa::load_or_create(&dir).map(Some).with_context(|| {
                format!("cannot load or create the device CA in {}", dir.display())
            })
        }
        _ => anyhow::bail!("[device_certificates] needs both ca_cert and ca_key, or neither"),
    }
}

fn no_ca() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_device_ca",
        "this server has no device CA (no state directory and no [device_certificates] ca_cert)",
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

/// The body of `POST /v1/device-certificate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    /// The device asking (its key's RFC 7638 thumbprint).
    pub device_id: String,
    /// A PKCS#10 CSR (PEM) signed by that device's enrolled key, with a nonce from
    /// `GET /v1/challenge` as challengePassword.
    pub csr: String,
}

/// An issued certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issued {
    /// The device.
    pub device_id: String,
    /// The client certificate (PEM).
    pub certificate: String,
    /// The device CA's certificate (PEM): the chain a TLS client sends is the
    /// certificate alone; proxies trust this.
    pub ca: String,
    /// Expiry (RFC 3339).
    pub not_after: String,
    /// What the certificate says about the key.
    pub key_assurance: String,
}

fn csr_refused(e: DevCertError) -> ApiError {
    match e {
        DevCertError::Signature(m) => ApiError::forbidden("bad_csr_signature", m),
        other => ApiError::bad_request("invalid_csr", other.to_string()),
    }
}

/// The public key `device` enrolled with.
fn enrolled_key(device: &crate::store::DeviceKey) -> Result<p256::PublicKey, ApiError> {
    match device.key_kind.as_str() {
        "tpm" => EnrolledDevice::from_json(device.key_record.as_bytes())
            .and_then(|d| d.device_key())
            .map_err(internal),
        _ => Jwk::from_json(&device.key_record)
            .map_err(internal)?
            .to_public_key()
            .map_err(internal),
    }
}

/// Checks a CSR and issues a certificate to a device that is allowed now.
pub async fn issue(server: &Server, request: &CertificateRequest) -> Result<Issued, ApiError> {
    let ca = server.device_ca.as_ref().ok_or_else(no_ca)?;
    let csr = devcert::check_csr(request.csr.as_bytes()).map_err(csr_refused)?;
    let key = server
        .store
        .device_key(&request.device_id)
        .await?
        .ok_or_else(|| {
            ApiError::forbidden("unknown_device", "no device with this id is enrolled here")
        })?;
    // The key named in the CSR (which signed it) must be this device's enrolled key:
    // another device's CSR, or a CSR for a key that was never enrolled, gets nothing.
    let enrolled = enrolled_key(&key)?;
    let same = subtle::ConstantTimeEq::ct_eq(
        enrolled.to_sec1_bytes().as_ref(),
        csr.public_key.to_sec1_bytes().as_ref(),
    );
    if !bool::from(same) {
        return Err(ApiError::forbidden(
            "key_mismatch",
            "the CSR's key is not the enrolled key of this device",
        ));
    }
    if key.disabled {
        return Err(ApiError::forbidden(
            "device_disabled",
            "this device was disabled by an administrator",
        ));
    }
    // Single use: the same CSR sent again finds its nonce spent.
    let nonce_expires_at = domain::check_nonce(server, &csr.nonce, crate::now())?;
    if !server
        .store
        .spend_nonce(&csr.nonce, nonce_expires_at)
        .await?
    {
        return Err(ApiError::bad_request(
            "nonce",
            "the CSR's challengePassword is not a nonce from GET /v1/challenge, or it expired \
             or was used",
        ));
    }
    let device = server
        .store
        .device_state(&request.device_id)
        .await?
        .ok_or_else(|| ApiError::forbidden("unknown_device", "the device was deleted"))?;
    let decision = domain::decide(server, &device, crate::now());
    if decision.decision != "allow" {
        let code = if decision.stale {
            "stale"
        } else {
            "not_compliant"
        };
        return Err(ApiError::forbidden(code, reasons_line(&decision)));
    }
    let now = SystemTime::now();
    let der = ca
        .issue(
            &devcert::Subject {
                device_id: &request.device_id,
                key_assurance: &device.key_assurance,
                public_key: &enrolled,
                lifetime: server.config.device_certificates.lifetime,
            },
            now,
        )
        .map_err(internal)?;
    let (_, not_after) = devcert::validity_of(&der).map_err(internal)?;
    tracing::info!(device = %request.device_id, not_after = %humantime::format_rfc3339_seconds(not_after), "device certificate issued");
    Ok(Issued {
        device_id: request.device_id.clone(),
        certificate: devcert::certificate_pem(&der).map_err(internal)?,
        ca: ca.cert_pem().map_err(internal)?,
        not_after: humantime::format_rfc3339_seconds(not_after).to_string(),
        key_assurance: device.key_assurance,
    })
}

/// The failed rules on one line: `firewall: no firewall is active; ...`.
fn reasons_line(decision: &DeviceDecision) -> String {
    let parts: Vec<String> = decision
        .reasons
        .iter()
        .map(|r| format!("{}: {}", r.finding.as_deref().unwrap_or(&r.rule), r.message))
        .collect();
    format!("the device is not allowed: {}", parts.join("; "))
}

/// The 403 body for people: each failed rule with its remediation.
fn denial_text(device: &crate::store::Device, decision: &DeviceDecision) -> String {
    let mut text = format!(
        "posture: access denied: device {} ({}) is not compliant\n",
        device.id, device.owner
    );
    for reason in &decision.reasons {
        text.push_str(&format!(
            "- {}: {}\n",
            reason.finding.as_deref().unwrap_or(&reason.rule),
            reason.message
        ));
        if let Some(fix) = &reason.remediation {
            text.push_str(&format!("  fix: {}\n", fix.text));
            if let Some(url) = &fix.url {
                text.push_str(&format!("  more: {url}\n"));
            }
        }
    }
    text
}

/// A text answer with `X-Posture-Error` (and the proxy-facing headers in `extra`).
fn text(
    status: StatusCode,
    code: &'static str,
    body: String,
    extra: &[(&str, String)],
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if !code.is_empty() {
        headers.insert("x-posture-error", HeaderValue::from_static(code));
    }
    for (name, value) in extra {
        // Header values are ASCII without control characters; anything else is dropped
        // rather than answered wrongly.
        let clean: String = value
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(*name),
            HeaderValue::try_from(clean),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

/// `GET /v1/authz`: the forward-auth answer for the request a proxy is about to pass.
pub async fn authz(server: &Server, headers: &HeaderMap, peer: Option<IpAddr>) -> Response {
    let Some(forward) = &server.config.forward_auth else {
        return text(
            StatusCode::NOT_FOUND,
            "forward_auth_disabled",
            "forward auth is not configured on this server ([forward_auth])\n".into(),
            &[],
        );
    };
    if !forward.trusts(peer) {
        // Whoever this is, they are not the proxy: they could put any header here.
        tracing::warn!(
            ?peer,
            "forward auth from an address that is not a trusted proxy"
        );
        return text(
            StatusCode::FORBIDDEN,
            "untrusted_proxy",
            "this address is not a trusted proxy ([forward_auth] trusted_proxies)\n".into(),
            &[],
        );
    }
    let Some(ca) = &server.device_ca else {
        let e = no_ca();
        return text(e.status, e.code, format!("{}\n", e.message), &[]);
    };
    let value = headers
        .get_all(forward.header_name().as_str())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty() && *v != "(null)")
        .collect::<Vec<_>>();
    let value = match value.as_slice() {
        [] => {
            return text(
                StatusCode::UNAUTHORIZED,
                "no_client_certificate",
                "posture: this service needs a device certificate (posture cert --out DIR)\n"
                    .into(),
                &[],
            )
        }
        [one] => *one,
        _ => {
            return text(
                StatusCode::UNAUTHORIZED,
                "invalid_client_certificate",
                "more than one forwarded client certificate header\n".into(),
                &[],
            )
        }
    };
    let verified = devcert::forwarded_certificate(forward.proxy, value)
        .and_then(|der| ca.verify(&der, SystemTime::now()));
    let cert = match verified {
        Ok(cert) => cert,
        Err(e) => {
            return text(
                StatusCode::UNAUTHORIZED,
                "invalid_client_certificate",
                format!("posture: the client certificate is not accepted: {e}\n"),
                &[],
            )
        }
    };
    let device = match server.store.device_state(&cert.device_id).await {
        Ok(Some(device)) => device,
        Ok(None) => {
            return text(
                StatusCode::FORBIDDEN,
                "unknown_device",
                format!("posture: device {} is not enrolled here\n", cert.device_id),
                &[("x-posture-device", cert.device_id.clone())],
            )
        }
        Err(e) => {
            let e = ApiError::from(e);
            return text(e.status, e.code, format!("{}\n", e.message), &[]);
        }
    };
    let decision = domain::decide(server, &device, crate::now());
    let allowed = decision.decision == "allow";
    let mut extra = vec![
        ("x-posture-device", device.id.clone()),
        ("x-posture-owner", device.owner.clone()),
        ("x-posture-compliant", allowed.to_string()),
        ("x-posture-key-assurance", device.key_assurance.clone()),
    ];
    if allowed {
        return text(StatusCode::OK, "", String::new(), &extra);
    }
    extra.push(("x-posture-reason", reasons_line(&decision)));
    let code = if decision.stale {
        "stale"
    } else {
        "not_compliant"
    };
    text(
        StatusCode::FORBIDDEN,
        code,
        denial_text(&device, &decision),
        &extra,
    )
}
