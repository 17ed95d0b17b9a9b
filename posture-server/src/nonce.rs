//! Challenge nonces that cost the database nothing until they are spent.
//!
//! `GET /v1/challenge` answers a nonce the server can recognise later without having
//! stored it: 16 random bytes, the expiry (seconds since the epoch, 8 bytes big-endian)
//! and an HMAC-SHA256 tag over both (truncated to 16 bytes), keyed by the server's nonce
//! key, base64url (54 characters; evidence allows 8–64). Checking one is a MAC
//! (compared in constant time) and the expiry; only a nonce that passes, carried by
//! evidence that passed every other check, is recorded — as spent, in the transaction
//! that records the evidence (`spent_nonces`, migration 50), which refuses a nonce
//! recorded before. So a nonce stays single use, and an unauthenticated client asking
//! for challenges makes the server write nothing.
//!
//! The key is 32 random bytes made once, when the database is first migrated, and kept
//! in the database (`meta.nonce_key`) beside the server id: replicas sharing PostgreSQL
//! share it, and the default SQLite database is inside the state directory (0700); the
//! key is as well kept as the database's other secrets' hashes. Whoever can read the
//! database can mint nonces, which gains nothing without a device's signing key; the
//! expiry is bounded besides ([`NonceKey::check`] refuses one valid for longer than
//! [`crate::domain::NONCE_TTL`] from now, so even a minted nonce cannot be stockpiled).

use base64ct::{Base64UrlUnpadded, Encoding as _};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Random bytes of a nonce.
const RANDOM: usize = 16;
/// Bytes of the truncated tag.
const TAG: usize = 16;
/// Bytes of a decoded nonce: random, expiry, tag.
const LEN: usize = RANDOM + 8 + TAG;
/// Domain separation: this key signs nothing else, but a tag should say what it is for.
const CONTEXT: &[u8] = b"posture-server nonce v1\0";

/// The server's nonce key (never printed).
pub struct NonceKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Not one of this server's nonces (wrong length, encoding or tag).
    Unknown,
    /// Its expiry has passed.
    Expired,
}

impl NonceKey {
    /// A new random key, in its stored form (base64url).
    pub fn generate() -> String {
        crate::secret::random_token(32)
    }

    /// The key from its stored form.
    pub fn from_stored(text: &str) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        let decoded = Base64UrlUnpadded::decode(text.trim(), key.as_mut()).ok()?;
        (decoded.len() == 32).then_some(Self(key))
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.as_ref()) {
            Ok(mac) => mac,
            // HMAC takes keys of any length: not reachable.
            Err(_) => std::process::abort(),
        };
        mac.update(CONTEXT);
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    /// A new nonce valid until `expires_at`.
    pub fn issue(&self, expires_at: i64) -> String {
        let mut bytes = [0u8; LEN];
        if getrandom::getrandom(&mut bytes[..RANDOM]).is_err() {
            // As crate::secret: never hand out a predictable nonce.
            std::process::abort();
        }
        bytes[RANDOM..RANDOM + 8].copy_from_slice(&expires_at.to_be_bytes());
        let tag = self.tag(&bytes[..RANDOM + 8]);
        bytes[RANDOM + 8..].copy_from_slice(&tag);
        Base64UrlUnpadded::encode_string(&bytes)
    }

    /// Checks that `nonce` is one of this key's, unexpired at `now` and not valid for
    /// longer than `ttl` from `now`; returns its expiry. Whether it was spent is the
    /// database's to say.
    pub fn check(
        &self,
        nonce: &str,
        now: i64,
        ttl: std::time::Duration,
    ) -> Result<i64, NonceError> {
        let mut bytes = [0u8; LEN];
        // The exact length only: `decode` into a buffer of LEN accepts shorter input.
        if nonce.len() != Base64UrlUnpadded::encoded_len(&bytes) {
            return Err(NonceError::Unknown);
        }
        let decoded =
            Base64UrlUnpadded::decode(nonce, &mut bytes).map_err(|_| NonceError::Unknown)?;
        if decoded.len() != LEN {
            return Err(NonceError::Unknown);
        }
        // One spelling per nonce: spent nonces are recorded as text, so a second spelling
        // of the same bytes (other unused bits in the last character) would be a second
        // use.
        if Base64UrlUnpadded::encode_string(&bytes) != nonce {
            return Err(NonceError::Unknown);
        }
        let expected = self.tag(&bytes[..RANDOM + 8]);
        if !bool::from(expected.ct_eq(&bytes[RANDOM + 8..])) {
            return Err(NonceError::Unknown);
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&bytes[RANDOM..RANDOM + 8]);
        let expires_at = i64::from_be_bytes(expiry);
        if expires_at < now {
            return Err(NonceError::Expired);
        }
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        if expires_at > now.saturating_add(ttl) {
            // Only the key's holder makes these, and this server never does.
            return Err(NonceError::Unknown);
        }
        Ok(expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TTL: Duration = Duration::from_secs(120);

    fn key() -> NonceKey {
        NonceKey::from_stored(&NonceKey::generate()).unwrap()
    }

    #[test]
    fn a_nonce_checks_until_it_expires() {
        let key = key();
        let nonce = key.issue(1_000_120);
        assert_eq!(nonce.len(), 54);
        assert_eq!(key.check(&nonce, 1_000_000, TTL), Ok(1_000_120));
        assert_eq!(key.check(&nonce, 1_000_120, TTL), Ok(1_000_120));
        assert_eq!(key.check(&nonce, 1_000_121, TTL), Err(NonceError::Expired));
        // Two nonces with the same expiry differ.
        assert_ne!(key.issue(1_000_120), nonce);
    }

    #[test]
    fn another_key_a_changed_byte_or_a_far_expiry_is_refused() {
        let (key, other) = (key(), key());
        let nonce = key.issue(1_000_120);
        assert_eq!(
            other.check(&nonce, 1_000_000, TTL),
            Err(NonceError::Unknown)
        );
        // Every single-character change is refused (the tag covers random and expiry).
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..nonce.len() {
            let mut changed = nonce.clone().into_bytes();
            let c = alphabet.bytes().find(|c| *c != changed[i]).unwrap();
            changed[i] = c;
            let changed = String::from_utf8(changed).unwrap();
            assert!(key.check(&changed, 1_000_000, TTL).is_err(), "{changed}");
        }
        // The last character carries 2 bits of the tag and 4 unused ones: another
        // spelling of the same bytes is refused too.
        let last = nonce.as_bytes()[53];
        let pos = alphabet.bytes().position(|c| c == last).unwrap();
        let respelled = format!("{}{}", &nonce[..53], &alphabet[pos + 1..pos + 2]);
        assert_eq!(
            key.check(&respelled, 1_000_000, TTL),
            Err(NonceError::Unknown)
        );
        for bad in ["", "made-up-nonce-123", &nonce[..53], &format!("{nonce}A")] {
            assert_eq!(
                key.check(bad, 1_000_000, TTL),
                Err(NonceError::Unknown),
                "{bad}"
            );
        }
        // Valid for longer than the TTL: only someone holding the key made it.
        let far = key.issue(1_000_000 + 121);
        assert_eq!(key.check(&far, 1_000_000, TTL), Err(NonceError::Unknown));
    }

    #[test]
    fn the_stored_key_must_be_32_bytes_and_is_not_printed() {
        assert!(NonceKey::from_stored("c2hvcnQ").is_none());
        assert!(NonceKey::from_stored("not base64!").is_none());
        let stored = NonceKey::generate();
        let key = NonceKey::from_stored(&stored).unwrap();
        assert_eq!(format!("{key:?}"), "NonceKey(..)");
    }
}
