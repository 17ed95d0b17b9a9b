//! The attestation CA: AIK certificates for WebAuthn `tpm` attestation (WebAuthn Level 3,
//! §8.3.1 "TPM Attestation Statement Certificate Requirements").
//!
//! A certificate is issued only for an enrollment that proved what an attestation CA must
//! check: the AK was activated with TPM2_ActivateCredential against an EK whose
//! certificate chains to a configured TPM vendor CA (`ek_trust = "ca"`). Never for
//! `tpm-unverified` or software enrollments.
//!
//! The CA is a directory: `root.pem` and `intermediate.pem` (what relying parties
//! download and trust; they trust the root), and their keys `root-key.pem` and
//! `intermediate-key.pem` (PKCS#8, P-256), 0600 in a 0700 directory. The root key signs
//! only the intermediate: move it offline after `init`. Keys are zeroized when dropped.
//! With posture-core's `pkcs11` feature the intermediate key can instead live in a
//! PKCS#11 token ([`CaKey`]'s `Pkcs11` variant, module `attestation::pkcs11`): there is then no
//! `intermediate-key.pem`, and the certificates it signs are the same in form.
//!
//! The AIK certificate has: version 3, an empty subject, a critical SubjectAltName whose
//! first entry is a directoryName with tcg-at-tpmManufacturer, tcg-at-tpmModel and
//! tcg-at-tpmVersion (the second a URI naming the device, [`DEVICE_URI_PREFIX`]), extended key usage tcg-kp-AIKCertificate
//! (2.23.133.8.3, its only purpose, so critical), basicConstraints CA=false, key usage
//! digitalSignature, and the FIDO `id-fido-gen-ce-aaguid` extension with posture's AAGUID.
//! No CRL distribution point and no AIA (relying-party libraries would try to fetch
//! them).

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode as _, Encode as _, Tag};
use p256::ecdsa::signature::{Keypair, Signer};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    AlgorithmIdentifier, ObjectIdentifier, SignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned,
};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::tpm2::{Attest, TpmPublic};
use super::wire::{EnrolledDevice, EnrollmentRequest, EK_TRUST_CA};
use super::AttestationError;

use crate::files::PrivateKind;

/// tcg-at-tpmManufacturer.
pub const OID_TPM_MANUFACTURER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.1");
/// tcg-at-tpmModel.
pub const OID_TPM_MODEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.2");
/// tcg-at-tpmVersion.
pub const OID_TPM_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.2.3");
/// tcg-kp-AIKCertificate.
pub const OID_AIK_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.8.3");
/// id-fido-gen-ce-aaguid.
pub const OID_FIDO_AAGUID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4");

/// The second SubjectAltName entry of an AIK certificate: this prefix and the device id
/// (the RFC 7638 thumbprint of the enrolled device key, as posture-server names devices).
pub const DEVICE_URI_PREFIX: &str = "urn:posture:device:";

/// Root certificate file in a CA directory.
pub const ROOT_CERT: &str = "root.pem";
/// Root key file (move it offline after `init`).
pub const ROOT_KEY: &str = "root-key.pem";
/// Intermediate certificate file.
pub const INTERMEDIATE_CERT: &str = "intermediate.pem";
/// Intermediate key file: signs AIK certificates.
pub const INTERMEDIATE_KEY: &str = "intermediate-key.pem";

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// AIK certificates live 5 years, the intermediate 10, the root 20.
const AIK_LIFETIME: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// Clock skew allowance: certificates are valid from 5 minutes before issuance.
const BACKDATE: Duration = Duration::from_secs(300);

/// What the SubjectAltName says about the TPM (TCG EK Credential Profile §3.2.9 forms:
/// `id:` and 8 hex digits for manufacturer and version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmIdentity {
    /// e.g. `id:49424D00` (IBM), `id:494E5443` (Intel): the TCG vendor id registry form.
    pub manufacturer: String,
    /// The TPM model (part number).
    pub model: String,
    /// The firmware version, e.g. `id:20191023`.
    pub version: String,
}

