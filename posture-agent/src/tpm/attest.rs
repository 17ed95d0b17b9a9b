//! The attestation key (AK), the endorsement key (EK), credential activation, TPM2_Certify
//! and PCR quotes: the device half of [`posture_core::attestation`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tss_esapi::abstraction::ek::create_ek_public_from_default_template_2;
use tss_esapi::abstraction::{nv, AsymmetricAlgorithmSelection, DefaultKey};
use tss_esapi::constants::{CapabilityType, SessionType};
use tss_esapi::handles::AuthHandle;
use tss_esapi::handles::{KeyHandle, NvIndexTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    CapabilityData, Data, EncryptedSecret, IdObject, PcrSelectionListBuilder, PcrSlot,
    SignatureScheme, SymmetricDefinition,
};
use tss_esapi::traits::Marshall;

use super::blob;
use super::signer::{flush, Srk, TpmSigner};
use super::templates::Role;
use super::{protocol_err, tss_err, Tpm, AK_FILE};
use crate::key::EkPreference;
use posture_core::attestation::tpm2::{Attest, Attested};
use posture_core::attestation::{
    to_hex, EnrollmentChallenge, EnrollmentRequest, EnrollmentResponse, PcrValues, Quote,
    SignedAttest, PROTOCOL_VERSION,
};
use posture_core::keys::KeyError;

/// EK certificate NV indices (TCG EK Credential Profile 2.3, 2.2.1.4-5): RSA 2048,
/// ECC P-256, ECC P-384.
pub const EK_CERT_NV_INDICES: [u32; 3] = [0x01c0_0002, 0x01c0_000a, 0x01c0_0016];

/// EK certificate chain NV indices (TCG EK Credential Profile 2.3, 2.2.1.5.2): the
/// intermediates of the EK certificate as concatenated DER, overflowing from one index to
/// the next (Intel PTT keeps its On-Die CA chain here).
pub const EK_CERT_CHAIN_NV_INDICES: std::ops::RangeInclusive<u32> = 0x01c0_0100..=0x01c0_01ff;

/// Where the kernel exposes the firmware's TCG event log.
const EVENT_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
/// Event logs larger than this are left out of the quote (real ones are tens of KiB).
const MAX_EVENT_LOG: u64 = 2 * 1024 * 1024;

/// An EK certificate read from NV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkCertificate {
    /// The NV index it was read from.
    pub nv_index: u32,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// The attestation key, loaded while this value lives.
#[derive(Debug)]
pub struct AttestationKey {
    tpm: Arc<Tpm>,
    handle: KeyHandle,
    public: Vec<u8>,
}

impl Drop for AttestationKey {
    fn drop(&mut self) {
        flush(&self.tpm, self.handle);
    }
}

impl AttestationKey {
    /// Loads (or creates) the AK blob `tpm-ak.json` in `state_dir` under `srk`.
    pub fn load(srk: &Srk, state_dir: &Path) -> Result<AttestationKey, KeyError> {
        blob::ensure_state_dir(state_dir)?;
        let (handle, public) = srk.load_or_create(
            &state_dir.join(AK_FILE),
            Role::Ak,
            "posture attestation key (TPM-wrapped)",
        )?;
        Ok(AttestationKey {
            tpm: Arc::clone(srk.tpm()),
            handle,
            public,
        })
    }

    /// The AK's marshalled `TPMT_PUBLIC`.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Builds the enrollment request with the EK chosen as `[key] ek = "auto"` does: see
    /// [`AttestationKey::enrollment_request_with`].
    pub fn enrollment_request(&self) -> Result<EnrollmentRequest, KeyError> {
        self.enrollment_request_with(EkPreference::Auto)
    }

