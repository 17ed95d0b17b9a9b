//! Device certificates: short-lived X.509 client certificates for enrolled, compliant
//! devices, so that TLS-terminating proxies (nginx, Traefik, Envoy) can tell which device
//! connects and ask posture-server whether it may.
//!
//! - The device asks with a PKCS#10 CSR ([`build_csr`]) signed by its own device key (TPM
//!   or software, through [`Signer`]), carrying a fresh single-use nonce from the server
//!   as its PKCS#9 `challengePassword`. The signature covers the nonce, so a CSR cannot be
//!   replayed once its nonce is spent, and only the holder of the enrolled key can make it.
//! - The server checks it ([`check_csr`]) and, while the device is compliant, its
//!   [`DeviceCa`] issues a certificate ([`DeviceCa::issue`]): subject `CN=<device id>,
//!   OU=<key assurance>`, a URI SubjectAltName `urn:posture:device:<device id>`, extended
//!   key usage clientAuth, a short lifetime (24 h by default). No revocation lists: a
//!   device that stops being compliant gets no new certificate and loses access at expiry.
//! - A proxy forwards the client certificate it verified; [`forwarded_certificate`] reads
//!   the three published header forms and [`DeviceCa::verify`] checks that the
//!   certificate was issued by this CA and is within its validity. A forwarded certificate
//!   is never trusted on its own.
//!
//! The CA is one self-signed P-256 certificate and key, kept in a 0700 directory (key
//! 0600), created on first use; the key is zeroized when dropped.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use der::asn1::{Any, BitString, Ia5String, SetOfVec};
use der::{Decode as _, DecodePem as _, Encode as _, EncodePem as _, Tag, Tagged as _};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    LineEnding,
};
use x509_cert::attr::Attribute;
use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::files::PrivateKind;
use crate::keys::{KeyAssurance, Signer};

/// The URI SubjectAltName of a device certificate: this prefix and the device id.
pub const DEVICE_URI_PREFIX: &str = crate::attestation::aikca::DEVICE_URI_PREFIX;
/// ecdsa-with-SHA256 (RFC 5758).
pub const OID_ECDSA_WITH_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// PKCS#9 challengePassword: carries the server's nonce in a CSR.
pub const OID_CHALLENGE_PASSWORD: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
/// id-kp-clientAuth.
pub const OID_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-at-organizationalUnitName: carries the key assurance in the subject.
const OID_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");

/// Largest CSR accepted (PEM or DER); a P-256 CSR is about 300 bytes.
pub const MAX_CSR_BYTES: usize = 8 * 1024;
/// Largest forwarded certificate header accepted.
pub const MAX_FORWARDED_BYTES: usize = 16 * 1024;

/// CA certificate file in the CA directory.
pub const CA_CERT: &str = "device-ca.pem";
/// CA key file in the CA directory (PKCS#8, 0600).
pub const CA_KEY: &str = "device-ca-key.pem";

/// Certificates are valid from this long before issuance (clock skew).
const BACKDATE: Duration = Duration::from_secs(300);
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What went wrong with a CSR, a certificate or the CA.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    /// Not a well-formed CSR or certificate (or too large, or not P-256 ECDSA).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The CSR's or certificate's signature does not verify.
    #[error("bad signature: {0}")]
    Signature(String),
    /// A certificate this CA did not issue, or outside its validity.
    #[error("untrusted certificate: {0}")]
    Untrusted(String),
    /// The CA itself: files, permissions, building certificates.
    #[error("device CA: {0}")]
    Ca(String),
    /// Signing the CSR with the device key failed.
    #[error("device key: {0}")]
    Key(String),
}

fn malformed(what: &str) -> impl FnOnce(der::Error) -> DevCertError + '_ {
    move |e| DevCertError::Malformed(format!("{what}: {e}"))
}

fn ca_err(what: &str) -> impl FnOnce(String) -> DevCertError + '_ {
    move |e| DevCertError::Ca(format!("{what}: {e}"))
}

fn spki_of(key: &p256::PublicKey) -> Result<SubjectPublicKeyInfoOwned, DevCertError> {
    let der = key
        .to_public_key_der()
        .map_err(|e| ca_err("public key")(e.to_string()))?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(malformed("public key"))
}

fn p256_of(spki: &SubjectPublicKeyInfoOwned) -> Result<p256::PublicKey, DevCertError> {
    let der = spki.to_der().map_err(malformed("public key"))?;
    p256::PublicKey::from_public_key_der(&der)
        .map_err(|e| DevCertError::Malformed(format!("not a P-256 public key: {e}")))
}

fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: OID_ECDSA_WITH_SHA256,
        parameters: None,
    }
}

// ---------------------------------------------------------------------------------------
// CSR

