//! TPM2_MakeCredential in software (TPM 2.0 Library, Part 1, 24 "Credential Protection"),
//! so a verifier needs no TPM to challenge a device.
//!
//! The device can only recover `credential` with TPM2_ActivateCredential if the EK's private
//! key is in its TPM *and* an object with `ak_name` is loaded in the same TPM: that is what
//! proves the AK and the EK share a TPM.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use p256::elliptic_curve::{
    self,
    group::Curve as _,
    point::AffineCoordinates as _,
    sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint},
    AffinePoint, CurveArithmetic, FieldBytesSize, NonZeroScalar,
};
use rand_core::{CryptoRngCore, RngCore};
use sha2::{Sha256, Sha384};
use zeroize::Zeroizing;

use super::tpm2::{alg, PublicKey, TpmPublic, ECC_NIST_P256, ECC_NIST_P384};
use super::AttestationError;

type Aes128CfbEnc = cfb_mode::Encryptor<aes::Aes128>;
type Aes256CfbEnc = cfb_mode::Encryptor<aes::Aes256>;

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

/// The EK's name algorithm: MakeCredential's seed is as long as its digest, and KDFa,
/// KDFe, OAEP and the integrity HMAC all use it (Part 1, 24.4-24.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameHash {
    Sha256,
    Sha384,
}

impl NameHash {
    fn of(name_alg: u16) -> Option<NameHash> {
        match name_alg {
            alg::SHA256 => Some(NameHash::Sha256),
            alg::SHA384 => Some(NameHash::Sha384),
            _ => None,
        }
    }

    /// The digest size in bytes.
    fn size(self) -> usize {
        match self {
            NameHash::Sha256 => 32,
            NameHash::Sha384 => 48,
        }
    }

    fn bits(self) -> u32 {
        match self {
            NameHash::Sha256 => 256,
            NameHash::Sha384 => 384,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            parts
                .iter()
                .fold(D::new(), |h, p| h.chain_update(p))
                .finalize()
                .to_vec()
        }
        match self {
            NameHash::Sha256 => run::<Sha256>(parts),
            NameHash::Sha384 => run::<Sha384>(parts),
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, AttestationError> {
        let bad_key = |_| AttestationError::Unsupported("HMAC key".into());
        Ok(match self {
            NameHash::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(bad_key)?;
                parts.iter().for_each(|p| mac.update(p));
                mac.finalize().into_bytes().to_vec()
            }
            NameHash::Sha384 => {
                let mut mac = <Hmac<Sha384> as Mac>::new_from_slice(key).map_err(bad_key)?;
                parts.iter().for_each(|p| mac.update(p));
                mac.finalize().into_bytes().to_vec()
            }
        })
    }
}

/// KDFa (Part 1, 11.4.10.2): SP 800-108 counter-mode KDF with HMAC over `hash`.
fn kdfa(
    hash: NameHash,
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Result<Zeroizing<Vec<u8>>, AttestationError> {
    let bytes = usize::try_from(bits.div_ceil(8))
        .map_err(|_| AttestationError::Unsupported("KDFa output size".into()))?;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + hash.size()));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let block = Zeroizing::new(hash.hmac(
            key,
            &[
                &counter.to_be_bytes(),
                label.as_bytes(),
                &[0],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        )?);
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(bytes);
    Ok(out)
}

/// KDFe (Part 1, 11.4.10.3): the SP 800-56A concatenation KDF over `hash`.
fn kdfe(
    hash: NameHash,
    z: &[u8],
    label: &str,
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Result<Zeroizing<Vec<u8>>, AttestationError> {
    let bytes = usize::try_from(bits.div_ceil(8))
        .map_err(|_| AttestationError::Unsupported("KDFe output size".into()))?;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + hash.size()));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let block = Zeroizing::new(hash.digest(&[
            &counter.to_be_bytes(),
            z,
            label.as_bytes(),
            &[0],
            party_u,
            party_v,
        ]));
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(bytes);
    Ok(out)
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
    kdfa(NameHash::Sha256, key, label, context_u, context_v, bits)
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
    kdfe(NameHash::Sha256, z, label, party_u, party_v, bits)
}

