//! TPM2_MakeCredential in software (TPM 2.0 Library, Part 1, 24 "Credential Protection"),
//! so a verifier needs no TPM to challenge a device.
//!
//! The device can only recover `credential` with TPM2_ActivateCredential if the EK's private
//! key is in its TPM *and* an object with `ak_name` is loaded in the same TPM: that is what
//! proves the AK and the EK share a TPM.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use rand_core::{CryptoRngCore, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::tpm2::{alg, PublicKey, TpmPublic};
use super::AttestationError;

type HmacSha256 = Hmac<Sha256>;
type Aes128CfbEnc = cfb_mode::Encryptor<aes::Aes128>;

/// The output of MakeCredential: the two buffers the device passes to ActivateCredential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeCredential {
    /// The contents of `TPM2B_ID_OBJECT` (without the 16-bit size): the integrity HMAC as a
    /// `TPM2B_DIGEST` followed by the encrypted credential.
    pub credential_blob: Vec<u8>,
    /// The contents of `TPM2B_ENCRYPTED_SECRET`: the seed RSA-OAEP encrypted to an RSA EK,
    /// or the ephemeral ECDH point (`TPMS_ECC_POINT`) for an ECC EK.
    pub encrypted_secret: Vec<u8>,
}

/// KDFa (Part 1, 11.4.10.2): SP 800-108 counter-mode KDF with HMAC-SHA256.
/// `label` is given without its terminating NUL; the NUL is added here as the spec requires.
pub fn kdfa_sha256(
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Result<Zeroizing<Vec<u8>>, AttestationError> {
    let bytes = usize::try_from(bits.div_ceil(8))
        .map_err(|_| AttestationError::Unsupported("KDFa output size".into()))?;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + 32));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
            .map_err(|_| AttestationError::Unsupported("HMAC key".into()))?;
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(bytes);
    Ok(out)
}

/// KDFe (Part 1, 11.4.10.3): the SP 800-56A concatenation KDF with SHA-256 over the
/// ECDH shared x coordinate `z`. `label` is given without its terminating NUL.
pub fn kdfe_sha256(
    z: &[u8],
    label: &str,
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Result<Zeroizing<Vec<u8>>, AttestationError> {
    use sha2::Digest as _;
    let bytes = usize::try_from(bits.div_ceil(8))
        .map_err(|_| AttestationError::Unsupported("KDFe output size".into()))?;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + 32));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let block = Sha256::new()
            .chain_update(counter.to_be_bytes())
            .chain_update(z)
            .chain_update(label.as_bytes())
            .chain_update([0])
            .chain_update(party_u)
            .chain_update(party_v)
            .finalize();
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(bytes);
    Ok(out)
}

/// The seed and its encryption to the EK (Part 1, 24.4 and Annex C.6/C.7): RSA-OAEP with
/// label "IDENTITY", or for an ECC P-256 EK one-pass ECDH with an ephemeral key, the seed
/// being KDFe(Z, "IDENTITY", ephemeral x, EK x) and the "encrypted secret" the ephemeral
/// public point (`TPMS_ECC_POINT`).
fn seed_for(
    ek: &TpmPublic,
    rng: &mut impl CryptoRngCore,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), AttestationError> {
    match &ek.key {
        PublicKey::Rsa { .. } => {
            let mut seed = Zeroizing::new(vec![0u8; 32]);
            rng.fill_bytes(seed.as_mut());
            let padding = rsa::Oaep::new_with_label::<Sha256, _>("IDENTITY\0");
            let encrypted = ek
                .rsa()?
                .encrypt(rng, padding, seed.as_ref())
                .map_err(|e| AttestationError::Unsupported(format!("RSA-OAEP: {e}")))?;
            Ok((seed, encrypted))
        }
        PublicKey::Ecc { x: ek_x, .. } => {
            use p256::elliptic_curve::point::AffineCoordinates;
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let ek_point = ek.p256()?;
            let ephemeral = p256::NonZeroScalar::random(rng);
            let shared = (ek_point.to_projective() * *ephemeral).to_affine();
            let z = Zeroizing::new(shared.x().to_vec());
            let public = p256::PublicKey::from_secret_scalar(&ephemeral).to_encoded_point(false);
            let (Some(x), Some(y)) = (public.x(), public.y()) else {
                return Err(AttestationError::Unsupported("ephemeral point".into()));
            };
            let seed = kdfe_sha256(&z, "IDENTITY", x, &left_pad32(ek_x)?, 256)?;
            let mut point = Vec::with_capacity(68);
            for coordinate in [x.as_slice(), y.as_slice()] {
                point.extend_from_slice(&32u16.to_be_bytes());
                point.extend_from_slice(coordinate);
            }
            Ok((seed, point))
        }
    }
}

