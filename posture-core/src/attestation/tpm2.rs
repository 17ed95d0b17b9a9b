//! Pure parsers of the TPM 2.0 structures a verifier receives: `TPMT_PUBLIC`,
//! `TPMS_ATTEST` and `TPMT_SIGNATURE` (TPM 2.0 Library, Part 2: Structures).
//!
//! They take the marshalled bytes exactly as the TPM produced them (big-endian, sized
//! buffers with a 16-bit length) and never need a TPM or the TSS libraries, so a verifier
//! on any OS can check a device's attestation. Every length is bounded by the input and
//! trailing bytes are rejected.

use sha2::{Digest as _, Sha256};

use super::AttestationError;

/// `TPM_GENERATED_VALUE`: the magic that only the TPM puts at the start of a `TPMS_ATTEST`.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_CERTIFY`.
pub const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

/// `TPM_ALG_ID` values used here.
pub mod alg {
    /// RSA.
    pub const RSA: u16 = 0x0001;
    /// SHA-1 (only recognised, never trusted).
    pub const SHA1: u16 = 0x0004;
    /// HMAC.
    pub const HMAC: u16 = 0x0005;
    /// AES.
    pub const AES: u16 = 0x0006;
    /// Keyed hash object.
    pub const KEYEDHASH: u16 = 0x0008;
    /// XOR obfuscation.
    pub const XOR: u16 = 0x000A;
    /// SHA-256.
    pub const SHA256: u16 = 0x000B;
    /// SHA-384.
    pub const SHA384: u16 = 0x000C;
    /// SHA-512.
    pub const SHA512: u16 = 0x000D;
    /// NULL algorithm.
    pub const NULL: u16 = 0x0010;
    /// RSASSA-PKCS1-v1_5.
    pub const RSASSA: u16 = 0x0014;
    /// RSAES-PKCS1-v1_5.
    pub const RSAES: u16 = 0x0015;
    /// RSASSA-PSS.
    pub const RSAPSS: u16 = 0x0016;
    /// RSAES-OAEP.
    pub const OAEP: u16 = 0x0017;
    /// ECDSA.
    pub const ECDSA: u16 = 0x0018;
    /// ECDH.
    pub const ECDH: u16 = 0x0019;
    /// ECDAA.
    pub const ECDAA: u16 = 0x001A;
    /// EC Schnorr.
    pub const ECSCHNORR: u16 = 0x001C;
    /// ECC.
    pub const ECC: u16 = 0x0023;
    /// Symmetric cipher object.
    pub const SYMCIPHER: u16 = 0x0025;
    /// CFB mode.
    pub const CFB: u16 = 0x0043;
}

/// `TPM_ECC_NIST_P256`.
pub const ECC_NIST_P256: u16 = 0x0003;
/// `TPM_ECC_NIST_P384`.
pub const ECC_NIST_P384: u16 = 0x0004;

/// `TPMA_OBJECT` bits.
pub mod attr {
    /// The object cannot be duplicated.
    pub const FIXED_TPM: u32 = 1 << 1;
    /// Cleared on TPM reset.
    pub const ST_CLEAR: u32 = 1 << 2;
    /// The parent cannot change.
    pub const FIXED_PARENT: u32 = 1 << 4;
    /// The TPM generated the sensitive part.
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    /// User role authorisation with the auth value.
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    /// Admin role needs a policy.
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    /// Not subject to dictionary-attack protection.
    pub const NO_DA: u32 = 1 << 10;
    /// Duplication needs an inner wrapper.
    pub const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    /// Restricted key (signs only TPM-generated data / is a storage parent).
    pub const RESTRICTED: u32 = 1 << 16;
    /// Decryption key.
    pub const DECRYPT: u32 = 1 << 17;
    /// Signing key.
    pub const SIGN: u32 = 1 << 18;
}

