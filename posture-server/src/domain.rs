//! What the server does, as plain functions over [`Server`]: enrollment, challenges,
//! evidence ingestion, decisions. The HTTP handlers ([`crate::v1`]) and the dashboard
//! ([`crate::views`]) only parse, call these and render.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use posture_core::attestation::{
    begin_enrollment, finish_enrollment, EkTrust, EnrolledDevice, EnrollmentChallenge,
    EnrollmentRequest, EnrollmentResponse, PendingEnrollment,
};
use posture_core::evidence::MAX_EVIDENCE_BYTES;
use posture_core::jose::{b64url_decode, Jwk};
use posture_core::keys::KeyAssurance;
use posture_core::policy::{Decision, Policy, Reason};
use posture_core::verify::{Verifier, VerifyError, VerifyOptions};
use posture_core::{Report, Status};
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;

use crate::cache::{CredentialCache, KeyCache};
use crate::config::Config;
use crate::error::ApiError;
use crate::limits::RateLimiter;
use crate::nonce::NonceKey;
use crate::store::{
    CredentialKind, Device, DeviceKey, Ingest, IngestRefusal, NewCredential, NewDevice, Role, Store,
};

/// How long a challenge nonce may be used.
pub const NONCE_TTL: Duration = Duration::from_secs(120);
/// How long a TPM enrollment may wait between challenge and response.
pub const PENDING_TTL: Duration = Duration::from_secs(300);
/// How long a dashboard session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a one-time login link is valid.
pub const LOGIN_TTL: Duration = Duration::from_secs(15 * 60);

/// The server's state, shared by every request.
#[derive(Debug)]
pub struct Server {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The configuration.
    pub config: Config,
    /// The configured policy (`None`: every check that ran must pass).
    pub policy: Option<Policy>,
    /// EK CAs.
    pub ek_roots: Vec<Certificate>,
    /// The attestation CA that certifies AKs of CA-verified TPMs, where configured.
    pub attestation_ca: Option<posture_core::attestation::AttestationCa>,
    /// The device CA (client certificates for compliant devices, checked by `/v1/authz`).
    pub device_ca: Option<posture_core::devcert::DeviceCa>,
    /// `aud` evidence must name: `urn:posture-server:<server id>`.
    pub audience: String,
    /// Per device key.
    pub device_limiter: RateLimiter,
    /// Per client address, for the unauthenticated endpoints.
    pub client_limiter: RateLimiter,
    /// This replica's verifiers of enrolled device keys.
    pub keys: KeyCache,
    /// This replica's recently checked API tokens.
    pub credentials: CredentialCache,
    /// Makes and checks challenge nonces (the same key on every replica).
    pub nonces: NonceKey,
    /// The Cloudflare Access keys, when `[cloudflare]` is configured.
    pub cloudflare: Option<crate::cloudflare::AccessKeys>,
    /// The Shared Signals transmitter and Tailscale adapter (set by `posture-server`
    /// when it serves; admin subcommands leave it out).
    pub ssf: Option<Arc<crate::ssf::Transmitter>>,
}

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Server {
    /// Builds the server state: loads the policy and the EK CAs named in `config`.
    pub async fn new(store: Arc<dyn Store>, config: Config) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let policy = match &config.policy {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the policy {}", path.display()))?;
                Some(
                    Policy::from_str_auto(&text)
                        .with_context(|| format!("invalid policy {}", path.display()))?,
                )
            }
            None => None,
        };
        let mut ek_roots = Vec::new();
        for path in &config.enrollment.ek_roots {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read EK CAs {}", path.display()))?;
            ek_roots.extend(
                posture_core::attestation::parse_roots(&pem)
                    .with_context(|| format!("invalid EK CAs {}", path.display()))?,
            );
        }
        let attestation_ca = match (
            &config.enrollment.attestation_ca,
            &config.enrollment.attestation_ca_key,
        ) {
            (Some(dir), None) => Some(
                posture_core::attestation::AttestationCa::load(dir)
                    .with_context(|| format!("cannot load the attestation CA {}", dir.display()))?,
            ),
            (Some(dir), Some(uri)) => {
                use posture_core::attestation::{pkcs11::Pkcs11Key, AttestationCa, CaKey};
                let loaded = Pkcs11Key::open(uri)
                    .and_then(|key| AttestationCa::load_with_key(dir, CaKey::Pkcs11(key)));
                Some(
                    loaded.with_context(|| {
                        format!("cannot load the attestation CA {}", dir.display())
                    })?,
                )
            }
            (None, Some(_)) => anyhow::bail!(
                "[enrollment] attestation_ca_key needs attestation_ca (the CA's directory)"
            ),
            (None, None) => None,
        };
        let device_ca = crate::devcerts::load_ca(&config)?;
        if let Some(forward) = &config.forward_auth {
            forward.validate().map_err(anyhow::Error::msg)?;
        }
        let cloudflare = config
            .cloudflare
            .clone()
            .map(crate::cloudflare::AccessKeys::new)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let server_id = store.server_id().await?;
        let nonces = NonceKey::from_stored(&store.nonce_key().await?)
            .context("the database's nonce key (meta.nonce_key) is not 32 bytes of base64url")?;
        let minute = Duration::from_secs(60);
        Ok(Self {
            device_limiter: RateLimiter::new(config.limits.device_requests_per_minute, minute),
            client_limiter: RateLimiter::new(
                config.limits.device_requests_per_minute.saturating_mul(20),
                minute,
            ),
            keys: KeyCache::new(config.limits.cached_devices),
            credentials: CredentialCache::new(),
            nonces,
            cloudflare,
            ssf: None,
            store,
            policy,
            ek_roots,
            attestation_ca,
            device_ca,
            audience: format!("urn:posture-server:{server_id}"),
            config,
        })
    }

    /// Asks the transmitter to look for transitions now (after an admin action).
    pub fn announce_changes(&self) {
        if let Some(ssf) = &self.ssf {
            ssf.pump_now.notify_one();
        }
    }

    /// The freshness limit: the policy's `max_evidence_age`, else `stale_after`.
    pub fn freshness(&self) -> Duration {
        self.policy
            .as_ref()
            .and_then(|p| p.max_evidence_age)
            .unwrap_or(self.config.stale_after)
    }
}