/// Whether `id` is a manufacturer in the TCG vendor id registry form relying parties
/// look up: `id:` and 8 hex digits of four ASCII characters (letters, digits, spaces,
/// NUL padding), the first a capital letter.
fn registry_manufacturer(id: &str) -> bool {
    let Some(hex) = id.strip_prefix("id:") else {
        return false;
    };
    let Some(bytes) = crate::hex::decode(hex).filter(|b| b.len() == 4) else {
        return false;
    };
    bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b' ' || *b == 0)
}

/// The TPM's identity for the AIK certificate, from what the enrollment proved:
///
/// - manufacturer, model and version from the EK certificate's SubjectAltName (the EK
///   certificate chained to a configured CA);
/// - where the EK certificate names the manufacturer in another form than the TCG vendor
///   id registry's (swtpm's local CA writes the PCI vendor id `id:00001014`), the
///   `TPM_PT_MANUFACTURER` the device reported in its request — a device that has proved
///   it holds that CA-certified EK;
/// - a missing version from `firmwareVersion` of the enrollment's TPM2_Certify, which the
///   activated AK signed.
pub fn tpm_identity(
    request: &EnrollmentRequest,
    certify_attest: &[u8],
) -> Result<TpmIdentity, AttestationError> {
    let san = match &request.ek_certificate {
        Some(der) => ek_san(super::ek_certificate_der(der))?,
        None => (None, None, None),
    };
    let manufacturer = match (san.0, &request.tpm_manufacturer) {
        (Some(m), _) if registry_manufacturer(&m) => m,
        (_, Some(reported)) if registry_manufacturer(&format!("id:{reported}")) => {
            format!("id:{}", reported.to_ascii_uppercase())
        }
        _ => {
            return Err(AttestationError::Rejected(
                "cannot tell the TPM manufacturer in the TCG vendor id form (id:XXXXXXXX) \
                 from the EK certificate or the request: no AIK certificate"
                    .into(),
            ))
        }
    };
    let model = san
        .1
        .filter(|m| !m.is_empty())
        .or_else(|| request.tpm_model.clone().filter(|m| !m.trim().is_empty()))
        .ok_or_else(|| {
            AttestationError::Rejected("the TPM model is unknown: no AIK certificate".into())
        })?;
    let version = match san.2.filter(|v| !v.is_empty()) {
        Some(v) => v,
        None => {
            let attest = Attest::parse(certify_attest)?;
            format!("id:{:08X}", attest.firmware_version >> 32)
        }
    };
    Ok(TpmIdentity {
        manufacturer,
        model,
        version,
    })
}

type SanTriple = (Option<String>, Option<String>, Option<String>);

/// Manufacturer, model and version from an EK certificate's SubjectAltName directoryName.
fn ek_san(der: &[u8]) -> Result<SanTriple, AttestationError> {
    let cert = Certificate::from_der(der)
        .map_err(|e| AttestationError::EkCertificate(format!("EK certificate: {e}")))?;
    let mut out: SanTriple = (None, None, None);
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    let Some(ext) = extensions
        .iter()
        .find(|e| e.extn_id == <SubjectAltName as der::oid::AssociatedOid>::OID)
    else {
        return Ok(out);
    };
    let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
        .map_err(|e| AttestationError::EkCertificate(format!("EK SubjectAltName: {e}")))?;
    for name in &san.0 {
        let GeneralName::DirectoryName(dn) = name else {
            continue;
        };
        for atv in dn.0.iter().flat_map(|rdn| rdn.0.iter()) {
            let text = std::str::from_utf8(atv.value.value())
                .ok()
                .map(|s| s.trim().to_owned());
            if atv.oid == OID_TPM_MANUFACTURER {
                out.0 = text;
            } else if atv.oid == OID_TPM_MODEL {
                out.1 = text;
            } else if atv.oid == OID_TPM_VERSION {
                out.2 = text;
            }
        }
    }
    Ok(out)
}

/// The `id-fido-gen-ce-aaguid` extension: the AAGUID as an OCTET STRING, not critical.
struct FidoAaguid([u8; 16]);

impl der::oid::AssociatedOid for FidoAaguid {
    const OID: ObjectIdentifier = OID_FIDO_AAGUID;
}

