//! Random secrets and how they are stored (only their SHA-256).

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};

/// `bytes` random bytes from the OS, base64url. Falls back to nothing: an error from the
/// OS random source is fatal for a server handing out secrets, so the caller gets an
/// empty-free token only when getrandom succeeds.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::getrandom(&mut buf).is_err() {
        // getrandom(2) does not fail on Linux once the pool is initialised; abort rather
        // than hand out a predictable secret.
        std::process::abort();
    }
    Base64UrlUnpadded::encode_string(&buf)
}

/// The stored form of a secret: lowercase hex SHA-256.
pub fn hash(secret: &str) -> String {
    posture_core::hex::encode(&Sha256::digest(secret.as_bytes()))
}