/// A PKCS#10 CSR (DER) for `signer`'s key, signed by it, with `nonce` (from the server's
/// `GET /v1/challenge`) as its challengePassword.
pub fn build_csr(signer: &dyn Signer, nonce: &str) -> Result<Vec<u8>, DevCertError> {
    let value = Any::new(Tag::Utf8String, nonce.as_bytes()).map_err(malformed("nonce"))?;
    let mut values = SetOfVec::new();
    values.insert(value).map_err(malformed("nonce"))?;
    let mut attributes = SetOfVec::new();
    attributes
        .insert(Attribute {
            oid: OID_CHALLENGE_PASSWORD,
            values,
        })
        .map_err(malformed("attributes"))?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: Name::default(),
        public_key: spki_of(&signer.public_key())?,
        attributes,
    };
    let tbs = info.to_der().map_err(malformed("CSR"))?;
    let signature = signer
        .sign(&tbs)
        .map_err(|e| DevCertError::Key(e.to_string()))?;
    let signature =
        BitString::from_bytes(signature.to_der().as_bytes()).map_err(malformed("CSR"))?;
    CertReq {
        info,
        algorithm: ecdsa_sha256(),
        signature,
    }
    .to_der()
    .map_err(malformed("CSR"))
}

/// A DER CSR as PEM.
pub fn csr_pem(der: &[u8]) -> Result<String, DevCertError> {
    CertReq::from_der(der)
        .and_then(|csr| csr.to_pem(LineEnding::LF))
        .map_err(malformed("CSR"))
}

/// What a CSR that passed [`check_csr`] says.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    /// The key it asks a certificate for (it signed the CSR).
    pub public_key: p256::PublicKey,
    /// Its challengePassword: the server's nonce, to be spent by the caller.
    pub nonce: String,
}

/// Checks a CSR (PEM or DER): size, structure, a P-256 key, an ecdsa-with-SHA256
/// signature by that key over the request, and exactly one challengePassword. The caller
/// still has to check that the key is the device's enrolled key and spend the nonce.
pub fn check_csr(bytes: &[u8]) -> Result<CheckedCsr, DevCertError> {
    if bytes.len() > MAX_CSR_BYTES {
        return Err(DevCertError::Malformed(format!(
            "the CSR is {} bytes; at most {MAX_CSR_BYTES}",
            bytes.len()
        )));
    }
    // Only PEM is text: DER is taken as is (its last byte may well be 0x20 or 0x0a).
    let trimmed = trim(bytes);
    let csr = if trimmed.starts_with(b"-----BEGIN") {
        CertReq::from_pem(trimmed).map_err(malformed("CSR"))?
    } else {
        CertReq::from_der(bytes).map_err(malformed("CSR"))?
    };
    if csr.info.version != Version::V1 {
        return Err(DevCertError::Malformed("CSR version is not 1".into()));
    }
    if csr.algorithm.oid != OID_ECDSA_WITH_SHA256 || csr.algorithm.parameters.is_some() {
        return Err(DevCertError::Malformed(format!(
            "CSR signature algorithm {}: only ecdsa-with-SHA256",
            csr.algorithm.oid
        )));
    }
    let public_key = p256_of(&csr.info.public_key)?;
    let signature = csr
        .signature
        .as_bytes()
        .ok_or_else(|| DevCertError::Malformed("CSR signature has unused bits".into()))?;
    let signature = DerSignature::from_bytes(signature)
        .map_err(|e| DevCertError::Signature(format!("CSR signature: {e}")))?;
    let tbs = csr.info.to_der().map_err(malformed("CSR"))?;
    VerifyingKey::from(&public_key)
        .verify(&tbs, &signature)
        .map_err(|_| DevCertError::Signature("the CSR is not signed by the key it names".into()))?;
    let mut nonces = csr
        .info
        .attributes
        .iter()
        .filter(|a| a.oid == OID_CHALLENGE_PASSWORD)
        .flat_map(|a| a.values.iter());
    let (Some(nonce), None) = (nonces.next(), nonces.next()) else {
        return Err(DevCertError::Malformed(
            "the CSR must carry exactly one challengePassword (the server's nonce)".into(),
        ));
    };
    let nonce = match nonce.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(nonce.value())
                .map_err(|_| DevCertError::Malformed("challengePassword is not text".into()))?
                .to_owned()
        }
        other => {
            return Err(DevCertError::Malformed(format!(
                "challengePassword is a {other}, not a string"
            )))
        }
    };
    Ok(CheckedCsr { public_key, nonce })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

// ---------------------------------------------------------------------------------------
// The CA