// ---------------------------------------------------------------------------------------
// Credentials

/// Creates an API token; returns the secret (shown once, stored hashed).
pub async fn create_api_token(
    store: &dyn Store,
    name: &str,
    role: Role,
) -> Result<String, ApiError> {
    let secret = format!("pst_{}", crate::secret::random_token(32));
    store
        .insert_credential(&NewCredential {
            hash: crate::secret::hash(&secret),
            kind: CredentialKind::Api,
            role,
            name: name.to_owned(),
            created_at: crate::now(),
            expires_at: None,
        })
        .await?;
    Ok(secret)
}

/// Creates a one-time dashboard login link; returns its path (`/ui/login/CODE`).
pub async fn create_login_link(store: &dyn Store) -> Result<String, ApiError> {
    let code = crate::secret::random_token(24);
    let now = crate::now();
    store
        .insert_credential(&NewCredential {
            hash: crate::secret::hash(&code),
            kind: CredentialKind::Login,
            role: Role::Admin,
            name: "login link".into(),
            created_at: now,
            expires_at: Some(now + LOGIN_TTL.as_secs() as i64),
        })
        .await?;
    Ok(format!("/ui/login/{code}"))
}

/// Creates a dashboard session for `role`; returns the cookie secret.
pub async fn create_session(store: &dyn Store, role: Role) -> Result<String, ApiError> {
    let secret = crate::secret::random_token(32);
    let now = crate::now();
    store
        .insert_credential(&NewCredential {
            hash: crate::secret::hash(&secret),
            kind: CredentialKind::Session,
            role,
            name: "dashboard session".into(),
            created_at: now,
            expires_at: Some(now + SESSION_TTL.as_secs() as i64),
        })
        .await?;
    Ok(secret)
}

/// A created enrollment token.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    /// The secret, shown once.
    pub token: String,
    /// Its owner.
    pub owner: String,
    /// Expiry (seconds since the epoch).
    pub expires_at: i64,
}

