//! The TPM device key and attestation against a real TPM simulator (swtpm), and the
//! pure-Rust verifier on what that TPM produced.
#![cfg(all(feature = "tpm", target_os = "linux"))]
// Helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod tpm_support;

use std::sync::Arc;
use std::time::SystemTime;

use p256::ecdsa::signature::Verifier;
use posture_agent::tpm::{AttestationKey, Srk, Tpm, TpmSigner};
use posture_core::attestation::{
    self, begin_enrollment, finish_enrollment, parse_roots, qualifying_data, verify_certify,
    verify_quote, AttestationError, EkTrust, EnrolledDevice, EnrollmentRequest, Quote,
    DEFAULT_PCRS,
};
use posture_core::keys::{KeyAssurance, Signer};
use tpm_support::Swtpm;

/// The report bytes a device would sign (any bytes do; the quote binds their hash).
const REPORT: &[u8] = br#"{"version":1,"findings":[]}"#;

struct Device {
    swtpm: Swtpm,
    tpm: Arc<Tpm>,
    state: tempfile::TempDir,
}

impl Device {
    fn new() -> Device {
        Device::with(Swtpm::start())
    }

    fn with(swtpm: Swtpm) -> Device {
        let tpm = swtpm.open();
        Device {
            swtpm,
            tpm,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn keys(&self) -> (TpmSigner, AttestationKey) {
        let srk = Srk::create(&self.tpm).unwrap();
        let signer = TpmSigner::load(&srk, self.state.path()).unwrap();
        let ak = AttestationKey::load(&srk, self.state.path()).unwrap();
        (signer, ak)
    }

    /// Runs the whole enrollment against a verifier that trusts this TPM's local CA.
    fn enroll(&self) -> EnrolledDevice {
        let (signer, ak) = self.keys();
        let request = ak.enrollment_request().unwrap();
        let roots = parse_roots(&self.swtpm.ca_bundle()).unwrap();
        let (challenge, pending) =
            begin_enrollment(&request, EkTrust::Roots(&roots), SystemTime::now()).unwrap();
        let response = ak.enrollment_response(&challenge, &signer).unwrap();
        finish_enrollment(&pending, &response).unwrap()
    }
}

fn rejected(result: Result<impl std::fmt::Debug, AttestationError>, needle: &str) {
    match result {
        Err(e) => assert!(
            e.to_string().contains(needle),
            "expected an error containing {needle:?}, got: {e}"
        ),
        Ok(v) => panic!("expected rejection ({needle}), got {v:?}"),
    }
}

#[test]
fn device_key_signs_es256_and_survives_a_simulator_restart() {
    let mut device = Device::new();
    let (public, first) = {
        let srk = Srk::create(&device.tpm).unwrap();
        let signer = TpmSigner::load(&srk, device.state.path()).unwrap();
        assert_eq!(signer.assurance(), KeyAssurance::Tpm);
        (signer.public_key(), signer.sign(b"evidence 1").unwrap())
    };
    let vk = p256::ecdsa::VerifyingKey::from(public);
    vk.verify(b"evidence 1", &first).unwrap();
    assert!(vk.verify(b"evidence 2", &first).is_err());

    // The blob on disk is 0600 and holds no usable private key material in the clear.
    let blob = device
        .state
        .path()
        .join(posture_agent::tpm::DEVICE_KEY_FILE);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&blob).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Power-cycle the TPM with its state kept: the same key comes back from the blob.
    drop(device.tpm);
    device.swtpm.restart();
    device.tpm = device.swtpm.open();
    let srk = Srk::create(&device.tpm).unwrap();
    let signer = TpmSigner::load(&srk, device.state.path()).unwrap();
    assert_eq!(signer.public_key(), public);
    let second = signer.sign(b"evidence 2").unwrap();
    vk.verify(b"evidence 2", &second).unwrap();
}

#[test]
fn a_key_blob_from_another_tpm_does_not_load() {
    let a = Device::new();
    let b = Swtpm::start();
    drop(a.keys());
    let tpm_b = b.open();
    let srk = Srk::create(&tpm_b).unwrap();
    let err = TpmSigner::load(&srk, a.state.path()).unwrap_err();
    // Typed: the TPM refused the load with a response code, and the person is told to
    // delete the blob rather than to fix permissions.
    match &err {
        posture_core::keys::KeyError::Tpm(tpm) => {
            assert!(tpm.operation.contains("loading"), "{err}");
            assert!(
                matches!(
                    tpm.kind,
                    posture_core::keys::TpmFailure::Response { code, .. } if code != 0
                ),
                "{err}"
            );
        }
        other => panic!("expected a TPM error, got {other}"),
    }
    assert!(posture_agent::key::remediation(&err).contains("must be deleted"));
}

#[test]
fn enroll_certify_sign_quote_and_verify() {
    let device = Device::new();
    let enrolled = device.enroll();
    assert_eq!(enrolled.ek_trust, "ca");
    let (signer, ak) = device.keys();
    assert_eq!(enrolled.device_key().unwrap(), signer.public_key());

    // Evidence signed by the TPM key verifies with the enrolled device key.
    let signature = signer.sign(REPORT).unwrap();
    p256::ecdsa::VerifyingKey::from(enrolled.device_key().unwrap())
        .verify(REPORT, &signature)
        .unwrap();

    // A quote bound to the verifier's nonce and this report.
    let nonce = [0x5a; 32];
    let qd = qualifying_data(&nonce, REPORT);
    let quote = ak.quote(&qd, &DEFAULT_PCRS).unwrap();
    let quote = Quote::from_json(quote.to_json().unwrap().as_bytes()).unwrap();
    let verified = verify_quote(&enrolled.ak().unwrap(), &quote, &qd, &DEFAULT_PCRS).unwrap();
    assert_eq!(verified.pcrs.len(), 8);
    // swtpm after startup-clear: PCRs 0-7 are all zero (no firmware measured anything).
    assert!(verified.pcrs.values().all(|v| v == &[0u8; 32]));
    attestation::check_pcr_values(&verified, &verified.pcrs).unwrap();
    let mut expected = verified.pcrs.clone();
    expected.insert(7, [1; 32]);
    rejected(attestation::check_pcr_values(&verified, &expected), "PCR 7");
}

#[test]
fn quote_checks_reject_wrong_nonce_tampered_pcrs_and_other_tpms() {
    let device = Device::new();
    let enrolled = device.enroll();
    let ak_public = enrolled.ak().unwrap();
    let (_, ak) = device.keys();
    let qd = qualifying_data(&[1; 32], REPORT);
    let quote = ak.quote(&qd, &DEFAULT_PCRS).unwrap();

    // Wrong nonce, and the right nonce with another report.
    rejected(
        verify_quote(&ak_public, &quote, &qualifying_data(&[2; 32], REPORT), &[]),
        "qualifying data",
    );
    rejected(
        verify_quote(&ak_public, &quote, &qualifying_data(&[1; 32], b"{}"), &[]),
        "qualifying data",
    );

    // Tampered PCR value.
    let mut tampered = quote.clone();
    tampered.pcrs.sha256.insert(0, "11".repeat(32));
    rejected(verify_quote(&ak_public, &tampered, &qd, &[]), "PCR digest");
    // A PCR the policy requires but the quote does not cover.
    rejected(
        verify_quote(&ak_public, &quote, &qd, &[10]),
        "required PCR 10",
    );

    // A quote from another TPM, checked against this device's enrolled AK.
    let other = Device::new();
    let (_, other_ak) = other.keys();
    let foreign = other_ak.quote(&qd, &DEFAULT_PCRS).unwrap();
    rejected(verify_quote(&ak_public, &foreign, &qd, &[]), "signature");

    // A flipped byte in the signed TPMS_ATTEST.
    let mut flipped = quote.clone();
    let last = flipped.quote.attest.len() - 1;
    flipped.quote.attest[last] ^= 1;
    rejected(verify_quote(&ak_public, &flipped, &qd, &[]), "signature");
}

#[test]
fn an_ak_from_another_tpm_fails_activation() {
    let a = Device::new();
    let b = Device::new();
    let (signer_a, ak_a) = a.keys();
    let (signer_b, ak_b) = b.keys();
    // An attacker pairs A's genuine EK (and certificate) with an AK on another TPM.
    let genuine = ak_a.enrollment_request().unwrap();
    let forged = EnrollmentRequest {
        ak_public: ak_b.public().to_vec(),
        ..genuine
    };
    let roots = parse_roots(&a.swtpm.ca_bundle()).unwrap();
    let (challenge, pending) =
        begin_enrollment(&forged, EkTrust::Roots(&roots), SystemTime::now()).unwrap();
    // B's TPM lacks A's EK; A's TPM lacks B's AK: neither can recover the secret.
    let err = ak_b.enrollment_response(&challenge, &signer_b).unwrap_err();
    assert!(
        err.to_string().contains("activating the credential"),
        "{err}"
    );
    let err = ak_a.enrollment_response(&challenge, &signer_a).unwrap_err();
    assert!(
        err.to_string().contains("activating the credential"),
        "{err}"
    );

    // Guessing the secret does not help either.
    let certify = ak_b.certify(&signer_b, &[0; 32]).unwrap();
    let guessed = posture_core::attestation::EnrollmentResponse {
        version: 1,
        secret: vec![0; 32],
        device_key_public: signer_b.tpm_public().to_vec(),
        certify,
    };
    rejected(finish_enrollment(&pending, &guessed), "did not recover");
}

#[test]
fn the_ek_certificate_must_chain_to_the_configured_ca() {
    let a = Device::new();
    let b = Swtpm::start();
    let (_, ak) = a.keys();
    let request = ak.enrollment_request().unwrap();
    assert!(request.ek_certificate.is_some());
    // B's local CA did not issue A's EK certificate.
    let other_roots = parse_roots(&b.ca_bundle()).unwrap();
    rejected(
        begin_enrollment(&request, EkTrust::Roots(&other_roots), SystemTime::now()),
        "does not chain",
    );
    // A certificate for another EK than the one presented.
    let b_tpm = b.open();
    let b_cert = b_tpm.ek_certificates().unwrap().remove(0).der;
    let swapped = EnrollmentRequest {
        ek_certificate: Some(b_cert),
        ..request.clone()
    };
    let roots = parse_roots(&b.ca_bundle()).unwrap();
    rejected(
        begin_enrollment(&swapped, EkTrust::Roots(&roots), SystemTime::now()),
        "another key",
    );
    // Issue 10, item 8: the certificate as real TPMs store it in NV — followed by
    // padding (NV indices are larger than the certificate), or behind the TCG PC Client
    // NV header (`10 01 00` and a 2-byte length) — still chains and certifies this EK.
    let cert = request.ek_certificate.clone().unwrap();
    let a_roots = parse_roots(&a.swtpm.ca_bundle()).unwrap();
    let mut padded = cert.clone();
    padded.extend_from_slice(&[0xff; 32]);
    let mut zero_padded = cert.clone();
    zero_padded.extend_from_slice(&[0x00; 300]);
    let mut tcg = vec![0x10, 0x01, 0x00];
    tcg.extend_from_slice(&u16::try_from(cert.len()).unwrap().to_be_bytes());
    tcg.extend_from_slice(&cert);
    tcg.extend_from_slice(&[0xff; 16]);
    for (name, nv) in [
        ("ff padding", padded),
        ("00 padding", zero_padded),
        ("TCG header", tcg),
    ] {
        let as_sent = EnrollmentRequest {
            ek_certificate: Some(nv.clone()),
            ..request.clone()
        };
        assert!(
            begin_enrollment(&as_sent, EkTrust::Roots(&a_roots), SystemTime::now()).is_ok(),
            "{name}"
        );
        assert_eq!(
            attestation::ek_certificate_der(&nv),
            cert.as_slice(),
            "{name}"
        );
    }
    // The real cause of a failed chain is kept, not swallowed: a CA with the right
    // subject but another key says that the signature does not verify.
    let mut forged_roots = parse_roots(&b.ca_bundle()).unwrap();
    forged_roots[0].tbs_certificate.subject = a_roots[0].tbs_certificate.subject.clone();
    rejected(
        begin_enrollment(&request, EkTrust::Roots(&forged_roots), SystemTime::now()),
        "signature does not verify",
    );
    // No certificate while CAs are configured.
    let missing = EnrollmentRequest {
        ek_certificate: None,
        ..request
    };
    rejected(
        begin_enrollment(&missing, EkTrust::Roots(&roots), SystemTime::now()),
        "no EK certificate",
    );
}

#[test]
fn a_software_key_presented_as_the_tpm_key_is_rejected() {
    let device = Device::new();
    let (signer, ak) = device.keys();
    let request = ak.enrollment_request().unwrap();
    let (challenge, pending) =
        begin_enrollment(&request, EkTrust::Unverified, SystemTime::now()).unwrap();
    let mut response = ak.enrollment_response(&challenge, &signer).unwrap();

    // Replace the device key's point by a software key's, keeping the TPM attributes.
    let software = p256::SecretKey::from_slice(&[0x42; 32])
        .unwrap()
        .public_key();
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&software, false);
    let mut forged = signer.tpm_public().to_vec();
    let n = forged.len();
    // TPMT_PUBLIC ends with x and y as TPM2B of 32 bytes each.
    forged[n - 66..n - 34].copy_from_slice(point.x().unwrap());
    forged[n - 32..].copy_from_slice(point.y().unwrap());
    let parsed = attestation::tpm2::TpmPublic::parse(&forged).unwrap();
    assert_eq!(parsed.p256().unwrap(), software);
    response.device_key_public = forged;
    rejected(finish_enrollment(&pending, &response), "another key");
}