/// A bounded big-endian reader over untrusted bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Reader { data, pos: 0, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AttestationError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        match end {
            Some(end) => {
                let out = &self.data[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(AttestationError::Malformed {
                what: self.what,
                message: format!("truncated at byte {} (wanted {n} more)", self.pos),
            }),
        }
    }

    fn u8(&mut self) -> Result<u8, AttestationError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AttestationError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AttestationError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, AttestationError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A `TPM2B_*`: a 16-bit size followed by that many bytes.
    fn tpm2b(&mut self) -> Result<&'a [u8], AttestationError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn finish(self) -> Result<(), AttestationError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(AttestationError::Malformed {
                what: self.what,
                message: format!("{} trailing bytes", self.data.len() - self.pos),
            })
        }
    }

    fn malformed(&self, message: String) -> AttestationError {
        AttestationError::Malformed {
            what: self.what,
            message,
        }
    }
}

/// The key material of a `TPMT_PUBLIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key.
    Rsa {
        /// Modulus size in bits.
        key_bits: u16,
        /// Public exponent (0 in the structure means 65537; already substituted here).
        exponent: u32,
        /// Modulus, big-endian.
        modulus: Vec<u8>,
    },
    /// An ECC key.
    Ecc {
        /// `TPM_ECC_CURVE`.
        curve: u16,
        /// X coordinate, big-endian.
        x: Vec<u8>,
        /// Y coordinate, big-endian.
        y: Vec<u8>,
    },
}

/// A parsed `TPMT_PUBLIC` that keeps its exact bytes (its Name is a hash of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmPublic {
    /// The marshalled `TPMT_PUBLIC` as received.
    pub bytes: Vec<u8>,
    /// `nameAlg`.
    pub name_alg: u16,
    /// `objectAttributes` (see [`attr`]).
    pub attributes: u32,
    /// `authPolicy`.
    pub auth_policy: Vec<u8>,
    /// Symmetric algorithm of a storage/decrypt key (`alg::NULL` when none), key bits, mode.
    pub symmetric: (u16, u16, u16),
    /// Signing or encryption scheme and its hash (`alg::NULL`, 0 when none).
    pub scheme: (u16, u16),
    /// The key.
    pub key: PublicKey,
}

impl TpmPublic {
    /// Parses a marshalled `TPMT_PUBLIC` (RSA or ECC objects).
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestationError> {
        let mut r = Reader::new(bytes, "TPMT_PUBLIC");
        let kind = r.u16()?;
        let name_alg = r.u16()?;
        let attributes = r.u32()?;
        let auth_policy = r.tpm2b()?.to_vec();
        let symmetric = {
            let a = r.u16()?;
            if a == alg::NULL {
                (a, 0, 0)
            } else {
                (a, r.u16()?, r.u16()?)
            }
        };
        let (scheme, key) = match kind {
            alg::RSA => {
                let s = r.u16()?;
                // RSAES has no details; every other RSA scheme carries a hash algorithm.
                let scheme = if s == alg::NULL || s == alg::RSAES {
                    (s, 0)
                } else {
                    (s, r.u16()?)
                };
                let key_bits = r.u16()?;
                let exponent = match r.u32()? {
                    0 => 65537,
                    e => e,
                };
                let modulus = r.tpm2b()?.to_vec();
                (
                    scheme,
                    PublicKey::Rsa {
                        key_bits,
                        exponent,
                        modulus,
                    },
                )
            }
            alg::ECC => {
                let s = r.u16()?;
                let scheme = if s == alg::NULL {
                    (s, 0)
                } else {
                    (s, r.u16()?)
                };
                if s == alg::ECDAA {
                    let _count = r.u16()?;
                }
                let curve = r.u16()?;
                let kdf = r.u16()?;
                if kdf != alg::NULL {
                    let _kdf_hash = r.u16()?;
                }
                let x = r.tpm2b()?.to_vec();
                let y = r.tpm2b()?.to_vec();
                (scheme, PublicKey::Ecc { curve, x, y })
            }
            other => return Err(r.malformed(format!("unsupported object type 0x{other:04x}"))),
        };
        r.finish()?;
        Ok(TpmPublic {
            bytes: bytes.to_vec(),
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            scheme,
            key,
        })
    }