/// Creates a single-use enrollment token for `owner`, valid for `ttl`.
pub async fn create_enrollment_token(
    store: &dyn Store,
    owner: &str,
    ttl: Duration,
) -> Result<CreatedToken, ApiError> {
    let owner = owner.trim();
    if owner.is_empty() || owner.len() > 254 || !owner.contains('@') {
        return Err(ApiError::bad_request(
            "invalid_owner",
            "the owner must be an e-mail address",
        ));
    }
    if ttl.is_zero() || ttl > Duration::from_secs(30 * 86400) {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            "the lifetime must be between 1 s and 30 days",
        ));
    }
    let token = format!("pet_{}", crate::secret::random_token(24));
    let now = crate::now();
    let expires_at = now + ttl.as_secs() as i64;
    store
        .insert_enrollment_token(&crate::secret::hash(&token), owner, now, expires_at)
        .await?;
    Ok(CreatedToken {
        token,
        owner: owner.to_owned(),
        expires_at,
    })
}

// ---------------------------------------------------------------------------------------
// Challenges

/// A fresh nonce for evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    /// Put it in `eat_nonce`.
    pub nonce: String,
    /// Put it in `aud`.
    pub audience: String,
    /// When it stops being accepted.
    pub expires_at: i64,
}

/// Issues a single-use nonce valid for [`NONCE_TTL`]. Nothing is stored: the nonce
/// carries its expiry under the server's MAC ([`crate::nonce`]) and is recorded only
/// when evidence spends it.
pub fn challenge(server: &Server) -> Challenge {
    let expires_at = crate::now() + NONCE_TTL.as_secs() as i64;
    Challenge {
        nonce: server.nonces.issue(expires_at),
        audience: server.audience.clone(),
        expires_at,
    }
}

/// Checks that `nonce` is one of this server's and unexpired at `now`: its expiry.
/// Whether it was spent is decided when it is recorded as spent.
pub fn check_nonce(server: &Server, nonce: &str, now: i64) -> Result<i64, ApiError> {
    server
        .nonces
        .check(nonce, now, NONCE_TTL)
        .map_err(|e| match e {
            crate::nonce::NonceError::Unknown => nonce_refused("not one of this server's nonces"),
            crate::nonce::NonceError::Expired => nonce_refused("expired"),
        })
}