impl der::Encode for FidoAaguid {
    fn encoded_len(&self) -> der::Result<der::Length> {
        OctetString::new(self.0.to_vec())?.encoded_len()
    }

    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        OctetString::new(self.0.to_vec())?.encode(writer)
    }
}

impl AsExtension for FidoAaguid {
    fn critical(&self, _subject: &Name, _extensions: &[Extension]) -> bool {
        false
    }
}

fn ca_err(doing: &str) -> impl FnOnce(String) -> AttestationError + '_ {
    move |e| AttestationError::Rejected(format!("attestation CA: {doing}: {e}"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AttestationError + '_ {
    move |e| AttestationError::Rejected(format!("attestation CA: {}: {e}", path.display()))
}

fn random_serial() -> Result<SerialNumber, AttestationError> {
    let mut bytes = [0u8; 16];
    super::credential::os_random(&mut bytes);
    // Positive and exactly 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|e| ca_err("serial")(e.to_string()))
}

fn validity(from: SystemTime, lifetime: Duration) -> Result<Validity, AttestationError> {
    let not_before = from.checked_sub(BACKDATE).unwrap_or(from);
    let not_after = from + lifetime;
    Ok(Validity {
        not_before: Time::try_from(not_before).map_err(|e| ca_err("validity")(e.to_string()))?,
        not_after: Time::try_from(not_after).map_err(|e| ca_err("validity")(e.to_string()))?,
    })
}

fn spki(key: &p256::PublicKey) -> Result<SubjectPublicKeyInfoOwned, AttestationError> {
    let der = key
        .to_public_key_der()
        .map_err(|e| ca_err("public key")(e.to_string()))?;
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes())
        .map_err(|e| ca_err("public key")(e.to_string()))
}

/// A DER certificate as PEM.
pub fn certificate_pem(der: &[u8]) -> Result<String, AttestationError> {
    pem(der)
}

fn pem(der: &[u8]) -> Result<String, AttestationError> {
    use der::EncodePem as _;
    Certificate::from_der(der)
        .and_then(|c| c.to_pem(LineEnding::LF))
        .map_err(|e| ca_err("PEM")(e.to_string()))
}

/// The intermediate's key, which signs AIK certificates: ECDSA P-256 with SHA-256 either
/// way, so the certificates are the same in form.
pub enum CaKey {
    /// `intermediate-key.pem` in the CA directory (zeroized when dropped).
    File(SigningKey),
    /// A key pair in a PKCS#11 token (posture-core's `pkcs11` feature).
    #[cfg(feature = "pkcs11")]
    Pkcs11(super::pkcs11::Pkcs11Key),
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaKey::File(_) => f.write_str("CaKey::File"),
            #[cfg(feature = "pkcs11")]
            CaKey::Pkcs11(key) => f.debug_tuple("CaKey::Pkcs11").field(key).finish(),
        }
    }
}

impl CaKey {
    /// The key to write to `intermediate-key.pem`: a file key; a token key stays put.
    fn file_key(&self) -> Option<&SigningKey> {
        match self {
            CaKey::File(key) => Some(key),
            #[cfg(feature = "pkcs11")]
            CaKey::Pkcs11(_) => None,
        }
    }
}

impl Keypair for CaKey {
    type VerifyingKey = VerifyingKey;

    fn verifying_key(&self) -> VerifyingKey {
        match self {
            CaKey::File(key) => *key.verifying_key(),
            #[cfg(feature = "pkcs11")]
            CaKey::Pkcs11(key) => *key.verifying_key(),
        }
    }
}

/// ecdsa-with-SHA256, exactly as the file key's (x509-cert writes it in every certificate).
impl SignatureAlgorithmIdentifier for CaKey {
    type Params = der::AnyRef<'static>;

    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifier<Self::Params> =
        <SigningKey as SignatureAlgorithmIdentifier>::SIGNATURE_ALGORITHM_IDENTIFIER;
}

impl Signer<DerSignature> for CaKey {
    fn try_sign(&self, message: &[u8]) -> Result<DerSignature, p256::ecdsa::Error> {
        match self {
            CaKey::File(key) => key.try_sign(message),
            #[cfg(feature = "pkcs11")]
            CaKey::Pkcs11(key) => key
                .sign(message)
                .map_err(|e| p256::ecdsa::Error::from_source(Box::new(e))),
        }
    }
}