/// Test-only keys made with tss-esapi directly: an AK-like restricted signer, and a
/// duplicable (not fixedTPM) signing key, both in the owner hierarchy.
mod raw {
    use tss_esapi::attributes::ObjectAttributesBuilder;
    use tss_esapi::handles::KeyHandle;
    use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
    use tss_esapi::interface_types::ecc::EccCurve;
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::interface_types::session_handles::AuthSession;
    use tss_esapi::structures::{
        Data, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme,
        PcrSelectionListBuilder, Public, PublicBuilder, PublicEccParametersBuilder,
        SignatureScheme, SymmetricDefinitionObject,
    };
    use tss_esapi::traits::Marshall;
    use tss_esapi::Context;

    pub fn ecc(restricted: bool, decrypt: bool, fixed: bool) -> Public {
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(fixed)
            .with_fixed_parent(fixed)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_restricted(restricted)
            .with_decrypt(decrypt)
            .with_sign_encrypt(!decrypt)
            .build()
            .unwrap();
        let params = PublicEccParametersBuilder::new()
            .with_curve(EccCurve::NistP256)
            .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
            .with_restricted(restricted)
            .with_is_decryption_key(decrypt)
            .with_is_signing_key(!decrypt);
        let params = if decrypt {
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
            .with_object_attributes(attrs)
            .with_ecc_parameters(params.build().unwrap())
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .unwrap()
    }

    pub fn primary(ctx: &mut Context, public: Public) -> (KeyHandle, Vec<u8>) {
        let r = ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .unwrap();
        (r.key_handle, r.out_public.marshall().unwrap())
    }

    pub fn child(ctx: &mut Context, parent: KeyHandle, public: Public) -> (KeyHandle, Vec<u8>) {
        let created = ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create(parent, public, None, None, None, None)
            })
            .unwrap();
        let bytes = created.out_public.marshall().unwrap();
        let handle = ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.load(parent, created.out_private, created.out_public)
            })
            .unwrap();
        (handle, bytes)
    }

    pub fn certify(
        ctx: &mut Context,
        object: KeyHandle,
        signer: KeyHandle,
        qd: &[u8],
    ) -> super::attestation::SignedAttest {
        let (a, s) = ctx
            .execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |ctx| {
                    ctx.certify(
                        object.into(),
                        signer,
                        Data::try_from(qd.to_vec()).unwrap(),
                        SignatureScheme::Null,
                    )
                },
            )
            .unwrap();
        super::attestation::SignedAttest {
            attest: a.marshall().unwrap(),
            signature: s.marshall().unwrap(),
        }
    }

    pub fn empty_quote(
        ctx: &mut Context,
        signer: KeyHandle,
        qd: &[u8],
    ) -> super::attestation::SignedAttest {
        let selection = PcrSelectionListBuilder::new().build().unwrap();
        let (a, s) = ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.quote(
                    signer,
                    Data::try_from(qd.to_vec()).unwrap(),
                    SignatureScheme::Null,
                    selection,
                )
            })
            .unwrap();
        super::attestation::SignedAttest {
            attest: a.marshall().unwrap(),
            signature: s.marshall().unwrap(),
        }
    }
}