    /// Builds the enrollment request: the EK's public part and its certificate from NV,
    /// the EK certificate chain where present, and the AK's public part. The EK is the one
    /// `preference` picks among those whose certificate is in NV ([`EkKind::choose`]),
    /// re-created from its TCG template, so the certificate certifies the EK sent.
    pub fn enrollment_request_with(
        &self,
        preference: EkPreference,
    ) -> Result<EnrollmentRequest, KeyError> {
        let certificates = read_ek_certificates(&self.tpm)?;
        let kind = EkKind::choose(preference, &certificates);
        let ek_public = self.tpm.with_context(|ctx| {
            let handle = create_ek(ctx, kind)?;
            let public = ctx.read_public(handle).map_err(tss_err("reading the EK"));
            let _ = ctx.flush_context(handle.into());
            public?.0.marshall().map_err(tss_err("marshalling the EK"))
        })?;
        let ek_certificate = certificates
            .into_iter()
            .find(|c| c.nv_index == kind.certificate_nv_index())
            .map(|c| c.der);
        let chain = read_ek_certificate_chain(&self.tpm)?;
        let ek_chain = posture_core::attestation::split_certificate_chain(&chain)
            .into_iter()
            .take(posture_core::attestation::MAX_EK_CHAIN_CERTIFICATES)
            .map(<[u8]>::to_vec)
            .collect();
        Ok(EnrollmentRequest {
            version: PROTOCOL_VERSION,
            ek_public,
            ek_certificate,
            ek_chain,
            ak_public: self.public.clone(),
        })
    }

    /// Answers the verifier's challenge: recovers the secret with TPM2_ActivateCredential
    /// (EK + this AK) and has this AK certify `device_key` with the challenge nonce.
    pub fn enrollment_response(
        &self,
        challenge: &EnrollmentChallenge,
        device_key: &TpmSigner,
    ) -> Result<EnrollmentResponse, KeyError> {
        if challenge.version != PROTOCOL_VERSION {
            return Err(protocol_err(
                "reading the enrollment challenge",
                format!("version {} is not {PROTOCOL_VERSION}", challenge.version),
            ));
        }
        let nonce = posture_core::attestation::from_hex(&challenge.nonce)
            .map_err(|e| protocol_err("reading the challenge nonce", e.to_string()))?;
        let secret = self.activate_credential(challenge)?;
        let certify = self.certify(device_key, &nonce)?;
        Ok(EnrollmentResponse {
            version: PROTOCOL_VERSION,
            secret,
            device_key_public: device_key.tpm_public().to_vec(),
            certify,
        })
    }