/// The EK's x coordinate as the 32 bytes KDFe takes (the TPM uses the point's x as
/// stored, which for P-256 is 32 bytes; a shorter encoding is left-padded).
fn left_pad32(x: &[u8]) -> Result<[u8; 32], AttestationError> {
    let start = x.iter().take_while(|b| **b == 0).count().min(x.len());
    let x = &x[start..];
    if x.len() > 32 {
        return Err(AttestationError::Malformed {
            what: "TPMT_PUBLIC",
            message: "ECC coordinate longer than 32 bytes".into(),
        });
    }
    let mut out = [0u8; 32];
    out[32 - x.len()..].copy_from_slice(x);
    Ok(out)
}

/// MakeCredential for an EK whose name algorithm is SHA-256 and whose symmetric algorithm
/// is AES-128-CFB: the TCG default EK templates "RSA 2048" and "ECC NIST P-256" (low
/// range).
///
/// `credential` is at most 32 bytes (a `TPM2B_DIGEST` for SHA-256).
pub fn make_credential(
    ek: &TpmPublic,
    ak_name: &[u8],
    credential: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<MadeCredential, AttestationError> {
    if let PublicKey::Ecc { curve, .. } = &ek.key {
        if *curve != super::tpm2::ECC_NIST_P256 {
            return Err(AttestationError::Unsupported(format!(
                "MakeCredential for ECC EKs on curve 0x{curve:04x} (only NIST P-256)"
            )));
        }
    }
    if ek.name_alg != alg::SHA256 || ek.symmetric != (alg::AES, 128, alg::CFB) {
        return Err(AttestationError::Unsupported(format!(
            "EK with name algorithm 0x{:04x} and symmetric {:?} (need SHA-256, AES-128-CFB)",
            ek.name_alg, ek.symmetric
        )));
    }
    if credential.is_empty() || credential.len() > 32 {
        return Err(AttestationError::Unsupported(
            "credential must be 1 to 32 bytes".into(),
        ));
    }
    // The seed is as long as the EK's name-algorithm digest (SHA-256).
    let (seed, encrypted_secret) = seed_for(ek, rng)?;

    let sym_key = kdfa_sha256(seed.as_ref(), "STORAGE", ak_name, &[], 128)?;
    let mut enc_identity = Zeroizing::new(Vec::with_capacity(2 + credential.len()));
    enc_identity.extend_from_slice(&(credential.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(credential);
    let iv = [0u8; 16];
    let cipher = Aes128CfbEnc::new_from_slices(&sym_key, &iv)
        .map_err(|_| AttestationError::Unsupported("AES key size".into()))?;
    let mut ciphertext = enc_identity.to_vec();
    cipher.encrypt(&mut ciphertext);

    let hmac_key = kdfa_sha256(seed.as_ref(), "INTEGRITY", &[], &[], 256)?;
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&hmac_key)
        .map_err(|_| AttestationError::Unsupported("HMAC key".into()))?;
    mac.update(&ciphertext);
    mac.update(ak_name);
    let integrity = mac.finalize().into_bytes();

    let mut credential_blob = Vec::with_capacity(2 + integrity.len() + ciphertext.len());
    credential_blob.extend_from_slice(&(integrity.len() as u16).to_be_bytes());
    credential_blob.extend_from_slice(&integrity);
    credential_blob.extend_from_slice(&ciphertext);
    Ok(MadeCredential {
        credential_blob,
        encrypted_secret,
    })
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn os_random(buf: &mut [u8]) {
    rand_core::OsRng.fill_bytes(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SP 800-108 is counter mode over HMAC: the first block is HMAC(key, 1 || label || 0 ||
    /// u || v || bits); computing it by hand pins the byte layout.
    #[test]
    fn kdfa_first_block_matches_the_spec_layout() {
        let key = [7u8; 32];
        let out = kdfa_sha256(&key, "STORAGE", b"name", b"", 128).unwrap();
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"STORAGE\0name");
        mac.update(&[0, 0, 0, 128]);
        let full = mac.finalize().into_bytes();
        assert_eq!(out.as_slice(), &full[..16]);
        assert_eq!(kdfa_sha256(&key, "X", b"", b"", 512).unwrap().len(), 64);
    }
}
