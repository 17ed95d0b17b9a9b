//! Which cipher and key size a LUKS volume uses, from its on-disk header, and whether that
//! is weak.
//!
//! The dm uuid (`CRYPT-LUKS2-...`) proves that dm-crypt runs but not with what. The header
//! at the start of the device under the mapping says it, without running `cryptsetup` and
//! without asking the kernel for the table (whose key field would have to be handled):
//! - LUKS1: a 592-byte big-endian binary header (`cipher-name`, `cipher-mode`,
//!   `key-bytes`), LUKS1 on-disk format specification 1.2.3.
//! - LUKS2: a 4096-byte binary header, then the JSON area (`hdr_size` − 4096 bytes) with
//!   `segments` (cipher, `integrity`) and `keyslots` (`key_size` of the volume key): the
//!   same JSON `cryptsetup luksDump --dump-json-metadata` prints (LUKS2 on-disk format).
//!
//! A header that is not on the device means a detached header (`--header`): the volume is
//! still encrypted (the dm uuid says so), but the cipher cannot be read from the device.

use serde::Serialize;
use serde_json::Value;

/// The LUKS magic, `LUKS\xba\xbe`.
pub const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// Bytes to read first: the LUKS1 header, or LUKS2's binary header.
pub const BINARY_HEADER_LEN: usize = 4096;
/// The largest LUKS2 header (binary header + JSON area) we accept: cryptsetup allows
/// JSON areas up to 4 MiB.
pub const MAX_HEADER_LEN: u64 = 4 * 1024 * 1024;

/// What a LUKS header says about the volume's encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LuksParams {
    /// LUKS version, 1 or 2; 0 for encryption that is not LUKS (ZFS native, bcachefs),
    /// where it is not reported.
    #[serde(skip_serializing_if = "is_zero")]
    pub version: u16,
    /// dm-crypt cipher specification, e.g. `aes-xts-plain64`.
    pub cipher: String,
    /// Volume key size in bits (for XTS, both halves: 512 means AES-256).
    pub key_bits: u32,
    /// LUKS2 authenticated encryption (dm-integrity under dm-crypt), e.g. `hmac(sha256)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
}

fn is_zero(version: &u16) -> bool {
    *version == 0
}

impl LuksParams {
    /// Why this cipher is weak, if it is: `cipher_null` (no encryption at all), ECB, CBC
    /// with a plain (predictable) IV, or XTS with a key below 512 bits (AES-128).
    pub fn weakness(&self) -> Option<String> {
        weakness(&self.cipher, self.key_bits, self.integrity.is_some())
    }

    /// Whether the "cipher" encrypts nothing (`cipher_null`, used during LUKS2
    /// reencryption/decryption).
    pub fn is_null(&self) -> bool {
        self.cipher.starts_with("cipher_null")
    }
}

/// Judges a dm-crypt cipher specification and its key size; `None` when it is sound.
pub fn weakness(cipher: &str, key_bits: u32, with_integrity: bool) -> Option<String> {
    let lower = cipher.to_ascii_lowercase();
    if lower.starts_with("cipher_null") {
        return Some(format!("{cipher} does not encrypt at all"));
    }
    let mode = lower.split_once('-').map_or("", |(_, mode)| mode);
    if mode.starts_with("ecb") {
        return Some(format!("{cipher}: ECB leaks patterns in the data"));
    }
    if mode == "cbc-plain" || mode == "cbc-plain64" {
        return Some(format!(
            "{cipher}: CBC with a plain (predictable) IV is open to watermarking attacks"
        ));
    }
    if mode.starts_with("xts") {
        // With LUKS2 integrity the key also holds the HMAC key; XTS gets the rest.
        if !with_integrity && key_bits < 512 {
            return Some(format!(
                "{cipher} with a {key_bits}-bit key is AES-{} (XTS splits the key in two); 512 bits (AES-256) is the current default",
                key_bits / 2
            ));
        }
    } else if key_bits < 256 && !with_integrity {
        return Some(format!("{cipher} with a {key_bits}-bit key"));
    }
    None
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The device does not start with a LUKS header: a detached header (or not LUKS).
    NotLuks,
    /// The header is malformed.
    Malformed(String),
}

/// How many bytes the LUKS2 header occupies (binary header + JSON area), from the first
/// 4096 bytes; `None` for LUKS1 (which needs no more).
pub fn luks2_header_len(first: &[u8]) -> Result<Option<u64>, HeaderError> {
    if first.len() < 16 || &first[..6] != MAGIC {
        return Err(HeaderError::NotLuks);
    }
    let version = u16::from_be_bytes([first[6], first[7]]);
    if version != 2 {
        return Ok(None);
    }
    let size = first
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| HeaderError::Malformed("short LUKS2 header".to_owned()))?;
    if !(BINARY_HEADER_LEN as u64 + 2..=MAX_HEADER_LEN).contains(&size) {
        return Err(HeaderError::Malformed(format!("LUKS2 hdr_size {size}")));
    }
    Ok(Some(size))
}