#[test]
fn a_certify_of_a_key_without_fixed_tpm_is_rejected() {
    let swtpm = Swtpm::start();
    let tpm = swtpm.open();
    let (certify, ak_public, key_public, fixed_certify, fixed_public) = tpm
        .with_context(|ctx| {
            // swtpm has three transient object slots: AK, parent and one key at a time.
            let (ak, ak_public) = raw::primary(ctx, raw::ecc(true, false, true));
            let (parent, _) = raw::primary(ctx, raw::ecc(true, true, true));
            let (key, key_public) = raw::child(ctx, parent, raw::ecc(false, false, false));
            let certify = raw::certify(ctx, key, ak, b"nonce");
            ctx.flush_context(key.into()).unwrap();
            let (fixed, fixed_public) = raw::child(ctx, parent, raw::ecc(false, false, true));
            let fixed_certify = raw::certify(ctx, fixed, ak, b"nonce");
            for h in [ak, parent, fixed] {
                ctx.flush_context(h.into()).unwrap();
            }
            Ok((certify, ak_public, key_public, fixed_certify, fixed_public))
        })
        .unwrap();
    let ak = attestation::tpm2::TpmPublic::parse(&ak_public).unwrap();
    let key = attestation::tpm2::TpmPublic::parse(&key_public).unwrap();
    rejected(verify_certify(&ak, &certify, b"nonce", &key), "fixedTPM");
    // The same check passes for a TPM-bound key, so it is the attribute that fails.
    let fixed = attestation::tpm2::TpmPublic::parse(&fixed_public).unwrap();
    verify_certify(&ak, &fixed_certify, b"nonce", &fixed).unwrap();
    rejected(
        verify_certify(&ak, &fixed_certify, b"other", &fixed),
        "qualifying data",
    );
}

