//! EK certificates as real TPMs ship them, checked against real vendor CA chains
//! (fixtures in `tests/fixtures/ek/`, provenance in its README): Intel PTT (RSA EK, Intel
//! EK CA), STMicro ST33 (ECC P-256 EK, an intermediate under a P-384 root cross-signed by
//! GlobalSign), intermediates from the device or fetched from AIA URLs, and EK
//! certificates fetched from a vendor's EK certificate service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use posture_core::attestation::tpm2::{TpmPublic, ECC_NIST_P256, ECC_NIST_P384};
use posture_core::attestation::{
    ek_cert_service_url, parse_roots, split_certificate_chain, verify_ek, verify_ek_certificate,
    CertificateFetcher, EkPolicy, FetchError,
};
use x509_cert::der::Decode;
use x509_cert::Certificate;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ek/");
const INTEL_AIA: &str =
    "http://upgrades.intel.com/content/CRL/ekcert/SPTHEPIDPROD_EK_Platform_Public_Key.cer";
const STM_ECC_AIA: &str = "http://secure.globalsign.com/stmtpmeccint01.crt";
/// go-attestation's `attest/tpm_test.go` vector for this very EK (tpm2-tools' test EK).
const INTEL_SERVICE_URL: &str =
    "https://ekop.intel.com/ekcertservice/WVEG2rRwkQ7m3RpXlUphgo6Y2HLxl18h6ZZkkOAdnBE%3D";

/// 2026-03-01: inside every fixture's validity.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_323_200)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap()
}

fn pem(name: &str) -> Certificate {
    parse_roots(&read(name)).unwrap().remove(0)
}

/// The DER exactly as in the PEM file (re-encoding a decoded certificate may change
/// bytes that were signed).
fn der(name: &str) -> Vec<u8> {
    x509_cert::der::pem::decode_vec(&read(name)).unwrap().1
}

/// The TCG default EK template's fixed part (attributes, EK policy, AES-128-CFB).
fn template_head(kind: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&kind.to_be_bytes());
    t.extend_from_slice(&0x000bu16.to_be_bytes()); // nameAlg sha256
    t.extend_from_slice(&0x0003_00b2u32.to_be_bytes());
    t.extend_from_slice(&32u16.to_be_bytes());
    t.extend_from_slice(
        &posture_core::attestation::from_hex(
            "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa",
        )
        .unwrap(),
    );
    for v in [0x0006u16, 128, 0x0043, 0x0010] {
        t.extend_from_slice(&v.to_be_bytes()); // AES 128 CFB, scheme NULL
    }
    t
}

fn tpm2b(t: &mut Vec<u8>, v: &[u8]) {
    t.extend_from_slice(&(v.len() as u16).to_be_bytes());
    t.extend_from_slice(v);
}

/// The EK `TPMT_PUBLIC` a TPM would report for the key in `cert`.
fn ek_public_of(cert: &Certificate) -> TpmPublic {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let bits = spki.subject_public_key.as_bytes().unwrap();
    let bytes = if spki.algorithm.oid.to_string() == "1.2.840.113549.1.1.1" {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPublicKey::from_pkcs1_der(bits).unwrap();
        let mut t = template_head(0x0001);
        t.extend_from_slice(&2048u16.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        tpm2b(&mut t, &key.n().to_bytes_be());
        t
    } else {
        let size = (bits.len() - 1) / 2;
        let curve = if size == 32 {
            ECC_NIST_P256
        } else {
            ECC_NIST_P384
        };
        let mut t = template_head(0x0023);
        t.extend_from_slice(&curve.to_be_bytes());
        t.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf NULL
        tpm2b(&mut t, &bits[1..1 + size]);
        tpm2b(&mut t, &bits[1 + size..]);
        t
    };
    TpmPublic::parse(&bytes).unwrap()
}

/// Serves fixtures by URL and records what was asked.
#[derive(Debug, Default)]
struct MapFetcher {
    bodies: BTreeMap<String, Vec<u8>>,
    asked: RefCell<Vec<String>>,
}

impl CertificateFetcher for MapFetcher {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.asked.borrow_mut().push(url.to_owned());
        self.bodies.get(url).cloned().ok_or_else(|| FetchError {
            url: url.into(),
            message: "HTTP 404".into(),
        })
    }
}