    /// TPM2_ActivateCredential: the TPM releases the secret only if it holds the EK and
    /// this AK matches the Name the verifier bound it to.
    pub fn activate_credential(
        &self,
        challenge: &EnrollmentChallenge,
    ) -> Result<Vec<u8>, KeyError> {
        let blob = IdObject::try_from(challenge.credential_blob.clone())
            .map_err(tss_err("credential blob"))?;
        let secret = EncryptedSecret::try_from(challenge.encrypted_secret.clone())
            .map_err(tss_err("encrypted secret"))?;
        let kind = EkKind::for_encrypted_secret(&challenge.encrypted_secret);
        self.tpm.with_context(|ctx| {
            let ek = create_ek(ctx, kind)?;
            let result = (|| {
                if kind.user_with_auth() {
                    // High-range EKs have userWithAuth and an empty authValue.
                    return ctx
                        .execute_with_sessions(
                            (
                                Some(AuthSession::Password),
                                Some(AuthSession::Password),
                                None,
                            ),
                            |ctx| ctx.activate_credential(self.handle, ek, blob, secret),
                        )
                        .map_err(tss_err(
                            "activating the credential (was it made for this TPM's EK and AK?)",
                        ));
                }
                // The low-range EKs' policy is PolicySecret(endorsement hierarchy).
                let session = ctx
                    .start_auth_session(
                        None,
                        None,
                        None,
                        SessionType::Policy,
                        SymmetricDefinition::AES_128_CFB,
                        HashingAlgorithm::Sha256,
                    )
                    .map_err(tss_err("starting a policy session"))?
                    .ok_or_else(|| protocol_err("starting a policy session", "none returned"))?;
                let activated = (|| {
                    let policy =
                        PolicySession::try_from(session).map_err(tss_err("policy session"))?;
                    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                        ctx.policy_secret(
                            policy,
                            AuthHandle::Endorsement,
                            Default::default(),
                            Default::default(),
                            Default::default(),
                            None,
                        )
                    })
                    .map_err(tss_err("PolicySecret(endorsement)"))?;
                    ctx.execute_with_sessions(
                        (Some(AuthSession::Password), Some(session), None),
                        |ctx| ctx.activate_credential(self.handle, ek, blob, secret),
                    )
                    .map_err(tss_err(
                        "activating the credential (was it made for this TPM's EK and AK?)",
                    ))
                })();
                // The TPM closes the session itself when ActivateCredential succeeds
                // (continueSession is clear); flush it only when something failed, so
                // a success costs no failing FlushContext.
                if activated.is_err() {
                    let _ =
                        ctx.flush_context(tss_esapi::handles::SessionHandle::from(session).into());
                }
                activated
            })();
            let _ = ctx.flush_context(ek.into());
            result.map(|digest| digest.value().to_vec())
        })
    }

    /// TPM2_Certify of `key` by this AK with `qualifying_data` as extraData.
    pub fn certify(
        &self,
        key: &TpmSigner,
        qualifying_data: &[u8],
    ) -> Result<SignedAttest, KeyError> {
        let data = Data::try_from(qualifying_data.to_vec()).map_err(tss_err("qualifying data"))?;
        let (attest, signature) = self.tpm.with_context(|ctx| {
            ctx.execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |ctx| {
                    ctx.certify(
                        key.handle().into(),
                        self.handle,
                        data,
                        SignatureScheme::Null,
                    )
                },
            )
            .map_err(tss_err("certifying the device key"))
        })?;
        Ok(SignedAttest {
            attest: attest
                .marshall()
                .map_err(tss_err("marshalling TPMS_ATTEST"))?,
            signature: signature
                .marshall()
                .map_err(tss_err("marshalling TPMT_SIGNATURE"))?,
        })
    }

    /// Quotes the sha256 bank PCRs `pcrs` with `qualifying_data` (see
    /// [`posture_core::attestation::qualifying_data`]). Two TPM commands (PCR_Read, Quote); if a
    /// PCR changes in between, both are repeated (at most three times).
    pub fn quote(&self, qualifying_data: &[u8], pcrs: &[u32]) -> Result<Quote, KeyError> {
        if pcrs.is_empty() {
            return Err(protocol_err("quoting", "no PCR selected for the quote"));
        }
        let mut pcrs = pcrs.to_vec();
        pcrs.sort_unstable();
        pcrs.dedup();
        let data = Data::try_from(qualifying_data.to_vec()).map_err(tss_err("qualifying data"))?;
        let slots = pcrs
            .iter()
            .map(|p| pcr_slot(*p))
            .collect::<Result<Vec<_>, _>>()?;
        for _ in 0..3 {
            let values = self.read_pcrs(&pcrs)?;
            let selection = PcrSelectionListBuilder::new()
                .with_selection(HashingAlgorithm::Sha256, &slots)
                .build()
                .map_err(tss_err("PCR selection"))?;
            let (attest, signature) = self.tpm.with_context(|ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.quote(self.handle, data.clone(), SignatureScheme::Null, selection)
                })
                .map_err(tss_err("quoting PCRs"))
            })?;
            let attest = attest
                .marshall()
                .map_err(tss_err("marshalling TPMS_ATTEST"))?;
            let expected: Vec<u8> = values
                .values()
                .fold(Sha256::new(), |h, v| h.chain_update(v))
                .finalize()
                .to_vec();
            let quoted = Attest::parse(&attest)
                .map_err(|e| protocol_err("reading the quote", e.to_string()))?;
            if !matches!(&quoted.attested, Attested::Quote { pcr_digest, .. } if *pcr_digest == expected)
            {
                continue;
            }
            return Ok(Quote {
                version: PROTOCOL_VERSION,
                quote: SignedAttest {
                    attest,
                    signature: signature
                        .marshall()
                        .map_err(tss_err("marshalling TPMT_SIGNATURE"))?,
                },
                pcrs: PcrValues {
                    sha256: values.iter().map(|(k, v)| (*k, to_hex(v))).collect(),
                },
                event_log: self.event_log(),
            });
        }
        Err(protocol_err(
            "quoting",
            "PCR values kept changing while quoting; try again",
        ))
    }

    /// Reads sha256 PCR values (PCR_Read returns at most 8 per call).
    fn read_pcrs(&self, pcrs: &[u32]) -> Result<BTreeMap<u32, Vec<u8>>, KeyError> {
        let mut out = BTreeMap::new();
        for chunk in pcrs.chunks(8) {
            let slots = chunk
                .iter()
                .map(|p| pcr_slot(*p))
                .collect::<Result<Vec<_>, _>>()?;
            let selection = PcrSelectionListBuilder::new()
                .with_selection(HashingAlgorithm::Sha256, &slots)
                .build()
                .map_err(tss_err("PCR selection"))?;
            let (_, read, digests) = self.tpm.with_context(|ctx| {
                ctx.execute_without_session(|ctx| ctx.pcr_read(selection))
                    .map_err(tss_err("reading PCRs"))
            })?;
            let read_slots: Vec<PcrSlot> = read
                .get_selections()
                .iter()
                .flat_map(|s| s.selected())
                .collect();
            if read_slots.len() != chunk.len() || digests.len() != chunk.len() {
                return Err(protocol_err(
                    "reading PCRs",
                    format!(
                        "the TPM returned {} of {} sha256 PCRs (is the sha256 bank active?)",
                        digests.len(),
                        chunk.len()
                    ),
                ));
            }
            for (pcr, digest) in chunk.iter().zip(digests.value()) {
                out.insert(*pcr, digest.value().to_vec());
            }
        }
        Ok(out)
    }

    /// The firmware event log, when talking to the machine's own TPM and readable.
    fn event_log(&self) -> Option<Vec<u8>> {
        if !self.tpm.tcti().starts_with("device:") {
            return None;
        }
        let meta = std::fs::metadata(EVENT_LOG).ok()?;
        // securityfs reports size 0; the limit guards against anything else.
        if meta.len() > MAX_EVENT_LOG {
            return None;
        }
        std::fs::read(EVENT_LOG).ok().filter(|log| !log.is_empty())
    }
}

