//! The Windows device key: a non-exportable P-256 key in the TPM through CNG's Microsoft
//! Platform Crypto Provider (the key storage provider Windows puts in front of TPM 2.0,
//! `ncrypt.dll`), signing evidence with ES256 like the other device keys.
//!
//! The key is persisted by the provider under a name derived from the key directory, so
//! each key directory (the system's, a user's, a test's) has its own key; nothing of it is
//! written to disk by posture. The provider wraps it under the TPM's storage root key: it
//! cannot be exported and signs only on this TPM.
//!
//! A provider that opens but is not hardware (its `Impl Type` lacks
//! `NCRYPT_IMPL_HARDWARE_FLAG`) is refused: Wine, for one, has no Platform Crypto Provider,
//! and a software provider standing in for it must never be reported as a TPM key.
//!
//! Attestation (an AK certifying this key, EK certificate) is not done on Windows yet: see
//! `docs/evidence.md`.

use std::path::Path;

use p256::ecdsa::Signature;
use posture_core::keys::{KeyAssurance, KeyError, Signer, TpmError, TpmFailure};
use sha2::{Digest, Sha256};
use windows_sys::Win32::Security::Cryptography::{
    NCryptCreatePersistedKey, NCryptExportKey, NCryptFinalizeKey, NCryptFreeObject,
    NCryptGetProperty, NCryptOpenKey, NCryptOpenStorageProvider, NCryptSetProperty, NCryptSignHash,
    BCRYPT_ECCPUBLIC_BLOB, BCRYPT_ECDSA_P256_ALGORITHM, MS_PLATFORM_CRYPTO_PROVIDER,
    NCRYPT_EXPORT_POLICY_PROPERTY, NCRYPT_IMPL_HARDWARE_FLAG, NCRYPT_IMPL_TYPE_PROPERTY,
    NCRYPT_KEY_HANDLE, NCRYPT_PROV_HANDLE, NCRYPT_SILENT_FLAG,
};

/// The provider's name, as reasons and logs show it.
pub const PROVIDER: &str = "Microsoft Platform Crypto Provider";

/// `NTE_BAD_KEYSET`: no key of that name yet.
const NTE_BAD_KEYSET: i32 = 0x8009_0016_u32 as i32;

/// An NCrypt handle, freed on drop.
#[derive(Debug)]
struct Handle(usize);

impl Drop for Handle {
    fn drop(&mut self) {
        if self.0 != 0 {
            // SAFETY: the handle came from NCryptOpenStorageProvider/NCryptOpenKey/
            // NCryptCreatePersistedKey, is owned by this value and freed only here.
            unsafe {
                NCryptFreeObject(self.0);
            }
        }
    }
}

/// The device key in the TPM, reached through the Platform Crypto Provider.
#[derive(Debug)]
pub struct PcpSigner {
    // Field order: the key is freed before its provider.
    key: Handle,
    _provider: Handle,
    public: p256::PublicKey,
    name: String,
}

fn failure(operation: &str, status: i32) -> KeyError {
    KeyError::Tpm(TpmError::new(
        operation,
        TpmFailure::Response {
            code: status as u32,
            message: format!("{PROVIDER}: {}", status_name(status)),
        },
    ))
}