/// The seed and its encryption to the EK (Part 1, 24.4 and Annex C.6/C.7): a random seed
/// RSA-OAEP encrypted (hash = the EK's name algorithm, label "IDENTITY"), or for an ECC
/// EK one-pass ECDH with an ephemeral key, the seed being KDFe(Z, "IDENTITY", ephemeral x,
/// EK x) and the "encrypted secret" the ephemeral public point (`TPMS_ECC_POINT`).
fn seed_for(
    ek: &TpmPublic,
    hash: NameHash,
    rng: &mut impl CryptoRngCore,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), AttestationError> {
    match &ek.key {
        PublicKey::Rsa { .. } => {
            let mut seed = Zeroizing::new(vec![0u8; hash.size()]);
            rng.fill_bytes(seed.as_mut());
            let key = ek.rsa()?;
            let encrypted = match hash {
                NameHash::Sha256 => key.encrypt(
                    rng,
                    rsa::Oaep::new_with_label::<Sha256, _>("IDENTITY\0"),
                    seed.as_ref(),
                ),
                NameHash::Sha384 => key.encrypt(
                    rng,
                    rsa::Oaep::new_with_label::<Sha384, _>("IDENTITY\0"),
                    seed.as_ref(),
                ),
            }
            .map_err(|e| AttestationError::Unsupported(format!("RSA-OAEP: {e}")))?;
            Ok((seed, encrypted))
        }
        PublicKey::Ecc { curve, x: ek_x, .. } => match *curve {
            ECC_NIST_P256 => ecdh_seed(&ek.p256()?, ek_x, hash, rng),
            ECC_NIST_P384 => ecdh_seed(&ek.p384()?, ek_x, hash, rng),
            other => Err(AttestationError::Unsupported(format!(
                "MakeCredential for ECC EKs on curve 0x{other:04x} (only NIST P-256 and P-384)"
            ))),
        },
    }
}

/// One-pass ECDH (C(1e, 1s), Part 1 Annex C.6.1) to `ek` on curve `C`: returns the seed
/// and the marshalled ephemeral point.
fn ecdh_seed<C>(
    ek: &elliptic_curve::PublicKey<C>,
    ek_x: &[u8],
    hash: NameHash,
    rng: &mut impl CryptoRngCore,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), AttestationError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let ephemeral = NonZeroScalar::<C>::random(rng);
    let shared = (ek.to_projective() * *ephemeral).to_affine();
    let z = Zeroizing::new(shared.x().to_vec());
    let public =
        elliptic_curve::PublicKey::<C>::from_secret_scalar(&ephemeral).to_encoded_point(false);
    let (Some(x), Some(y)) = (public.x(), public.y()) else {
        return Err(AttestationError::Unsupported("ephemeral point".into()));
    };
    // The TPM takes the EK's x as stored, the size of the curve's field.
    let ek_x = left_pad(ek_x, x.len())?;
    let seed = kdfe(hash, &z, "IDENTITY", x, &ek_x, hash.bits())?;
    let mut point = Vec::with_capacity(4 + 2 * x.len());
    for coordinate in [x.as_slice(), y.as_slice()] {
        let len = u16::try_from(coordinate.len())
            .map_err(|_| AttestationError::Unsupported("ECC coordinate size".into()))?;
        point.extend_from_slice(&len.to_be_bytes());
        point.extend_from_slice(coordinate);
    }
    Ok((seed, point))
}

/// A big-endian coordinate as `size` bytes (the TPM may have dropped leading zeros).
fn left_pad(x: &[u8], size: usize) -> Result<Vec<u8>, AttestationError> {
    let start = x.iter().take_while(|b| **b == 0).count();
    let x = &x[start..];
    if x.len() > size {
        return Err(AttestationError::Malformed {
            what: "TPMT_PUBLIC",
            message: format!("ECC coordinate longer than {size} bytes"),
        });
    }
    let mut out = vec![0u8; size - x.len()];
    out.extend_from_slice(x);
    Ok(out)
}