/// What [`DeviceCa::issue`] puts in a certificate.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The device id (RFC 7638 thumbprint of its key).
    pub device_id: &'a str,
    /// What enrollment proved about the key.
    pub key_assurance: &'a str,
    /// The key (from the enrollment record, equal to the CSR's).
    pub public_key: &'a p256::PublicKey,
    /// How long the certificate is valid.
    pub lifetime: Duration,
}

/// A certificate [`DeviceCa::verify`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    /// The device id from its URI SubjectAltName.
    pub device_id: String,
    /// The key assurance from its subject's OU.
    pub key_assurance: String,
    /// Its expiry.
    pub not_after: SystemTime,
}

/// The device CA: its certificate and key (zeroized on drop).
pub struct DeviceCa {
    cert_der: Vec<u8>,
    cert: Certificate,
    key: SigningKey,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("DeviceCa")
            .field("subject", &self.cert.tbs_certificate.subject.to_string())
            .finish_non_exhaustive()
    }
}

fn random_serial() -> Result<SerialNumber, DevCertError> {
    let mut bytes = [0u8; 16];
    crate::attestation::credential::os_random(&mut bytes);
    // Positive and exactly 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|e| ca_err("serial")(e.to_string()))
}

fn validity(from: SystemTime, lifetime: Duration) -> Result<Validity, DevCertError> {
    let not_before = from.checked_sub(BACKDATE).unwrap_or(from);
    let time = |t: SystemTime| Time::try_from(t).map_err(|e| ca_err("validity")(e.to_string()));
    Ok(Validity {
        not_before: time(not_before)?,
        not_after: time(from + lifetime)?,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DevCertError + '_ {
    move |e| DevCertError::Ca(format!("{}: {e}", path.display()))
}

fn check_private(path: &Path, kind: PrivateKind) -> Result<(), DevCertError> {
    match crate::files::private_problem(path, kind).map_err(io_err(path))? {
        None => Ok(()),
        Some(problem) => Err(DevCertError::Ca(format!("{}: {problem}", path.display()))),
    }
}

impl DeviceCa {
    /// The CA in `dir` (0700): loaded when it holds one, else created there (key 0600,
    /// created with create-new semantics, so two processes starting together end up with
    /// the same CA).
    pub fn load_or_create(dir: &Path) -> Result<DeviceCa, DevCertError> {
        crate::files::create_private_dir(dir).map_err(io_err(dir))?;
        check_private(dir, PrivateKind::Dir)?;
        let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
        if std::fs::symlink_metadata(&key).is_err() {
            match Self::create(dir, &cert, &key) {
                Ok(ca) => return Ok(ca),
                // Another process created it meanwhile: load theirs.
                Err(_) if key.exists() && cert.exists() => {}
                Err(e) => return Err(e),
            }
        }
        Self::load(&cert, &key)
    }

    fn create(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<DeviceCa, DevCertError> {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let mut tag = [0u8; 4];
        crate::attestation::credential::os_random(&mut tag);
        let name = Name::from_str(&format!(
            "CN=posture device CA {},O=posture-server",
            crate::hex::encode(&tag)
        ))
        .map_err(|e| ca_err("name")(e.to_string()))?;
        let cert = CertificateBuilder::new(
            Profile::Root,
            random_serial()?,
            validity(SystemTime::now(), CA_LIFETIME)?,
            name,
            spki_of(&key.verifying_key().into())?,
            &key,
        )
        .and_then(|b| b.build::<DerSignature>())
        .map_err(|e| ca_err("CA certificate")(e.to_string()))?;
        let cert_der = cert.to_der().map_err(malformed("CA certificate"))?;
        let key_pem: Zeroizing<String> = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| ca_err("key")(e.to_string()))?;
        crate::files::write_new(key_path, key_pem.as_bytes()).map_err(io_err(key_path))?;
        let cert_pem = cert
            .to_pem(LineEnding::LF)
            .map_err(malformed("CA certificate"))?;
        crate::files::write_private(cert_path, cert_pem.as_bytes()).map_err(io_err(cert_path))?;
        crate::files::sync_dir(dir).map_err(io_err(dir))?;
        Ok(DeviceCa {
            cert_der,
            cert,
            key,
        })
    }

    /// Loads a CA from its certificate and key files (PEM; the key PKCS#8 P-256, readable
    /// by its owner only).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<DeviceCa, DevCertError> {
        check_private(key_path, PrivateKind::File)?;
        let text = Zeroizing::new(std::fs::read_to_string(key_path).map_err(io_err(key_path))?);
        let key = SigningKey::from_pkcs8_pem(&text)
            .map_err(|e| ca_err("key")(format!("{}: {e}", key_path.display())))?;
        let pem = std::fs::read(cert_path).map_err(io_err(cert_path))?;
        let cert = Certificate::from_pem(trim(&pem))
            .map_err(|e| ca_err("certificate")(format!("{}: {e}", cert_path.display())))?;
        let public = spki_of(&key.verifying_key().into())?;
        if public != cert.tbs_certificate.subject_public_key_info {
            return Err(DevCertError::Ca(format!(
                "{} does not belong to {}",
                key_path.display(),
                cert_path.display()
            )));
        }
        let cert_der = cert.to_der().map_err(malformed("CA certificate"))?;
        Ok(DeviceCa {
            cert_der,
            cert,
            key,
        })
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate as PEM: what proxies trust for client certificates.
    pub fn cert_pem(&self) -> Result<String, DevCertError> {
        self.cert
            .to_pem(LineEnding::LF)
            .map_err(malformed("CA certificate"))
    }

    /// Issues a client certificate (DER) for `subject`, valid from now (less a few
    /// minutes of clock skew) for `subject.lifetime`, never beyond the CA's own expiry.
    pub fn issue(&self, subject: &Subject<'_>, now: SystemTime) -> Result<Vec<u8>, DevCertError> {
        let ca_end: SystemTime = self
            .cert
            .tbs_certificate
            .validity
            .not_after
            .to_system_time();
        let lifetime = ca_end
            .duration_since(now)
            .map_err(|_| DevCertError::Ca("the CA certificate has expired".into()))?
            .min(subject.lifetime);
        let id_ok = !subject.device_id.is_empty()
            && subject
                .device_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let assurance_ok = subject
            .key_assurance
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
        if !id_ok || !assurance_ok {
            return Err(DevCertError::Ca(
                "invalid device id or key assurance".into(),
            ));
        }
        let name = Name::from_str(&format!(
            "CN={},OU={}",
            subject.device_id, subject.key_assurance
        ))
        .map_err(|e| ca_err("subject")(e.to_string()))?;
        let mut builder = CertificateBuilder::new(
            Profile::Leaf {
                issuer: self.cert.tbs_certificate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            random_serial()?,
            validity(now, lifetime)?,
            name,
            spki_of(subject.public_key)?,
            &self.key,
        )
        .map_err(|e| ca_err("certificate")(e.to_string()))?;
        let uri = Ia5String::new(&format!("{DEVICE_URI_PREFIX}{}", subject.device_id))
            .map_err(malformed("SubjectAltName"))?;
        builder
            .add_extension(&SubjectAltName(vec![
                GeneralName::UniformResourceIdentifier(uri),
            ]))
            .and_then(|()| builder.add_extension(&ExtendedKeyUsage(vec![OID_CLIENT_AUTH])))
            .map_err(|e| ca_err("certificate")(e.to_string()))?;
        builder
            .build::<DerSignature>()
            .and_then(|c| c.to_der().map_err(Into::into))
            .map_err(|e| ca_err("certificate")(e.to_string()))
    }

    /// Checks a client certificate (DER) a proxy forwarded: issued by this CA (issuer
    /// name and signature), within its validity at `now`, naming a device. Anything else
    /// is refused: a forwarded certificate is never trusted on its own.
    pub fn verify(&self, der: &[u8], now: SystemTime) -> Result<DeviceCertificate, DevCertError> {
        let cert = Certificate::from_der(der).map_err(malformed("certificate"))?;
        let tbs = &cert.tbs_certificate;
        if tbs.issuer != self.cert.tbs_certificate.subject {
            return Err(DevCertError::Untrusted(format!(
                "issued by {:?}, not by this server's device CA",
                tbs.issuer.to_string()
            )));
        }
        if cert.signature_algorithm.oid != OID_ECDSA_WITH_SHA256 {
            return Err(DevCertError::Untrusted(
                "not signed with ecdsa-with-SHA256".into(),
            ));
        }
        let ca_key = p256_of(&self.cert.tbs_certificate.subject_public_key_info)?;
        let signature = cert
            .signature
            .as_bytes()
            .and_then(|b| DerSignature::from_bytes(b).ok())
            .ok_or_else(|| DevCertError::Untrusted("malformed signature".into()))?;
        let tbs_der = tbs.to_der().map_err(malformed("certificate"))?;
        VerifyingKey::from(&ca_key)
            .verify(&tbs_der, &signature)
            .map_err(|_| {
                DevCertError::Untrusted("the signature is not this server's device CA's".into())
            })?;
        let not_before = tbs.validity.not_before.to_system_time();
        let not_after = tbs.validity.not_after.to_system_time();
        if now < not_before {
            return Err(DevCertError::Untrusted("not yet valid".into()));
        }
        if now > not_after {
            return Err(DevCertError::Untrusted(format!(
                "expired at {}",
                humantime::format_rfc3339_seconds(not_after)
            )));
        }
        let device_id =
            device_uri(&cert)?.ok_or_else(|| DevCertError::Untrusted("names no device".into()))?;
        let key_assurance = tbs
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == OID_OU)
            .and_then(|atv| std::str::from_utf8(atv.value.value()).ok())
            .unwrap_or_default()
            .to_owned();
        Ok(DeviceCertificate {
            device_id,
            key_assurance,
            not_after,
        })
    }
}

/// The device id of a certificate's `urn:posture:device:` URI SubjectAltName, if any.
pub fn device_uri(cert: &Certificate) -> Result<Option<String>, DevCertError> {
    let Some(extensions) = &cert.tbs_certificate.extensions else {
        return Ok(None);
    };
    let Some(ext) = extensions
        .iter()
        .find(|e| e.extn_id == <SubjectAltName as der::oid::AssociatedOid>::OID)
    else {
        return Ok(None);
    };
    let san =
        SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(malformed("SubjectAltName"))?;
    Ok(san.0.iter().find_map(|name| match name {
        GeneralName::UniformResourceIdentifier(uri) => uri
            .as_str()
            .strip_prefix(DEVICE_URI_PREFIX)
            .map(str::to_owned),
        _ => None,
    }))
}

/// Validity of a certificate (PEM or DER): `(not_before, not_after)`. What the daemon
/// reads to renew its certificate in time.
pub fn validity_of(bytes: &[u8]) -> Result<(SystemTime, SystemTime), DevCertError> {
    // Only PEM is text: DER is taken as is (its last byte may well be 0x20 or 0x0a).
    let trimmed = trim(bytes);
    let cert = if trimmed.starts_with(b"-----BEGIN") {
        Certificate::from_pem(trimmed).map_err(malformed("certificate"))?
    } else {
        Certificate::from_der(bytes).map_err(malformed("certificate"))?
    };
    let v = &cert.tbs_certificate.validity;
    Ok((v.not_before.to_system_time(), v.not_after.to_system_time()))
}

/// A DER certificate as PEM.
pub fn certificate_pem(der: &[u8]) -> Result<String, DevCertError> {
    Certificate::from_der(der)
        .and_then(|c| c.to_pem(LineEnding::LF))
        .map_err(malformed("certificate"))
}

// ---------------------------------------------------------------------------------------
// Forwarded client certificates

/// How a proxy forwards the client certificate it verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardedFormat {
    /// nginx `$ssl_client_escaped_cert`: the URL-encoded PEM, in a header the
    /// configuration names (`X-Client-Cert` in posture's examples).
    Nginx,
    /// Traefik `passTLSClientCert` with `pem: true`: `X-Forwarded-Tls-Client-Cert`, the
    /// base64 DER without PEM armour (URL-escaped), certificates separated by commas.
    Traefik,
    /// Envoy `x-forwarded-client-cert` (XFCC): `;`-separated `key=value` pairs per proxy,
    /// `,` between proxies; `Cert="<URL-encoded PEM>"`.
    Envoy,
}

impl ForwardedFormat {
    /// The header this proxy uses by default.
    pub fn default_header(self) -> &'static str {
        match self {
            ForwardedFormat::Nginx => "x-client-cert",
            ForwardedFormat::Traefik => "x-forwarded-tls-client-cert",
            ForwardedFormat::Envoy => "x-forwarded-client-cert",
        }
    }
}