#[test]
fn a_quote_with_an_empty_pcr_selection_is_rejected_cve_2022_0317() {
    let swtpm = Swtpm::start();
    let tpm = swtpm.open();
    let qd = qualifying_data(&[3; 32], REPORT);
    let (signed, ak_public) = tpm
        .with_context(|ctx| {
            let (ak, ak_public) = raw::primary(ctx, raw::ecc(true, false, true));
            let signed = raw::empty_quote(ctx, ak, &qd);
            ctx.flush_context(ak.into()).unwrap();
            Ok((signed, ak_public))
        })
        .unwrap();
    let ak = attestation::tpm2::TpmPublic::parse(&ak_public).unwrap();
    let quote = Quote {
        version: 1,
        quote: signed,
        pcrs: Default::default(),
        event_log: None,
    };
    // Even a policy that requires no PCR must not accept a quote of nothing.
    rejected(verify_quote(&ak, &quote, &qd, &[]), "empty PCR selection");
}

#[test]
fn tpm2_checkquote_verifies_our_quote() {
    let device = Device::new();
    let (_, ak) = device.keys();
    let qd = qualifying_data(&[7; 32], REPORT);
    let quote = ak.quote(&qd, &DEFAULT_PCRS).unwrap();
    let out = tempfile::tempdir().unwrap();
    attestation::write_tpm2_tools_files(out.path(), &quote, ak.public(), &qd).unwrap();
    let run = |qd_hex: &str| {
        std::process::Command::new("tpm2_checkquote")
            .current_dir(out.path())
            .args(["-u", "ak.pub.pem", "-m", "quote.msg", "-s", "quote.sig"])
            .args(["-f", "pcrs.bin", "-g", "sha256"])
            .args(["-q", qd_hex])
            .output()
            .expect("tpm2_checkquote (install tpm2-tools: scripts/setup.sh)")
    };
    let qd_hex = std::fs::read_to_string(out.path().join("qualifying-data.hex")).unwrap();
    let ok = run(qd_hex.trim());
    assert!(
        ok.status.success(),
        "tpm2_checkquote: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = run(&"00".repeat(32));
    assert!(!bad.status.success());
}

#[test]
fn make_credential_to_an_ecc_p256_ek_is_activated_by_the_tpm() {
    use tss_esapi::abstraction::ek::create_ek_public_from_default_template_2;
    use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, DefaultKey};
    use tss_esapi::constants::SessionType;
    use tss_esapi::handles::AuthHandle;
    use tss_esapi::interface_types::algorithm::HashingAlgorithm;
    use tss_esapi::interface_types::ecc::EccCurve;
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
    use tss_esapi::structures::{EncryptedSecret, IdObject, SymmetricDefinition};
    use tss_esapi::traits::Marshall;

    let swtpm = Swtpm::start();
    let tpm = swtpm.open();
    let secret = [0x42u8; 32];
    let recovered = tpm
        .with_context(|ctx| {
            // The TCG default ECC NIST P-256 EK (low range), and an AK beside it.
            let template = create_ek_public_from_default_template_2(
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
                None::<DefaultKey>,
            )
            .unwrap();
            let ek = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
                })
                .unwrap();
            let ek_public = ek.out_public.marshall().unwrap();
            let (ak, ak_public) = raw::primary(ctx, raw::ecc(true, false, true));

            let ek_parsed = attestation::tpm2::TpmPublic::parse(&ek_public).unwrap();
            let ak_name = attestation::tpm2::TpmPublic::parse(&ak_public)
                .unwrap()
                .name()
                .unwrap();
            let made =
                attestation::make_credential(&ek_parsed, &ak_name, &secret, &mut rand_core::OsRng)
                    .unwrap();

            let session = ctx
                .start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Policy,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
                .unwrap()
                .unwrap();
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.policy_secret(
                    PolicySession::try_from(session).unwrap(),
                    AuthHandle::Endorsement,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                    None,
                )
            })
            .unwrap();
            let recovered = ctx
                .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                    ctx.activate_credential(
                        ak,
                        ek.key_handle,
                        IdObject::try_from(made.credential_blob.clone()).unwrap(),
                        EncryptedSecret::try_from(made.encrypted_secret.clone()).unwrap(),
                    )
                })
                .unwrap();
            for h in [ak, ek.key_handle] {
                ctx.flush_context(h.into()).unwrap();
            }
            Ok(recovered.value().to_vec())
        })
        .unwrap();
    assert_eq!(recovered, secret);
}