/// MakeCredential to an EK (Part 1, 24.4-24.5), for the TCG EK templates (EK Credential
/// Profile 2.x, B.3): RSA 2048 and ECC NIST P-256 (low range: SHA-256 name, AES-128-CFB),
/// ECC NIST P-384 (high range: SHA-384 name, AES-256-CFB), and RSA EKs with a SHA-384
/// name and AES-256 (high-range RSA 3072). The seed is as long as the name algorithm's
/// digest; the symmetric key as the EK's symmetric definition says.
///
/// `credential` is 1 to 32 bytes (a `TPM2B_DIGEST`).
pub fn make_credential(
    ek: &TpmPublic,
    ak_name: &[u8],
    credential: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<MadeCredential, AttestationError> {
    let hash = NameHash::of(ek.name_alg);
    let sym_bits = match ek.symmetric {
        (alg::AES, bits @ (128 | 256), alg::CFB) => Some(bits),
        _ => None,
    };
    let (Some(hash), Some(sym_bits)) = (hash, sym_bits) else {
        return Err(AttestationError::Unsupported(format!(
            "EK with name algorithm 0x{:04x} and symmetric {:?} (need SHA-256 or SHA-384, \
             AES-128-CFB or AES-256-CFB)",
            ek.name_alg, ek.symmetric
        )));
    };
    if credential.is_empty() || credential.len() > 32 {
        return Err(AttestationError::Unsupported(
            "credential must be 1 to 32 bytes".into(),
        ));
    }
    let (seed, encrypted_secret) = seed_for(ek, hash, rng)?;

    let sym_key = kdfa(
        hash,
        seed.as_ref(),
        "STORAGE",
        ak_name,
        &[],
        u32::from(sym_bits),
    )?;
    let mut ciphertext = Zeroizing::new(Vec::with_capacity(2 + credential.len()));
    ciphertext.extend_from_slice(&(credential.len() as u16).to_be_bytes());
    ciphertext.extend_from_slice(credential);
    let iv = [0u8; 16];
    let bad_key = |_| AttestationError::Unsupported("AES key size".into());
    if sym_bits == 128 {
        Aes128CfbEnc::new_from_slices(&sym_key, &iv)
            .map_err(bad_key)?
            .encrypt(&mut ciphertext);
    } else {
        Aes256CfbEnc::new_from_slices(&sym_key, &iv)
            .map_err(bad_key)?
            .encrypt(&mut ciphertext);
    }

    let hmac_key = kdfa(hash, seed.as_ref(), "INTEGRITY", &[], &[], hash.bits())?;
    let integrity = hash.hmac(&hmac_key, &[&ciphertext, ak_name])?;

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
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"STORAGE\0name");
        mac.update(&[0, 0, 0, 128]);
        let full = mac.finalize().into_bytes();
        assert_eq!(out.as_slice(), &full[..16]);
        assert_eq!(kdfa_sha256(&key, "X", b"", b"", 512).unwrap().len(), 64);
    }

    /// Hands out fixed bytes: with the ephemeral scalar's big-endian bytes, the ECDH
    /// ephemeral key is that scalar.
    struct FixedRng(Vec<u8>);

    impl RngCore for FixedRng {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for (d, s) in dest.iter_mut().zip(self.0.iter().cycle()) {
                *d = *s;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for FixedRng {}

    fn hex(s: &str) -> Vec<u8> {
        crate::attestation::from_hex(s).unwrap()
    }

    /// MakeCredential to a P-384 EK (TCG high-range template: SHA-384 name, AES-256-CFB)
    /// against an independent implementation: the vector comes from
    /// `tests/interop/make_credential_kat.py` (Python `cryptography`: ECDH, AES-CFB, HMAC,
    /// with KDFa/KDFe written from the spec). swtpm activating such a credential is
    /// tested in posture-agent's tests.
    #[test]
    fn make_credential_p384_known_answer() {
        const EK_PUBLIC: &str = "0023000c000300f20030b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e120006010000430010000400100030aca51eb32f081fc6d7a9d1ef472a9dd734097560c31f63cbe31f76429d8df0d0f9a62705a57f0bdff28cb31eff07f2e600308c8b2e50ac39069f6b7f1b3dfef85d344bcd385a300fbb58c64b9dca3aef5dac97e3c8ddefbbb6d5c020704cd490feb8";
        const EPHEMERAL: &str = "cc34238c211c321d8dadba3dbbdf6c679b933ff485db0fba2e944999510626a6c8e31595547c4a7589c58cd53bf4b7f0";
        const AK_NAME: &str =
            "000b955b2f96a049c0b5bf880024cbf0c2d9de3bc7c135830915d1e7d0ac968720f0";
        const CREDENTIAL: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";
        const ENCRYPTED_SECRET: &str = "0030592642b38d4130a97fc87da7995f0ba8a8ae72eaf244b8507466efaacfa2c62e85349ec28d4f89cd6e68d7d058c402c000308b766a72c8a6ba2065b7be88b43ffaf2bd44d73b1d84ea4c845163d24755c31baf37d2c628b2cf3f12872f5e98359393";
        const CREDENTIAL_BLOB: &str = "0030d04989823ed326a77aad484bcfcad9926cfdb771ee35c7a39c48d5c6f15f3b8f5001be918a8d9113bc5df271a9887cca7f0f9f0e263438b01a9becefaa34e50caf03cbc5a5366c917a5d2cca6622abbbf509";

        let ek = TpmPublic::parse(&hex(EK_PUBLIC)).unwrap();
        assert_eq!(ek.name_alg, alg::SHA384);
        assert_eq!(ek.symmetric, (alg::AES, 256, alg::CFB));
        let made = make_credential(
            &ek,
            &hex(AK_NAME),
            &hex(CREDENTIAL),
            &mut FixedRng(hex(EPHEMERAL)),
        )
        .unwrap();
        assert_eq!(
            crate::attestation::to_hex(&made.encrypted_secret),
            ENCRYPTED_SECRET
        );
        assert_eq!(
            crate::attestation::to_hex(&made.credential_blob),
            CREDENTIAL_BLOB
        );
    }

    /// An EK whose templates MakeCredential does not know is refused, not guessed at.
    #[test]
    fn make_credential_refuses_unknown_ek_parameters() {
        let mut bytes = hex("0023000c000300f20030b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e120006010000430010000400100030aca51eb32f081fc6d7a9d1ef472a9dd734097560c31f63cbe31f76429d8df0d0f9a62705a57f0bdff28cb31eff07f2e600308c8b2e50ac39069f6b7f1b3dfef85d344bcd385a300fbb58c64b9dca3aef5dac97e3c8ddefbbb6d5c020704cd490feb8");
        // nameAlg SHA-512.
        bytes[3] = 0x0d;
        let ek = TpmPublic::parse(&bytes).unwrap();
        let err =
            make_credential(&ek, b"\x00\x0bname", &[1; 32], &mut rand_core::OsRng).unwrap_err();
        assert!(err.to_string().contains("need SHA-256 or SHA-384"), "{err}");
    }
}
