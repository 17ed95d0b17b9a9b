//! The device key's TPM-wrapped blob in the `TSS2 PRIVATE KEY` PEM form that the tpm2
//! OpenSSL provider (`tpm2-openssl`), the tpm2-tss engine and the Linux kernel's
//! trusted keys read (the "ASN.1 Specification for TPM 2.0 Key Files"):
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,          -- id-loadablekey 2.23.133.10.1.3
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     parent      INTEGER,                    -- 0x40000001: a primary under the owner hierarchy
//!     pubkey      OCTET STRING,               -- TPM2B_PUBLIC
//!     privkey     OCTET STRING }              -- TPM2B_PRIVATE
//! ```
//!
//! With parent `0x40000001` the reader re-creates the owner-hierarchy ECC P-256 storage
//! key from the standard template — the same template posture's SRK uses (restricted
//! decrypt, AES-128-CFB, fixedTPM/fixedParent, noDA, empty unique) — and loads the blob
//! under it. The file holds nothing secret: the private part is encrypted by the TPM.

use std::path::Path;

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Encode as _, Sequence};
use posture_core::keys::KeyError;

/// id-loadablekey.
const OID_LOADABLE_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.3");
/// The owner hierarchy: the parent is its primary storage key.
const PARENT_OWNER: u32 = 0x4000_0001;

#[derive(Sequence)]
struct TpmKey {
    key_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    empty_auth: Option<bool>,
    parent: u32,
    pubkey: OctetString,
    privkey: OctetString,
}

fn sized(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let len = u16::try_from(bytes.len()).map_err(|_| "part too large".to_owned())?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    Ok(out)
}

/// The `TSS2 PRIVATE KEY` PEM of the key blob at `path` (the device key has no
/// password: `emptyAuth`).
pub fn tss2_private_key_pem(path: &Path) -> Result<String, KeyError> {
    let invalid = |message: String| KeyError::InvalidKey {
        path: path.to_owned(),
        message,
    };
    let blob = super::blob::load(path)?.ok_or_else(|| KeyError::Io {
        path: path.to_owned(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let key = TpmKey {
        key_type: OID_LOADABLE_KEY,
        empty_auth: Some(true),
        parent: PARENT_OWNER,
        pubkey: OctetString::new(sized(&blob.public).map_err(invalid)?)
            .map_err(|e| invalid(e.to_string()))?,
        privkey: OctetString::new(sized(&blob.private).map_err(invalid)?)
            .map_err(|e| invalid(e.to_string()))?,
    };
    let der = key.to_der().map_err(|e| invalid(e.to_string()))?;
    der::pem::encode_string("TSS2 PRIVATE KEY", der::pem::LineEnding::LF, &der)
        .map_err(|e| invalid(e.to_string()))
}