fn nonce_refused(why: &str) -> ApiError {
    ApiError::bad_request(
        "nonce",
        format!(
            "the nonce is refused ({why}); fetch a new one from GET /v1/challenge for each \
             delivery"
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Enrollment

/// Where an enrolled device sends what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// The device's id here (its key's RFC 7638 thumbprint).
    pub device_id: String,
    /// Its owner.
    pub owner: String,
    /// What enrollment proved about its key.
    pub key_assurance: String,
    /// `ca`, `unverified` or `none`.
    pub ek_trust: String,
    /// `aud` for its evidence.
    pub audience: String,
    /// The AIK certificate and its intermediate (PEM), for WebAuthn `tpm` attestation:
    /// only for a TPM whose EK chained to a configured CA, where the server has an
    /// attestation CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aik_chain: Option<String>,
    /// Why no AIK certificate was issued for a CA-verified TPM (the enrollment stands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aik_refused: Option<String>,
}

/// The answer to the first TPM step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TpmBegun {
    /// Quote it in the second step.
    pub enrollment_id: String,
    /// For `TPM2_ActivateCredential` and `TPM2_Certify`.
    pub challenge: EnrollmentChallenge,
}

fn token_refused() -> ApiError {
    ApiError::forbidden(
        "invalid_token",
        "the enrollment token is unknown, expired or already used",
    )
}

fn attestation_refused(e: posture_core::attestation::AttestationError) -> ApiError {
    use posture_core::attestation::AttestationError as A;
    let code = match &e {
        A::Malformed { .. } | A::Unsupported(_) => "malformed_enrollment",
        A::EkCertificate(_) => "ek_untrusted",
        A::BadSignature(_) | A::Rejected(_) => "attestation_rejected",
    };
    ApiError::forbidden(code, e.to_string())
}

/// TPM step 1: checks the request (EK against the configured CAs), spends the token,
/// and returns the credential challenge.
pub async fn tpm_begin(
    server: &Server,
    token: &str,
    request: &EnrollmentRequest,
) -> Result<TpmBegun, ApiError> {
    let trust = if !server.ek_roots.is_empty() {
        EkTrust::Roots(&server.ek_roots)
    } else if server.config.enrollment.allow_unverified_ek {
        EkTrust::Unverified
    } else {
        return Err(ApiError::forbidden(
            "ek_untrusted",
            "this server has no EK CAs configured ([enrollment] ek_roots) and does not accept \
             unverified EKs ([enrollment] allow_unverified_ek)",
        ));
    };
    // Check the request before the token is spent: a bad request does not cost a token.
    let (challenge, pending) =
        begin_enrollment(request, trust, SystemTime::now()).map_err(attestation_refused)?;
    let now = crate::now();
    let owner = server
        .store
        .spend_enrollment_token(&crate::secret::hash(token), now)
        .await?
        .ok_or_else(token_refused)?;
    let id = crate::secret::random_token(18);
    let pending_json = pending
        .to_json()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    server
        .store
        .insert_pending(
            &id,
            &owner,
            &pending_json,
            now + PENDING_TTL.as_secs() as i64,
        )
        .await?;
    Ok(TpmBegun {
        enrollment_id: id,
        challenge,
    })
}

/// TPM step 2: checks the credential activation and the certification of the device
/// key, and records the device.
pub async fn tpm_finish(
    server: &Server,
    enrollment_id: &str,
    response: &EnrollmentResponse,
) -> Result<Enrolled, ApiError> {
    let (owner, pending_json) = server
        .store
        .take_pending(enrollment_id, crate::now())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_enrollment",
                "no such enrollment in progress (unknown, expired or finished)",
            )
        })?;
    let pending = PendingEnrollment::from_json(pending_json.as_bytes())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let device: EnrolledDevice =
        finish_enrollment(&pending, response).map_err(attestation_refused)?;
    let key = device.device_key().map_err(attestation_refused)?;
    let assurance = device.key_assurance().map_err(attestation_refused)?;
    let record = device
        .to_json()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    // Only a verified EK earns an AIK certificate; the rest enrol without one.
    let aik = match &server.attestation_ca {
        Some(ca) if device.ek_trust == posture_core::attestation::EK_TRUST_CA => {
            Some(issue_aik_chain(ca, &pending, response, &device))
        }
        _ => None,
    };
    let mut enrolled = record_device(
        server,
        NewDevice {
            id: posture_core::keys::key_id(&key),
            owner,
            key_kind: "tpm".into(),
            key_record: record,
            ek_trust: device.ek_trust.clone(),
            key_assurance: assurance.as_str().into(),
            enrolled_at: crate::now(),
            enrollment: crate::secret::random_token(12),
        },
    )
    .await?;
    match aik {
        Some(Ok(chain)) => enrolled.aik_chain = Some(chain),
        Some(Err(e)) => {
            tracing::warn!(device = %enrolled.device_id, error = %e, "no AIK certificate");
            enrolled.aik_refused = Some(e.to_string());
        }
        None => {}
    }
    Ok(enrolled)
}

/// The AIK certificate and the intermediate, PEM.
fn issue_aik_chain(
    ca: &posture_core::attestation::AttestationCa,
    pending: &PendingEnrollment,
    response: &EnrollmentResponse,
    device: &EnrolledDevice,
) -> Result<String, posture_core::attestation::AttestationError> {
    let tpm = posture_core::attestation::tpm_identity(&pending.request, &response.certify.attest)?;
    let aik = ca.issue_aik_certificate(device, &tpm, SystemTime::now())?;
    let mut pem = String::new();
    for der in ca.x5c(&aik) {
        pem.push_str(&posture_core::attestation::aikca::certificate_pem(&der)?);
    }
    Ok(pem)
}

