//! EK certificate checks: the certificate chains to a configured CA and certifies the
//! very EK the device presented.
//!
//! Any certificate in the configured bundle is a trust anchor (TPM vendors publish roots
//! and intermediates side by side, and operators configure both). Intermediates that are
//! not configured come from the device (the TPM's NV EK certificate chain indices) or, when
//! enabled, from the certificates' AIA caIssuers URLs through a [`CertificateFetcher`];
//! neither is trusted by itself: every link must verify up to a configured anchor.
//!
//! Supported signatures: sha256/384/512WithRSAEncryption, and ecdsa-with-SHA256/384/512 by
//! P-256, P-384 and P-521 keys — the swtpm local CA and the TPM vendor CAs (Infineon,
//! STMicro, Nuvoton, Intel ODCA, AMD, Microsoft Pluton). EK keys: RSA, ECC P-256, P-384.

use std::time::SystemTime;

use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::der::{self, Decode, Encode};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, BasicConstraints, KeyUsage};
use x509_cert::Certificate;

use super::tpm2::{PublicKey, TpmPublic, ECC_NIST_P256, ECC_NIST_P384};
use super::AttestationError;

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const PRIME256V1: &str = "1.2.840.10045.3.1.7";
const SECP384R1: &str = "1.3.132.0.34";
const SECP521R1: &str = "1.3.132.0.35";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
const ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";

/// At most this many certificates are taken from the device's EK certificate chain.
pub const MAX_EK_CHAIN_CERTIFICATES: usize = 16;
/// A [`CertificateFetcher`] must refuse responses larger than this (a certificate or an
/// EK certificate is a few KiB).
pub const MAX_FETCHED_BYTES: usize = 64 * 1024;
/// At most this many fetches (AIA caIssuers and EK certificate services) per EK.
const MAX_FETCHES: usize = 8;
/// At most this many certificates between the EK certificate and its anchor.
const MAX_CHAIN_DEPTH: usize = 8;
/// At most this many signature checks while building a path (bounds crafted chains whose
/// certificates all name each other).
const MAX_SIGNATURE_CHECKS: usize = 64;

/// Parses a PEM bundle of CA certificates.
pub fn parse_roots(pem: &[u8]) -> Result<Vec<Certificate>, AttestationError> {
    let bad = |e: String| AttestationError::EkCertificate(format!("CA bundle: {e}"));
    let text = std::str::from_utf8(pem).map_err(|_| bad("not UTF-8 PEM".into()))?;
    let certs = pem_certificate_blocks(text)
        .map_err(bad)?
        .iter()
        .map(|der| Certificate::from_der(der).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(AttestationError::EkCertificate(
            "CA bundle holds no certificate".into(),
        ));
    }
    Ok(certs)
}

/// The DER of each `CERTIFICATE` block of a PEM text, in order; text outside the blocks
/// (comments, as in CA bundles) is ignored.
///
/// Each block is decoded whole (`der::pem::decode_vec`) and the caller decodes the DER
/// from a slice. Not `Certificate::load_pem_chain`: der 0.7's streaming PEM reader loops
/// forever on some malformed input (found by the `ek_certificate` fuzz target).
fn pem_certificate_blocks(text: &str) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let mut out = Vec::new();
    for block in text.split_inclusive("-----END CERTIFICATE-----") {
        let Some(start) = block.find(BEGIN) else {
            continue;
        };
        let (_, der) =
            der::pem::decode_vec(&block.as_bytes()[start..]).map_err(|e| e.to_string())?;
        out.push(der);
    }
    Ok(out)
}

/// What was established about an EK certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkCertificateInfo {
    /// The EK certificate's issuer, as an RFC 4514 string.
    pub issuer: String,
    /// The EK certificate's subject (often empty for EK certificates).
    pub subject: String,
    /// The subject of the configured CA the chain ends at.
    pub anchor: String,
    /// Certificates between the EK certificate and the anchor, nearest first (subjects).
    pub intermediates: Vec<String>,
    /// Where the EK certificate was fetched from, when the device had none in NV.
    pub fetched_from: Option<String>,
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

/// The header length of a DER SEQUENCE at the start of `bytes`.
fn der_header_len(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [0x30, first, ..] if *first < 0x80 => Some(2),
        [0x30, first, ..] => Some(2 + usize::from(first & 0x7f)),
        _ => None,
    }
}

