//! WebAuthn credentials in the TPM: a credential key per relying party, certified by the
//! attestation key for a `tpm` attestation statement (WebAuthn Level 3, §8.3), and
//! assertions signed by it.
//!
//! The credential key is what relying-party libraries accept for `tpm`: an unrestricted
//! signing key with no scheme and no symmetric algorithm (`TPM_ALG_NULL`; the scheme is
//! given at signing time), SHA-256 name, `fixedTPM`/`fixedParent`/`sensitiveDataOrigin`,
//! RSA 2048 (the default; what Windows Hello uses) or ECC P-256.
//!
//! Its TPM-wrapped blob is kept in `<key dir>/webauthn/<rp id>/<credential id>.json`
//! (0600, owner-only directories): a credential is found only under the relying party it
//! was registered for. The credential id is the SHA-256 of the key's public area.
//!
//! With `bind_pcrs`, the key's authorization policy is TPM2_PolicyPCR over the sha256 values
//! those PCRs have at registration (`userWithAuth` clear): the TPM signs assertions only
//! while they are unchanged, so a device booted into other firmware, boot loader or
//! Secure Boot state cannot use the credential (register again after an update). The
//! selection is kept beside the blob (`<credential id>.pcrs.json`).
//!
//! This authenticator keeps no signature counter (always 0, which WebAuthn allows) and
//! sets user present (UP) because a local user ran the command; it never sets user
//! verified (UV).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::SessionHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, KeyDerivationFunctionScheme,
    PcrSelectionList, PcrSelectionListBuilder, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyRsa, PublicRsaParametersBuilder, RsaExponent, RsaScheme, SignatureScheme,
    SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::Context;

use super::attest::AttestationKey;
use super::blob;
use super::signer::{flush, Srk};
use super::{protocol_err, tss_err};
use posture_core::attestation::tpm2::{PublicKey as TpmKey, TpmPublic};
use posture_core::attestation::SignedAttest;
use posture_core::jose::b64url_encode;
use posture_core::keys::KeyError;
use posture_core::webauthn as wa;

/// Directory under the key directory that holds the credentials.
pub const WEBAUTHN_DIR: &str = "webauthn";

/// The credential key's algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialAlgorithm {
    /// RSA 2048, signatures RS256 (RSASSA-PKCS1-v1_5 SHA-256). Verified as `tpm` by every
    /// relying-party library.
    Rs256,
    /// ECC P-256, signatures ES256.
    Es256,
}

/// A registration: what the attestation object and the registration response are made of.
#[derive(Debug)]
pub struct Registration {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The credential key's `TPMT_PUBLIC` (`pubArea`).
    pub pub_area: Vec<u8>,
    /// TPM2_Certify of the credential key by the AK (`certInfo` and the AK's
    /// `TPMT_SIGNATURE`), extraData = SHA-256(authenticatorData ‖ clientDataHash).
    pub certify: SignedAttest,
    /// The authenticator data.
    pub authenticator_data: Vec<u8>,
    /// The client data JSON.
    pub client_data_json: String,
    /// The COSE algorithm of the credential key.
    pub cose_alg: i64,
    /// Where the credential key's blob was saved.
    pub path: PathBuf,
}

/// An assertion.
#[derive(Debug)]
pub struct Assertion {
    /// The authenticator data.
    pub authenticator_data: Vec<u8>,
    /// The client data JSON.
    pub client_data_json: String,
    /// The signature as WebAuthn carries it (DER for ES256, PKCS#1 v1.5 for RS256).
    pub signature: Vec<u8>,
    /// The relying party's user handle given at registration, if any (`userHandle`).
    pub user_handle: Option<Vec<u8>>,
}

/// The longest user handle WebAuthn allows (`user.id`, §5.4.3).
pub const MAX_USER_HANDLE: usize = 64;

fn bad_input(message: impl Into<String>) -> KeyError {
    KeyError::Signing(message.into())
}

