//! The transmitter's SET signing keys: one P-256 key (ES256, the default) and one
//! 2048-bit RSA key (RS256, which the CAEP Interoperability Profile 1.0 requires), made on
//! first start in `STATE_DIR/ssf/` (directory 0700, files 0600, PKCS#8 PEM) and published
//! as the JWKS. Key material is zeroized when dropped (`p256::SecretKey`, `rsa`'s private
//! key and the PEM text in `Zeroizing` buffers).

use std::path::{Path, PathBuf};

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use posture_core::files::{create_private_dir, private_problem, write_new, PrivateKind};
use posture_core::jose::{b64url_encode, Jwk};
use rsa::pkcs1v15::SigningKey as RsaSigningKey;
use rsa::signature::SignatureEncoding as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// `alg` of a stream's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Alg {
    /// ECDSA P-256 SHA-256 (default).
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256 (CAEP Interoperability Profile 1.0).
    RS256,
}

/// Why the keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file or directory cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file that others can read or write, or owned by someone else.
    #[error("{path}: {problem} (a signing key must be private)")]
    NotPrivate {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A key file that is not a key of the expected kind.
    #[error("{path}: not a valid key: {message}")]
    Invalid {
        /// Where.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The two signing keys.
pub struct SigningKeys {
    ec: p256::ecdsa::SigningKey,
    ec_kid: String,
    ec_jwk: Jwk,
    rsa: RsaSigningKey<Sha256>,
    rsa_public: rsa::RsaPublicKey,
    rsa_kid: String,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKeys")
            .field("es256", &self.ec_kid)
            .field("rs256", &self.rsa_kid)
            .finish_non_exhaustive()
    }
}

const EC_FILE: &str = "set-es256.p8.pem";
const RSA_FILE: &str = "set-rs256.p8.pem";

impl SigningKeys {
    /// Loads the keys from `dir`, making the directory and any missing key first.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Io { path, source }
        };
        create_private_dir(dir).map_err(io(dir))?;
        check_private(dir, PrivateKind::Dir)?;
        let ec_path = dir.join(EC_FILE);
        let ec_pem = read_or_create(&ec_path, || {
            p256::SecretKey::random(&mut rand_core::OsRng)
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| e.to_string())
        })?;
        let ec_secret =
            p256::SecretKey::from_pkcs8_pem(&ec_pem).map_err(|e| KeyError::Invalid {
                path: ec_path.clone(),
                message: e.to_string(),
            })?;
        let rsa_path = dir.join(RSA_FILE);
        let rsa_pem = read_or_create(&rsa_path, || {
            let key =
                rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(|e| e.to_string())?;
            rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF)
                .map_err(|e| e.to_string())
        })?;
        let rsa_key =
            <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&rsa_pem)
                .map_err(|e| KeyError::Invalid {
                    path: rsa_path.clone(),
                    message: e.to_string(),
                })?;
        if rsa_key.size() < 256 {
            return Err(KeyError::Invalid {
                path: rsa_path,
                message: "RSA keys must have at least 2048 bits".into(),
            });
        }
        let ec_jwk = Jwk::from_public_key(&ec_secret.public_key());
        let rsa_public = rsa_key.to_public_key();
        Ok(Self {
            ec_kid: ec_jwk.thumbprint(),
            ec_jwk,
            ec: p256::ecdsa::SigningKey::from(&ec_secret),
            rsa_kid: rsa_thumbprint(&rsa_public),
            rsa: RsaSigningKey::<Sha256>::new(rsa_key),
            rsa_public,
        })
    }

    /// The JWKS document (public keys only).
    pub fn jwks(&self) -> Value {
        let mut ec = serde_json::to_value(&self.ec_jwk).unwrap_or(Value::Null);
        if let Some(object) = ec.as_object_mut() {
            object.insert("kid".into(), json!(self.ec_kid));
            object.insert("use".into(), json!("sig"));
            object.insert("alg".into(), json!("ES256"));
        }
        json!({ "keys": [ec, {
            "kty": "RSA",
            "n": b64url_encode(&self.rsa_public.n().to_bytes_be()),
            "e": b64url_encode(&self.rsa_public.e().to_bytes_be()),
            "kid": self.rsa_kid,
            "use": "sig",
            "alg": "RS256",
        }]})
    }

    /// Signs `claims` as a SET (`typ: secevent+jwt`) with `alg`.
    pub fn sign(&self, alg: Alg, claims: &Value) -> String {
        let (name, kid) = match alg {
            Alg::ES256 => ("ES256", &self.ec_kid),
            Alg::RS256 => ("RS256", &self.rsa_kid),
        };
        let header = json!({ "alg": name, "typ": "secevent+jwt", "kid": kid });
        let mut token = b64url_encode(header.to_string().as_bytes());
        token.push('.');
        token.push_str(&b64url_encode(claims.to_string().as_bytes()));
        let signature = match alg {
            Alg::ES256 => {
                let signature: p256::ecdsa::Signature = self.ec.sign(token.as_bytes());
                // Low-S, as posture-core's own verifier (and strict JOSE libraries) want.
                let signature = signature.normalize_s().unwrap_or(signature);
                signature.to_bytes().to_vec()
            }
            Alg::RS256 => self.rsa.sign(token.as_bytes()).to_vec(),
        };
        token.push('.');
        token.push_str(&b64url_encode(&signature));
        token
    }
}

/// RFC 7638 thumbprint of an RSA public key.
fn rsa_thumbprint(key: &rsa::RsaPublicKey) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        b64url_encode(&key.e().to_bytes_be()),
        b64url_encode(&key.n().to_bytes_be())
    );
    b64url_encode(&Sha256::digest(canonical.as_bytes()))
}

fn check_private(path: &Path, kind: PrivateKind) -> Result<(), KeyError> {
    match private_problem(path, kind) {
        Ok(None) => Ok(()),
        Ok(Some(problem)) => Err(KeyError::NotPrivate {
            path: path.to_owned(),
            problem,
        }),
        Err(source) => Err(KeyError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The PEM in `path`, made with `make` (and written 0600, never over a file that appeared
/// meanwhile) when there is none.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> Result<Zeroizing<String>, String>,
) -> Result<Zeroizing<String>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    if std::fs::symlink_metadata(path).is_err() {
        let pem = make().map_err(|message| KeyError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        match write_new(path, pem.as_bytes()) {
            Ok(()) => return Ok(pem),
            // Another process made it first: use that one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    check_private(path, PrivateKind::File)?;
    Ok(Zeroizing::new(std::fs::read_to_string(path).map_err(io)?))
}

// Checks Unix file modes.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keys_are_made_once_private_and_published_without_private_parts() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("ssf");
        let keys = SigningKeys::load_or_create(&keys_dir).unwrap();
        for file in [EC_FILE, RSA_FILE] {
            let mode = std::fs::metadata(keys_dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mode = std::fs::metadata(&keys_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let again = SigningKeys::load_or_create(&keys_dir).unwrap();
        assert_eq!(keys.jwks(), again.jwks());
        let jwks = keys.jwks().to_string();
        assert!(!jwks.contains("\"d\""), "{jwks}");
        assert!(!jwks.contains("\"p\""), "{jwks}");
        let token = keys.sign(Alg::ES256, &json!({"a": 1}));
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("ssf");
        SigningKeys::load_or_create(&keys_dir).unwrap();
        let path = keys_dir.join(EC_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKeys::load_or_create(&keys_dir).unwrap_err();
        assert!(matches!(err, KeyError::NotPrivate { .. }), "{err}");
    }
}