/// Parses a LUKS1 or LUKS2 header (for LUKS2, at least `hdr_size` bytes).
pub fn parse_header(bytes: &[u8]) -> Result<LuksParams, HeaderError> {
    match luks2_header_len(bytes)? {
        None => parse_luks1(bytes),
        Some(size) => {
            let end = usize::try_from(size).unwrap_or(usize::MAX).min(bytes.len());
            let area = bytes
                .get(BINARY_HEADER_LEN..end)
                .ok_or_else(|| HeaderError::Malformed("LUKS2 JSON area missing".to_owned()))?;
            let json_end = area.iter().position(|&b| b == 0).unwrap_or(area.len());
            let text = std::str::from_utf8(&area[..json_end])
                .map_err(|_| HeaderError::Malformed("LUKS2 JSON is not UTF-8".to_owned()))?;
            parse_luks2_json(text)
        }
    }
}

fn parse_luks1(bytes: &[u8]) -> Result<LuksParams, HeaderError> {
    // magic[6] version[2] cipher-name[32] cipher-mode[32] hash-spec[32] payload-offset[4]
    // key-bytes[4] ...
    let field = |range: std::ops::Range<usize>| -> Result<String, HeaderError> {
        let raw = bytes
            .get(range)
            .ok_or_else(|| HeaderError::Malformed("short LUKS1 header".to_owned()))?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    };
    let name = field(8..40)?;
    let mode = field(40..72)?;
    let key_bytes = bytes
        .get(108..112)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| HeaderError::Malformed("short LUKS1 header".to_owned()))?;
    Ok(LuksParams {
        version: 1,
        cipher: format!("{name}-{mode}"),
        key_bits: key_bytes.saturating_mul(8),
        integrity: None,
    })
}

/// Parses LUKS2 JSON metadata (the header's JSON area, or the output of
/// `cryptsetup luksDump --dump-json-metadata`): the cipher of the data segment and the
/// volume key size of a keyslot bound to it.
pub fn parse_luks2_json(text: &str) -> Result<LuksParams, HeaderError> {
    let json: Value = serde_json::from_str(text)
        .map_err(|e| HeaderError::Malformed(format!("LUKS2 JSON: {e}")))?;
    let segments = json
        .get("segments")
        .and_then(Value::as_object)
        .ok_or_else(|| HeaderError::Malformed("LUKS2 JSON has no segments".to_owned()))?;
    // The data segment: type crypt, lowest id (during reencryption there are two).
    let mut crypt: Vec<(&String, &Value)> = segments
        .iter()
        .filter(|(_, s)| s.get("type").and_then(Value::as_str) == Some("crypt"))
        .collect();
    crypt.sort_by_key(|(id, _)| id.parse::<u32>().unwrap_or(u32::MAX));
    let (segment_id, segment) = crypt
        .first()
        .copied()
        .ok_or_else(|| HeaderError::Malformed("LUKS2 JSON has no crypt segment".to_owned()))?;
    let cipher = segment
        .get("encryption")
        .and_then(Value::as_str)
        .ok_or_else(|| HeaderError::Malformed("crypt segment without encryption".to_owned()))?
        .to_owned();
    let integrity = segment
        .get("integrity")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Keyslots of a digest that covers this segment hold the volume key; their key_size.
    let keyslot_ids: Vec<&str> = json
        .get("digests")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|d| d.values())
        .filter(|d| {
            d.get("segments")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(segment_id)))
        })
        .flat_map(|d| {
            d.get("keyslots")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(Value::as_str)
        .collect();
    let key_bytes = json
        .get("keyslots")
        .and_then(Value::as_object)
        .and_then(|slots| {
            keyslot_ids
                .iter()
                .find_map(|id| slots.get(*id))
                .or_else(|| slots.values().next())
        })
        .and_then(|slot| slot.get("key_size"))
        .and_then(Value::as_u64)
        .ok_or_else(|| HeaderError::Malformed("no keyslot with a key_size".to_owned()))?;
    Ok(LuksParams {
        version: 2,
        cipher,
        key_bits: u32::try_from(key_bytes.saturating_mul(8)).unwrap_or(u32::MAX),
        integrity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_ciphers() {
        assert!(weakness("aes-xts-plain64", 512, false).is_none());
        assert!(weakness("aes-xts-plain64", 256, false)
            .unwrap()
            .contains("AES-128"));
        assert!(weakness("aes-cbc-plain", 256, false)
            .unwrap()
            .contains("watermarking"));
        assert!(weakness("aes-cbc-plain64", 256, false).is_some());
        assert!(weakness("aes-cbc-essiv:sha256", 256, false).is_none());
        assert!(weakness("aes-ecb", 256, false).is_some());
        assert!(weakness("cipher_null-ecb", 0, false)
            .unwrap()
            .contains("not encrypt"));
        assert!(weakness("aes-xts-random", 768, true).is_none());
    }

    #[test]
    fn not_luks() {
        assert_eq!(parse_header(&[0u8; 4096]), Err(HeaderError::NotLuks));
    }
}