/// Decodes `%XX` escapes (a `+` stays a `+`: it is a base64 character here, and the
/// encoders used by nginx and Traefik escape a literal `+` as `%2B`).
pub fn percent_decode(text: &str) -> Result<Vec<u8>, DevCertError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| DevCertError::Malformed("bad %-escape".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The leaf certificate (DER) from a forwarded header value in `format`. Parsing only:
/// the caller must still [`DeviceCa::verify`] it.
pub fn forwarded_certificate(
    format: ForwardedFormat,
    value: &str,
) -> Result<Vec<u8>, DevCertError> {
    if value.len() > MAX_FORWARDED_BYTES {
        return Err(DevCertError::Malformed(format!(
            "the forwarded certificate header is {} bytes; at most {MAX_FORWARDED_BYTES}",
            value.len()
        )));
    }
    let value = value.trim();
    match format {
        ForwardedFormat::Nginx => pem_leaf(&percent_decode(value)?),
        ForwardedFormat::Traefik => {
            let decoded = percent_decode(value)?;
            let text = std::str::from_utf8(&decoded)
                .map_err(|_| DevCertError::Malformed("not text".into()))?;
            let first = text.split(',').next().unwrap_or_default();
            let b64: String = first.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| DevCertError::Malformed(format!("not base64: {e}")))?;
            Certificate::from_der(&der).map_err(malformed("certificate"))?;
            Ok(der)
        }
        ForwardedFormat::Envoy => {
            let element = xfcc_elements(value)?
                .pop()
                .ok_or_else(|| DevCertError::Malformed("empty XFCC header".into()))?;
            let cert = element
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("cert"))
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    DevCertError::Malformed(
                        "the XFCC element has no Cert (set forward_client_cert_details and \
                         set_current_client_cert_details.cert: true)"
                            .into(),
                    )
                })?;
            pem_leaf(&percent_decode(&cert)?)
        }
    }
}

