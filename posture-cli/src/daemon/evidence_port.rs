//! The one seam between the daemon and evidence signing, policy and CAEP export.
//!
//! TEMPORARY: [`InterimEvidence`] signs a minimal ES256 compact JWS with a software P-256
//! key and treats "every check passed" as compliant. It exists so the daemon works end to
//! end before `posture_core::{keys::software, evidence, policy, exports::caep}` are merged;
//! then this file is replaced by an implementation of [`EvidenceSource`] that calls
//! `SoftwareKey::load_or_create`, `sign_evidence`, `Policy` and `caep::compliance_change`.
//! Nothing else in the daemon knows how evidence is made.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use posture_core::keys::{KeyAssurance, KeyError, Signer};
use posture_core::{Report, Status};
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// CAEP 1.0 event type URI of a device compliance change.
pub const CAEP_DEVICE_COMPLIANCE_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";

/// Overall compliance of a report under the configured policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Whether the device is compliant.
    pub compliant: bool,
    /// Why not (empty when compliant), in words for an administrator.
    pub reasons: Vec<String>,
}

/// Errors of the evidence seam.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The key could not be loaded, created or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Claims could not be encoded.
    #[error("encoding evidence: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Signs evidence, evaluates compliance and makes compliance-change events.
pub trait EvidenceSource: Send + Sync + std::fmt::Debug {
    /// Freshly signed evidence of `report`, bound to the caller's nonce and audience.
    fn sign(
        &self,
        report: &Report,
        nonce: Option<&str>,
        audience: Option<&str>,
    ) -> Result<String, PortError>;
    /// Overall compliance of `report` under the policy.
    fn assess(&self, report: &Report) -> Assessment;
    /// A signed CAEP `device-compliance-change` SET.
    fn compliance_event(
        &self,
        report: &Report,
        previous: bool,
        current: &Assessment,
        audience: Option<&str>,
    ) -> Result<String, PortError>;
    /// The device key's public half, as a JWK (for `/v1/health` and enrollment).
    fn public_jwk(&self) -> Value;
}

/// TEMPORARY implementation; see the module documentation.
#[derive(Debug)]
pub struct InterimEvidence {
    key: InterimKey,
    ttl: Duration,
}

impl InterimEvidence {
    /// Loads or creates the software key in `key_dir`.
    pub fn load_or_create(key_dir: &Path, ttl: Duration) -> Result<Self, PortError> {
        Ok(Self {
            key: InterimKey::load_or_create(key_dir)?,
            ttl,
        })
    }

    fn jws(&self, typ: &str, claims: &Value) -> Result<String, PortError> {
        let header = json!({ "alg": "ES256", "typ": typ });
        let signing_input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(&serde_json::to_vec(&header)?),
            Base64UrlUnpadded::encode_string(&serde_json::to_vec(claims)?)
        );
        let signature = self.key.sign(signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        ))
    }
}

impl EvidenceSource for InterimEvidence {
    fn sign(
        &self,
        report: &Report,
        nonce: Option<&str>,
        audience: Option<&str>,
    ) -> Result<String, PortError> {
        let now = unix_now();
        let mut claims = json!({
            "iat": now,
            "exp": now + self.ttl.as_secs(),
            "jti": new_jti(),
            "swname": "posture",
            "swversion": env!("CARGO_PKG_VERSION"),
            "key_assurance": self.key.assurance().as_str(),
            "posture": report,
        });
        if let Some(object) = claims.as_object_mut() {
            if let Some(nonce) = nonce {
                object.insert("eat_nonce".into(), nonce.into());
            }
            if let Some(audience) = audience {
                object.insert("aud".into(), audience.into());
            }
        }
        self.jws("posture-evidence+jwt", &claims)
    }

    fn assess(&self, report: &Report) -> Assessment {
        let reasons = report
            .findings
            .iter()
            .filter(|f| f.status != Status::Pass)
            .map(|f| format!("{}: {} ({})", f.id, f.status.as_str(), f.summary))
            .collect::<Vec<_>>();
        Assessment {
            compliant: reasons.is_empty(),
            reasons,
        }
    }

    fn compliance_event(
        &self,
        report: &Report,
        previous: bool,
        current: &Assessment,
        audience: Option<&str>,
    ) -> Result<String, PortError> {
        let now = unix_now();
        let status = |compliant: bool| {
            if compliant {
                "compliant"
            } else {
                "not-compliant"
            }
        };
        let mut event = json!({
            "previous_status": status(previous),
            "current_status": status(current.compliant),
            "event_timestamp": now,
        });
        if !current.reasons.is_empty() {
            if let Some(object) = event.as_object_mut() {
                object.insert(
                    "reason_admin".into(),
                    json!({ "en": current.reasons.join("; ") }),
                );
            }
        }
        let mut claims = json!({
            "iss": format!("posture:device:{}", report.device.id),
            "iat": now,
            "jti": new_jti(),
            "sub_id": { "format": "opaque", "id": report.device.id },
            "events": { CAEP_DEVICE_COMPLIANCE_CHANGE: event },
        });
        if let (Some(audience), Some(object)) = (audience, claims.as_object_mut()) {
            object.insert("aud".into(), audience.into());
        }
        self.jws("secevent+jwt", &claims)
    }