    /// The object's Name: `nameAlg || H_nameAlg(TPMT_PUBLIC)`. Only SHA-256 names are
    /// supported (every key this crate creates or accepts uses them).
    pub fn name(&self) -> Result<Vec<u8>, AttestationError> {
        if self.name_alg != alg::SHA256 {
            return Err(AttestationError::Unsupported(format!(
                "name algorithm 0x{:04x} (only SHA-256)",
                self.name_alg
            )));
        }
        let mut name = alg::SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(&self.bytes));
        Ok(name)
    }

    /// Whether every bit of `bits` is set in the object attributes.
    pub fn has(&self, bits: u32) -> bool {
        self.attributes & bits == bits
    }

    /// The P-256 public key, if this is one.
    pub fn p256(&self) -> Result<p256::PublicKey, AttestationError> {
        match &self.key {
            PublicKey::Ecc { curve, x, y } if *curve == ECC_NIST_P256 => {
                let mut sec1 = vec![0x04];
                sec1.extend_from_slice(&left_pad::<32>(x)?);
                sec1.extend_from_slice(&left_pad::<32>(y)?);
                p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| AttestationError::Malformed {
                    what: "TPMT_PUBLIC",
                    message: "ECC point is not on P-256".into(),
                })
            }
            _ => Err(AttestationError::Unsupported(
                "key is not an ECC NIST P-256 key".into(),
            )),
        }
    }

    /// The P-384 public key, if this is one.
    pub fn p384(&self) -> Result<p384::PublicKey, AttestationError> {
        match &self.key {
            PublicKey::Ecc { curve, x, y } if *curve == ECC_NIST_P384 => {
                let mut sec1 = vec![0x04];
                sec1.extend_from_slice(&left_pad::<48>(x)?);
                sec1.extend_from_slice(&left_pad::<48>(y)?);
                p384::PublicKey::from_sec1_bytes(&sec1).map_err(|_| AttestationError::Malformed {
                    what: "TPMT_PUBLIC",
                    message: "ECC point is not on P-384".into(),
                })
            }
            _ => Err(AttestationError::Unsupported(
                "key is not an ECC NIST P-384 key".into(),
            )),
        }
    }

    /// The RSA public key, if this is one.
    pub fn rsa(&self) -> Result<rsa::RsaPublicKey, AttestationError> {
        match &self.key {
            PublicKey::Rsa {
                exponent, modulus, ..
            } => rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(modulus),
                rsa::BigUint::from(*exponent),
            )
            .map_err(|e| AttestationError::Malformed {
                what: "TPMT_PUBLIC",
                message: format!("RSA key: {e}"),
            }),
            PublicKey::Ecc { .. } => Err(AttestationError::Unsupported("key is not RSA".into())),
        }
    }
}

/// Left-pads a big-endian integer to `N` bytes (the TPM may drop leading zeros).
pub fn left_pad<const N: usize>(v: &[u8]) -> Result<[u8; N], AttestationError> {
    let v = {
        let zeros = v.iter().take_while(|b| **b == 0).count();
        &v[zeros..]
    };
    if v.len() > N {
        return Err(AttestationError::Malformed {
            what: "ECC value",
            message: format!("{} bytes, at most {N} expected", v.len()),
        });
    }
    let mut out = [0u8; N];
    out[N - v.len()..].copy_from_slice(v);
    Ok(out)
}

/// One bank of a `TPML_PCR_SELECTION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    /// The hash algorithm of the bank.
    pub hash: u16,
    /// The selected PCR indices, ascending.
    pub pcrs: Vec<u32>,
}

/// What a `TPMS_ATTEST` attests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attested {
    /// `TPMS_QUOTE_INFO`.
    Quote {
        /// The PCR selection, in the order the TPM hashed it.
        selection: Vec<PcrBank>,
        /// The digest of the selected PCR values.
        pcr_digest: Vec<u8>,
    },
    /// `TPMS_CERTIFY_INFO`.
    Certify {
        /// The Name of the certified object.
        name: Vec<u8>,
        /// Its qualified name.
        qualified_name: Vec<u8>,
    },
    /// Any other attestation type (kept so the verifier can reject it by type).
    Other,
}

