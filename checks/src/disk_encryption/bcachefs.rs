//! bcachefs native encryption, from the superblock at the start of each member device.
//!
//! Why the superblock and not sysfs: `/sys/fs/bcachefs/<uuid>/` exposes options, but
//! whether it shows the format-time `encrypted` option varies between the kernel module
//! and bcachefs-tools (DKMS) versions, while the on-disk format is stable since 2017
//! (`bcachefs_format.h`). Reading a block device needs root; without it the volume is
//! `unknown`, never `pass`.
//!
//! Layout (`struct bch_sb`, little-endian), at 4096 bytes from the start of the device:
//! csum (16), version (2), version_min (2), pad (4), magic (16) at 24, uuid (16), user
//! uuid (16), label (32), offset (8), seq (8), block_size (2), dev_idx (1), nr_devices
//! (1), `u64s` (4) at 124, time fields (16), flags (8 × 8) at 144, features (16), compat
//! (16), layout (512): the fields start at 752, `u64s` × 8 bytes of them. Each field is
//! `{ u32 u64s; u32 type; ... }` and is `u64s` × 8 bytes long including that header. An
//! encrypted filesystem has a `crypt` field (type 2) holding its key, encrypted with the
//! passphrase; bcachefs encrypts with ChaCha20/Poly1305 and a 256-bit key (the only
//! cipher it has), and `BCH_SB_ENCRYPTION_TYPE` (flags[1], bits 28-31) is non-zero.

/// Where the superblock starts (sector 8).
pub const SUPERBLOCK_OFFSET: usize = 4096;
/// How much of the device to read: the superblock's fixed part and its fields (bcachefs
/// superblocks are a few KiB; 64 KiB covers the largest shown by `show-super`).
#[cfg(target_os = "linux")]
pub const READ_LEN: u64 = (SUPERBLOCK_OFFSET + 64 * 1024) as u64;

/// The two magic numbers bcachefs has used (`BCACHE_MAGIC` and `BCHFS_MAGIC`), as stored.
const MAGICS: [[u8; 16]; 2] = [
    [
        0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d,
        0x81,
    ],
    [
        0xc6, 0x85, 0x73, 0xf6, 0x66, 0xce, 0x90, 0xa9, 0xd9, 0x6a, 0x60, 0xcf, 0x80, 0x3d, 0xf7,
        0xef,
    ],
];
const FIELDS_START: usize = 752;
const FIELD_CRYPT: u32 = 2;

/// What a bcachefs superblock says about encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BcachefsSuper {
    /// On-disk format version (`1.33` is stored as `(1 << 10) | 33`).
    pub version: u16,
    /// The superblock has a `crypt` field.
    pub crypt_field: bool,
    /// `BCH_SB_ENCRYPTION_TYPE`.
    pub encryption_type: u8,
}

impl BcachefsSuper {
    /// Whether the filesystem is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.crypt_field || self.encryption_type != 0
    }

    /// `major.minor` of the format version.
    pub fn version_text(&self) -> String {
        format!("{}.{}", self.version >> 10, self.version & 0x3ff)
    }
}

/// Parses the superblock from the first bytes of a device (at least up to the end of the
/// superblock's fields).
pub fn parse_superblock(device: &[u8]) -> Result<BcachefsSuper, String> {
    let sb = device
        .get(SUPERBLOCK_OFFSET..)
        .ok_or_else(|| "shorter than 4 KiB: no bcachefs superblock".to_owned())?;
    let field = |at: usize, len: usize| {
        sb.get(at..at + len)
            .ok_or_else(|| format!("bcachefs superblock cut off at byte {at}"))
    };
    let le16 = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let magic = field(24, 16)?;
    if !MAGICS.iter().any(|m| m[..] == *magic) {
        return Err("no bcachefs superblock magic at 4 KiB".to_owned());
    }
    let version = le16(field(16, 2)?);
    let u64s = usize::try_from(le32(field(124, 4)?)).unwrap_or(usize::MAX);
    let flags1 = field(152, 8)?;
    let encryption_type = (flags1[3] >> 4) & 0x0f;
    let end = FIELDS_START.saturating_add(u64s.saturating_mul(8));
    let mut crypt_field = false;
    let mut at = FIELDS_START;
    while at + 8 <= end {
        let header = field(at, 8)?;
        let (len, kind) = (le32(&header[..4]), le32(&header[4..]));
        if len == 0 {
            return Err(format!(
                "bcachefs superblock field at byte {at} has length 0"
            ));
        }
        if kind == FIELD_CRYPT {
            crypt_field = true;
        }
        at = at.saturating_add(usize::try_from(len).unwrap_or(usize::MAX).saturating_mul(8));
    }
    Ok(BcachefsSuper {
        version,
        crypt_field,
        encryption_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0_13: &[u8] =
        include_bytes!("../../tests/fixtures/disk_encryption/bcachefs-util-linux.sb");
    const V1_33: &[u8] =
        include_bytes!("../../tests/fixtures/disk_encryption/bcachefs-3-util-linux.sb");

    /// Real superblocks of unencrypted filesystems (util-linux's blkid test images; see
    /// the fixtures' README): old and new magic, old and new field sets.
    #[test]
    fn real_unencrypted_superblocks() {
        let old = parse_superblock(V0_13).unwrap();
        assert_eq!(old.version_text(), "0.13");
        assert!(!old.is_encrypted());
        let new = parse_superblock(V1_33).unwrap();
        assert_eq!(new.version_text(), "1.33");
        assert!(!new.crypt_field);
        assert!(!new.is_encrypted());
    }

    /// The 1.33 superblock with a `crypt` field appended (as `bcachefs format
    /// --encrypted` writes one: 12 u64s, type 2) and the encryption type set: derived
    /// from the real one, not captured.
    #[test]
    fn crypt_field_means_encrypted() {
        let mut bytes = V1_33.to_vec();
        let sb = SUPERBLOCK_OFFSET;
        let u64s = u32::from_le_bytes(bytes[sb + 124..sb + 128].try_into().unwrap());
        let end = sb + FIELDS_START + u64s as usize * 8;
        bytes[end..end + 8].copy_from_slice(&[12, 0, 0, 0, 2, 0, 0, 0]);
        bytes[sb + 124..sb + 128].copy_from_slice(&(u64s + 12).to_le_bytes());
        let parsed = parse_superblock(&bytes).unwrap();
        assert!(parsed.crypt_field && parsed.is_encrypted());
        // The flag alone (field not yet written) also counts.
        let mut flagged = V1_33.to_vec();
        flagged[sb + 155] |= 0x10;
        let parsed = parse_superblock(&flagged).unwrap();
        assert_eq!(parsed.encryption_type, 1);
        assert!(parsed.is_encrypted());
    }

    #[test]
    fn rejects_what_is_not_bcachefs() {
        assert!(parse_superblock(&[0u8; 100]).is_err());
        assert!(parse_superblock(&[0u8; 8192]).is_err());
    }
}