fn pcr_slot(pcr: u32) -> Result<PcrSlot, KeyError> {
    1u32.checked_shl(pcr)
        .and_then(|bit| PcrSlot::try_from(bit).ok())
        .ok_or_else(|| protocol_err("reading PCRs", format!("PCR {pcr} does not exist")))
}

/// An endorsement key the agent can use: the TCG EK Credential Profile templates whose
/// certificates it reads from NV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EkKind {
    /// RSA 2048, template L-1 (low range): certificate at `0x01c00002`.
    Rsa2048,
    /// ECC NIST P-256, template L-2 (low range): certificate at `0x01c0000a`.
    EccP256,
    /// ECC NIST P-384, template H-3 (high range: SHA-384 name, AES-256-CFB, userWithAuth,
    /// empty unique): certificate at `0x01c00016`. swtpm manufactures this one.
    EccP384,
}

impl EkKind {
    /// The NV index of this EK's certificate (TCG EK Credential Profile 2.2.1.4-5).
    pub fn certificate_nv_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => EK_CERT_NV_INDICES[0],
            EkKind::EccP256 => EK_CERT_NV_INDICES[1],
            EkKind::EccP384 => EK_CERT_NV_INDICES[2],
        }
    }

    /// Which EK to present, given the EK certificates in NV: `Rsa` always RSA 2048; `Ecc`
    /// P-256 unless only a P-384 certificate is present; `Auto` the RSA 2048 EK when its
    /// certificate is present (most verifiers expect it), else the ECC EK whose
    /// certificate is (P-256 first), else RSA 2048 (the verifier may fetch the
    /// certificate from the vendor's service).
    pub fn choose(preference: EkPreference, certificates: &[EkCertificate]) -> EkKind {
        let has = |kind: EkKind| {
            certificates
                .iter()
                .any(|c| c.nv_index == kind.certificate_nv_index())
        };
        let ecc = if !has(EkKind::EccP256) && has(EkKind::EccP384) {
            EkKind::EccP384
        } else {
            EkKind::EccP256
        };
        match preference {
            EkPreference::Rsa => EkKind::Rsa2048,
            EkPreference::Ecc => ecc,
            EkPreference::Auto => {
                if has(EkKind::Rsa2048) {
                    EkKind::Rsa2048
                } else if has(EkKind::EccP256) || has(EkKind::EccP384) {
                    ecc
                } else {
                    EkKind::Rsa2048
                }
            }
        }
    }

    /// The EK a challenge was made for, from the shape of its encrypted secret: an ECC
    /// EK's is the ephemeral point, a `TPMS_ECC_POINT` with 32-byte (P-256) or 48-byte
    /// (P-384) coordinates; an RSA 2048 EK's is 256 bytes of RSA-OAEP. So `enroll
    /// complete` needs no state from `enroll request`.
    pub fn for_encrypted_secret(secret: &[u8]) -> EkKind {
        let coordinate = |at: usize| {
            secret
                .get(at..at + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        };
        match coordinate(0) {
            Some(n @ (32 | 48)) if secret.len() == 4 + 2 * n && coordinate(2 + n) == Some(n) => {
                if n == 32 {
                    EkKind::EccP256
                } else {
                    EkKind::EccP384
                }
            }
            _ => EkKind::Rsa2048,
        }
    }

    /// Whether the template sets userWithAuth (the high-range templates), so that the EK
    /// is used with its empty authValue rather than PolicySecret(endorsement).
    fn user_with_auth(self) -> bool {
        self == EkKind::EccP384
    }

    fn template(self) -> Result<tss_esapi::structures::Public, KeyError> {
        let selection = match self {
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            EkKind::EccP384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
        };
        create_ek_public_from_default_template_2(selection, None::<DefaultKey>)
            .map_err(tss_err("EK template"))
    }
}

