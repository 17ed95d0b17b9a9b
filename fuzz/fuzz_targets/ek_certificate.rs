//! Untrusted EK certificates as a verifier receives them from a device: the raw contents
//! of a TPM NV index (TCG header, padding) through `ek_certificate_der` and the X.509
//! decoder, then the chain and key checks against a fixed EK and no or one CA, and the
//! attestation CA's reading of the TPM's identity (SubjectAltName) from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_core::attestation::tpm2::TpmPublic;
use posture_core::attestation::{
    decode_fetched_certificates, ek_certificate_der, parse_roots, split_certificate_chain,
    tpm_identity, verify_ek, verify_ek_certificate, EkPolicy, EnrollmentRequest,
};

// Input: [n][TPMT_PUBLIC: n bytes][certificate or NV contents: rest].
fuzz_target!(|data: &[u8]| {
    let der = ek_certificate_der(data);
    assert!(der.len() <= data.len());
    let _ = parse_roots(data);
    let _ = decode_fetched_certificates(data);
    let chain: Vec<Vec<u8>> = split_certificate_chain(data)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    if let Some((&n, rest)) = data.split_first() {
        let (public, cert) = rest.split_at(usize::from(n).min(rest.len()));
        // The SubjectAltName as the attestation CA reads it, with the rest as the
        // certification's TPMS_ATTEST.
        let request = EnrollmentRequest {
            version: 1,
            ek_public: public.to_vec(),
            ek_certificate: Some(cert.to_vec()),
            ek_chain: Vec::new(),
            ak_public: Vec::new(),
            tpm_manufacturer: Some("49424D00".into()),
            tpm_model: None,
        };
        let _ = tpm_identity(&request, cert);
        if let Ok(ek) = TpmPublic::parse(public) {
            let _ = verify_ek_certificate(cert, &ek, &[], std::time::SystemTime::now());
            if let Ok(roots) = parse_roots(cert) {
                let _ = verify_ek_certificate(cert, &ek, &roots, std::time::SystemTime::now());
                // The same bytes as the device's NV chain: path building over them.
                let policy = EkPolicy {
                    roots: &roots,
                    ..EkPolicy::default()
                };
                let _ = verify_ek(&ek, Some(cert), &chain, &policy, std::time::SystemTime::now());
            }
        }
    }
});
