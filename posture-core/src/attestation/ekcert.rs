//! EK certificate checks: the certificate chains to a configured CA and certifies the
//! very EK the device presented.
//!
//! Any certificate in the configured bundle is trusted (TPM vendors publish roots and
//! intermediates side by side, and operators configure both). Supported signatures:
//! sha256/384/512WithRSAEncryption and ecdsa-with-SHA256 on P-256, which cover the
//! swtpm local CA and the common TPM vendor CAs.

use std::time::SystemTime;

use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::der::{self, Decode, Encode};
use x509_cert::Certificate;

use super::tpm2::TpmPublic;
use super::AttestationError;

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const PRIME256V1: &str = "1.2.840.10045.3.1.7";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";

/// Parses a PEM bundle of CA certificates.
pub fn parse_roots(pem: &[u8]) -> Result<Vec<Certificate>, AttestationError> {
    let certs = Certificate::load_pem_chain(pem)
        .map_err(|e| AttestationError::EkCertificate(format!("CA bundle: {e}")))?;
    if certs.is_empty() {
        return Err(AttestationError::EkCertificate(
            "CA bundle holds no certificate".into(),
        ));
    }
    Ok(certs)
}

/// What was established about an EK certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkCertificateInfo {
    /// The EK certificate's issuer, as an RFC 4514 string.
    pub issuer: String,
    /// The EK certificate's subject (often empty for EK certificates).
    pub subject: String,
}

/// The certificate's DER inside the contents of a TPM NV certificate index, as real TPMs
/// ship them:
///
/// - the TCG PC Client NV header (`0x10 0x01 0x00` and a 2-byte big-endian length, TCG
///   "EK Credential Profile" §2.2.1.5.1) is removed, and its length bounds the
///   certificate;
/// - the DER is cut at the end of its outer SEQUENCE: NV indices are often larger than
///   the certificate and padded (with `0x00` or `0xff`), which strict DER decoding would
///   refuse ("trailing data").
///
/// Only the outer SEQUENCE's own length is trusted; the certificate is then decoded
/// strictly. Input that does not start with a SEQUENCE is returned unchanged so the
/// decoder reports the real problem.
pub fn ek_certificate_der(nv: &[u8]) -> &[u8] {
    let body = match nv {
        [0x10, 0x01, 0x00, hi, lo, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            rest.get(..len).unwrap_or(rest)
        }
        _ => nv,
    };
    match der_sequence_len(body) {
        Some(len) if len <= body.len() => &body[..len],
        _ => body,
    }
}

/// The total length (header included) of a DER SEQUENCE at the start of `bytes`.
fn der_sequence_len(bytes: &[u8]) -> Option<usize> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    if first < 0x80 {
        return Some(2 + usize::from(first));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 || rest.len() < count {
        return None;
    }
    let len = rest[..count]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    len.checked_add(2 + count)
}

/// Checks that `ek_cert_der` is valid at `now`, chains to a certificate in `roots`, and
/// certifies the RSA public key of `ek`. `ek_cert_der` may be the raw contents of the
/// TPM's NV index (TCG header, padding): see [`ek_certificate_der`].
pub fn verify_ek_certificate(
    ek_cert_der: &[u8],
    ek: &TpmPublic,
    roots: &[Certificate],
    now: SystemTime,
) -> Result<EkCertificateInfo, AttestationError> {
    let leaf = Certificate::from_der(ek_certificate_der(ek_cert_der))
        .map_err(|e| AttestationError::EkCertificate(format!("EK certificate: {e}")))?;
    check_validity(&leaf, now)?;

    let spki = &leaf.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
        return Err(AttestationError::EkCertificate(
            "EK certificate is not for an RSA key".into(),
        ));
    }
    let cert_key = rsa_from_spki(spki)?;
    if cert_key != ek.rsa()? {
        return Err(AttestationError::EkCertificate(
            "EK certificate is for another key than the presented EK".into(),
        ));
    }

    // One link suffices: every certificate in the bundle is trusted, intermediates included.
    // Why each candidate issuer failed is kept: "does not chain" alone hides an
    // unsupported signature algorithm or a bad signature.
    let mut causes = Vec::new();
    for ca in roots
        .iter()
        .filter(|ca| ca.tbs_certificate.subject == leaf.tbs_certificate.issuer)
    {
        match verify_signed_by(&leaf, ca).and_then(|()| check_validity(ca, now)) {
            Ok(()) => {
                return Ok(EkCertificateInfo {
                    issuer: leaf.tbs_certificate.issuer.to_string(),
                    subject: leaf.tbs_certificate.subject.to_string(),
                })
            }
            Err(e) => causes.push(e.to_string()),
        }
    }
    let why = if causes.is_empty() {
        "no configured CA has that subject".to_owned()
    } else {
        causes.join("; ")
    };
    Err(AttestationError::EkCertificate(format!(
        "EK certificate issued by \"{}\" does not chain to a configured CA: {why}",
        leaf.tbs_certificate.issuer
    )))
}

fn check_validity(cert: &Certificate, now: SystemTime) -> Result<(), AttestationError> {
    let v = &cert.tbs_certificate.validity;
    if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
        return Err(AttestationError::EkCertificate(format!(
            "certificate \"{}\" is not valid now (valid {} to {})",
            cert.tbs_certificate.subject, v.not_before, v.not_after
        )));
    }
    Ok(())
}

fn rsa_from_spki(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
) -> Result<rsa::RsaPublicKey, AttestationError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| AttestationError::EkCertificate("unaligned public key".into()))?;
    rsa::RsaPublicKey::from_pkcs1_der(bits)
        .map_err(|e| AttestationError::EkCertificate(format!("RSA public key: {e}")))
}

/// Checks that `cert` carries a valid signature by `issuer`'s key.
fn verify_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), AttestationError> {
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| AttestationError::EkCertificate(format!("re-encoding: {e}")))?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| AttestationError::EkCertificate("unaligned signature".into()))?;
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let bad = || AttestationError::EkCertificate("certificate signature does not verify".into());
    match cert.signature_algorithm.oid.to_string().as_str() {
        alg @ (SHA256_WITH_RSA | SHA384_WITH_RSA | SHA512_WITH_RSA) => {
            if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
                return Err(bad());
            }
            let key = rsa_from_spki(spki)?;
            let result = match alg {
                SHA256_WITH_RSA => key.verify(
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(&tbs),
                    sig,
                ),
                SHA384_WITH_RSA => key.verify(
                    rsa::Pkcs1v15Sign::new::<Sha384>(),
                    &Sha384::digest(&tbs),
                    sig,
                ),
                _ => key.verify(
                    rsa::Pkcs1v15Sign::new::<Sha512>(),
                    &Sha512::digest(&tbs),
                    sig,
                ),
            };
            result.map_err(|_| bad())
        }
        ECDSA_WITH_SHA256 => {
            use p256::ecdsa::signature::Verifier;
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
            if spki.algorithm.oid.to_string() != EC_PUBLIC_KEY
                || curve.map(|c| c.to_string()).as_deref() != Some(PRIME256V1)
            {
                return Err(bad());
            }
            let point = spki.subject_public_key.as_bytes().ok_or_else(bad)?;
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| bad())?;
            let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
            key.verify(&tbs, &sig).map_err(|_| bad())
        }
        other => Err(AttestationError::Unsupported(format!(
            "certificate signature algorithm {other}"
        ))),
    }
}
