//! The verifier's checks of enrollment, certification and quotes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use x509_cert::Certificate;

use super::credential::{make_credential, os_random};
use super::ekcert::{verify_ek, EkPolicy};
use super::tpm2::{
    alg, attr, verify_signature, Attest, Attested, TpmPublic, TpmSignature, TPM_GENERATED_VALUE,
    TPM_ST_ATTEST_CERTIFY, TPM_ST_ATTEST_QUOTE,
};
use super::wire::{
    EnrolledDevice, EnrollmentChallenge, EnrollmentRequest, EnrollmentResponse, PendingEnrollment,
    Quote, SignedAttest, PROTOCOL_VERSION,
};
use super::{from_hex, to_hex, AttestationError};

/// The PCRs quoted and required by default: the sha256 bank, PCRs 0-7 (firmware, boot
/// loader, Secure Boot policy).
pub const DEFAULT_PCRS: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// The attributes every TPM-resident key must have: it was generated in the TPM and can
/// never leave it.
const TPM_BOUND: u32 = attr::FIXED_TPM | attr::FIXED_PARENT | attr::SENSITIVE_DATA_ORIGIN;

/// How the verifier trusts an EK.
#[derive(Clone, Copy, Debug)]
pub enum EkTrust<'a> {
    /// The EK certificate must chain to one of these CAs (TPM vendor roots and
    /// intermediates, or swtpm's local CA in tests).
    Roots(&'a [Certificate]),
    /// The EK certificate must chain to the policy's CAs, with intermediates from the
    /// device and, where the policy allows, fetched issuers and EK certificates.
    Policy(EkPolicy<'a>),
    /// Accept any EK (trust on first use). Recorded as `unverified` in the enrollment.
    Unverified,
}

/// The qualifying data of a quote: `SHA-256(nonce || SHA-256(report))`, where `report` is
/// the exact report JSON bytes that are signed into the evidence. It binds the quote to
/// the verifier's nonce (freshness) and to this report.
pub fn qualifying_data(nonce: &[u8], report: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(nonce);
    h.update(Sha256::digest(report));
    h.finalize().into()
}

/// Step 2: checks the request and makes the challenge. Keep the [`PendingEnrollment`]
/// (it holds the secret) until the response arrives.
pub fn begin_enrollment(
    request: &EnrollmentRequest,
    trust: EkTrust<'_>,
    now: SystemTime,
) -> Result<(EnrollmentChallenge, PendingEnrollment), AttestationError> {
    if request.version != PROTOCOL_VERSION {
        return Err(AttestationError::Unsupported(format!(
            "enrollment request version {}",
            request.version
        )));
    }
    let ek = TpmPublic::parse(&request.ek_public)?;
    let ak = TpmPublic::parse(&request.ak_public)?;
    check_ek(&ek)?;
    check_ak(&ak)?;

    let ek_trust = match trust {
        EkTrust::Roots(roots) => {
            let policy = EkPolicy {
                roots,
                ..EkPolicy::default()
            };
            verify_ek(
                &ek,
                request.ek_certificate.as_deref(),
                &request.ek_chain,
                &policy,
                now,
            )?;
            super::wire::EK_TRUST_CA
        }
        EkTrust::Policy(policy) => {
            verify_ek(
                &ek,
                request.ek_certificate.as_deref(),
                &request.ek_chain,
                &policy,
                now,
            )?;
            super::wire::EK_TRUST_CA
        }
        EkTrust::Unverified => super::wire::EK_TRUST_UNVERIFIED,
    };

    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    os_random(secret.as_mut());
    let mut nonce = [0u8; 32];
    os_random(&mut nonce);
    let made = make_credential(&ek, &ak.name()?, secret.as_ref(), &mut rand_core::OsRng)?;
    let nonce_hex = to_hex(&nonce);
    Ok((
        EnrollmentChallenge {
            version: PROTOCOL_VERSION,
            credential_blob: made.credential_blob,
            encrypted_secret: made.encrypted_secret,
            nonce: nonce_hex.clone(),
        },
        PendingEnrollment {
            version: PROTOCOL_VERSION,
            request: request.clone(),
            secret: secret.to_vec(),
            nonce: nonce_hex,
            ek_trust: ek_trust.to_owned(),
        },
    ))
}

/// Step 4: accepts the AK only if the device returned the secret, and the device key only
/// if the AK certified it and it is bound to the TPM.
pub fn finish_enrollment(
    pending: &PendingEnrollment,
    response: &EnrollmentResponse,
) -> Result<EnrolledDevice, AttestationError> {
    if response.version != PROTOCOL_VERSION {
        return Err(AttestationError::Unsupported(format!(
            "enrollment response version {}",
            response.version
        )));
    }
    if !bool::from(pending.secret.ct_eq(&response.secret)) || pending.secret.is_empty() {
        return Err(AttestationError::Rejected(
            "the device did not recover the credential: its AK is not in the TPM of this EK".into(),
        ));
    }
    let ak = TpmPublic::parse(&pending.request.ak_public)?;
    let key = TpmPublic::parse(&response.device_key_public)?;
    let nonce = from_hex(&pending.nonce)?;
    verify_certify(&ak, &response.certify, &nonce, &key)?;
    // The device key signs evidence with ES256: it must be an unrestricted P-256 signer.
    key.p256()?;
    if !key.has(attr::SIGN) || key.has(attr::RESTRICTED) || key.has(attr::DECRYPT) {
        return Err(AttestationError::Rejected(
            "device key must be an unrestricted signing-only key".into(),
        ));
    }
    Ok(EnrolledDevice {
        version: PROTOCOL_VERSION,
        ek_public: pending.request.ek_public.clone(),
        ek_trust: pending.ek_trust.clone(),
        ak_public: pending.request.ak_public.clone(),
        device_key_public: response.device_key_public.clone(),
    })
}

fn check_ek(ek: &TpmPublic) -> Result<(), AttestationError> {
    if !ek.has(TPM_BOUND | attr::RESTRICTED | attr::DECRYPT) || ek.has(attr::SIGN) {
        return Err(AttestationError::Rejected(format!(
            "EK attributes 0x{:08x} are not those of an endorsement key",
            ek.attributes
        )));
    }
    Ok(())
}

fn check_ak(ak: &TpmPublic) -> Result<(), AttestationError> {
    if !ak.has(TPM_BOUND | attr::RESTRICTED | attr::SIGN) || ak.has(attr::DECRYPT) {
        return Err(AttestationError::Rejected(format!(
            "AK attributes 0x{:08x}: need a restricted signing-only key with fixedTPM, \
             fixedParent and sensitiveDataOrigin",
            ak.attributes
        )));
    }
    let scheme_ok = matches!(
        ak.scheme,
        (alg::ECDSA, alg::SHA256) | (alg::RSASSA, alg::SHA256)
    );
    if !scheme_ok {
        return Err(AttestationError::Rejected(format!(
            "AK scheme {:04x?}: need ECDSA or RSASSA with SHA-256",
            ak.scheme
        )));
    }
    Ok(())
}

/// Parses and checks a signed `TPMS_ATTEST`: signature by `ak`, TPM_GENERATED magic,
/// attestation type and qualifying data.
fn check_signed_attest(
    ak: &TpmPublic,
    signed: &SignedAttest,
    kind: u16,
    expected_extra: &[u8],
) -> Result<Attest, AttestationError> {
    let signature = TpmSignature::parse(&signed.signature)?;
    verify_signature(ak, &signed.attest, &signature)?;
    let attest = Attest::parse(&signed.attest)?;
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(AttestationError::Rejected(format!(
            "magic 0x{:08x} is not TPM_GENERATED: the TPM did not produce this",
            attest.magic
        )));
    }
    if attest.kind != kind {
        return Err(AttestationError::Rejected(format!(
            "attestation type 0x{:04x}, expected 0x{kind:04x}",
            attest.kind
        )));
    }
    if !bool::from(attest.extra_data.ct_eq(expected_extra)) {
        return Err(AttestationError::Rejected(
            "qualifying data does not match the expected nonce".into(),
        ));
    }
    Ok(attest)
}