async fn record_device(server: &Server, device: NewDevice) -> Result<Enrolled, ApiError> {
    match server.store.insert_device(&device).await {
        Ok(()) => {}
        Err(crate::store::StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_enrolled",
                "this device key is already enrolled; an admin can delete the device first",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(device = %device.id, owner = %device.owner, assurance = %device.key_assurance, "enrolled");
    Ok(Enrolled {
        device_id: device.id,
        owner: device.owner,
        key_assurance: device.key_assurance,
        ek_trust: device.ek_trust,
        audience: server.audience.clone(),
        aik_chain: None,
        aik_refused: None,
    })
}

/// Software-key enrollment: the device proves it holds the key with evidence bound to a
/// nonce from [`challenge`]; allowed only when `[enrollment] allow_software_keys`.
pub async fn software_enroll(
    server: &Server,
    token: &str,
    jwk: &str,
    proof: &str,
) -> Result<Enrolled, ApiError> {
    if !server.config.enrollment.allow_software_keys {
        return Err(ApiError::forbidden(
            "software_keys_not_allowed",
            "this server enrols only TPM-backed devices ([enrollment] allow_software_keys = false)",
        ));
    }
    let jwk =
        Jwk::from_json(jwk).map_err(|e| ApiError::bad_request("invalid_key", e.to_string()))?;
    let key = jwk
        .to_public_key()
        .map_err(|e| ApiError::bad_request("invalid_key", e.to_string()))?;
    let mut verifier = Verifier::new();
    let kid = verifier.add_key(key, Some(KeyAssurance::Software));
    let verified = verifier
        .verify(proof.as_bytes(), &verify_options(server))
        .map_err(evidence_refused)?;
    let nonce = verified
        .claims
        .eat_nonce
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("nonce", "the proof carries no nonce"))?;
    let now = crate::now();
    let nonce_expires_at = check_nonce(server, nonce, now)?;
    if server.store.device_key(&kid).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_enrolled",
            "this device key is already enrolled; an admin can delete the device first",
        ));
    }
    if !server.store.spend_nonce(nonce, nonce_expires_at).await? {
        return Err(ApiError::bad_request(
            "nonce",
            "the proof's nonce is unknown, expired or already used",
        ));
    }
    let owner = server
        .store
        .spend_enrollment_token(&crate::secret::hash(token), now)
        .await?
        .ok_or_else(token_refused)?;
    record_device(
        server,
        NewDevice {
            id: kid,
            owner,
            key_kind: "software".into(),
            key_record: serde_json::to_string(&Jwk::from_public_key(&key)).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?,
            ek_trust: "none".into(),
            key_assurance: KeyAssurance::Software.as_str().into(),
            enrolled_at: now,
            enrollment: crate::secret::random_token(12),
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Evidence

fn verify_options(server: &Server) -> VerifyOptions {
    VerifyOptions {
        audience: Some(server.audience.clone()),
        // The nonce is checked after the signature (its MAC and expiry) and recorded as
        // spent with the evidence.
        nonce: None,
        max_age: Some(NONCE_TTL + Duration::from_secs(60)),
        ..VerifyOptions::default()
    }
}

/// Maps a verifier refusal to an answer.
pub fn evidence_refused(e: VerifyError) -> ApiError {
    let status = match &e {
        VerifyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        VerifyError::Signature | VerifyError::KeyBinding | VerifyError::UnknownKid(_) => {
            StatusCode::FORBIDDEN
        }
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// The `kid` of a compact JWS, read before anything is verified, to find the device.
fn peek_kid(token: &[u8]) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct Header {
        kid: Option<String>,
    }
    let malformed = || ApiError::bad_request("malformed", "not a compact JWS with a kid");
    let header = token.split(|b| *b == b'.').next().ok_or_else(malformed)?;
    if header.len() > 4096 {
        return Err(malformed());
    }
    let text = std::str::from_utf8(header).map_err(|_| malformed())?;
    let bytes = b64url_decode(text).map_err(|_| malformed())?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    header.kid.ok_or_else(malformed)
}

/// Accepted evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// The device.
    pub device_id: String,
    /// `compliant` or `noncompliant` under the server's policy.
    pub status: String,
    /// The decision.
    pub decision: Decision,
}

/// The verifier for one enrolled device's key record.
pub fn device_verifier(device: &DeviceKey) -> Result<Verifier, ApiError> {
    let corrupt = |m: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m);
    let mut verifier = Verifier::new();
    match device.key_kind.as_str() {
        "tpm" => {
            let enrolled = EnrolledDevice::from_json(device.key_record.as_bytes())
                .map_err(|e| corrupt(e.to_string()))?;
            verifier
                .add_enrolled(&enrolled)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        _ => {
            let jwk = Jwk::from_json(&device.key_record).map_err(|e| corrupt(e.to_string()))?;
            let key = jwk.to_public_key().map_err(|e| corrupt(e.to_string()))?;
            verifier.add_key(key, Some(KeyAssurance::Software));
        }
    }
    Ok(verifier)
}

fn unknown_device() -> ApiError {
    ApiError::forbidden(
        "unknown_device",
        "the key that signed this evidence is not enrolled on this server",
    )
}

fn device_disabled() -> ApiError {
    ApiError::forbidden(
        "device_disabled",
        "this device was disabled by an administrator",
    )
}

/// The verifier of device `kid`: this replica's cached one, else read from the database
/// (and cached). A cached verifier is only ever used with its enrollment id, which
/// [`Store::ingest`] compares with the device row in the same transaction, so a device
/// deleted, disabled or enrolled again on another replica is never accepted with it.
async fn device_key(server: &Server, kid: &str) -> Result<Arc<crate::cache::CachedKey>, ApiError> {
    if let Some(key) = server.keys.get(kid) {
        return Ok(key);
    }
    let device = server
        .store
        .device_key(kid)
        .await?
        .ok_or_else(unknown_device)?;
    if device.disabled {
        return Err(device_disabled());
    }
    let verifier = device_verifier(&device)?;
    Ok(server.keys.insert(kid, verifier, device.enrollment))
}

/// Verifies and decides `token` with `key`: what to record.
fn verify_and_decide(
    server: &Server,
    key: &crate::cache::CachedKey,
    kid: &str,
    token: &[u8],
) -> Result<(Ingest, Decision), ApiError> {
    let verified = key
        .verifier
        .verify(token, &verify_options(server))
        .map_err(evidence_refused)?;
    let nonce = verified.claims.eat_nonce.clone().ok_or_else(|| {
        ApiError::bad_request(
            "nonce",
            "evidence must carry a nonce from GET /v1/challenge",
        )
    })?;
    let now = SystemTime::now();
    let nonce_expires_at = check_nonce(server, &nonce, unix(now))?;
    let report = &verified.claims.report;
    let decision = match &server.policy {
        Some(policy) => policy.decide_at(&verified, now),
        None => Policy::every_check_of(report).decide_at(&verified, now),
    };
    let status = if decision.is_allowed() {
        "compliant"
    } else {
        "noncompliant"
    };
    let json = |v: serde_json::Result<String>| {
        v.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
    };
    let ingest = Ingest {
        device_id: kid.to_owned(),
        enrollment: key.enrollment.clone(),
        nonce,
        nonce_expires_at,
        jti: verified.claims.jti.clone(),
        iat: i64::try_from(verified.claims.iat).unwrap_or(i64::MAX),
        received_at: unix(now),
        status: status.into(),
        failing: failing(report),
        host: report.device.hostname.clone(),
        serial_number: report.device.serial_number.clone(),
        decision_json: json(serde_json::to_string(&decision))?,
        report_json: json(serde_json::to_string(report))?,
    };
    Ok((ingest, decision))
}

/// Verifies, decides and records one piece of evidence. Nothing is stored unless every
/// check passed; when this returns `Ok` the evidence is durable.
pub async fn ingest(server: &Server, token: &[u8]) -> Result<Accepted, ApiError> {
    if token.len() > MAX_EVIDENCE_BYTES {
        return Err(evidence_refused(VerifyError::TooLarge {
            size: token.len(),
            max: MAX_EVIDENCE_BYTES,
        }));
    }
    let token = trim_ascii(token);
    let kid = peek_kid(token)?;
    if !server.device_limiter.allow(&kid) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this device",
        ));
    }
    let mut key = device_key(server, &kid).await?;
    // At most twice: a second time only when the device was enrolled again since its
    // key was cached here.
    for attempt in 0..2 {
        let (ingest, decision) = verify_and_decide(server, &key, &kid, token)?;
        let status = ingest.status.clone();
        match server.store.ingest(ingest).await? {
            Ok(()) => {
                return Ok(Accepted {
                    device_id: kid,
                    status,
                    decision,
                })
            }
            Err(IngestRefusal::Replay) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "replay",
                    "this evidence was already received",
                ))
            }
            Err(IngestRefusal::Nonce) => return Err(nonce_refused("already used")),
            Err(IngestRefusal::Device) => {
                server.keys.remove(&kid);
                return Err(ApiError::forbidden(
                    "device_disabled",
                    "this device was disabled or deleted meanwhile",
                ));
            }
            Err(IngestRefusal::Enrollment) if attempt == 0 => {
                server.keys.remove(&kid);
                key = device_key(server, &kid).await?;
            }
            Err(IngestRefusal::Enrollment) => break,
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "enrollment_changed",
        "the device was enrolled again while this evidence was checked; send it again",
    ))
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The ids of findings that did not pass.
pub fn failing(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.status != Status::Pass)
        .map(|f| f.id.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Decisions

/// The answer of `GET /v1/devices/{id}/decision`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceDecision {
    /// The device.
    pub device_id: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Denied because the latest evidence is older than the freshness limit.
    pub stale: bool,
    /// Every failed rule with the finding behind it.
    pub reasons: Vec<Reason>,
    /// `iat` of the evidence the decision rests on (RFC 3339), if any.
    pub evidence_issued_at: Option<String>,
    /// When that evidence arrived (RFC 3339).
    pub evidence_received_at: Option<String>,
    /// What enrollment proved about the device key.
    pub key_assurance: String,
}

