//! The device's side of posture-server's HTTP API: challenges, enrollment, evidence.
//! Shared by `posture enroll --server` and the daemon's delivery.

use std::time::Duration;

use serde::Deserialize;

/// A nonce from `GET /v1/challenge`.
#[derive(Debug, Clone, Deserialize)]
pub struct Challenge {
    /// Goes into `eat_nonce`.
    pub nonce: String,
    /// Goes into `aud`.
    pub audience: String,
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No answer (connection, TLS, timeout).
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server refused, with its error code.
    #[error("the server answered {status}: {message} ({code})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// An answer that is not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ServerError {
    /// Whether trying again later may succeed (no answer, 5xx, 408, 429, or an expired nonce).
    pub fn retryable(&self) -> bool {
        match self {
            ServerError::Transport(_) | ServerError::Protocol(_) => true,
            ServerError::Refused { status, code, .. } => {
                *status >= 500 || *status == 408 || *status == 429 || code == "nonce"
            }
        }
    }
}

/// An HTTP client for posture-server (rustls; `ca_pem` adds a trusted CA).
pub fn client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, ServerError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .user_agent(concat!("posture/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| ServerError::Transport(format!("invalid CA certificate: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| ServerError::Transport(e.to_string()))
}

async fn answer(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<serde_json::Value, ServerError> {
    let response = response.map_err(|e| ServerError::Transport(e.without_url().to_string()))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ServerError::Transport(e.without_url().to_string()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let error = value.get("error");
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Err(ServerError::Refused {
        status: status.as_u16(),
        code: field("code"),
        message: field("message"),
    })
}

/// `GET` a fresh challenge.
pub async fn challenge(client: &reqwest::Client, url: &str) -> Result<Challenge, ServerError> {
    let value = answer(client.get(url).send().await).await?;
    serde_json::from_value(value).map_err(|e| ServerError::Protocol(e.to_string()))
}

/// `POST` JSON, returning the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ServerError> {
    answer(
        client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await,
    )
    .await
}

/// `POST` compact-JWS evidence.
pub async fn post_evidence(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<serde_json::Value, ServerError> {
    answer(
        client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/eat+jwt")
            .body(token.to_owned())
            .send()
            .await,
    )
    .await
}