/// Checks a TPM2_Certify of `key` by `ak` with qualifying data `expected_extra`, and that
/// `key` is bound to the TPM (`fixedTPM`, `fixedParent`, `sensitiveDataOrigin`).
pub fn verify_certify(
    ak: &TpmPublic,
    certify: &SignedAttest,
    expected_extra: &[u8],
    key: &TpmPublic,
) -> Result<(), AttestationError> {
    let attest = check_signed_attest(ak, certify, TPM_ST_ATTEST_CERTIFY, expected_extra)?;
    let Attested::Certify { name, .. } = attest.attested else {
        return Err(AttestationError::Rejected("not a certification".into()));
    };
    if !bool::from(name.ct_eq(&key.name()?)) {
        return Err(AttestationError::Rejected(
            "the certification is for another key than the presented one".into(),
        ));
    }
    if !key.has(TPM_BOUND) {
        return Err(AttestationError::Rejected(format!(
            "certified key attributes 0x{:08x} lack fixedTPM, fixedParent or \
             sensitiveDataOrigin: it may exist outside the TPM",
            key.attributes
        )));
    }
    Ok(())
}

/// What a verified quote establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The quoted sha256 PCR values.
    pub pcrs: BTreeMap<u32, [u8; 32]>,
    /// `clockInfo.clock`: milliseconds the TPM has run since it was last cleared.
    pub clock: u64,
    /// `clockInfo.safe`.
    pub safe: bool,
    /// TPM resets since the last clear (changes on every reboot).
    pub reset_count: u32,
    /// TPM restarts (resume from hibernation) since the last reset.
    pub restart_count: u32,
    /// The TPM firmware version.
    pub firmware_version: u64,
}