fn fetcher(entries: &[(&str, Vec<u8>)]) -> MapFetcher {
    MapFetcher {
        bodies: entries
            .iter()
            .map(|(u, b)| (u.to_string(), b.clone()))
            .collect(),
        ..MapFetcher::default()
    }
}

fn err(
    r: Result<
        posture_core::attestation::EkCertificateInfo,
        posture_core::attestation::AttestationError,
    >,
) -> String {
    r.expect_err("must be refused").to_string()
}

#[test]
fn intel_ptt_rsa_ek_chains_through_the_intermediate_the_device_sends() {
    let leaf = pem("intel-ek-rsa.pem");
    let ek = ek_public_of(&leaf);
    let roots = vec![pem("intel-ek-root.pem")];
    let policy = EkPolicy {
        roots: &roots,
        ..EkPolicy::default()
    };
    let leaf_der = der("intel-ek-rsa.pem");

    // With only the root configured, the leaf alone does not chain.
    let e = err(verify_ek(&ek, Some(&leaf_der), &[], &policy, now()));
    assert!(e.contains("does not chain to a configured CA"), "{e}");

    let chain = vec![der("intel-ek-intermediate-spth.pem")];
    let info = verify_ek(&ek, Some(&leaf_der), &chain, &policy, now()).unwrap();
    assert!(info.anchor.contains("TPM EK root cert signing"), "{info:?}");
    assert_eq!(info.intermediates.len(), 1);
    assert!(info.intermediates[0].contains("SPTH_EPID_PROD"));
    assert_eq!(info.fetched_from, None);

    // The intermediate alone, configured as an anchor, still suffices (bundles hold both).
    let inter = vec![pem("intel-ek-intermediate-spth.pem")];
    verify_ek_certificate(&leaf_der, &ek, &inter, now()).unwrap();
}

#[test]
fn a_missing_intermediate_is_fetched_from_the_aia_url_only_when_allowed() {
    let leaf = pem("intel-ek-rsa.pem");
    let ek = ek_public_of(&leaf);
    let leaf_der = der("intel-ek-rsa.pem");
    let roots = vec![pem("intel-ek-root.pem")];
    let f = fetcher(&[(INTEL_AIA, der("intel-ek-intermediate-spth.pem"))]);

    let off = EkPolicy {
        roots: &roots,
        fetcher: Some(&f),
        fetch_issuers: false,
        ek_cert_services: &[],
    };
    assert!(verify_ek(&ek, Some(&leaf_der), &[], &off, now()).is_err());
    assert!(
        f.asked.borrow().is_empty(),
        "nothing fetched unless enabled"
    );

    let on = EkPolicy {
        fetch_issuers: true,
        ..off
    };
    let info = verify_ek(&ek, Some(&leaf_der), &[], &on, now()).unwrap();
    assert_eq!(info.intermediates.len(), 1);
    assert_eq!(*f.asked.borrow(), vec![INTEL_AIA.to_owned()]);

    // A fetched certificate is no anchor: served the wrong CA, the chain fails and says why.
    let wrong = fetcher(&[(INTEL_AIA, der("stm-ecc-intermediate-01.pem"))]);
    let e = err(verify_ek(
        &ek,
        Some(&leaf_der),
        &[],
        &EkPolicy {
            fetcher: Some(&wrong),
            ..on
        },
        now(),
    ));
    assert!(e.contains("does not chain"), "{e}");
}