/// A parsed `TPMS_ATTEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    /// `magic` (must be [`TPM_GENERATED_VALUE`]).
    pub magic: u32,
    /// `type` (`TPM_ST_ATTEST_*`).
    pub kind: u16,
    /// `qualifiedSigner`.
    pub qualified_signer: Vec<u8>,
    /// `extraData`: the qualifying data the caller passed in.
    pub extra_data: Vec<u8>,
    /// `clockInfo.clock` (milliseconds).
    pub clock: u64,
    /// `clockInfo.resetCount`: TPM resets (reboots) since the last TPM2_Clear.
    pub reset_count: u32,
    /// `clockInfo.restartCount`.
    pub restart_count: u32,
    /// `clockInfo.safe`.
    pub safe: bool,
    /// `firmwareVersion`.
    pub firmware_version: u64,
    /// The attested content.
    pub attested: Attested,
}

impl Attest {
    /// Parses a marshalled `TPMS_ATTEST`. The magic is parsed, not checked; the verifier
    /// checks it (so its error can say so).
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestationError> {
        let mut r = Reader::new(bytes, "TPMS_ATTEST");
        let magic = r.u32()?;
        let kind = r.u16()?;
        let qualified_signer = r.tpm2b()?.to_vec();
        let extra_data = r.tpm2b()?.to_vec();
        let clock = r.u64()?;
        let reset_count = r.u32()?;
        let restart_count = r.u32()?;
        let safe = r.u8()? != 0;
        let firmware_version = r.u64()?;
        let attested = match kind {
            TPM_ST_ATTEST_QUOTE => {
                let count = r.u32()?;
                // TPM implementations support at most a handful of banks (HASH_COUNT).
                if count > 16 {
                    return Err(r.malformed(format!("{count} PCR banks")));
                }
                let mut selection = Vec::new();
                for _ in 0..count {
                    let hash = r.u16()?;
                    let size = r.u8()?;
                    let bits = r.take(usize::from(size))?;
                    let mut pcrs = Vec::new();
                    for (byte_index, byte) in bits.iter().enumerate() {
                        for bit in 0..8u32 {
                            if byte & (1 << bit) != 0 {
                                // byte_index < 256, so this cannot overflow.
                                pcrs.push(byte_index as u32 * 8 + bit);
                            }
                        }
                    }
                    selection.push(PcrBank { hash, pcrs });
                }
                let pcr_digest = r.tpm2b()?.to_vec();
                Attested::Quote {
                    selection,
                    pcr_digest,
                }
            }
            TPM_ST_ATTEST_CERTIFY => {
                let name = r.tpm2b()?.to_vec();
                let qualified_name = r.tpm2b()?.to_vec();
                Attested::Certify {
                    name,
                    qualified_name,
                }
            }
            _ => {
                // Skip the rest: the verifier rejects any other type.
                let rest = bytes.len() - r.pos;
                r.take(rest)?;
                Attested::Other
            }
        };
        r.finish()?;
        Ok(Attest {
            magic,
            kind,
            qualified_signer,
            extra_data,
            clock,
            reset_count,
            restart_count,
            safe,
            firmware_version,
            attested,
        })
    }
}

/// A parsed `TPMT_SIGNATURE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmSignature {
    /// `TPM_ALG_ECDSA`.
    Ecdsa {
        /// The hash the TPM signed with.
        hash: u16,
        /// `signatureR`.
        r: Vec<u8>,
        /// `signatureS`.
        s: Vec<u8>,
    },
    /// `TPM_ALG_RSASSA` (PKCS#1 v1.5).
    RsaSsa {
        /// The hash.
        hash: u16,
        /// The signature.
        sig: Vec<u8>,
    },
    /// `TPM_ALG_RSAPSS`.
    RsaPss {
        /// The hash.
        hash: u16,
        /// The signature.
        sig: Vec<u8>,
    },
}

impl TpmSignature {
    /// Parses a marshalled `TPMT_SIGNATURE` (ECDSA, RSASSA, RSAPSS).
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestationError> {
        let mut r = Reader::new(bytes, "TPMT_SIGNATURE");
        let sig_alg = r.u16()?;
        let out = match sig_alg {
            alg::ECDSA => {
                let hash = r.u16()?;
                let rr = r.tpm2b()?.to_vec();
                let s = r.tpm2b()?.to_vec();
                TpmSignature::Ecdsa { hash, r: rr, s }
            }
            alg::RSASSA => {
                let hash = r.u16()?;
                TpmSignature::RsaSsa {
                    hash,
                    sig: r.tpm2b()?.to_vec(),
                }
            }
            alg::RSAPSS => {
                let hash = r.u16()?;
                TpmSignature::RsaPss {
                    hash,
                    sig: r.tpm2b()?.to_vec(),
                }
            }
            other => {
                return Err(r.malformed(format!("unsupported signature algorithm 0x{other:04x}")))
            }
        };
        r.finish()?;
        Ok(out)
    }