/// An attestation CA loaded from its directory: the intermediate's key (a file key is
/// zeroized on drop; a token key never leaves its token) and both certificates. The root
/// key is not loaded.
pub struct AttestationCa {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    intermediate: Certificate,
    key: CaKey,
}

impl std::fmt::Debug for AttestationCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationCa")
            .field("intermediate", &self.intermediate.tbs_certificate.subject)
            .finish_non_exhaustive()
    }
}

impl AttestationCa {
    /// Creates a new CA in `dir` (created 0700; it must not hold a CA already): a P-256
    /// root (20 years) and an intermediate (10 years, path length 0) named after
    /// `organization`.
    pub fn init(dir: &Path, organization: &str) -> Result<AttestationCa, AttestationError> {
        let key = CaKey::File(SigningKey::random(&mut rand_core::OsRng));
        Self::init_with_key(dir, organization, key)
    }

    /// [`Self::init`] with the given intermediate key. A file key is written to
    /// `intermediate-key.pem`; a token key stays in its token (load the CA with
    /// [`Self::load_with_key`]).
    pub fn init_with_key(
        dir: &Path,
        organization: &str,
        inter_key: CaKey,
    ) -> Result<AttestationCa, AttestationError> {
        if organization.is_empty() || organization.contains(['\n', '\0']) {
            return Err(ca_err("organization")("must be one non-empty line".into()));
        }
        crate::files::create_private_dir(dir).map_err(io_err(dir))?;
        check_private_dir(dir)?;
        let now = SystemTime::now();
        let root_key = SigningKey::random(&mut rand_core::OsRng);
        let name = |cn: &str| {
            Name::from_str(&format!(
                "CN={},O={}",
                escape_rdn(cn),
                escape_rdn(organization)
            ))
            .map_err(|e| ca_err("name")(e.to_string()))
        };
        let root_name = name("posture attestation root CA")?;
        let root = CertificateBuilder::new(
            Profile::Root,
            random_serial()?,
            validity(now, 20 * YEAR)?,
            root_name.clone(),
            spki(&root_key.verifying_key().into())?,
            &root_key,
        )
        .and_then(|b| b.build::<DerSignature>())
        .map_err(|e| ca_err("root certificate")(e.to_string()))?;
        let inter = CertificateBuilder::new(
            Profile::SubCA {
                issuer: root_name,
                path_len_constraint: Some(0),
            },
            random_serial()?,
            validity(now, 10 * YEAR)?,
            name("posture attestation CA")?,
            spki(&inter_key.verifying_key().into())?,
            &root_key,
        )
        .and_then(|b| b.build::<DerSignature>())
        .map_err(|e| ca_err("intermediate certificate")(e.to_string()))?;
        let root_der = root.to_der().map_err(|e| ca_err("root")(e.to_string()))?;
        let inter_der = inter
            .to_der()
            .map_err(|e| ca_err("intermediate")(e.to_string()))?;

        // Keys first, with create-new semantics: an existing CA is never overwritten.
        let mut file_keys = vec![(ROOT_KEY, &root_key)];
        if let Some(key) = inter_key.file_key() {
            file_keys.push((INTERMEDIATE_KEY, key));
        }
        for (file, key) in file_keys {
            let text: Zeroizing<String> = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| ca_err("key")(e.to_string()))?;
            let path = dir.join(file);
            crate::files::write_new(&path, text.as_bytes()).map_err(io_err(&path))?;
        }
        for (file, der) in [(ROOT_CERT, &root_der), (INTERMEDIATE_CERT, &inter_der)] {
            let path = dir.join(file);
            crate::files::write_private(&path, pem(der)?.as_bytes()).map_err(io_err(&path))?;
        }
        crate::files::sync_dir(dir).map_err(io_err(dir))?;
        Ok(AttestationCa {
            root_der,
            intermediate_der: inter_der,
            intermediate: inter,
            key: inter_key,
        })
    }

    /// Loads the CA in `dir`, refusing a directory or key file others can read.
    pub fn load(dir: &Path) -> Result<AttestationCa, AttestationError> {
        check_private_dir(dir)?;
        let key_path = dir.join(INTERMEDIATE_KEY);
        if !key_path.exists() {
            return Err(ca_err("intermediate key")(format!(
                "{} does not exist (is the key in a PKCS#11 token? then give its URI)",
                key_path.display()
            )));
        }
        check_private_file(&key_path)?;
        let text = Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?);
        let key = SigningKey::from_pkcs8_pem(&text)
            .map_err(|e| ca_err("intermediate key")(e.to_string()))?;
        Self::load_with_key(dir, CaKey::File(key))
    }

    /// Loads the CA's certificates from `dir` with the intermediate key `key` (e.g. a
    /// token key), refusing a directory others can read or a key that does not match
    /// `intermediate.pem`.
    pub fn load_with_key(dir: &Path, key: CaKey) -> Result<AttestationCa, AttestationError> {
        check_private_dir(dir)?;
        let read_cert = |file: &str| -> Result<(Vec<u8>, Certificate), AttestationError> {
            let path: PathBuf = dir.join(file);
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            let certs = super::parse_roots(&bytes)?;
            let cert = certs
                .into_iter()
                .next()
                .ok_or_else(|| ca_err(file)("no certificate".into()))?;
            let der = cert.to_der().map_err(|e| ca_err(file)(e.to_string()))?;
            Ok((der, cert))
        };
        let (root_der, _) = read_cert(ROOT_CERT)?;
        let (intermediate_der, intermediate) = read_cert(INTERMEDIATE_CERT)?;
        let public = spki(&key.verifying_key().into())?;
        if public != intermediate.tbs_certificate.subject_public_key_info {
            return Err(ca_err("intermediate key")(
                "does not match intermediate.pem".into(),
            ));
        }
        Ok(AttestationCa {
            root_der,
            intermediate_der,
            intermediate,
            key,
        })
    }

    /// The root certificate (DER): what relying parties trust.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The intermediate certificate (DER): sent in `x5c` after the AIK certificate.
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    /// The root certificate as PEM.
    pub fn root_pem(&self) -> Result<String, AttestationError> {
        pem(&self.root_der)
    }

    /// The intermediate certificate as PEM.
    pub fn intermediate_pem(&self) -> Result<String, AttestationError> {
        pem(&self.intermediate_der)
    }

    /// Issues the AIK certificate (DER) for an enrolled device's AK, as WebAuthn §8.3.1
    /// requires. Refuses any enrollment whose EK was not verified against a CA.
    pub fn issue_aik_certificate(
        &self,
        device: &EnrolledDevice,
        tpm: &TpmIdentity,
        now: SystemTime,
    ) -> Result<Vec<u8>, AttestationError> {
        if device.ek_trust != EK_TRUST_CA {
            return Err(AttestationError::Rejected(format!(
                "EK trust is {:?}: AIK certificates are issued only when the EK certificate \
                 chained to a configured CA",
                device.ek_trust
            )));
        }
        if !registry_manufacturer(&tpm.manufacturer) {
            return Err(AttestationError::Rejected(format!(
                "TPM manufacturer {:?} is not in the id:XXXXXXXX vendor form",
                tpm.manufacturer
            )));
        }
        let ak = TpmPublic::parse(&device.ak_public)?;
        let ak_key = ak.p256().map_err(|_| {
            AttestationError::Unsupported("AIK certificates for P-256 AKs only".into())
        })?;
        let inter_end: SystemTime = self.intermediate.tbs_certificate.validity.not_after.into();
        let lifetime = inter_end
            .duration_since(now)
            .map_err(|_| ca_err("intermediate")("has expired".into()))?
            .min(AIK_LIFETIME);
        let mut builder = CertificateBuilder::new(
            Profile::Leaf {
                issuer: self.intermediate.tbs_certificate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            random_serial()?,
            validity(now, lifetime)?,
            Name::default(),
            spki(&ak_key)?,
            &self.key,
        )
        .map_err(|e| ca_err("AIK certificate")(e.to_string()))?;
        // The TPM first (relying-party libraries read only the first entry), then the
        // device: a relying party holding the attestation can ask the posture server
        // about this device (`/v1/devices/{id}/decision`).
        let device_uri = format!(
            "{DEVICE_URI_PREFIX}{}",
            crate::keys::key_id(&device.device_key()?)
        );
        let san = SubjectAltName(vec![
            GeneralName::DirectoryName(
                tpm_name(tpm).map_err(|e| ca_err("SubjectAltName")(e.to_string()))?,
            ),
            GeneralName::UniformResourceIdentifier(
                der::asn1::Ia5String::new(&device_uri)
                    .map_err(|e| ca_err("SubjectAltName")(e.to_string()))?,
            ),
        ]);
        builder
            .add_extension(&san)
            .and_then(|()| builder.add_extension(&ExtendedKeyUsage(vec![OID_AIK_CERTIFICATE])))
            .and_then(|()| builder.add_extension(&FidoAaguid(crate::webauthn::POSTURE_AAGUID)))
            .map_err(|e| ca_err("AIK certificate")(e.to_string()))?;
        let cert = builder
            .build::<DerSignature>()
            .map_err(|e| ca_err("AIK certificate")(e.to_string()))?;
        cert.to_der()
            .map_err(|e| ca_err("AIK certificate")(e.to_string()))
    }

    /// `x5c` for a `tpm` attestation: the AIK certificate, then the intermediate. The
    /// root is left out (relying parties hold it; some refuse a chain that contains it).
    pub fn x5c(&self, aik_der: &[u8]) -> Vec<Vec<u8>> {
        vec![aik_der.to_vec(), self.intermediate_der.clone()]
    }
}