/// Enrolls with `request` (made by `ak`) against a verifier trusting swtpm's local CA,
/// checking that the TPM recovered the secret.
fn enroll_with_request(
    device: &Device,
    request: &EnrollmentRequest,
    ak: &AttestationKey,
    signer: &TpmSigner,
) -> EnrolledDevice {
    let roots = parse_roots(&device.swtpm.ca_bundle()).unwrap();
    let (challenge, pending) =
        begin_enrollment(request, EkTrust::Roots(&roots), SystemTime::now()).unwrap();
    let response = ak.enrollment_response(&challenge, signer).unwrap();
    assert_eq!(response.secret, pending.secret);
    let enrolled = finish_enrollment(&pending, &response).unwrap();
    assert_eq!(enrolled.ek_trust, "ca");
    assert_eq!(enrolled.ek_public, request.ek_public);
    enrolled
}

/// The EK of a request is swtpm's ECC EK: NIST P-384 from the TCG high-range template
/// (SHA-384 name, AES-256-CFB), with the certificate from its NV index.
fn assert_p384_ek(request: &EnrollmentRequest, tpm: &Tpm) {
    use attestation::tpm2::{alg, PublicKey, TpmPublic, ECC_NIST_P384};
    let ek = TpmPublic::parse(&request.ek_public).unwrap();
    assert!(
        matches!(ek.key, PublicKey::Ecc { curve, .. } if curve == ECC_NIST_P384),
        "{:?}",
        ek.key
    );
    assert_eq!(ek.name_alg, alg::SHA384);
    assert_eq!(ek.symmetric, (alg::AES, 256, alg::CFB));
    let cert = tpm
        .ek_certificates()
        .unwrap()
        .into_iter()
        .find(|c| c.nv_index == 0x01c0_0016)
        .unwrap();
    assert_eq!(request.ek_certificate.as_deref(), Some(cert.der.as_slice()));
}