/// The exact `tbsCertificate` bytes of a DER certificate, as signed. Re-encoding the
/// decoded structure is not enough: real EK certificates carry non-canonical DER (Intel's
/// encode `critical FALSE`) that a decoder accepts and an encoder drops.
fn raw_tbs(cert_der: &[u8]) -> Option<&[u8]> {
    let inner = cert_der.get(der_header_len(cert_der)?..)?;
    inner.get(..der_sequence_len(inner)?)
}

/// Splits the concatenated DER certificates of the TPM's EK certificate chain NV indices
/// (`0x01c00100`-`0x01c001ff`, TCG EK Credential Profile 2.2.1.5.2) into certificates. It
/// stops at the first byte that does not start a SEQUENCE (NV padding) or at a truncated
/// one. Nothing is decoded: the verifier checks each certificate.
pub fn split_certificate_chain(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(len) = der_sequence_len(rest) {
        if len > rest.len() || len <= 2 {
            break;
        }
        let (cert, tail) = rest.split_at(len);
        out.push(cert);
        rest = tail;
    }
    out
}

/// Why a [`CertificateFetcher`] could not deliver.
#[derive(Debug, thiserror::Error)]
#[error("fetching {url}: {message}")]
pub struct FetchError {
    /// The URL asked for.
    pub url: String,
    /// What went wrong (timeout, HTTP status, size cap, ...).
    pub message: String,
}

/// Fetches certificates over the network for the verifier: issuer certificates named by
/// AIA caIssuers URLs, and EK certificates from TPM vendors' EK certificate services.
/// posture-core does no network I/O itself; the caller provides this (the `posture` CLI
/// implements it with an HTTP client).
///
/// An implementation must:
/// - fetch only `http://` and `https://` URLs, and fail (not hang) after a bounded time:
///   a connect and total timeout of a few seconds;
/// - refuse responses larger than [`MAX_FETCHED_BYTES`] without buffering them whole;
/// - return the body of a successful (2xx) response unchanged: DER, PEM or base64 text
///   are all accepted by the caller, which trusts nothing in it until a chain verifies;
/// - cache successful responses (in memory or on disk) keyed by the exact URL, so that
///   enrolling many devices of one vendor does not fetch the same issuer again. Failures
///   are not cached.
///
/// The verifier makes at most a handful of fetches per EK, sequentially.
pub trait CertificateFetcher: std::fmt::Debug {
    /// The body at `url`.
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// How EK certificates are checked: the trust anchors and where missing certificates may
/// come from.
#[derive(Clone, Copy, Debug, Default)]
pub struct EkPolicy<'a> {
    /// Trust anchors: TPM vendor roots and intermediates (PEM bundle, [`parse_roots`]).
    pub roots: &'a [Certificate],
    /// Fetches issuer certificates and EK certificates; `None`: no network.
    pub fetcher: Option<&'a dyn CertificateFetcher>,
    /// Follow AIA caIssuers URLs of certificates whose issuer is not at hand.
    pub fetch_issuers: bool,
    /// EK certificate service URL templates, tried in order when the device sent no EK
    /// certificate (firmware TPMs such as Intel PTT and AMD fTPM keep none in NV); see
    /// [`ek_cert_service_url`].
    pub ek_cert_services: &'a [String],
}

/// The URL of an EK certificate service for `ek`, from a template with one of these
/// placeholders (the derivations of go-attestation and tpm2-tools):
///
/// - `{intel}`: base64url (padded, `=` escaped as `%3D`) of SHA-256 of the RSA modulus
///   followed by the exponent `01 00 01`, or of the ECC point `x || y`. Intel:
///   `https://ekop.intel.com/ekcertservice/{intel}`.
/// - `{amd}`: the first 16 bytes, upper-case hex, of SHA-256 of `00 00 22 22 ||
///   u32be(exponent) || modulus` (RSA) or `00 00 44 44 || x || y` (ECC). AMD:
///   `https://ftpm.amd.com/pki/aia/{amd}`.
pub fn ek_cert_service_url(template: &str, ek: &TpmPublic) -> Result<String, AttestationError> {
    let bad = |m: &str| AttestationError::EkCertificate(format!("EK certificate service: {m}"));
    let mut url = template.to_owned();
    if url.contains("{intel}") {
        let mut h = Sha256::new();
        match &ek.key {
            PublicKey::Rsa {
                exponent, modulus, ..
            } => {
                if *exponent != 65537 {
                    return Err(bad("the Intel derivation needs the exponent 65537"));
                }
                h.update(modulus);
                h.update([1, 0, 1]);
            }
            PublicKey::Ecc { x, y, .. } => {
                h.update(x);
                h.update(y);
            }
        }
        use base64::Engine as _;
        let id = base64::engine::general_purpose::URL_SAFE.encode(h.finalize());
        url = url.replace("{intel}", &id.replace('=', "%3D"));
    }
    if url.contains("{amd}") {
        let mut h = Sha256::new();
        match &ek.key {
            PublicKey::Rsa {
                exponent, modulus, ..
            } => {
                h.update([0, 0, 0x22, 0x22]);
                h.update(exponent.to_be_bytes());
                h.update(modulus);
            }
            PublicKey::Ecc { x, y, .. } => {
                h.update([0, 0, 0x44, 0x44]);
                h.update(x);
                h.update(y);
            }
        }
        let digest = h.finalize();
        url = url.replace("{amd}", &super::to_hex(&digest[..16]).to_ascii_uppercase());
    }
    if url == template {
        return Err(bad(&format!(
            "template \"{template}\" has no {{intel}} or {{amd}} placeholder"
        )));
    }
    Ok(url)
}