fn template(alg: CredentialAlgorithm, policy: Option<Digest>) -> Result<Public, KeyError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        // With a PCR policy, the policy is the only way to use the key.
        .with_user_with_auth(policy.is_none())
        .with_no_da(true)
        .with_sign_encrypt(true)
        .build()
        .map_err(tss_err("building credential key attributes"))?;
    let builder = PublicBuilder::new()
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes);
    let builder = match policy {
        Some(digest) => builder.with_auth_policy(digest),
        None => builder,
    };
    let builder = match alg {
        CredentialAlgorithm::Rs256 => builder
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_rsa_parameters(
                PublicRsaParametersBuilder::new()
                    .with_symmetric(SymmetricDefinitionObject::Null)
                    .with_scheme(RsaScheme::Null)
                    .with_key_bits(RsaKeyBits::Rsa2048)
                    .with_exponent(RsaExponent::default())
                    .with_is_signing_key(true)
                    .with_is_decryption_key(false)
                    .with_restricted(false)
                    .build()
                    .map_err(tss_err("building RSA parameters"))?,
            )
            .with_rsa_unique_identifier(PublicKeyRsa::default()),
        CredentialAlgorithm::Es256 => builder
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new()
                    .with_symmetric(SymmetricDefinitionObject::Null)
                    .with_ecc_scheme(EccScheme::Null)
                    .with_curve(EccCurve::NistP256)
                    .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                    // tss-esapi's builder refuses a signing key with a NULL scheme, which
                    // the TPM allows (Part 2, 12.2.3.6); the flag only feeds that check,
                    // the key's `sign` attribute is set above.
                    .with_is_signing_key(false)
                    .with_is_decryption_key(false)
                    .with_restricted(false)
                    .build()
                    .map_err(tss_err("building ECC parameters"))?,
            )
            .with_ecc_unique_identifier(EccPoint::default()),
    };
    builder
        .build()
        .map_err(tss_err("building the credential key template"))
}

/// The directory of `rp_id`'s credentials.
pub fn rp_dir(state_dir: &Path, rp_id: &str) -> Result<PathBuf, KeyError> {
    wa::check_rp_id(rp_id).map_err(|e| bad_input(e.to_string()))?;
    Ok(state_dir.join(WEBAUTHN_DIR).join(rp_id))
}

/// Creates a credential key for `rp_id` in the TPM, has `ak` certify it over this
/// registration's authenticator data and client data, and saves its blob. With
/// `bind_pcrs`, the key can sign only while those sha256 PCRs keep their current values.
/// With `user_handle` (the relying party's `user.id`), assertions carry it as
/// `userHandle`, as a discoverable credential's do.
#[allow(clippy::too_many_arguments)]
pub fn register(
    srk: &Srk,
    ak: &AttestationKey,
    state_dir: &Path,
    rp_id: &str,
    challenge_b64url: &str,
    origin: &str,
    alg: CredentialAlgorithm,
    bind_pcrs: Option<&[u32]>,
    user_handle: Option<&[u8]>,
) -> Result<Registration, KeyError> {
    let dir = rp_dir(state_dir, rp_id)?;
    check_challenge(challenge_b64url)?;
    if let Some(handle) = user_handle {
        if handle.is_empty() || handle.len() > MAX_USER_HANDLE {
            return Err(bad_input(format!(
                "the user handle must be 1 to {MAX_USER_HANDLE} bytes, not {}",
                handle.len()
            )));
        }
    }
    let policy = match bind_pcrs {
        Some(pcrs) => Some(srk.tpm().with_context(|ctx| pcr_policy_digest(ctx, pcrs))?),
        None => None,
    };
    let created = srk
        .create_from_template(template(alg, policy)?)
        .map_err(|e| match e {
            KeyError::Tpm(t) => KeyError::Unsupported(format!(
                "this TPM cannot create the {} credential key: {t}",
                match alg {
                    CredentialAlgorithm::Rs256 => "RSA 2048",
                    CredentialAlgorithm::Es256 => "ECC P-256",
                }
            )),
            other => other,
        })?;
    let public = TpmPublic::parse(&created.public)
        .map_err(|e| bad_input(format!("the TPM returned an unusable public area: {e}")))?;
    wa::check_credential_key(&public).map_err(|e| bad_input(e.to_string()))?;
    let credential_id = Sha256::digest(&created.public).to_vec();
    let (cose_key, cose_alg) = wa::cose_key(&public).map_err(|e| bad_input(e.to_string()))?;
    let authenticator_data = wa::registration_authenticator_data(rp_id, &credential_id, &cose_key)
        .map_err(|e| bad_input(e.to_string()))?;
    let client_data_json = wa::client_data_json("webauthn.create", challenge_b64url, origin);
    let extra = wa::att_to_be_signed_hash(&authenticator_data, client_data_json.as_bytes());

    let path = dir.join(format!("{}.json", b64url_encode(&credential_id)));
    let handle = srk.load(&created, &path)?;
    let certify = ak.certify_handle(handle, &extra);
    flush(srk.tpm(), handle);
    let certify = certify?;
    blob::ensure_state_dir(&state_dir.join(WEBAUTHN_DIR))?;
    blob::ensure_state_dir(&dir)?;
    blob::save(
        &path,
        &format!("posture WebAuthn credential key for {rp_id} (TPM-wrapped)"),
        &created,
    )?;
    if let Some(handle) = user_handle {
        let sidecar = user_path(&path);
        let text = serde_json::to_vec(&serde_json::json!({ "user_handle": b64url_encode(handle) }))
            .map_err(|e| bad_input(e.to_string()))?;
        posture_core::files::write_private(&sidecar, &text).map_err(|source| KeyError::Io {
            path: sidecar.clone(),
            source,
        })?;
    }
    if let Some(pcrs) = bind_pcrs {
        let sidecar = pcrs_path(&path);
        let text = serde_json::to_vec(&serde_json::json!({ "sha256": pcrs }))
            .map_err(|e| bad_input(e.to_string()))?;
        posture_core::files::write_private(&sidecar, &text).map_err(|source| KeyError::Io {
            path: sidecar.clone(),
            source,
        })?;
    }
    Ok(Registration {
        credential_id,
        pub_area: created.public,
        certify,
        authenticator_data,
        client_data_json,
        cose_alg,
        path,
    })
}