/// The directoryName of the SubjectAltName: one RDN per attribute, UTF8String values.
fn tpm_name(tpm: &TpmIdentity) -> der::Result<Name> {
    let rdn = |oid: ObjectIdentifier, value: &str| -> der::Result<RelativeDistinguishedName> {
        let value = Any::new(Tag::Utf8String, value.as_bytes())?;
        let mut set = SetOfVec::new();
        set.insert(AttributeTypeAndValue { oid, value })?;
        Ok(RelativeDistinguishedName(set))
    };
    Ok(RdnSequence(vec![
        rdn(OID_TPM_MANUFACTURER, &tpm.manufacturer)?,
        rdn(OID_TPM_MODEL, &tpm.model)?,
        rdn(OID_TPM_VERSION, &tpm.version)?,
    ]))
}

/// Escapes RFC 4514 special characters of an attribute value.
fn escape_rdn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '));
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn check_private(
    path: &Path,
    kind: PrivateKind,
    what: &'static str,
) -> Result<(), AttestationError> {
    match crate::files::private_problem(path, kind).map_err(io_err(path))? {
        None => Ok(()),
        Some(problem) => Err(ca_err(what)(format!("{}: {problem}", path.display()))),
    }
}

fn check_private_dir(dir: &Path) -> Result<(), AttestationError> {
    check_private(dir, PrivateKind::Dir, "directory")
}