#[test]
fn stm_ecc_p256_ek_chains_to_the_p384_roots() {
    let leaf_der = read("stm-ek-ecc-p256.der");
    let leaf = Certificate::from_der(&leaf_der).unwrap();
    let ek = ek_public_of(&leaf);

    // Device-sent intermediates up to GlobalSign's P-384 TPM ECC root: the STM ECC root 01
    // (P-384, ecdsa-with-SHA384) signed the intermediate.
    let roots = vec![pem("globalsign-tpm-ecc-root.pem")];
    let chain = vec![
        der("stm-ecc-intermediate-01.pem"),
        der("stm-ecc-root-01.pem"),
    ];
    let policy = EkPolicy {
        roots: &roots,
        ..EkPolicy::default()
    };
    let info = verify_ek(&ek, Some(&leaf_der), &chain, &policy, now()).unwrap();
    assert!(info
        .anchor
        .contains("GlobalSign Trusted Platform Module ECC Root CA"));
    assert_eq!(info.intermediates.len(), 2);

    // With STM's ECC root configured, the intermediate comes from the AIA URL.
    let stm_root = vec![pem("stm-ecc-root-01.pem")];
    let f = fetcher(&[(STM_ECC_AIA, read("stm-ecc-intermediate-01.pem"))]); // PEM body
    let policy = EkPolicy {
        roots: &stm_root,
        fetcher: Some(&f),
        fetch_issuers: true,
        ek_cert_services: &[],
    };
    verify_ek(&ek, Some(&leaf_der), &[], &policy, now()).unwrap();
}

#[test]
fn an_ecc_ek_certificate_must_certify_the_presented_point_on_the_same_curve() {
    let leaf_der = read("stm-ek-ecc-p256.der");
    let roots = vec![pem("stm-ecc-intermediate-01.pem")];
    // Another P-256 key (the intermediate CA's) as the EK.
    let other = ek_public_of(&pem("stm-ecc-intermediate-01.pem"));
    let e = err(verify_ek_certificate(&leaf_der, &other, &roots, now()));
    assert!(e.contains("another key"), "{e}");
    // An RSA EK with an ECC certificate.
    let rsa = ek_public_of(&pem("intel-ek-rsa.pem"));
    let e = err(verify_ek_certificate(&leaf_der, &rsa, &roots, now()));
    assert!(e.contains("not for an RSA key"), "{e}");
    // A P-384 EK with a P-256 certificate.
    let p384 = ek_public_of(&pem("stm-ecc-root-01.pem"));
    let e = err(verify_ek_certificate(&leaf_der, &p384, &roots, now()));
    assert!(e.contains("curve"), "{e}");
}

#[test]
fn a_ca_certificate_is_not_an_ek_certificate() {
    // STM's ECC intermediate presented as the "EK certificate" of its own key.
    let ca = pem("stm-ecc-intermediate-01.pem");
    let ek = ek_public_of(&ca);
    let roots = vec![pem("stm-ecc-root-01.pem")];
    let e = err(verify_ek_certificate(
        &der("stm-ecc-intermediate-01.pem"),
        &ek,
        &roots,
        now(),
    ));
    assert!(e.contains("it is a CA certificate"), "{e}");
}

#[test]
fn an_ecc_ek_certificate_without_key_agreement_is_refused() {
    // The real ST33 ECC EK certificate with its key usage changed from keyAgreement to
    // digitalSignature: refused for the usage, before any chain is looked at.
    let mut leaf_der = read("stm-ek-ecc-p256.der");
    let at = leaf_der
        .windows(4)
        .position(|w| w == [0x03, 0x02, 0x03, 0x08])
        .unwrap();
    leaf_der[at..at + 4].copy_from_slice(&[0x03, 0x02, 0x07, 0x80]);
    let ek = ek_public_of(&Certificate::from_der(&leaf_der).unwrap());
    let roots = vec![pem("stm-ecc-intermediate-01.pem")];
    let e = err(verify_ek_certificate(&leaf_der, &ek, &roots, now()));
    assert!(e.contains("keyAgreement"), "{e}");
}

#[test]
fn nv_chain_contents_split_into_certificates_and_padding_is_ignored() {
    let a = der("stm-ecc-intermediate-01.pem");
    let b = der("stm-ecc-root-01.pem");
    let mut nv = a.clone();
    nv.extend_from_slice(&b);
    nv.extend_from_slice(&[0xff; 300]);
    assert_eq!(split_certificate_chain(&nv), vec![&a[..], &b[..]]);
    assert!(split_certificate_chain(&[0xff; 16]).is_empty());
    assert!(split_certificate_chain(&a[..a.len() - 1]).is_empty());
}