/// Issue 10 item 8: a TPM whose only EK certificate is an ECC one (here swtpm's P-384,
/// with the RSA EK certificate removed) enrolls with its ECC EK: the certificate chains
/// to swtpm's CA, MakeCredential to the P-384 EK (ECDH + KDFe SHA-384, AES-256-CFB) is
/// activated by the TPM, and the enrolled device keeps that EK.
#[test]
fn a_tpm_with_only_an_ecc_ek_certificate_enrolls_with_its_p384_ek_issue_10() {
    let swtpm = Swtpm::start();
    swtpm.undefine_nv_index(0x01c0_0002);
    let device = Device::with(swtpm);
    let present: Vec<u32> = device
        .tpm
        .ek_certificates()
        .unwrap()
        .iter()
        .map(|c| c.nv_index)
        .collect();
    assert_eq!(present, [0x01c0_0016]);
    let (signer, ak) = device.keys();
    let request = ak.enrollment_request().unwrap();
    assert_p384_ek(&request, &device.tpm);
    let enrolled = enroll_with_request(&device, &request, &ak, &signer);
    assert_eq!(enrolled.device_key_public, signer.tpm_public());

    // A credential made for another TPM's P-384 EK is not activated here.
    let other = Device::with({
        let swtpm = Swtpm::start();
        swtpm.undefine_nv_index(0x01c0_0002);
        swtpm
    });
    let (_, other_ak) = other.keys();
    let other_request = other_ak.enrollment_request().unwrap();
    let forged = EnrollmentRequest {
        ak_public: request.ak_public.clone(),
        ..other_request
    };
    let (challenge, _) = begin_enrollment(&forged, EkTrust::Unverified, SystemTime::now()).unwrap();
    assert!(ak.activate_credential(&challenge).is_err());
}

/// `[key] ek = "ecc"` presents the ECC EK although an RSA EK certificate is there; the
/// default keeps the RSA EK, which most verifiers expect.
#[test]
fn the_ecc_ek_preference_enrolls_with_the_ecc_ek_and_the_default_stays_rsa() {
    use posture_agent::key::EkPreference;
    let device = Device::new();
    let (signer, ak) = device.keys();
    let default = ak.enrollment_request().unwrap();
    assert!(matches!(
        attestation::tpm2::TpmPublic::parse(&default.ek_public)
            .unwrap()
            .key,
        attestation::tpm2::PublicKey::Rsa { .. }
    ));
    let request = ak.enrollment_request_with(EkPreference::Ecc).unwrap();
    assert_p384_ek(&request, &device.tpm);
    enroll_with_request(&device, &request, &ak, &signer);
}