/// Decodes what a fetch returned: DER, a PEM bundle, or base64/base64url text of DER
/// (EK certificate services answer in each of these). Each certificate comes with its
/// DER as received.
pub fn decode_fetched_certificates(
    body: &[u8],
) -> Result<Vec<(Certificate, Vec<u8>)>, AttestationError> {
    let bad = |m: String| AttestationError::EkCertificate(m);
    if body.len() > MAX_FETCHED_BYTES {
        return Err(bad(format!(
            "{} bytes fetched, more than {MAX_FETCHED_BYTES}",
            body.len()
        )));
    }
    let one = |der: &[u8]| {
        let der = ek_certificate_der(der);
        Certificate::from_der(der)
            .map(|c| vec![(c, der.to_vec())])
            .map_err(|e| bad(format!("fetched certificate: {e}")))
    };
    if body.first() == Some(&0x30) {
        return one(body);
    }
    if memchr_pem(body) {
        let text = std::str::from_utf8(body).map_err(|_| bad("PEM is not UTF-8".into()))?;
        let mut out = Vec::new();
        for der in pem_certificate_blocks(text).map_err(|e| bad(format!("fetched PEM: {e}")))? {
            out.extend(one(&der)?);
        }
        if out.is_empty() {
            return Err(bad("fetched PEM holds no certificate".into()));
        }
        return Ok(out);
    }
    use base64::Engine as _;
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'"')
        .collect();
    let text: Vec<u8> = text.into_iter().filter(|b| *b != b'=').collect();
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text))
        .map_err(|_| {
            bad("fetched data is neither DER, PEM nor base64 (PKCS#7 is not supported)".into())
        })?;
    one(&der)
}