/// Creates the EK of `kind` from its TCG template (flush it after use).
fn create_ek(ctx: &mut tss_esapi::Context, kind: EkKind) -> Result<KeyHandle, KeyError> {
    let template = kind.template()?;
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
    })
    .map(|r| r.key_handle)
    .map_err(tss_err("creating the EK (is an endorsement password set?)"))
}

/// Reads the EK certificates present in NV ([`EK_CERT_NV_INDICES`]). One GetCapability
/// lists the defined NV indices first, so absent ones cost no failing command.
pub(crate) fn read_ek_certificates(tpm: &Tpm) -> Result<Vec<EkCertificate>, KeyError> {
    tpm.with_context(|ctx| {
        let (data, _) = ctx
            .execute_without_session(|ctx| {
                ctx.get_capability(CapabilityType::Handles, EK_CERT_NV_INDICES[0], 64)
            })
            .map_err(tss_err("listing NV indices"))?;
        let defined: Vec<u32> = match data {
            CapabilityData::Handles(handles) => {
                handles.into_inner().into_iter().map(u32::from).collect()
            }
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for index in EK_CERT_NV_INDICES
            .into_iter()
            .filter(|i| defined.contains(i))
        {
            let nv_index = NvIndexTpmHandle::new(index).map_err(tss_err("NV index"))?;
            let object = ctx
                .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(nv_index)))
                .map_err(tss_err("opening the EK certificate NV index"))?;
            // read_full closes the ESYS handle when it is done.
            let der = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    nv::read_full(ctx, NvAuth::NvIndex(object.into()), nv_index)
                })
                .map_err(tss_err("reading the EK certificate from NV"))?;
            out.push(EkCertificate {
                nv_index: index,
                der,
            });
        }
        Ok(out)
    })
}