/// Signs an assertion for `rp_id` with the credential `credential_id` registered for it.
pub fn assert(
    srk: &Srk,
    state_dir: &Path,
    rp_id: &str,
    credential_id: &[u8],
    challenge_b64url: &str,
    origin: &str,
) -> Result<Assertion, KeyError> {
    let dir = rp_dir(state_dir, rp_id)?;
    check_challenge(challenge_b64url)?;
    if credential_id.len() != 32 {
        return Err(bad_input("not a posture credential id (32 bytes)"));
    }
    let path = dir.join(format!("{}.json", b64url_encode(credential_id)));
    let blob = blob::load(&path)?.ok_or_else(|| {
        bad_input(format!(
            "no credential {} registered for relying party {rp_id}",
            b64url_encode(credential_id)
        ))
    })?;
    if Sha256::digest(&blob.public).as_slice() != credential_id {
        return Err(KeyError::InvalidKey {
            path,
            message: "the blob does not hold this credential's key".into(),
        });
    }
    let public = TpmPublic::parse(&blob.public).map_err(|e| KeyError::InvalidKey {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let scheme = match public.key {
        TpmKey::Rsa { .. } => SignatureScheme::RsaSsa {
            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
        },
        TpmKey::Ecc { .. } => SignatureScheme::EcDsa {
            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
        },
    };
    let authenticator_data = wa::assertion_authenticator_data(rp_id);
    let client_data_json = wa::client_data_json("webauthn.get", challenge_b64url, origin);
    let digest = wa::att_to_be_signed_hash(&authenticator_data, client_data_json.as_bytes());
    let digest = Digest::try_from(digest.to_vec()).map_err(tss_err("preparing the digest"))?;
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(tss_err("preparing the hashcheck ticket"))?;
    let bound = read_bound_pcrs(&path)?;
    let handle = srk.load(&blob, &path)?;
    let signature = srk.tpm().with_context(|ctx| match &bound {
        None => ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.sign(handle, digest, scheme, ticket)
            })
            .map_err(tss_err("signing the assertion with the credential key")),
        Some(pcrs) => {
            let session = start_session(ctx, SessionType::Policy)?;
            let signed = (|| {
                let policy = PolicySession::try_from(session).map_err(tss_err("policy session"))?;
                ctx.policy_pcr(policy, Digest::default(), pcr_selection(pcrs)?)
                    .map_err(tss_err("PolicyPCR"))?;
                ctx.execute_with_session(Some(session), |ctx| {
                    ctx.sign(handle, digest, scheme, ticket)
                })
                .map_err(|e| match super::failure_of(e) {
                    posture_core::keys::TpmFailure::Response { code, .. }
                        if code & 0x3f == 0x1d =>
                    {
                        // TPM_RC_POLICY_FAIL.
                        bad_input(format!(
                            "the credential is bound to the values of PCRs {pcrs:?} at \
                             registration, and they have changed (firmware, boot loader or \
                             Secure Boot state): register the credential again"
                        ))
                    }
                    failure => KeyError::Tpm(posture_core::keys::TpmError::new(
                        "signing the assertion with the PCR-bound credential key",
                        failure,
                    )),
                })
            })();
            let _ = ctx.flush_context(SessionHandle::from(session).into());
            signed
        }
    });
    flush(srk.tpm(), handle);
    let signature = signature?
        .marshall()
        .map_err(tss_err("marshalling the signature"))?;
    let (signature, _) =
        wa::webauthn_signature(&signature).map_err(|e| bad_input(e.to_string()))?;
    Ok(Assertion {
        authenticator_data,
        client_data_json,
        signature,
        user_handle: read_user_handle(&path)?,
    })
}

