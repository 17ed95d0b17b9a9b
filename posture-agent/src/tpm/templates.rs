//! Key templates. All keys are ECC NIST P-256 with SHA-256 names, generated in the TPM
//! (`sensitiveDataOrigin`) and unable to leave it (`fixedTPM`, `fixedParent`).

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::{
    algorithm::{HashingAlgorithm, PublicAlgorithm},
    ecc::EccCurve,
};
use tss_esapi::structures::{
    EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, Public, PublicBuilder,
    PublicEccParametersBuilder, SymmetricDefinitionObject,
};

use super::tss_err;
use posture_core::keys::KeyError;

/// What a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The storage root key: a restricted decryption key that wraps the others.
    Srk,
    /// The device key: an unrestricted ECDSA signing key that signs evidence.
    DeviceKey,
    /// The attestation key: a restricted ECDSA signing key (signs only TPM-made data:
    /// quotes and certifications).
    Ak,
}

pub(crate) fn template(role: Role) -> Result<Public, KeyError> {
    let storage = role == Role::Srk;
    let restricted = role != Role::DeviceKey;
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(restricted)
        .with_decrypt(storage)
        .with_sign_encrypt(!storage)
        .build()
        .map_err(tss_err("building key attributes"))?;
    let params = PublicEccParametersBuilder::new()
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_restricted(restricted)
        .with_is_decryption_key(storage)
        .with_is_signing_key(!storage);
    let params = if storage {
        params
            .with_symmetric(SymmetricDefinitionObject::AES_128_CFB)
            .with_ecc_scheme(EccScheme::Null)
    } else {
        params
            .with_symmetric(SymmetricDefinitionObject::Null)
            .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
    };
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(params.build().map_err(tss_err("building ECC parameters"))?)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(tss_err("building key template"))
}