    fn public_jwk(&self) -> Value {
        let point = p256::EncodedPoint::from(self.key.public_key());
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": point.x().map(|x| Base64UrlUnpadded::encode_string(x)),
            "y": point.y().map(|y| Base64UrlUnpadded::encode_string(y)),
            "key_assurance": self.key.assurance().as_str(),
        })
    }
}

/// A fresh random `jti` (128 bits, hex).
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only without any OS entropy source; a time-based id is then
    // still unique enough for de-duplication and never a secret.
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// TEMPORARY software key: a raw P-256 scalar in a 0600 file in a 0700 directory.
#[derive(Debug)]
struct InterimKey {
    key: SigningKey,
}

const KEY_FILE: &str = "interim-device-key.p256";

impl InterimKey {
    fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Io { path, source }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        owner_only(dir, 0o700)?;
        let path = dir.join(KEY_FILE);
        match OpenOptions::new().read(true).open(&path) {
            Ok(mut file) => {
                owner_only(&path, 0o600)?;
                let mut bytes = Zeroizing::new(Vec::with_capacity(32));
                file.read_to_end(&mut bytes).map_err(io(&path))?;
                let key = SigningKey::from_slice(&bytes).map_err(|e| KeyError::InvalidKey {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(&path),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let key = loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::getrandom(bytes.as_mut_slice())
                .map_err(|e| KeyError::Signing(format!("no randomness for a new key: {e}")))?;
            // A random 32-byte string is a valid scalar except with negligible probability.
            if let Ok(key) = SigningKey::from_slice(bytes.as_slice()) {
                break key;
            }
        };
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(&Zeroizing::new(key.to_bytes()))
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self { key })
    }
}

impl Signer for InterimKey {
    fn public_key(&self) -> p256::PublicKey {
        p256::PublicKey::from(self.key.verifying_key())
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, KeyError> {
        self.key
            .try_sign(message)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }

    fn assurance(&self) -> KeyAssurance {
        KeyAssurance::Software
    }
}

fn owner_only(path: &Path, expected: u32) -> Result<(), KeyError> {
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        path: PathBuf::from(path),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    let problem = if mode & 0o077 != 0 {
        Some(format!("mode {mode:04o}, expected {expected:04o}"))
    } else if Some(meta.uid()) != super::settings::effective_uid() {
        Some(format!("owned by uid {}, not by this user", meta.uid()))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::VerifyingKey;

    fn report() -> Report {
        let device = posture_core::Device {
            id: "ab".repeat(32),
            hostname: "laptop".into(),
            vendor: None,
            model: None,
        };
        Report::new(
            device,
            posture_core::OsFacts::default(),
            posture_core::Timestamp::now(),
            vec![posture_core::Finding::pass("os", "Debian 12")],
        )
    }

    fn claims(jws: &str) -> Value {
        let payload = jws.split('.').nth(1).unwrap();
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).unwrap()).unwrap()
    }

    #[test]
    fn evidence_verifies_and_carries_the_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let source =
            InterimEvidence::load_or_create(&dir.path().join("keys"), Duration::from_secs(60))
                .unwrap();
        let jws = source
            .sign(&report(), Some("n0nce-123"), Some("idp"))
            .unwrap();
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let sig = Signature::from_slice(&Base64UrlUnpadded::decode_vec(sig).unwrap()).unwrap();
        let key = VerifyingKey::from(&source.key.public_key());
        key.verify(input.as_bytes(), &sig).unwrap();
        let claims = claims(&jws);
        assert_eq!(claims["eat_nonce"], "n0nce-123");
        assert_eq!(claims["aud"], "idp");
        assert_eq!(claims["posture"]["findings"][0]["id"], "os");
    }

    #[test]
    fn key_survives_reload_and_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = InterimKey::load_or_create(&keys).unwrap();
        let second = InterimKey::load_or_create(&keys).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        let mode = std::fs::metadata(keys.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            InterimKey::load_or_create(&keys),
            Err(KeyError::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn compliance_event_is_a_caep_set() {
        let dir = tempfile::tempdir().unwrap();
        let source =
            InterimEvidence::load_or_create(&dir.path().join("keys"), Duration::from_secs(60))
                .unwrap();
        let current = Assessment {
            compliant: false,
            reasons: vec!["os: fail".into()],
        };
        let set = source
            .compliance_event(&report(), true, &current, Some("idp"))
            .unwrap();
        let claims = claims(&set);
        let event = &claims["events"][CAEP_DEVICE_COMPLIANCE_CHANGE];
        assert_eq!(event["previous_status"], "compliant");
        assert_eq!(event["current_status"], "not-compliant");
        assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    }
}
