//! Files for standard TPM tools: what `posture attest` writes so that `tpm2_checkquote`
//! (tpm2-tools) can check a quote independently of this crate.

use std::path::Path;

use base64::Engine as _;

use super::tpm2::TpmPublic;
use super::wire::Quote;
use super::{to_hex, AttestationError};

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, BIT STRING of
/// 66 bytes); the uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A P-256 public key as PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
pub fn p256_public_key_pem(key: &p256::PublicKey) -> String {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.to_encoded_point(false).as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// The PCR file format of tpm2-tools 5.x (`tpm2_quote -o`, "serialized"): the host-endian
/// in-memory `TPML_PCR_SELECTION`, a `u32` count of `TPML_DIGEST`s, then each
/// `TPML_DIGEST` (at most 8 digests), as tpm2-tools' `pcr.c` writes them with fwrite.
/// Only the sha256 bank, PCRs 0-31.
pub fn tpm2_tools_pcrs(quote: &Quote) -> Result<Vec<u8>, AttestationError> {
    const SELECTIONS: usize = 16; // TPM2_NUM_PCR_BANKS
    const DIGESTS: usize = 8;
    const TPM2B_DIGEST_SIZE: usize = 2 + 64;
    let mut select = [0u8; 4];
    let mut values = Vec::new();
    for (pcr, hex) in &quote.pcrs.sha256 {
        let byte = usize::try_from(pcr / 8)
            .ok()
            .filter(|b| *b < 4)
            .ok_or_else(|| AttestationError::Unsupported(format!("PCR {pcr}")))?;
        select[byte] |= 1 << (pcr % 8);
        values.push(super::from_hex(hex)?);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&1u32.to_ne_bytes());
    // TPMS_PCR_SELECTION: hash (u16), sizeofSelect (u8), pcrSelect[4], one padding byte.
    out.extend_from_slice(&super::tpm2::alg::SHA256.to_ne_bytes());
    out.push(3);
    out.extend_from_slice(&select);
    out.push(0);
    out.resize(4 + SELECTIONS * 8, 0);
    let chunks: Vec<&[Vec<u8>]> = values.chunks(DIGESTS).collect();
    out.extend_from_slice(&(chunks.len() as u32).to_ne_bytes());
    for chunk in chunks {
        out.extend_from_slice(&(chunk.len() as u32).to_ne_bytes());
        for i in 0..DIGESTS {
            let mut entry = [0u8; TPM2B_DIGEST_SIZE];
            if let Some(v) = chunk.get(i) {
                let n = v.len().min(64);
                entry[..2].copy_from_slice(&(n as u16).to_ne_bytes());
                entry[2..2 + n].copy_from_slice(&v[..n]);
            }
            out.extend_from_slice(&entry);
        }
    }
    Ok(out)
}

/// Writes `quote.msg` (TPMS_ATTEST), `quote.sig` (TPMT_SIGNATURE), `ak.pub.pem`,
/// `qualifying-data.hex` and `pcrs.bin` (tpm2-tools PCR file) into `dir`, so that
/// `tpm2_checkquote -u ak.pub.pem -m quote.msg -s quote.sig -f pcrs.bin -g sha256
/// -q $(cat qualifying-data.hex)` checks the quote.
pub fn write_tpm2_tools_files(
    dir: &Path,
    quote: &Quote,
    ak_public: &[u8],
    qualifying_data: &[u8],
) -> std::io::Result<()> {
    let invalid = |e: AttestationError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let ak = TpmPublic::parse(ak_public)
        .and_then(|p| p.p256())
        .map_err(invalid)?;
    std::fs::write(dir.join("quote.msg"), &quote.quote.attest)?;
    std::fs::write(dir.join("quote.sig"), &quote.quote.signature)?;
    std::fs::write(dir.join("ak.pub.pem"), p256_public_key_pem(&ak))?;
    std::fs::write(
        dir.join("qualifying-data.hex"),
        format!("{}\n", to_hex(qualifying_data)),
    )?;
    std::fs::write(
        dir.join("pcrs.bin"),
        tpm2_tools_pcrs(quote).map_err(invalid)?,
    )?;
    Ok(())
}