/// The first CERTIFICATE of a PEM text, as DER.
fn pem_leaf(pem: &[u8]) -> Result<Vec<u8>, DevCertError> {
    let text =
        std::str::from_utf8(pem).map_err(|_| DevCertError::Malformed("PEM is not text".into()))?;
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = text
        .find(begin)
        .ok_or_else(|| DevCertError::Malformed("no PEM certificate".into()))?;
    let stop = text[start..]
        .find(end)
        .map(|i| start + i + end.len())
        .ok_or_else(|| DevCertError::Malformed("unterminated PEM certificate".into()))?;
    let cert = Certificate::from_pem(&text.as_bytes()[start..stop]).map_err(malformed("PEM"))?;
    cert.to_der().map_err(malformed("certificate"))
}

/// The elements of an XFCC header: one list of `(key, value)` per proxy, in order.
/// Values may be quoted (`"..."`, with `\"` inside).
pub fn xfcc_elements(value: &str) -> Result<Vec<Vec<(String, String)>>, DevCertError> {
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut key = String::new();
    let mut current = String::new();
    let mut in_key = true;
    let mut chars = value.chars().peekable();
    let bad = |m: &str| DevCertError::Malformed(format!("XFCC: {m}"));
    loop {
        let c = chars.next();
        match c {
            Some('"') if !in_key && current.is_empty() => {
                // A quoted value, up to the closing quote.
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(escaped) => current.push(escaped),
                            None => return Err(bad("unterminated escape")),
                        },
                        Some('"') => break,
                        Some(other) => current.push(other),
                        None => return Err(bad("unterminated quote")),
                    }
                }
                if !matches!(chars.peek(), None | Some(';') | Some(',')) {
                    return Err(bad("text after a quoted value"));
                }
            }
            Some('=') if in_key => in_key = false,
            Some(';') | Some(',') | None => {
                if !(in_key && key.trim().is_empty() && current.is_empty()) {
                    if in_key {
                        return Err(bad("a key without a value"));
                    }
                    pairs.push((key.trim().to_owned(), std::mem::take(&mut current)));
                }
                key.clear();
                in_key = true;
                if c != Some(';') {
                    if !pairs.is_empty() {
                        elements.push(std::mem::take(&mut pairs));
                    }
                    if c.is_none() {
                        break;
                    }
                }
            }
            Some(other) if in_key => key.push(other),
            Some(other) => current.push(other),
        }
    }
    Ok(elements)
}

