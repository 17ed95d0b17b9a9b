//! TPM-wrapped key blobs on disk: the public part (`TPMT_PUBLIC`) and the private part
//! (`TPM2B_PRIVATE` contents, encrypted by the parent key inside the TPM).

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use base64ct::{Base64, Encoding as _};
use serde::{Deserialize, Serialize};

use posture_core::keys::KeyError;

const BLOB_VERSION: u32 = 1;
/// Blobs are small (a few hundred bytes); anything bigger is not ours.
const MAX_BLOB_BYTES: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobFile {
    version: u32,
    /// What the key is, for people reading the file.
    kind: String,
    /// Marshalled `TPMT_PUBLIC`, base64.
    public: String,
    /// `TPM2B_PRIVATE` contents, base64 (TPM-wrapped).
    private: String,
}

/// A key's public and TPM-wrapped private parts.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub public: Vec<u8>,
    pub private: Vec<u8>,
}

fn invalid(path: &Path, message: impl Into<String>) -> KeyError {
    KeyError::InvalidKey {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a blob; `Ok(None)` when the file does not exist.
pub(crate) fn load(path: &Path) -> Result<Option<Blob>, KeyError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    if meta.len() > MAX_BLOB_BYTES {
        return Err(invalid(path, "file too large for a key blob"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            problem: format!("mode {mode:04o}, expected 0600"),
        });
    }
    let text = std::fs::read(path).map_err(io(path))?;
    let file: BlobFile = serde_json::from_slice(&text).map_err(|e| invalid(path, e.to_string()))?;
    if file.version != BLOB_VERSION {
        return Err(invalid(path, format!("blob version {}", file.version)));
    }
    Ok(Some(Blob {
        public: Base64::decode_vec(&file.public)
            .map_err(|e| invalid(path, format!("public: {e}")))?,
        private: Base64::decode_vec(&file.private)
            .map_err(|e| invalid(path, format!("private: {e}")))?,
    }))
}

/// Creates the owner-only state directory if needed and refuses one others can write.
pub(crate) fn ensure_state_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: dir.to_owned(),
            problem: format!("directory mode {mode:04o} is writable by others, expected 0700"),
        });
    }
    Ok(())
}

/// Writes a blob atomically (temp file + rename), mode 0600.
pub(crate) fn save(path: &Path, kind: &str, blob: &Blob) -> Result<(), KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_state_dir(dir)?;
    let file = BlobFile {
        version: BLOB_VERSION,
        kind: kind.to_owned(),
        public: Base64::encode_string(&blob.public),
        private: Base64::encode_string(&blob.private),
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| invalid(path, e.to_string()))?;
    posture_core::files::write_private(path, &text).map_err(io(path))
}