/// Checks a quote: signed by the enrolled `ak`, TPM_GENERATED, a quote, qualifying data
/// equal to `expected_qualifying_data`, a non-empty sha256-only PCR selection that covers
/// every PCR in `required_pcrs`, and a PCR digest equal to the digest of the reported
/// values. An empty selection is refused (CVE-2022-0317).
pub fn verify_quote(
    ak: &TpmPublic,
    quote: &Quote,
    expected_qualifying_data: &[u8],
    required_pcrs: &[u32],
) -> Result<VerifiedQuote, AttestationError> {
    let attest = check_signed_attest(
        ak,
        &quote.quote,
        TPM_ST_ATTEST_QUOTE,
        expected_qualifying_data,
    )?;
    let Attested::Quote {
        selection,
        pcr_digest,
    } = &attest.attested
    else {
        return Err(AttestationError::Rejected("not a quote".into()));
    };

    // Only the sha256 bank is accepted: a weaker bank could be forged by collision.
    if let Some(b) = selection
        .iter()
        .find(|b| !b.pcrs.is_empty() && b.hash != alg::SHA256)
    {
        return Err(AttestationError::Rejected(format!(
            "quote selects PCR bank 0x{:04x}; only sha256 is accepted",
            b.hash
        )));
    }
    let selected: Vec<u32> = selection.iter().flat_map(|b| b.pcrs.clone()).collect();
    if selected.is_empty() {
        return Err(AttestationError::Rejected(
            "quote has an empty PCR selection (CVE-2022-0317)".into(),
        ));
    }
    if let Some(missing) = required_pcrs.iter().find(|p| !selected.contains(p)) {
        return Err(AttestationError::Rejected(format!(
            "quote does not cover required PCR {missing}"
        )));
    }

    // The digest is over the values in selection order: bank by bank, ascending PCRs.
    let mut values = BTreeMap::new();
    let mut hasher = Sha256::new();
    for pcr in &selected {
        let hex = quote.pcrs.sha256.get(pcr).ok_or_else(|| {
            AttestationError::Rejected(format!("no value reported for quoted PCR {pcr}"))
        })?;
        let value: [u8; 32] = from_hex(hex)?
            .try_into()
            .map_err(|_| AttestationError::Rejected(format!("PCR {pcr} value is not 32 bytes")))?;
        hasher.update(value);
        values.insert(*pcr, value);
    }
    if quote.pcrs.sha256.len() != values.len() {
        return Err(AttestationError::Rejected(
            "PCR values reported that the quote does not cover".into(),
        ));
    }
    let digest: [u8; 32] = hasher.finalize().into();
    if !bool::from(digest.as_slice().ct_eq(pcr_digest)) {
        return Err(AttestationError::Rejected(
            "PCR digest does not match the reported PCR values".into(),
        ));
    }
    Ok(VerifiedQuote {
        pcrs: values,
        clock: attest.clock,
        safe: attest.safe,
        reset_count: attest.reset_count,
        restart_count: attest.restart_count,
        firmware_version: attest.firmware_version,
    })
}

/// Checks verified PCR values against expected ones (PCR index to 32-byte value).
pub fn check_pcr_values(
    quote: &VerifiedQuote,
    expected: &BTreeMap<u32, [u8; 32]>,
) -> Result<(), AttestationError> {
    for (pcr, want) in expected {
        match quote.pcrs.get(pcr) {
            Some(got) if bool::from(got.ct_eq(want)) => {}
            Some(got) => {
                return Err(AttestationError::Rejected(format!(
                    "PCR {pcr} is {}, policy expects {}",
                    to_hex(got),
                    to_hex(want)
                )))
            }
            None => {
                return Err(AttestationError::Rejected(format!(
                    "PCR {pcr} is required by policy but not quoted"
                )))
            }
        }
    }
    Ok(())
}