#[test]
fn ek_certificate_service_urls_follow_go_attestation() {
    let intel = ek_public_of(&pem("intel-ek-rsa.pem"));
    let url = ek_cert_service_url("https://ekop.intel.com/ekcertservice/{intel}", &intel).unwrap();
    assert_eq!(url, INTEL_SERVICE_URL);

    // AMD fTPM: go-attestation's test key and URL.
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let text = String::from_utf8(read("amd-ftpm-ek-rsa-public.pem")).unwrap();
    let amd = rsa::RsaPublicKey::from_public_key_pem(&text).unwrap();
    let mut t = template_head(0x0001);
    t.extend_from_slice(&2048u16.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    tpm2b(&mut t, &amd.n().to_bytes_be());
    let amd_ek = TpmPublic::parse(&t).unwrap();
    let url = ek_cert_service_url("https://ftpm.amd.com/pki/aia/{amd}", &amd_ek).unwrap();
    assert_eq!(
        url,
        "https://ftpm.amd.com/pki/aia/D027B3CE6A9B6B56846D2B9935884A88"
    );

    assert!(ek_cert_service_url("https://example.invalid/", &amd_ek).is_err());
}

#[test]
fn without_an_ek_certificate_in_nv_it_is_fetched_from_the_ek_certificate_service() {
    let leaf = pem("intel-ek-rsa.pem");
    let ek = ek_public_of(&leaf);
    let roots = vec![pem("intel-ek-root.pem")];
    // The service answers base64url text of the DER; the intermediate comes from AIA.
    use base64::Engine as _;
    let body = base64::engine::general_purpose::URL_SAFE
        .encode(der("intel-ek-rsa.pem"))
        .into_bytes();
    let f = fetcher(&[
        (INTEL_SERVICE_URL, body),
        (INTEL_AIA, der("intel-ek-intermediate-spth.pem")),
    ]);
    let services = vec!["https://ekop.intel.com/ekcertservice/{intel}".to_owned()];
    let policy = EkPolicy {
        roots: &roots,
        fetcher: Some(&f),
        fetch_issuers: true,
        ek_cert_services: &services,
    };
    let info = verify_ek(&ek, None, &[], &policy, now()).unwrap();
    assert_eq!(info.fetched_from.as_deref(), Some(INTEL_SERVICE_URL));

    // Another EK: the service's answer (for its own key) is not taken.
    let other = ek_public_of(
        &Certificate::from_der(posture_core::attestation::ek_certificate_der(&read(
            "stm-ek-rsa-nv.bin",
        )))
        .unwrap(),
    );
    let e = err(verify_ek(&other, None, &[], &policy, now()));
    assert!(e.contains("no EK certificate service had one"), "{e}");

    // No service configured: the old answer.
    let e = err(verify_ek(
        &ek,
        None,
        &[],
        &EkPolicy {
            roots: &roots,
            ..EkPolicy::default()
        },
        now(),
    ));
    assert!(e.contains("the device sent no EK certificate"), "{e}");
}

#[test]
fn stm_st33_rsa_ek_from_padded_nv_still_chains() {
    let nv = read("stm-ek-rsa-nv.bin");
    let leaf = Certificate::from_der(posture_core::attestation::ek_certificate_der(&nv)).unwrap();
    let ek = ek_public_of(&leaf);
    let roots = vec![pem("globalsign-tpm-root.pem")];
    let chain = vec![der("stm-rsa-intermediate-05.pem"), der("stm-rsa-root.pem")];
    let policy = EkPolicy {
        roots: &roots,
        ..EkPolicy::default()
    };
    let info = verify_ek(&ek, Some(&nv), &chain, &policy, now()).unwrap();
    assert_eq!(info.intermediates.len(), 2);
}
