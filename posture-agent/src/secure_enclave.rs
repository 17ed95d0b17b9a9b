//! The macOS device key in the Secure Enclave (T2 and Apple silicon Macs): a P-256 key
//! generated inside the enclave, which never leaves it (not even to the keychain: the
//! keychain item only references it), used through Apple's Security framework
//! (`security-framework` crate, its maintained safe bindings).
//!
//! The key is a permanent item in the data protection keychain, labelled per key directory
//! (as the Windows provider key is named), accessible after the first unlock on this device
//! only (`kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`, so a launchd daemon can sign
//! while nobody is logged in, and a backup restored elsewhere does not carry it), usable
//! for signing without user presence (`kSecAccessControlPrivateKeyUsage`).
//!
//! What it is worth, honestly: the Secure Enclave gives **no attestation** a verifier can
//! check (no EK, no certify, no quote; Apple's key attestation is only for MDM-managed
//! devices through the ACME payload), so a verifier cannot tell this key from a software
//! key. [`Signer::assurance`] is therefore `software`, never `tpm`: the key is better
//! protected than a key file, but the evidence claims only what can be proven.
//!
//! Known limit: Apple allows data protection keychain items only to code-signed programs
//! with a `keychain-access-groups` entitlement. An unsigned build (every `cargo build`)
//! gets `errSecMissingEntitlement` (-34018) and falls back to the software key, with that
//! reason in the evidence.

use std::path::Path;

use p256::ecdsa::Signature;
use posture_core::keys::{KeyAssurance, KeyError, Signer};
use security_framework::access_control::{ProtectionMode, SecAccessControl};
use security_framework::item::{ItemClass, ItemSearchOptions, Location, Reference, SearchResult};
use security_framework::key::{Algorithm, GenerateKeyOptions, KeyType, SecKey, Token};
use sha2::{Digest, Sha256};

/// `kSecAccessControlPrivateKeyUsage` (`SecAccessControl.h`): the private key may sign.
const PRIVATE_KEY_USAGE: usize = 1 << 30;

/// `errSecMissingEntitlement`: the program is not signed with a keychain access group.
const ERR_MISSING_ENTITLEMENT: i64 = -34018;

/// The device key in the Secure Enclave.
#[derive(Debug)]
pub struct SecureEnclaveSigner {
    key: SecKey,
    public: p256::PublicKey,
    label: String,
}

/// The keychain label of the device key of `key_dir`: one key per key directory.
pub fn key_label(key_dir: &Path) -> String {
    let digest = Sha256::digest(key_dir.to_string_lossy().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("posture-device-key-{hex}")
}

fn unavailable(doing: &str, code: i64, message: String) -> KeyError {
    let why = if code == ERR_MISSING_ENTITLEMENT {
        "this build of posture is not code-signed with a keychain access group, which the \
         Secure Enclave's keychain requires"
            .to_owned()
    } else {
        message
    };
    KeyError::Unsupported(format!("Secure Enclave: {doing}: {why} (OSStatus {code})"))
}

impl SecureEnclaveSigner {
    /// Opens the device key of `key_dir`, creating it in the Secure Enclave on first use.
    pub fn load_or_create(key_dir: &Path) -> Result<Self, KeyError> {
        let label = key_label(key_dir);
        let key = match find(&label)? {
            Some(key) => key,
            None => create(&label)?,
        };
        let public = public_key(&key)?;
        Ok(Self { key, public, label })
    }

    /// The keychain label of the key.
    pub fn label(&self) -> &str {
        &self.label
    }
}

fn find(label: &str) -> Result<Option<SecKey>, KeyError> {
    let mut search = ItemSearchOptions::new();
    search
        .class(ItemClass::key())
        .label(label)
        .ignore_legacy_keychains()
        .load_refs(true);
    match search.search() {
        Ok(results) => Ok(results.into_iter().find_map(|r| match r {
            SearchResult::Ref(Reference::Key(key)) => Some(key),
            _ => None,
        })),
        // errSecItemNotFound: no key yet.
        Err(e) if e.code() == -25300 => Ok(None),
        Err(e) => Err(unavailable(
            "looking up the device key",
            i64::from(e.code()),
            e.to_string(),
        )),
    }
}

fn create(label: &str) -> Result<SecKey, KeyError> {
    let access = SecAccessControl::create_with_protection(
        Some(ProtectionMode::AccessibleAfterFirstUnlockThisDeviceOnly),
        PRIVATE_KEY_USAGE as _,
    )
    .map_err(|e| unavailable("access control", i64::from(e.code()), e.to_string()))?;
    let mut options = GenerateKeyOptions::default();
    options
        .set_key_type(KeyType::ec())
        .set_size_in_bits(256)
        .set_label(label)
        .set_token(Token::SecureEnclave)
        .set_location(Location::DataProtectionKeychain)
        .set_access_control(access);
    SecKey::new(&options).map_err(|e| {
        unavailable(
            "creating the device key",
            e.code() as i64,
            e.description().to_string(),
        )
    })
}

/// The public key, from its X9.63 uncompressed point (`04 || X || Y`).
fn public_key(key: &SecKey) -> Result<p256::PublicKey, KeyError> {
    let public = key
        .public_key()
        .ok_or_else(|| KeyError::Unsupported("Secure Enclave: no public key".into()))?;
    let point = public
        .external_representation()
        .ok_or_else(|| KeyError::Unsupported("Secure Enclave: public key not exportable".into()))?;
    p256::PublicKey::from_sec1_bytes(point.bytes())
        .map_err(|e| KeyError::Unsupported(format!("Secure Enclave: public key: {e}")))
}

impl Signer for SecureEnclaveSigner {
    fn public_key(&self) -> p256::PublicKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, KeyError> {
        // The enclave hashes with SHA-256 and returns an X9.62 DER signature.
        let der = self
            .key
            .create_signature(Algorithm::ECDSASignatureMessageX962SHA256, message)
            .map_err(|e| KeyError::Signing(format!("Secure Enclave: {e}")))?;
        let signature = Signature::from_der(&der)
            .map_err(|e| KeyError::Signing(format!("Secure Enclave: {e}")))?;
        // JOSE verifiers (and p256) want the low-S form; the enclave does not promise it.
        Ok(signature.normalize_s().unwrap_or(signature))
    }

    /// `software`: see the module documentation (no attestation, so nothing more can be
    /// proven to a verifier).
    fn assurance(&self) -> KeyAssurance {
        KeyAssurance::Software
    }
}