/// The name of the NCrypt/TBS status codes seen from this provider.
fn status_name(status: i32) -> String {
    let name = match status as u32 {
        0x8009_0029 => "NTE_NOT_SUPPORTED",
        0x8009_0030 => "NTE_DEVICE_NOT_READY (the TPM is not ready for use)",
        0x8009_0035 => "NTE_DEVICE_NOT_FOUND",
        0x8009_0009 => "NTE_BAD_FLAGS",
        0x8009_0027 => "NTE_INVALID_PARAMETER",
        0x8009_0010 => "NTE_PERM (access denied)",
        0x8009_0016 => "NTE_BAD_KEYSET",
        0x8028_400F => "TBS_E_TPM_NOT_FOUND (no TPM)",
        0x8028_4008 => "TBS_E_SERVICE_NOT_RUNNING",
        _ => "",
    };
    if name.is_empty() {
        format!("{:#010x}", status as u32)
    } else {
        format!("{:#010x} {name}", status as u32)
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The provider's key name for `key_dir`: one key per key directory.
pub fn key_name(key_dir: &Path) -> String {
    let digest = Sha256::digest(key_dir.to_string_lossy().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("posture-device-key-{hex}")
}

impl PcpSigner {
    /// Opens the device key of `key_dir`, creating it in the TPM on first use.
    pub fn load_or_create(key_dir: &Path) -> Result<Self, KeyError> {
        let mut provider: NCRYPT_PROV_HANDLE = 0;
        // SAFETY: `provider` is a live out-pointer; the provider name is a static wide string.
        let status =
            unsafe { NCryptOpenStorageProvider(&mut provider, MS_PLATFORM_CRYPTO_PROVIDER, 0) };
        if status != 0 {
            return Err(KeyError::Tpm(TpmError::new(
                format!("opening the {PROVIDER}"),
                TpmFailure::Connection(format!(
                    "NCryptOpenStorageProvider returned {:#010x}",
                    status as u32
                )),
            )));
        }
        let provider = Handle(provider);
        // A provider that cannot say it is hardware is not the TPM's (Wine answers the
        // open with its software provider, and NTE_NOT_SUPPORTED here).
        require_hardware(provider.0, "the provider").map_err(|e| match e {
            KeyError::Tpm(tpm) => KeyError::Tpm(TpmError::new(
                format!("opening the {PROVIDER}"),
                TpmFailure::Connection(format!("it is not available here: {}", tpm.kind)),
            )),
            other => other,
        })?;
        let name = key_name(key_dir);
        let wide_name = wide(&name);
        let mut key: NCRYPT_KEY_HANDLE = 0;
        // SAFETY: live out-pointer, NUL-terminated name, a valid provider handle.
        let status = unsafe {
            NCryptOpenKey(
                provider.0,
                &mut key,
                wide_name.as_ptr(),
                0,
                NCRYPT_SILENT_FLAG,
            )
        };
        let key = match status {
            0 => Handle(key),
            NTE_BAD_KEYSET => create(&provider, &wide_name)?,
            other => return Err(failure("opening the device key", other)),
        };
        require_hardware(key.0, "the device key")?;
        let public = public_key(&key)?;
        Ok(Self {
            key,
            _provider: provider,
            public,
            name,
        })
    }

    /// The provider's name of the key.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn create(provider: &Handle, wide_name: &[u16]) -> Result<Handle, KeyError> {
    let mut key: NCRYPT_KEY_HANDLE = 0;
    // SAFETY: live out-pointer, static algorithm id, NUL-terminated name, valid provider.
    let status = unsafe {
        NCryptCreatePersistedKey(
            provider.0,
            &mut key,
            BCRYPT_ECDSA_P256_ALGORITHM,
            wide_name.as_ptr(),
            0,
            NCRYPT_SILENT_FLAG,
        )
    };
    if status != 0 {
        return Err(failure("creating the device key", status));
    }
    let key = Handle(key);
    // Not exportable (the provider's keys never are; said explicitly all the same).
    let policy: u32 = 0;
    // SAFETY: the property value is a live u32 of the size given.
    let status = unsafe {
        NCryptSetProperty(
            key.0,
            NCRYPT_EXPORT_POLICY_PROPERTY,
            std::ptr::addr_of!(policy).cast(),
            4,
            NCRYPT_SILENT_FLAG,
        )
    };
    if status != 0 {
        return Err(failure("making the device key non-exportable", status));
    }
    // SAFETY: a valid, not yet finalized key handle.
    let status = unsafe { NCryptFinalizeKey(key.0, NCRYPT_SILENT_FLAG) };
    if status != 0 {
        return Err(failure("creating the device key", status));
    }
    Ok(key)
}

/// Refuses a provider or key (`what`) that is not hardware.
fn require_hardware(object: usize, what: &str) -> Result<(), KeyError> {
    let mut impl_type: u32 = 0;
    let mut len: u32 = 0;
    // SAFETY: the output is a live u32 of the size given; `len` is a live out-pointer.
    let status = unsafe {
        NCryptGetProperty(
            object,
            NCRYPT_IMPL_TYPE_PROPERTY,
            std::ptr::addr_of_mut!(impl_type).cast(),
            4,
            &mut len,
            0,
        )
    };
    if status != 0 {
        return Err(failure(
            &format!("asking whether {what} is hardware"),
            status,
        ));
    }
    if impl_type & NCRYPT_IMPL_HARDWARE_FLAG == 0 {
        return Err(KeyError::Tpm(TpmError::new(
            format!("opening the {PROVIDER}"),
            TpmFailure::Protocol(format!("{what} is not hardware (Impl Type {impl_type:#x})")),
        )));
    }
    Ok(())
}

/// The public key: a `BCRYPT_ECCKEY_BLOB` header (magic, coordinate length) then X and Y.
fn public_key(key: &Handle) -> Result<p256::PublicKey, KeyError> {
    let mut blob = [0u8; 8 + 64];
    let mut len: u32 = 0;
    // SAFETY: `blob` is writable for the length given; `len` is a live out-pointer.
    let status = unsafe {
        NCryptExportKey(
            key.0,
            0,
            BCRYPT_ECCPUBLIC_BLOB,
            std::ptr::null(),
            blob.as_mut_ptr(),
            blob.len() as u32,
            &mut len,
            NCRYPT_SILENT_FLAG,
        )
    };
    if status != 0 {
        return Err(failure("reading the device key's public key", status));
    }
    crate::ecc_blob::parse_p256_public(blob.get(..len as usize).unwrap_or(&[]))
        .map_err(|message| KeyError::Signing(format!("the provider's public key: {message}")))
}

impl Signer for PcpSigner {
    fn public_key(&self) -> p256::PublicKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, KeyError> {
        let digest = Sha256::digest(message);
        let mut signature = [0u8; 64];
        let mut len: u32 = 0;
        // SAFETY: the digest is 32 live bytes; `signature` is writable for 64; `len` is a
        // live out-pointer; ECDSA takes no padding info.
        let status = unsafe {
            NCryptSignHash(
                self.key.0,
                std::ptr::null(),
                digest.as_ptr(),
                32,
                signature.as_mut_ptr(),
                64,
                &mut len,
                NCRYPT_SILENT_FLAG,
            )
        };
        if status != 0 {
            return Err(failure("signing with the device key", status));
        }
        // IEEE P1363: r || s, 32 bytes each.
        let signature = Signature::from_slice(signature.get(..len as usize).unwrap_or(&[]))
            .map_err(|e| KeyError::Signing(e.to_string()))?;
        Ok(signature.normalize_s().unwrap_or(signature))
    }

    fn assurance(&self) -> KeyAssurance {
        KeyAssurance::Tpm
    }
}