fn check_private_file(path: &Path) -> Result<(), AttestationError> {
    check_private(path, PrivateKind::File, "key file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manufacturer_ids_in_registry_form_only() {
        assert!(registry_manufacturer("id:49424D00"));
        assert!(registry_manufacturer("id:494E5443"));
        assert!(registry_manufacturer("id:53544D20"));
        assert!(!registry_manufacturer("id:00001014"));
        assert!(!registry_manufacturer("49424D00"));
        assert!(!registry_manufacturer("id:49424D"));
    }

    #[test]
    #[cfg(unix)] // checks Unix file modes
    fn init_then_load_and_refuse_a_second_init() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let ca = AttestationCa::init(&ca_dir, "Example, Inc.").unwrap();
        let loaded = AttestationCa::load(&ca_dir).unwrap();
        assert_eq!(ca.root_der(), loaded.root_der());
        assert!(AttestationCa::init(&ca_dir, "again").is_err());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ca_dir), 0o700);
        assert_eq!(mode(&ca_dir.join(INTERMEDIATE_KEY)), 0o600);
        assert_eq!(mode(&ca_dir.join(ROOT_KEY)), 0o600);
        std::fs::set_permissions(
            ca_dir.join(INTERMEDIATE_KEY),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = AttestationCa::load(&ca_dir).unwrap_err();
        assert!(err.to_string().contains("0600"), "{err}");
    }
}