/// A challenge is base64url (no padding) of 16 to 1024 bytes: WebAuthn wants at least 16
/// random bytes.
fn check_challenge(challenge: &str) -> Result<(), KeyError> {
    match posture_core::jose::b64url_decode(challenge) {
        Ok(bytes) if (16..=1024).contains(&bytes.len()) => Ok(()),
        Ok(bytes) => Err(bad_input(format!(
            "the challenge is {} bytes; relying parties send 16 to 1024",
            bytes.len()
        ))),
        Err(_) => Err(bad_input("the challenge is not base64url without padding")),
    }
}

fn pcrs_path(blob_path: &Path) -> PathBuf {
    blob_path.with_extension("pcrs.json")
}

fn user_path(blob_path: &Path) -> PathBuf {
    blob_path.with_extension("user.json")
}

/// The user handle saved with a credential; `None` when it was registered without one.
fn read_user_handle(blob_path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    let path = user_path(blob_path);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyError::Io { path, source }),
    };
    let invalid = |message: String| KeyError::InvalidKey {
        path: path.clone(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    let handle = value["user_handle"]
        .as_str()
        .and_then(|text| posture_core::jose::b64url_decode(text).ok())
        .filter(|h| !h.is_empty() && h.len() <= MAX_USER_HANDLE)
        .ok_or_else(|| invalid("no valid user_handle".into()))?;
    Ok(Some(handle))
}

/// The PCRs a credential is bound to, from its sidecar; `None` when it is not bound.
fn read_bound_pcrs(blob_path: &Path) -> Result<Option<Vec<u32>>, KeyError> {
    let path = pcrs_path(blob_path);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyError::Io { path, source }),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| KeyError::InvalidKey {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let pcrs: Vec<u32> =
        serde_json::from_value(value["sha256"].clone()).map_err(|e| KeyError::InvalidKey {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(Some(pcrs))
}

fn pcr_selection(pcrs: &[u32]) -> Result<PcrSelectionList, KeyError> {
    if pcrs.is_empty() {
        return Err(bad_input("no PCR selected to bind the credential to"));
    }
    let slots = pcrs
        .iter()
        .map(|p| super::attest::pcr_slot(*p))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(tss_err("PCR selection"))
}

fn start_session(
    ctx: &mut Context,
    kind: SessionType,
) -> Result<tss_esapi::interface_types::session_handles::AuthSession, KeyError> {
    ctx.start_auth_session(
        None,
        None,
        None,
        kind,
        SymmetricDefinition::AES_128_CFB,
        HashingAlgorithm::Sha256,
    )
    .map_err(tss_err("starting a policy session"))?
    .ok_or_else(|| protocol_err("starting a policy session", "none returned"))
}

/// The policy digest of TPM2_PolicyPCR over the current sha256 values of `pcrs`, from a
/// trial session (the TPM computes it; nothing is authorised).
fn pcr_policy_digest(ctx: &mut Context, pcrs: &[u32]) -> Result<Digest, KeyError> {
    let selection = pcr_selection(pcrs)?;
    let session = start_session(ctx, SessionType::Trial)?;
    let digest = (|| {
        let policy = PolicySession::try_from(session).map_err(tss_err("trial session"))?;
        ctx.policy_pcr(policy, Digest::default(), selection)
            .map_err(tss_err("PolicyPCR (trial)"))?;
        ctx.policy_get_digest(policy)
            .map_err(tss_err("PolicyGetDigest"))
    })();
    let _ = ctx.flush_context(SessionHandle::from(session).into());
    digest
}