/// Reads the EK certificate chain NV indices ([`EK_CERT_CHAIN_NV_INDICES`]) that are
/// defined, in ascending order, and concatenates their contents (a certificate may span
/// two indices). Empty when the TPM has none.
pub(crate) fn read_ek_certificate_chain(tpm: &Tpm) -> Result<Vec<u8>, KeyError> {
    tpm.with_context(|ctx| {
        let first = *EK_CERT_CHAIN_NV_INDICES.start();
        let (data, _) = ctx
            .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, first, 256))
            .map_err(tss_err("listing NV indices"))?;
        let mut defined: Vec<u32> = match data {
            CapabilityData::Handles(handles) => handles
                .into_inner()
                .into_iter()
                .map(u32::from)
                .filter(|h| EK_CERT_CHAIN_NV_INDICES.contains(h))
                .collect(),
            _ => Vec::new(),
        };
        defined.sort_unstable();
        let mut out = Vec::new();
        for index in defined {
            let nv_index = NvIndexTpmHandle::new(index).map_err(tss_err("NV index"))?;
            let object = ctx
                .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(nv_index)))
                .map_err(tss_err("opening an EK certificate chain NV index"))?;
            let part = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    nv::read_full(ctx, NvAuth::NvIndex(object.into()), nv_index)
                })
                .map_err(tss_err("reading the EK certificate chain from NV"))?;
            out.extend_from_slice(&part);
        }
        Ok(out)
    })
}

impl Tpm {
    /// The EK certificates stored in NV (RSA 2048, ECC P-256, ECC P-384), where present.
    pub fn ek_certificates(&self) -> Result<Vec<EkCertificate>, KeyError> {
        read_ek_certificates(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs(indices: &[u32]) -> Vec<EkCertificate> {
        indices
            .iter()
            .map(|i| EkCertificate {
                nv_index: *i,
                der: vec![0x30],
            })
            .collect()
    }

    #[test]
    fn rsa_stays_the_default_and_ecc_is_used_when_it_alone_has_a_certificate() {
        use EkKind::*;
        use EkPreference::*;
        let cases: [(&[u32], EkPreference, EkKind); 9] = [
            (&[0x01c0_0002, 0x01c0_000a, 0x01c0_0016], Auto, Rsa2048),
            (&[0x01c0_000a], Auto, EccP256),
            (&[0x01c0_0016], Auto, EccP384),
            (&[0x01c0_000a, 0x01c0_0016], Auto, EccP256),
            (&[], Auto, Rsa2048),
            (&[0x01c0_0002, 0x01c0_0016], Ecc, EccP384),
            (&[0x01c0_0002], Ecc, EccP256),
            (&[0x01c0_0016], Rsa, Rsa2048),
            (&[0x01c0_0002, 0x01c0_000a], Ecc, EccP256),
        ];
        for (indices, preference, expected) in cases {
            assert_eq!(
                EkKind::choose(preference, &certs(indices)),
                expected,
                "{indices:x?} {preference:?}"
            );
        }
    }

    #[test]
    fn the_ek_of_a_challenge_is_told_by_its_encrypted_secret() {
        let point = |n: usize| {
            let mut p = (n as u16).to_be_bytes().to_vec();
            p.extend(vec![7; n]);
            p.extend((n as u16).to_be_bytes());
            p.extend(vec![9; n]);
            p
        };
        assert_eq!(EkKind::for_encrypted_secret(&point(32)), EkKind::EccP256);
        assert_eq!(EkKind::for_encrypted_secret(&point(48)), EkKind::EccP384);
        assert_eq!(EkKind::for_encrypted_secret(&[0xa5; 256]), EkKind::Rsa2048);
        // An RSA ciphertext that happens to start like a 48-byte coordinate.
        let mut rsa = vec![0x11; 256];
        rsa[..2].copy_from_slice(&[0, 48]);
        assert_eq!(EkKind::for_encrypted_secret(&rsa), EkKind::Rsa2048);
    }
}
