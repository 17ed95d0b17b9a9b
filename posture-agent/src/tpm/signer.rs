//! The storage root key and the TPM-resident device key.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, HashcheckTicket, Private, Public, Signature, SignatureScheme};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use super::blob::{self, Blob};
use super::templates::{template, Role};
use super::{tss_err, Tpm, DEVICE_KEY_FILE};
use posture_core::attestation::tpm2::TpmPublic;
use posture_core::keys::{KeyAssurance, KeyError, Signer, TpmError};

/// The storage root key, re-derived from its template (TPM2_CreatePrimary in the owner
/// hierarchy) and flushed on drop. Load the keys you need under it, then drop it: loaded
/// children stay usable without their parent.
#[derive(Debug)]
pub struct Srk {
    tpm: Arc<Tpm>,
    handle: KeyHandle,
}

impl Srk {
    /// Creates the SRK (one TPM command). Fails if the owner hierarchy has a password.
    pub fn create(tpm: &Arc<Tpm>) -> Result<Srk, KeyError> {
        let public = template(Role::Srk)?;
        let handle = tpm.with_context(|ctx| {
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .map(|r| r.key_handle)
            .map_err(tss_err(
                "creating the storage root key (is an owner password set on the TPM?)",
            ))
        })?;
        Ok(Srk {
            tpm: Arc::clone(tpm),
            handle,
        })
    }

    pub(crate) fn tpm(&self) -> &Arc<Tpm> {
        &self.tpm
    }

    /// Loads the key saved at `path`, creating and saving it first if there is none.
    pub(crate) fn load_or_create(
        &self,
        path: &Path,
        role: Role,
        kind: &str,
    ) -> Result<(KeyHandle, Vec<u8>), KeyError> {
        let blob = match blob::load(path)? {
            Some(blob) => blob,
            None => {
                let blob = self.create_child(role)?;
                blob::save(path, kind, &blob)?;
                blob
            }
        };
        let handle = self.load(&blob, path)?;
        Ok((handle, blob.public))
    }

    fn create_child(&self, role: Role) -> Result<Blob, KeyError> {
        self.create_from_template(template(role)?)
    }

    /// TPM2_Create of a child key from `public` (a template); returns its blob.
    pub(crate) fn create_from_template(&self, public: Public) -> Result<Blob, KeyError> {
        self.tpm.with_context(|ctx| {
            let created = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.create(self.handle, public, None, None, None, None)
                })
                .map_err(tss_err("creating a key in the TPM"))?;
            Ok(Blob {
                public: created
                    .out_public
                    .marshall()
                    .map_err(tss_err("marshalling the public key"))?,
                private: created.out_private.value().to_vec(),
            })
        })
    }

    pub(crate) fn load(&self, blob: &Blob, path: &Path) -> Result<KeyHandle, KeyError> {
        let invalid = |message: String| KeyError::InvalidKey {
            path: path.to_owned(),
            message,
        };
        let public = Public::unmarshall(&blob.public).map_err(|e| invalid(e.to_string()))?;
        let private =
            Private::try_from(blob.private.clone()).map_err(|e| invalid(e.to_string()))?;
        self.tpm.with_context(|ctx| {
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.load(self.handle, private, public)
            })
            .map_err(|e| {
                // A blob made by another TPM, or before a TPM clear, cannot be loaded.
                KeyError::Tpm(TpmError::new(
                    format!("loading {}", path.display()),
                    super::failure_of(e),
                ))
            })
        })
    }
}

impl Drop for Srk {
    fn drop(&mut self) {
        flush(&self.tpm, self.handle);
    }
}

pub(crate) fn flush(tpm: &Tpm, handle: KeyHandle) {
    // Nothing useful can be done if the flush fails (the TPM restarted, the connection
    // dropped); the object is gone with the TPM's volatile state either way.
    let _ = tpm.with_context(|ctx| {
        ctx.flush_context(handle.into())
            .map_err(tss_err("flushing"))
    });
}

/// The device key in the TPM: ES256 signatures by a key that never leaves the chip.
/// Loaded while this value lives; flushed on drop.
#[derive(Debug)]
pub struct TpmSigner {
    tpm: Arc<Tpm>,
    handle: KeyHandle,
    public: p256::PublicKey,
    tpm_public: Vec<u8>,
}

/// Loads the device key from `state_dir` (creating it on first use) through the
/// process-wide TPM ([`Tpm::shared`]). Three TPM commands (CreatePrimary, Load,
/// FlushContext), four on first use (plus Create).
pub fn open_device_key(state_dir: &Path) -> Result<TpmSigner, KeyError> {
    let tpm = Tpm::shared()?;
    let srk = Srk::create(&tpm)?;
    TpmSigner::load(&srk, state_dir)
}

impl TpmSigner {
    /// Loads (or creates) the device key blob `tpm-device-key.json` in `state_dir` under
    /// `srk`.
    pub fn load(srk: &Srk, state_dir: &Path) -> Result<TpmSigner, KeyError> {
        blob::ensure_state_dir(state_dir)?;
        let path = state_dir.join(DEVICE_KEY_FILE);
        let (handle, tpm_public) =
            srk.load_or_create(&path, Role::DeviceKey, "posture device key (TPM-wrapped)")?;
        let public = match TpmPublic::parse(&tpm_public).and_then(|p| p.p256()) {
            Ok(public) => public,
            Err(e) => {
                flush(srk.tpm(), handle);
                return Err(KeyError::InvalidKey {
                    path,
                    message: e.to_string(),
                });
            }
        };
        Ok(TpmSigner {
            tpm: Arc::clone(srk.tpm()),
            handle,
            public,
            tpm_public,
        })
    }

    /// The key's marshalled `TPMT_PUBLIC` (what TPM2_Certify certifies).
    pub fn tpm_public(&self) -> &[u8] {
        &self.tpm_public
    }

    pub(crate) fn handle(&self) -> KeyHandle {
        self.handle
    }
}

impl Drop for TpmSigner {
    fn drop(&mut self) {
        flush(&self.tpm, self.handle);
    }
}

impl Signer for TpmSigner {
    fn public_key(&self) -> p256::PublicKey {
        self.public
    }

    /// One TPM command (TPM2_Sign of the SHA-256 digest).
    fn sign(&self, message: &[u8]) -> Result<p256::ecdsa::Signature, KeyError> {
        let digest = Digest::try_from(Sha256::digest(message).to_vec())
            .map_err(tss_err("preparing the digest"))?;
        // An unrestricted key needs no proof that the TPM hashed the data: a NULL ticket.
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(tss_err("preparing the hashcheck ticket"))?;
        let signature = self.tpm.with_context(|ctx| {
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.sign(self.handle, digest, SignatureScheme::Null, ticket)
            })
            .map_err(tss_err("signing with the device key"))
        })?;
        let Signature::EcDsa(ecc) = signature else {
            return Err(KeyError::Signing(
                "the TPM returned a non-ECDSA signature".into(),
            ));
        };
        let pad = |v: &[u8]| {
            posture_core::attestation::tpm2::left_pad::<32>(v)
                .map_err(|e| KeyError::Signing(e.to_string()))
        };
        let sig = p256::ecdsa::Signature::from_scalars(
            pad(ecc.signature_r().value())?,
            pad(ecc.signature_s().value())?,
        )
        .map_err(|e| KeyError::Signing(format!("TPM signature out of range: {e}")))?;
        // Low-S form, as most JOSE verifiers expect.
        Ok(sig.normalize_s().unwrap_or(sig))
    }

    fn assurance(&self) -> KeyAssurance {
        KeyAssurance::Tpm
    }
}