fn rule(rule: &str, message: String) -> Reason {
    Reason {
        rule: rule.into(),
        message,
        finding: None,
        status: None,
        remediation: None,
    }
}

/// RFC 3339 of seconds since the epoch.
pub fn rfc3339(t: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The decision about `device` at `now`: disabled, never seen and stale devices are
/// denied; otherwise the policy's decision on its latest evidence.
pub fn decide(server: &Server, device: &Device, now: i64) -> DeviceDecision {
    let mut reasons = Vec::new();
    let mut stale = false;
    if device.disabled {
        reasons.push(rule(
            "device_disabled",
            "the device was disabled by an administrator".into(),
        ));
    }
    match (device.evidence_iat, &device.decision_json) {
        (Some(iat), Some(decision)) => {
            let freshness = server.freshness();
            let age = now.saturating_sub(iat);
            if age > freshness.as_secs() as i64 {
                stale = true;
                reasons.push(rule(
                    "stale",
                    format!(
                        "the latest evidence is {} old; the limit is {}",
                        humantime::format_duration(Duration::from_secs(age.max(0) as u64)),
                        humantime::format_duration(freshness)
                    ),
                ));
            }
            match serde_json::from_str::<Decision>(decision) {
                Ok(decision) => reasons.extend(decision.reasons),
                Err(_) => {
                    reasons.push(rule("internal", "the stored decision is unreadable".into()))
                }
            }
        }
        _ => reasons.push(rule(
            "no_evidence",
            "the device has not sent evidence yet".into(),
        )),
    }
    DeviceDecision {
        device_id: device.id.clone(),
        decision: if reasons.is_empty() { "allow" } else { "deny" }.into(),
        stale,
        reasons,
        evidence_issued_at: device.evidence_iat.map(rfc3339),
        evidence_received_at: device.last_seen.map(rfc3339),
        key_assurance: device.key_assurance.clone(),
    }
}

/// A device's status for people: `compliant`, `noncompliant`, `stale`, `disabled`, `new`.
pub fn display_status(server: &Server, device: &Device, now: i64) -> &'static str {
    if device.disabled {
        return "disabled";
    }
    let Some(iat) = device.evidence_iat else {
        return "new";
    };
    if now.saturating_sub(iat) > server.freshness().as_secs() as i64 {
        return "stale";
    }
    if device.status == "compliant" {
        "compliant"
    } else {
        "noncompliant"
    }
}
