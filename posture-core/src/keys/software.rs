//! The software device key: a P-256 key in a PKCS#8 file.
//!
//! The file is `device-key.p8.pem` in a directory the caller chooses (the CLI uses
//! `/var/lib/posture` as root, the user's data directory otherwise). It is created on first
//! use, atomically (written to a temporary file, then linked into place so two processes
//! racing on first use end up with the same key), with mode 0600 in a 0700 directory.
//! A key file or directory that others can read or write, or that someone else owns, is
//! refused: a key that may have been copied is not a device key.
//!
//! The private key is zeroized when dropped (`p256::SecretKey` and `SigningKey` zeroize
//! on drop; the PEM text is held in `Zeroizing` buffers).

use std::fs;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::{KeyAssurance, KeyError, Signer};
use crate::files::PrivateKind;

/// File name of the key inside its directory.
pub const KEY_FILE_NAME: &str = "device-key.p8.pem";

/// A P-256 device key held in memory, loaded from (or created in) a key directory.
pub struct SoftwareKey {
    signing: SigningKey,
    public: PublicKey,
    path: PathBuf,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SoftwareKey")
            .field("path", &self.path)
            .field("kid", &crate::jose::key_id(&self.public))
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// Loads the key from `dir`, creating the directory (0700) and the key (0600) on first
    /// use. Refuses a directory or key file with group/other permissions or another owner.
    pub fn load_or_create(dir: &Path) -> Result<SoftwareKey, KeyError> {
        ensure_private_dir(dir)?;
        let path = dir.join(KEY_FILE_NAME);
        match fs::symlink_metadata(&path) {
            Ok(_) => Self::load(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(dir, &path),
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    /// Loads an existing key file, checking its owner and mode first.
    pub fn load(path: &Path) -> Result<SoftwareKey, KeyError> {
        check_private(path, PrivateKind::File)?;
        let pem = Zeroizing::new(fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?);
        let secret = SecretKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::InvalidKey {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self::from_secret(secret, path.to_owned()))
    }

    fn create(dir: &Path, path: &Path) -> Result<SoftwareKey, KeyError> {
        let secret = SecretKey::random(&mut OsRng);
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Signing(format!("cannot encode the new key: {e}")))?;
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut suffix = [0u8; 8];
        OsRng.fill_bytes(&mut suffix);
        let tmp = dir.join(format!(
            ".{KEY_FILE_NAME}.{}.tmp",
            crate::jose::b64url_encode(&suffix)
        ));
        let result = crate::files::write_new(&tmp, pem.as_bytes()).and_then(|()| {
            // hard_link fails if the key appeared meanwhile (another process won the race);
            // then that key is the device key and ours is discarded.
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        });
        let _ = fs::remove_file(&tmp);
        if result.map_err(io)? {
            Ok(Self::from_secret(secret, path.to_owned()))
        } else {
            Self::load(path)
        }
    }

    fn from_secret(secret: SecretKey, path: PathBuf) -> Self {
        let public = secret.public_key();
        Self {
            signing: SigningKey::from(&secret),
            public,
            path,
        }
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Signer for SoftwareKey {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, KeyError> {
        let signature: Signature = self
            .signing
            .try_sign(message)
            .map_err(|e| KeyError::Signing(e.to_string()))?;
        // Low-S only: verifiers refuse the malleable high-S twin.
        Ok(signature.normalize_s().unwrap_or(signature))
    }

    fn assurance(&self) -> KeyAssurance {
        KeyAssurance::Software
    }
}

fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    if !dir.exists() {
        create_private_dir(dir).map_err(|source| KeyError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    check_private(dir, PrivateKind::Dir)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // Only the last component is made owner-only; parents are ordinary directories
    // (e.g. ~/.local/share) and are created as such.
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    // As on Unix, only the last component is made owner-only.
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    crate::files::create_private_dir(dir)
}

fn check_private(path: &Path, kind: PrivateKind) -> Result<(), KeyError> {
    let problem = crate::files::private_problem(path, kind).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    match problem {
        None => Ok(()),
        Some(problem) => Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            problem,
        }),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let first = SoftwareKey::load_or_create(&dir).unwrap();
        let second = SoftwareKey::load_or_create(&dir).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        let file_mode = fs::metadata(dir.join(KEY_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(file_mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let pem = fs::read_to_string(dir.join(KEY_FILE_NAME)).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn signatures_verify_with_the_public_key() {
        use p256::ecdsa::signature::Verifier;
        let tmp = tempfile::tempdir().unwrap();
        let key = SoftwareKey::load_or_create(&tmp.path().join("k")).unwrap();
        let sig = key.sign(b"hello").unwrap();
        let vk = p256::ecdsa::VerifyingKey::from(&key.public_key());
        assert!(vk.verify(b"hello", &sig).is_ok());
        assert!(vk.verify(b"hellp", &sig).is_err());
        assert_eq!(key.assurance(), KeyAssurance::Software);
    }

    #[test]
    fn refuses_a_key_file_readable_by_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        SoftwareKey::load_or_create(&dir).unwrap();
        let file = dir.join(KEY_FILE_NAME);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SoftwareKey::load_or_create(&dir).unwrap_err();
        assert!(matches!(err, KeyError::InsecurePermissions { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("mode 0644") && text.contains("chmod 0600"),
            "{text}"
        );
    }

    #[test]
    fn refuses_a_key_directory_open_to_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = SoftwareKey::load_or_create(&dir).unwrap_err();
        assert!(err.to_string().contains("mode 0755"), "{err}");
        // And nothing was created in it.
        assert!(!dir.join(KEY_FILE_NAME).exists());
    }

    #[test]
    fn refuses_a_key_file_owned_by_someone_else() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        SoftwareKey::load_or_create(&dir).unwrap();
        let file = dir.join(KEY_FILE_NAME);
        // chown needs root; as an ordinary user this case cannot be built, so it is
        // exercised where the tests run as root (CI does).
        if let Err(e) = std::os::unix::fs::chown(&file, Some(65534), None) {
            // CI runs the tests as root: there this case must be exercised.
            assert!(
                std::env::var_os("CI").is_none(),
                "chown as root failed: {e}"
            );
            eprintln!("NOT RUN on this machine: not allowed to chown (not root); CI runs it");
            return;
        }
        assert_eq!(fs::metadata(&file).unwrap().uid(), 65534);
        let err = SoftwareKey::load_or_create(&dir).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("owned by uid 65534"), "{text}");
    }

    #[test]
    fn refuses_a_symlinked_key_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        let key = SoftwareKey::load_or_create(&dir).unwrap();
        let moved = tmp.path().join("elsewhere.pem");
        fs::rename(key.path(), &moved).unwrap();
        std::os::unix::fs::symlink(&moved, dir.join(KEY_FILE_NAME)).unwrap();
        let err = SoftwareKey::load_or_create(&dir).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("k");
        SoftwareKey::load_or_create(&dir).unwrap();
        fs::write(dir.join(KEY_FILE_NAME), "not a key").unwrap();
        let err = SoftwareKey::load_or_create(&dir).unwrap_err();
        assert!(matches!(err, KeyError::InvalidKey { .. }), "{err}");
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let key = SoftwareKey::load_or_create(&tmp.path().join("k")).unwrap();
        let pem = fs::read_to_string(key.path()).unwrap();
        let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!format!("{key:?}").contains(&body));
    }
}

#[cfg(test)]
#[cfg(windows)]
mod windows_tests {
    use super::*;

    #[test]
    fn the_key_directory_is_private_and_its_key_loads_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let first = SoftwareKey::load_or_create(&dir).unwrap();
        let second = SoftwareKey::load_or_create(&dir).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(
            crate::files::private_problem(&dir, PrivateKind::Dir).unwrap(),
            None
        );
        assert_eq!(
            crate::files::private_problem(&dir.join(KEY_FILE_NAME), PrivateKind::File).unwrap(),
            None
        );
    }
}
