//! UEFI signature databases (`PK`, `KEK`, `db`, `dbx`, shim's `MokListRT`) as efivarfs
//! shows them: 4 attribute bytes, then a sequence of `EFI_SIGNATURE_LIST`s (UEFI 2.10
//! §32.4.1): signature type GUID, list size, header size, signature size, header, then
//! signatures of `owner GUID + data`. X.509 entries are summarised (subject, issuer,
//! expiry); SHA-256 entries are kept as hex for the `dbx` comparison.

use serde::Serialize;
use x509_cert::der::Decode;
use x509_cert::Certificate;

/// `EFI_CERT_X509_GUID`.
pub const CERT_X509: &str = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
/// `EFI_CERT_SHA256_GUID`.
pub const CERT_SHA256: &str = "c1c41626-504c-4092-aca9-41f936934328";

/// Microsoft's 2011 Secure Boot CAs (expiring 2026), by subject common name.
pub const MICROSOFT_2011_CAS: &[&str] = &[
    "Microsoft Corporation UEFI CA 2011",
    "Microsoft Windows Production PCA 2011",
    "Microsoft Corporation KEK CA 2011",
];
/// Their 2023 successors.
pub const MICROSOFT_2023_CAS: &[&str] = &[
    "Microsoft UEFI CA 2023",
    "Windows UEFI CA 2023",
    "Microsoft Option ROM UEFI CA 2023",
    "Microsoft Corporation KEK 2K CA 2023",
];

/// The SHA-256 revocations of Microsoft's current x64 `dbx` update (one hex digest per
/// line): a `dbx` missing any of them lets a known-vulnerable boot loader start.
pub const DBX_REFERENCE: &str = include_str!("../../catalogue/dbx-sha256-amd64.txt");

/// A certificate in a signature database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Subject, RFC 4514 form.
    pub subject: String,
    /// Subject common name, when there is one.
    pub common_name: Option<String>,
    /// Issuer, RFC 4514 form.
    pub issuer: String,
    /// `notAfter`, as RFC 3339.
    pub not_after: String,
    /// The signature owner GUID the list gives.
    pub owner: String,
}

/// A parsed signature database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignatureDb {
    /// X.509 certificates.
    pub certificates: Vec<CertSummary>,
    /// SHA-256 hashes, lower-case hex.
    pub sha256: Vec<String>,
    /// Entries of other types (by type GUID) and certificates that did not parse.
    pub other: usize,
}

impl SignatureDb {
    /// Whether a certificate with this common name is listed.
    pub fn has_cn(&self, cn: &str) -> bool {
        self.certificates
            .iter()
            .any(|c| c.common_name.as_deref() == Some(cn))
    }
}

/// A GUID in its mixed-endian EFI byte order, as text.
pub fn guid(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.get(..16)?.try_into().ok()?;
    Some(format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

/// Summarises a DER certificate.
pub fn summarise_cert(der: &[u8], owner: String) -> Option<CertSummary> {
    let cert = Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    let common_name = tbs.subject.0.iter().rev().find_map(|rdn| {
        rdn.0.iter().find_map(|atv| {
            use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
            if atv.oid != x509_cert::der::oid::db::rfc4519::CN {
                return None;
            }
            let value = &atv.value;
            value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .or_else(|_| {
                    value
                        .decode_as::<Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .ok()
        })
    });
    Some(CertSummary {
        subject: tbs.subject.to_string(),
        common_name,
        issuer: tbs.issuer.to_string(),
        not_after: humantime::format_rfc3339_seconds(tbs.validity.not_after.to_system_time())
            .to_string(),
        owner,
    })
}

/// Parses a sequence of `EFI_SIGNATURE_LIST`s (without the efivarfs attribute bytes).
pub fn parse_signature_lists(bytes: &[u8]) -> Result<SignatureDb, String> {
    let mut db = SignatureDb::default();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let list = &bytes[offset..];
        let kind = guid(list).ok_or("truncated signature list header")?;
        let (Some(list_size), Some(header_size), Some(sig_size)) =
            (u32_at(list, 16), u32_at(list, 20), u32_at(list, 24))
        else {
            return Err(format!("truncated signature list at byte {offset}"));
        };
        let (list_size, header_size, sig_size) =
            (list_size as usize, header_size as usize, sig_size as usize);
        if list_size < 28 + header_size || list_size > list.len() || sig_size < 16 {
            return Err(format!(
                "signature list at byte {offset} has inconsistent sizes ({list_size}, {header_size}, {sig_size})"
            ));
        }
        let body = &list[28 + header_size..list_size];
        if body.len() % sig_size != 0 {
            return Err(format!(
                "signature list at byte {offset}: {} bytes is not a multiple of {sig_size}",
                body.len()
            ));
        }
        for signature in body.chunks_exact(sig_size) {
            let owner = guid(signature).unwrap_or_default();
            let data = &signature[16..];
            match kind.as_str() {
                CERT_X509 => match summarise_cert(data, owner) {
                    Some(cert) => db.certificates.push(cert),
                    None => db.other += 1,
                },
                CERT_SHA256 if data.len() == 32 => db.sha256.push(hex(data)),
                _ => db.other += 1,
            }
        }
        offset += list_size;
    }
    Ok(db)
}

/// Parses an efivarfs signature database file (4 attribute bytes, then the lists).
pub fn parse_efivar_db(bytes: &[u8]) -> Result<SignatureDb, String> {
    parse_signature_lists(bytes.get(4..).ok_or("shorter than its attributes")?)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How current a `dbx` is against [`DBX_REFERENCE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbxAssessment {
    /// Revocations in the reference.
    pub reference_entries: usize,
    /// Of those, how many this `dbx` lacks.
    pub missing: usize,
    /// Whether "Microsoft Windows Production PCA 2011" is revoked (the CVE-2023-24932
    /// BlackLotus mitigation).
    pub windows_pca_2011_revoked: bool,
}

/// Compares a `dbx` with the reference revocations.
pub fn assess_dbx(dbx: &SignatureDb) -> DbxAssessment {
    let reference: Vec<&str> = DBX_REFERENCE
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 64)
        .collect();
    let have: std::collections::HashSet<&str> = dbx.sha256.iter().map(String::as_str).collect();
    DbxAssessment {
        reference_entries: reference.len(),
        missing: reference.iter().filter(|h| !have.contains(*h)).count(),
        windows_pca_2011_revoked: dbx.has_cn("Microsoft Windows Production PCA 2011"),
    }
}