fn memchr_pem(body: &[u8]) -> bool {
    body.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Checks that `ek_cert_der` is valid at `now`, chains to a certificate in `roots`, and
/// certifies the public key of `ek`. `ek_cert_der` may be the raw contents of the TPM's
/// NV index (TCG header, padding): see [`ek_certificate_der`]. No intermediates and no
/// fetching: see [`verify_ek`] for those.
pub fn verify_ek_certificate(
    ek_cert_der: &[u8],
    ek: &TpmPublic,
    roots: &[Certificate],
    now: SystemTime,
) -> Result<EkCertificateInfo, AttestationError> {
    let policy = EkPolicy {
        roots,
        ..EkPolicy::default()
    };
    verify_ek(ek, Some(ek_cert_der), &[], &policy, now)
}

/// Checks an EK against `policy`: its certificate (as sent by the device, or fetched from
/// an EK certificate service when the device sent none) is valid at `now`, is an EK
/// certificate (not a CA; key usage keyEncipherment for RSA, keyAgreement for ECC),
/// certifies exactly the key of `ek` (RSA, or ECC P-256/P-384 on the same curve), and
/// chains to one of `policy.roots` through issuers taken from `chain` (the device's NV
/// certificate chain, DER) or fetched from AIA caIssuers URLs. Every issuer must be a
/// CA (basicConstraints cA, keyCertSign where key usage is present, path length
/// constraints honoured) valid at `now`.
pub fn verify_ek(
    ek: &TpmPublic,
    ek_certificate: Option<&[u8]>,
    chain: &[Vec<u8>],
    policy: &EkPolicy<'_>,
    now: SystemTime,
) -> Result<EkCertificateInfo, AttestationError> {
    let mut builder = PathBuilder {
        policy,
        now,
        pool: Vec::new(),
        fetched_urls: Vec::new(),
        fetches: 0,
        checks: 0,
        causes: Vec::new(),
    };
    if chain.len() > MAX_EK_CHAIN_CERTIFICATES {
        return Err(AttestationError::EkCertificate(format!(
            "the device sent {} chain certificates, more than {MAX_EK_CHAIN_CERTIFICATES}",
            chain.len()
        )));
    }
    for (i, der) in chain.iter().enumerate() {
        let der = ek_certificate_der(der);
        let cert = Certificate::from_der(der).map_err(|e| {
            AttestationError::EkCertificate(format!("EK chain certificate {i}: {e}"))
        })?;
        builder.pool.push((cert, der.to_vec()));
    }

    let (leaf, leaf_der, fetched_from) = match ek_certificate {
        Some(der) => {
            let der = ek_certificate_der(der);
            let leaf = Certificate::from_der(der)
                .map_err(|e| AttestationError::EkCertificate(format!("EK certificate: {e}")))?;
            (leaf, der.to_vec(), None)
        }
        None => builder.fetch_ek_certificate(ek)?,
    };
    check_validity(&leaf, now)?;
    check_ek_leaf(&leaf)?;
    check_certifies(&leaf, ek)?;

    match builder.path_to_anchor(&leaf, &leaf_der, 0) {
        Some(path) => {
            let anchor = path
                .last()
                .map(|c| c.tbs_certificate.subject.to_string())
                .unwrap_or_default();
            let intermediates = path
                .iter()
                .take(path.len().saturating_sub(1))
                .map(|c| c.tbs_certificate.subject.to_string())
                .collect();
            Ok(EkCertificateInfo {
                issuer: leaf.tbs_certificate.issuer.to_string(),
                subject: leaf.tbs_certificate.subject.to_string(),
                anchor,
                intermediates,
                fetched_from,
            })
        }
        None => {
            let why = if builder.causes.is_empty() {
                "no configured CA or known intermediate has that subject".to_owned()
            } else {
                builder.causes.join("; ")
            };
            Err(AttestationError::EkCertificate(format!(
                "EK certificate issued by \"{}\" does not chain to a configured CA: {why}",
                leaf.tbs_certificate.issuer
            )))
        }
    }
}

/// Depth-first search for a path from a certificate to a configured anchor.
struct PathBuilder<'p, 'a> {
    policy: &'p EkPolicy<'a>,
    now: SystemTime,
    /// Untrusted intermediates (decoded, and their DER): from the device and fetched.
    pool: Vec<(Certificate, Vec<u8>)>,
    fetched_urls: Vec<String>,
    fetches: usize,
    checks: usize,
    /// Why each candidate issuer failed.
    causes: Vec<String>,
}

impl PathBuilder<'_, '_> {
    /// The issuers of `cert` up to and including an anchor, nearest first. `below` is the
    /// number of CA certificates between `cert` and the EK certificate.
    fn path_to_anchor(
        &mut self,
        cert: &Certificate,
        cert_der: &[u8],
        below: usize,
    ) -> Option<Vec<Certificate>> {
        if below >= MAX_CHAIN_DEPTH {
            self.causes
                .push(format!("chain longer than {MAX_CHAIN_DEPTH} certificates"));
            return None;
        }
        let roots = self.policy.roots;
        for ca in roots.iter().filter(|ca| issued_by(cert, ca)) {
            if self.link(cert, cert_der, ca, below) {
                return Some(vec![ca.clone()]);
            }
        }
        let mut tried = 0;
        loop {
            let candidates: Vec<(Certificate, Vec<u8>)> = self.pool[tried..]
                .iter()
                .filter(|(ca, _)| issued_by(cert, ca) && ca != cert)
                .cloned()
                .collect();
            tried = self.pool.len();
            for (ca, ca_der) in candidates {
                if self.link(cert, cert_der, &ca, below) {
                    if let Some(mut rest) = self.path_to_anchor(&ca, &ca_der, below + 1) {
                        rest.insert(0, ca);
                        return Some(rest);
                    }
                }
            }
            // Nothing at hand leads to an anchor: fetch this certificate's issuer.
            if !self.fetch_issuer_of(cert) {
                return None;
            }
        }
    }

    /// Checks that `ca` issued `cert`: signature, validity, CA constraints.
    fn link(
        &mut self,
        cert: &Certificate,
        cert_der: &[u8],
        ca: &Certificate,
        below: usize,
    ) -> bool {
        if self.checks >= MAX_SIGNATURE_CHECKS {
            if self.checks == MAX_SIGNATURE_CHECKS {
                self.causes.push("too many candidate issuers".into());
                self.checks += 1;
            }
            return false;
        }
        self.checks += 1;
        let result = verify_signed_by(cert, cert_der, ca)
            .and_then(|()| check_validity(ca, self.now))
            .and_then(|()| check_issuer(ca, below));
        match result {
            Ok(()) => true,
            Err(e) => {
                self.causes.push(format!(
                    "\"{}\": {}",
                    ca.tbs_certificate.subject,
                    strip_prefix(&e)
                ));
                false
            }
        }
    }

    /// Fetches the AIA caIssuers certificates of `cert` into the pool; whether any new
    /// certificate arrived.
    fn fetch_issuer_of(&mut self, cert: &Certificate) -> bool {
        let Some(fetcher) = self.policy.fetcher.filter(|_| self.policy.fetch_issuers) else {
            return false;
        };
        let before = self.pool.len();
        for url in ca_issuers_urls(cert) {
            if self.fetched_urls.contains(&url) {
                continue;
            }
            if self.fetches >= MAX_FETCHES {
                self.causes
                    .push(format!("not fetching {url}: {MAX_FETCHES} fetches done"));
                break;
            }
            self.fetches += 1;
            self.fetched_urls.push(url.clone());
            match fetcher
                .fetch(&url)
                .map_err(|e| e.to_string())
                .and_then(|body| decode_fetched_certificates(&body).map_err(|e| e.to_string()))
            {
                Ok(certs) => self.pool.extend(certs),
                Err(e) => self.causes.push(e),
            }
        }
        self.pool.len() > before
    }

    /// The EK certificate from the configured EK certificate services.
    fn fetch_ek_certificate(
        &mut self,
        ek: &TpmPublic,
    ) -> Result<(Certificate, Vec<u8>, Option<String>), AttestationError> {
        let services = self.policy.ek_cert_services;
        let fetcher = match self.policy.fetcher {
            Some(f) if !services.is_empty() => f,
            _ => {
                return Err(AttestationError::EkCertificate(
                    "the device sent no EK certificate and CAs are configured (no EK \
                     certificate service is configured either)"
                        .into(),
                ))
            }
        };
        let mut causes = Vec::new();
        for template in services {
            let url = ek_cert_service_url(template, ek)?;
            self.fetches += 1;
            let cert = fetcher
                .fetch(&url)
                .map_err(|e| e.to_string())
                .and_then(|b| decode_fetched_certificates(&b).map_err(|e| e.to_string()))
                .and_then(|certs| {
                    certs
                        .into_iter()
                        .find(|(c, _)| check_certifies(c, ek).is_ok())
                        .ok_or_else(|| format!("{url}: no certificate for this EK"))
                });
            match cert {
                Ok((cert, der)) => return Ok((cert, der, Some(url))),
                Err(e) => causes.push(e),
            }
        }
        Err(AttestationError::EkCertificate(format!(
            "the device sent no EK certificate and no EK certificate service had one: {}",
            causes.join("; ")
        )))
    }
}

fn strip_prefix(e: &AttestationError) -> String {
    match e {
        AttestationError::EkCertificate(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Whether `ca`'s subject is `cert`'s issuer: equal, or equal as RFC 4514 text ignoring
/// ASCII case (issuers encoded as UTF8String against a PrintableString subject, as in
/// STMicro's ECC chain, golang/go#31440).
fn issued_by(cert: &Certificate, ca: &Certificate) -> bool {
    let (issuer, subject) = (&cert.tbs_certificate.issuer, &ca.tbs_certificate.subject);
    issuer == subject
        || issuer
            .to_string()
            .eq_ignore_ascii_case(&subject.to_string())
}

/// The http(s) caIssuers URLs of `cert`'s AIA extension.
fn ca_issuers_urls(cert: &Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(Some((_, aia))) = cert.tbs_certificate.get::<AuthorityInfoAccessSyntax>() else {
        return Vec::new();
    };
    aia.0
        .iter()
        .filter(|d| d.access_method == ID_AD_CA_ISSUERS)
        .filter_map(|d| match &d.access_location {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .collect()
}

/// `id-ad-caIssuers` (RFC 5280 4.2.2.1).
const ID_AD_CA_ISSUERS: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// An EK certificate is an end-entity certificate for a decryption key (TCG EK
/// Credential Profile 3.2): not a CA, and where key usage is present it allows
/// keyEncipherment (RSA) or keyAgreement (ECC).
fn check_ek_leaf(leaf: &Certificate) -> Result<(), AttestationError> {
    let bad = |m: &str| AttestationError::EkCertificate(format!("not an EK certificate: {m}"));
    let bc = leaf
        .tbs_certificate
        .get::<BasicConstraints>()
        .map_err(|e| bad(&format!("basicConstraints: {e}")))?;
    if bc.is_some_and(|(_, bc)| bc.ca) {
        return Err(bad("it is a CA certificate"));
    }
    let ku = leaf
        .tbs_certificate
        .get::<KeyUsage>()
        .map_err(|e| bad(&format!("keyUsage: {e}")))?;
    if let Some((_, ku)) = ku {
        if ku.key_cert_sign() {
            return Err(bad("its key usage allows keyCertSign"));
        }
        let rsa = spki_oid(leaf) == RSA_ENCRYPTION;
        if rsa && !ku.key_encipherment() {
            return Err(bad(
                "the key usage of an RSA EK must include keyEncipherment",
            ));
        }
        if !rsa && !ku.key_agreement() {
            return Err(bad("the key usage of an ECC EK must include keyAgreement"));
        }
    }
    Ok(())
}

/// An issuer must be a CA allowed to sign certificates, with room for the `below`
/// CA certificates under it.
fn check_issuer(ca: &Certificate, below: usize) -> Result<(), AttestationError> {
    let bad = |m: String| AttestationError::EkCertificate(m);
    let bc = ca
        .tbs_certificate
        .get::<BasicConstraints>()
        .map_err(|e| bad(format!("basicConstraints: {e}")))?;
    match bc {
        Some((_, bc)) if bc.ca => {
            if let Some(len) = bc.path_len_constraint {
                if below > usize::from(len) {
                    return Err(bad(format!(
                        "path length constraint {len} exceeded ({below} CAs below)"
                    )));
                }
            }
        }
        _ => return Err(bad("not a CA (basicConstraints cA is not set)".into())),
    }
    let ku = ca
        .tbs_certificate
        .get::<KeyUsage>()
        .map_err(|e| bad(format!("keyUsage: {e}")))?;
    if ku.is_some_and(|(_, ku)| !ku.key_cert_sign()) {
        return Err(bad("key usage does not allow keyCertSign".into()));
    }
    Ok(())
}

fn spki_oid(cert: &Certificate) -> String {
    cert.tbs_certificate
        .subject_public_key_info
        .algorithm
        .oid
        .to_string()
}

/// The named curve of an EC public key.
fn spki_curve(spki: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> Option<String> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
        .map(|c| c.to_string())
}

/// Checks that `cert` certifies exactly the key of `ek`.
fn check_certifies(cert: &Certificate, ek: &TpmPublic) -> Result<(), AttestationError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let other = || {
        AttestationError::EkCertificate(
            "EK certificate is for another key than the presented EK".into(),
        )
    };
    match (&ek.key, spki.algorithm.oid.to_string().as_str()) {
        (PublicKey::Rsa { .. }, RSA_ENCRYPTION) => {
            if rsa_from_spki(spki)? != ek.rsa()? {
                return Err(other());
            }
            Ok(())
        }
        (PublicKey::Ecc { curve, x, y }, EC_PUBLIC_KEY) => {
            let point = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| AttestationError::EkCertificate("unaligned public key".into()))?;
            let (size, uncompressed) = match (*curve, spki_curve(spki).as_deref()) {
                (ECC_NIST_P256, Some(PRIME256V1)) => (
                    32,
                    p256::PublicKey::from_sec1_bytes(point).map(|k| {
                        use p256::elliptic_curve::sec1::ToEncodedPoint;
                        k.to_encoded_point(false).as_bytes().to_vec()
                    }),
                ),
                (ECC_NIST_P384, Some(SECP384R1)) => (
                    48,
                    p384::PublicKey::from_sec1_bytes(point).map(|k| {
                        use p384::elliptic_curve::sec1::ToEncodedPoint;
                        k.to_encoded_point(false).as_bytes().to_vec()
                    }),
                ),
                (c, named) => {
                    return Err(AttestationError::EkCertificate(format!(
                        "EK on TPM curve 0x{c:04x}, certificate for curve {}: only matching \
                         NIST P-256 or P-384 are supported",
                        named.unwrap_or("(none)")
                    )))
                }
            };
            let uncompressed = uncompressed.map_err(|_| {
                AttestationError::EkCertificate("EC public key is not valid".into())
            })?;
            let mut want = vec![0x04];
            want.extend_from_slice(&left_pad(x, size).ok_or_else(other)?);
            want.extend_from_slice(&left_pad(y, size).ok_or_else(other)?);
            if uncompressed != want {
                return Err(other());
            }
            Ok(())
        }
        (PublicKey::Rsa { .. }, _) => Err(AttestationError::EkCertificate(
            "the EK is RSA but its certificate is not for an RSA key".into(),
        )),
        (PublicKey::Ecc { .. }, _) => Err(AttestationError::EkCertificate(
            "the EK is ECC but its certificate is not for an EC key".into(),
        )),
    }
}

fn left_pad(v: &[u8], size: usize) -> Option<Vec<u8>> {
    let start = v.iter().take_while(|b| **b == 0).count();
    let v = &v[start..];
    if v.len() > size {
        return None;
    }
    let mut out = vec![0u8; size - v.len()];
    out.extend_from_slice(v);
    Some(out)
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
/// `cert_der` is `cert` as received: its exact `tbsCertificate` bytes are what was signed.
fn verify_signed_by(
    cert: &Certificate,
    cert_der: &[u8],
    issuer: &Certificate,
) -> Result<(), AttestationError> {
    let tbs = match raw_tbs(cert_der) {
        Some(raw) => raw.to_vec(),
        None => cert
            .tbs_certificate
            .to_der()
            .map_err(|e| AttestationError::EkCertificate(format!("re-encoding: {e}")))?,
    };
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| AttestationError::EkCertificate("unaligned signature".into()))?;
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let bad = || AttestationError::EkCertificate("certificate signature does not verify".into());
    let alg = cert.signature_algorithm.oid.to_string();
    let digest: Vec<u8> = match alg.as_str() {
        SHA256_WITH_RSA | ECDSA_WITH_SHA256 => Sha256::digest(&tbs).to_vec(),
        SHA384_WITH_RSA | ECDSA_WITH_SHA384 => Sha384::digest(&tbs).to_vec(),
        SHA512_WITH_RSA | ECDSA_WITH_SHA512 => Sha512::digest(&tbs).to_vec(),
        other => {
            return Err(AttestationError::Unsupported(format!(
                "certificate signature algorithm {other}"
            )))
        }
    };
    match alg.as_str() {
        SHA256_WITH_RSA | SHA384_WITH_RSA | SHA512_WITH_RSA => {
            if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
                return Err(AttestationError::EkCertificate(
                    "RSA signature but the issuer's key is not RSA".into(),
                ));
            }
            let key = rsa_from_spki(spki)?;
            let scheme = match alg.as_str() {
                SHA256_WITH_RSA => rsa::Pkcs1v15Sign::new::<Sha256>(),
                SHA384_WITH_RSA => rsa::Pkcs1v15Sign::new::<Sha384>(),
                _ => rsa::Pkcs1v15Sign::new::<Sha512>(),
            };
            key.verify(scheme, &digest, sig).map_err(|_| bad())
        }
        _ => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            if spki.algorithm.oid.to_string() != EC_PUBLIC_KEY {
                return Err(AttestationError::EkCertificate(
                    "ECDSA signature but the issuer's key is not an EC key".into(),
                ));
            }
            let point = spki.subject_public_key.as_bytes().ok_or_else(bad)?;
            match spki_curve(spki).as_deref() {
                Some(PRIME256V1) => {
                    let key =
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| bad())?;
                    let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
                    key.verify_prehash(&digest, &sig).map_err(|_| bad())
                }
                Some(SECP384R1) => {
                    let key =
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| bad())?;
                    let sig = p384::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
                    key.verify_prehash(&digest, &sig).map_err(|_| bad())
                }
                Some(SECP521R1) => {
                    let key =
                        p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| bad())?;
                    let sig = p521::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
                    key.verify_prehash(&digest, &sig).map_err(|_| bad())
                }
                other => Err(AttestationError::Unsupported(format!(
                    "issuer key on curve {}",
                    other.unwrap_or("(unnamed)")
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_malformed_pem_bundle_is_an_error_not_a_hang() {
        // Found by the ek_certificate fuzz target: der 0.7's streaming PEM reader (behind
        // `Certificate::load_pem_chain`) looped forever on this CA bundle.
        let input = b"-----BEGIN CERTIFICATE-----\nMIID\r-----END CERTIFICATE-------BEgIN- \0\0\r----END CERTIFICATE---IBBjATBgNVHSU";
        assert!(parse_roots(input).is_err());
        assert!(parse_roots(b"").is_err());
        assert!(parse_roots(b"# a comment, no certificate\n").is_err());
        let truncated = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n";
        assert!(parse_roots(truncated).is_err());
    }

    fn fixture(name: &str) -> (Certificate, Vec<u8>) {
        let path = format!("{}/tests/fixtures/ek/{name}", env!("CARGO_MANIFEST_DIR"));
        let (_, der) = der::pem::decode_vec(&std::fs::read(path).unwrap()).unwrap();
        (Certificate::from_der(&der).unwrap(), der)
    }

    /// Real vendor CA links whose signatures are ecdsa-with-SHA384/512 by P-384 and P-521
    /// keys (the Intel, Microsoft Pluton, AMD, Infineon and Nuvoton EK hierarchies).
    #[test]
    fn parse_roots_of_empty_input_is_an_error_not_a_panic() {
        for input in [&b""[..], b"\n", b"not pem"] {
            assert!(parse_roots(input).is_err());
        }
    }

    #[test]
    fn p384_and_p521_vendor_ca_links_verify() {
        for (issuer, child) in [
            (
                "intel-ondie-root.pem",
                "intel-odca-ca2-csme-intermediate.pem",
            ),
            (
                "microsoft-pluton-root-2021.pem",
                "microsoft-pluton-policy-ca-a.pem",
            ),
            (
                "microsoft-pluton-policy-ca-a.pem",
                "amd-pluton-device-ek-ica-dfid0001.pem",
            ),
            ("infineon-ecc-root-ca2.pem", "infineon-tpm-ecc-ca052.pem"),
            (
                "nuvoton-ecc521-root.pem",
                "nuvoton-ecc384-leafca-012110.pem",
            ),
            ("stm-ecc-root-01.pem", "stm-ecc-intermediate-01.pem"),
            ("globalsign-tpm-ecc-root.pem", "stm-ecc-root-01.pem"),
        ] {
            let (ca, _) = fixture(issuer);
            let (cert, der) = fixture(child);
            verify_signed_by(&cert, &der, &ca).unwrap_or_else(|e| panic!("{child}: {e}"));
            check_issuer(&ca, 0).unwrap_or_else(|e| panic!("{issuer}: {e}"));
            // One flipped bit in the signed bytes and it no longer verifies.
            let mut tampered = der.clone();
            let at = der.len() / 3;
            tampered[at] ^= 0x01;
            assert!(verify_signed_by(&cert, &tampered, &ca).is_err(), "{child}");
        }
        // The wrong issuer's key does not verify either.
        let (other, _) = fixture("intel-ondie-root.pem");
        let (cert, der) = fixture("microsoft-pluton-policy-ca-a.pem");
        assert!(verify_signed_by(&cert, &der, &other).is_err());
    }

    #[test]
    fn issuers_must_be_cas_with_room_in_their_path_length() {
        // An EK certificate is no issuer.
        let (ek, _) = fixture("intel-ek-rsa.pem");
        let e = check_issuer(&ek, 0).unwrap_err().to_string();
        assert!(e.contains("not a CA"), "{e}");
        // Intel's EK intermediate has pathlen 0: fine right above the EK, not above a CA.
        let (inter, _) = fixture("intel-ek-intermediate-spth.pem");
        check_issuer(&inter, 0).unwrap();
        let e = check_issuer(&inter, 1).unwrap_err().to_string();
        assert!(e.contains("path length"), "{e}");
        // A CA certificate is no EK certificate.
        let e = check_ek_leaf(&inter).unwrap_err().to_string();
        assert!(e.contains("CA certificate"), "{e}");
        check_ek_leaf(&ek).unwrap();
    }

    #[test]
    fn raw_tbs_is_the_signed_part() {
        let (cert, der) = fixture("intel-ek-rsa.pem");
        let raw = raw_tbs(&der).unwrap();
        // Intel encodes `critical FALSE`; strict re-encoding drops it.
        assert_ne!(raw, cert.tbs_certificate.to_der().unwrap().as_slice());
        assert_eq!(raw_tbs(&[0x30]), None);
    }
}