    /// Marshals an ECDSA-SHA256 signature as a `TPMT_SIGNATURE` (used by tests and tools
    /// that build structures; the device sends the TPM's own bytes).
    pub fn marshal_ecdsa_sha256(r: &[u8], s: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + r.len() + s.len());
        out.extend_from_slice(&alg::ECDSA.to_be_bytes());
        out.extend_from_slice(&alg::SHA256.to_be_bytes());
        for v in [r, s] {
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v);
        }
        out
    }
}

/// Verifies `signature` over `message` with the key in `key` (SHA-256 signatures only,
/// the hash the verifier pins).
pub fn verify_signature(
    key: &TpmPublic,
    message: &[u8],
    signature: &TpmSignature,
) -> Result<(), AttestationError> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let digest = Sha256::digest(message);
    match signature {
        TpmSignature::Ecdsa { hash, r, s } => {
            require_sha256(*hash)?;
            let vk = p256::ecdsa::VerifyingKey::from(key.p256()?);
            let sig = p256::ecdsa::Signature::from_scalars(left_pad::<32>(r)?, left_pad::<32>(s)?)
                .map_err(|_| AttestationError::BadSignature("ECDSA r or s out of range".into()))?;
            vk.verify_prehash(&digest, &sig).map_err(|_| {
                AttestationError::BadSignature("ECDSA signature does not verify".into())
            })
        }
        TpmSignature::RsaSsa { hash, sig } => {
            require_sha256(*hash)?;
            key.rsa()?
                .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, sig)
                .map_err(|_| {
                    AttestationError::BadSignature("RSASSA signature does not verify".into())
                })
        }
        TpmSignature::RsaPss { hash, sig } => {
            require_sha256(*hash)?;
            key.rsa()?
                .verify(rsa::Pss::new::<Sha256>(), &digest, sig)
                .map_err(|_| {
                    AttestationError::BadSignature("RSAPSS signature does not verify".into())
                })
        }
    }
}

fn require_sha256(hash: u16) -> Result<(), AttestationError> {
    if hash == alg::SHA256 {
        Ok(())
    } else {
        Err(AttestationError::BadSignature(format!(
            "signature hash 0x{hash:04x}, expected SHA-256"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_inputs_are_errors_not_panics() {
        // A quote header cut at every length must fail cleanly.
        let mut q = Vec::new();
        q.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
        q.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0]);
        q.extend_from_slice(&[0u8; 8 + 4 + 4 + 1 + 8]);
        q.extend_from_slice(&[0, 0, 0, 1, 0, 0x0b, 3, 0xff, 0, 0, 0, 0]);
        assert!(Attest::parse(&q).is_ok());
        for n in 0..q.len() {
            assert!(Attest::parse(&q[..n]).is_err(), "length {n}");
        }
        let mut long = q.clone();
        long.push(0);
        assert!(Attest::parse(&long).is_err());
    }

    #[test]
    fn pcr_bitmap_decodes_to_indices() {
        let mut q = Vec::new();
        q.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
        q.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0]);
        q.extend_from_slice(&[0u8; 25]);
        q.extend_from_slice(&[0, 0, 0, 1, 0, 0x0b, 3, 0b1000_0001, 0b0000_0010, 0, 0, 0]);
        let a = Attest::parse(&q).unwrap();
        match a.attested {
            Attested::Quote { selection, .. } => {
                assert_eq!(selection[0].hash, alg::SHA256);
                assert_eq!(selection[0].pcrs, vec![0, 7, 9]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn left_pad_restores_dropped_zeros() {
        assert_eq!(left_pad::<4>(&[1, 2]).unwrap(), [0, 0, 1, 2]);
        assert_eq!(left_pad::<2>(&[0, 0, 1, 2]).unwrap(), [1, 2]);
        assert!(left_pad::<2>(&[1, 2, 3]).is_err());
    }
}