/// Where [`DeviceCa`]'s files are in a state directory.
pub fn ca_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("device-ca")
}

/// Whether `assurance` is one of the names [`KeyAssurance`] uses.
pub fn known_assurance(assurance: &str) -> bool {
    [
        KeyAssurance::Software,
        KeyAssurance::TpmUnverified,
        KeyAssurance::Tpm,
    ]
    .iter()
    .any(|a| a.as_str() == assurance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::software::SoftwareKey;

    fn key() -> (tempfile::TempDir, SoftwareKey) {
        let dir = tempfile::tempdir().unwrap();
        let key = SoftwareKey::load_or_create(&dir.path().join("k")).unwrap();
        (dir, key)
    }

    #[test]
    fn a_csr_round_trips_with_its_nonce_and_key() {
        let (_d, key) = key();
        let der = build_csr(&key, "nonce-1").unwrap();
        let checked = check_csr(&der).unwrap();
        assert_eq!(checked.nonce, "nonce-1");
        assert_eq!(checked.public_key, key.public_key());
        let pem = csr_pem(&der).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert_eq!(check_csr(pem.as_bytes()).unwrap().nonce, "nonce-1");
    }

    #[test]
    fn a_csr_whose_nonce_or_key_was_changed_after_signing_is_refused() {
        let (_e, other) = self::tests::key();
        let (_d, key) = self::tests::key();
        let der = build_csr(&key, "nonce-1").unwrap();
        // Another nonce under the same signature.
        let mut csr = CertReq::from_der(&der).unwrap();
        let mut values = SetOfVec::new();
        values
            .insert(Any::new(Tag::Utf8String, b"nonce-2".as_slice()).unwrap())
            .unwrap();
        let mut attributes = SetOfVec::new();
        attributes
            .insert(Attribute {
                oid: OID_CHALLENGE_PASSWORD,
                values,
            })
            .unwrap();
        csr.info.attributes = attributes;
        let err = check_csr(&csr.to_der().unwrap()).unwrap_err();
        assert!(matches!(err, DevCertError::Signature(_)), "{err}");
        // Another key (another device's) under this device's signature.
        let mut csr = CertReq::from_der(&der).unwrap();
        csr.info.public_key = spki_of(&other.public_key()).unwrap();
        let err = check_csr(&csr.to_der().unwrap()).unwrap_err();
        assert!(matches!(err, DevCertError::Signature(_)), "{err}");
    }

    #[test]
    fn a_csr_without_a_nonce_or_too_large_or_garbage_is_refused() {
        let (_d, key) = key();
        let der = build_csr(&key, "n").unwrap();
        let mut csr = CertReq::from_der(&der).unwrap();
        csr.info.attributes = SetOfVec::new();
        let tbs = csr.info.to_der().unwrap();
        let sig = key.sign(&tbs).unwrap();
        csr.signature = BitString::from_bytes(sig.to_der().as_bytes()).unwrap();
        let err = check_csr(&csr.to_der().unwrap()).unwrap_err();
        assert!(err.to_string().contains("challengePassword"), "{err}");
        assert!(check_csr(&vec![0x30; MAX_CSR_BYTES + 1]).is_err());
        assert!(check_csr(b"not a csr").is_err());
        assert!(check_csr(b"").is_err());
    }

    fn ca() -> (tempfile::TempDir, DeviceCa) {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::load_or_create(&ca_dir(dir.path())).unwrap();
        (dir, ca)
    }

    #[test]
    #[cfg(unix)] // checks Unix file modes
    fn the_ca_is_created_private_then_loaded_and_verifies_what_it_issued() {
        let (dir, ca) = ca();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let ca_dir = ca_dir(dir.path());
        assert_eq!(mode(&ca_dir), 0o700);
        assert_eq!(mode(&ca_dir.join(CA_KEY)), 0o600);
        let again = DeviceCa::load_or_create(&ca_dir).unwrap();
        assert_eq!(again.cert_der(), ca.cert_der());

        let (_k, key) = key();
        let id = crate::keys::key_id(&key.public_key());
        let now = SystemTime::now();
        let der = ca
            .issue(
                &Subject {
                    device_id: &id,
                    key_assurance: "software",
                    public_key: &key.public_key(),
                    lifetime: Duration::from_secs(3600),
                },
                now,
            )
            .unwrap();
        let verified = again.verify(&der, now).unwrap();
        assert_eq!(verified.device_id, id);
        assert_eq!(verified.key_assurance, "software");
        // Expired an hour later; not valid before its time.
        let later = now + Duration::from_secs(3601);
        assert!(matches!(
            ca.verify(&der, later),
            Err(DevCertError::Untrusted(m)) if m.contains("expired")
        ));
        assert!(ca.verify(&der, now - Duration::from_secs(3600)).is_err());
        // Another CA's certificate is refused, even with the same subject.
        let (_o, other) = super::tests::ca();
        let err = other.verify(&der, now).unwrap_err();
        assert!(matches!(err, DevCertError::Untrusted(_)), "{err}");

        std::fs::set_permissions(ca_dir.join(CA_KEY), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let err = DeviceCa::load_or_create(&ca_dir).unwrap_err();
        assert!(err.to_string().contains("0600"), "{err}");
    }

    #[test]
    fn a_certificate_signed_by_another_key_under_this_ca_name_is_refused() {
        let (_e, impostor) = self::tests::ca();
        let (_d, ca) = self::tests::ca();
        // The impostor CA copies the real CA's name.
        let forged = DeviceCa {
            cert_der: impostor.cert_der.clone(),
            cert: ca.cert.clone(),
            key: impostor.key.clone(),
        };
        let (_k, key) = key();
        let der = forged
            .issue(
                &Subject {
                    device_id: "abc",
                    key_assurance: "tpm",
                    public_key: &key.public_key(),
                    lifetime: Duration::from_secs(60),
                },
                SystemTime::now(),
            )
            .unwrap();
        let err = ca.verify(&der, SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
    }

    /// DER whose last byte happens to be an ASCII whitespace byte (a signature's last
    /// byte is random: ≈ 6 in 256) is DER, not text to trim. It failed issuance about once
    /// in 40 certificates ("expected 589, actual 588") until only PEM was trimmed.
    #[test]
    fn der_ending_in_a_whitespace_byte_is_not_trimmed() {
        let (_d, ca) = ca();
        let (_k, key) = key();
        let mut certificates = 0;
        let mut csrs = 0;
        for i in 0..5000 {
            if certificates < 2 {
                let der = ca
                    .issue(
                        &Subject {
                            device_id: "dev1",
                            key_assurance: "software",
                            public_key: &key.public_key(),
                            lifetime: Duration::from_secs(600),
                        },
                        SystemTime::now(),
                    )
                    .unwrap();
                if der.last().is_some_and(u8::is_ascii_whitespace) {
                    validity_of(&der).unwrap();
                    ca.verify(&der, SystemTime::now()).unwrap();
                    certificates += 1;
                }
            }
            if csrs < 2 {
                let der = build_csr(&key, &format!("nonce-{i}")).unwrap();
                if der.last().is_some_and(u8::is_ascii_whitespace) {
                    check_csr(&der).unwrap();
                    csrs += 1;
                }
            }
            if certificates == 2 && csrs == 2 {
                return;
            }
        }
        panic!("too few samples: {certificates} certificates, {csrs} CSRs");
    }

    fn issued() -> (tempfile::TempDir, DeviceCa, Vec<u8>) {
        let (dir, ca) = ca();
        let (_k, key) = key();
        let der = ca
            .issue(
                &Subject {
                    device_id: "dev1",
                    key_assurance: "tpm",
                    public_key: &key.public_key(),
                    lifetime: Duration::from_secs(600),
                },
                SystemTime::now(),
            )
            .unwrap();
        (dir, ca, der)
    }

    fn escape(bytes: &[u8]) -> String {
        // What nginx's $ssl_client_escaped_cert does: every reserved character as %XX.
        bytes
            .iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (*b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn nginx_escaped_pem_is_read() {
        let (_d, _ca, der) = issued();
        let pem = certificate_pem(&der).unwrap();
        let header = escape(pem.as_bytes());
        assert!(header.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert_eq!(
            forwarded_certificate(ForwardedFormat::Nginx, &header).unwrap(),
            der
        );
        assert!(forwarded_certificate(ForwardedFormat::Nginx, "").is_err());
        assert!(forwarded_certificate(ForwardedFormat::Nginx, "%zz").is_err());
        assert!(
            forwarded_certificate(ForwardedFormat::Nginx, "-----BEGIN%20CERTIFICATE-----").is_err()
        );
    }

    #[test]
    fn traefik_base64_der_is_read_plain_escaped_and_with_a_chain() {
        use base64::Engine as _;
        let (_d, ca, der) = issued();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(
            forwarded_certificate(ForwardedFormat::Traefik, &b64).unwrap(),
            der
        );
        let escaped = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(
            forwarded_certificate(ForwardedFormat::Traefik, &escaped).unwrap(),
            der
        );
        let chain = format!(
            "{b64},{}",
            base64::engine::general_purpose::STANDARD.encode(ca.cert_der())
        );
        assert_eq!(
            forwarded_certificate(ForwardedFormat::Traefik, &chain).unwrap(),
            der
        );
        assert!(forwarded_certificate(ForwardedFormat::Traefik, "!!!").is_err());
        assert!(forwarded_certificate(ForwardedFormat::Traefik, "AAAA").is_err());
    }

    #[test]
    fn envoy_xfcc_cert_of_the_last_element_is_read() {
        let (_d, _ca, der) = issued();
        let pem = escape(certificate_pem(&der).unwrap().as_bytes());
        let header = format!(
            "By=spiffe://a;Hash=00;Cert=\"%2D%2D\",By=spiffe://proxy;Hash=abc;Cert=\"{pem}\";Subject=\"CN=dev1,OU=tpm\";URI=urn:posture:device:dev1"
        );
        assert_eq!(
            forwarded_certificate(ForwardedFormat::Envoy, &header).unwrap(),
            der
        );
        let elements = xfcc_elements("By=a;Subject=\"x=\\\"1\\\";y,z\",Hash=b").unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[0][1], ("Subject".into(), "x=\"1\";y,z".into()));
        assert!(xfcc_elements("Cert=\"unterminated").is_err());
        assert!(xfcc_elements("Cert=\"a\"b").is_err());
        assert!(xfcc_elements("novalue;x=1").is_err());
        let err = forwarded_certificate(ForwardedFormat::Envoy, "By=x;Hash=y").unwrap_err();
        assert!(err.to_string().contains("no Cert"), "{err}");
    }

    #[test]
    fn oversized_forwarded_headers_are_refused_before_parsing() {
        let big = "A".repeat(MAX_FORWARDED_BYTES + 1);
        for format in [
            ForwardedFormat::Nginx,
            ForwardedFormat::Traefik,
            ForwardedFormat::Envoy,
        ] {
            assert!(forwarded_certificate(format, &big).is_err());
        }
    }
}
