//! The cipher and key size of a dm-crypt mapping from the kernel's device-mapper table
//! (`DM_TABLE_STATUS`, what `dmsetup table` shows; root only).
//!
//! Why: a plain dm-crypt mapping (swap with a random key, `cryptsetup open --type plain`)
//! has no header, and a LUKS volume with a detached header has its header elsewhere; the
//! table line is then the only place that says how the device is encrypted.
//!
//! The kernel prints the volume key in that line (as hex, or `:<bytes>:<type>:<desc>` when
//! it lives in the kernel keyring). Only the key's *length* is taken from it: the key is
//! never copied out of the ioctl buffer, which is zeroed before it is freed, and the
//! kernel is asked to wipe its own copy (`DM_SECURE_DATA_FLAG`).

/// What a `crypt` target's table line says (the key itself is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptTable {
    /// Cipher specification, e.g. `aes-xts-plain64`, `capi:xts(aes)-plain64`.
    pub cipher: String,
    /// Volume key size in bits.
    pub key_bits: u32,
    /// Authenticated encryption (`integrity:<tag bytes>:<aead>` optional parameter).
    pub integrity: Option<String>,
}

/// Parses the parameters of a `crypt` target: `<cipher> <key> <iv_offset> <device>
/// <offset> [<#opt_params> <opt_params>...]` (kernel `Documentation/admin-guide/
/// device-mapper/dm-crypt.rst`). `None` when the line is not in that shape.
pub fn parse_crypt_params(params: &[u8]) -> Option<CryptTable> {
    let mut fields = params
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let cipher = std::str::from_utf8(fields.next()?).ok()?.to_owned();
    let key_bits = key_bits(fields.next()?)?;
    let (_iv_offset, _device, _offset) = (fields.next()?, fields.next()?, fields.next()?);
    let mut integrity = None;
    if let Some(count) = fields.next() {
        let count: usize = std::str::from_utf8(count).ok()?.parse().ok()?;
        for option in fields.take(count) {
            let option = std::str::from_utf8(option).ok()?;
            if let Some(rest) = option.strip_prefix("integrity:") {
                integrity = rest.split_once(':').map(|(_, aead)| aead.to_owned());
            }
        }
    }
    Some(CryptTable {
        cipher,
        key_bits,
        integrity,
    })
}

/// The key's size in bits: hex digits × 4, or `:<bytes>:<type>:<description>` (keyring)
/// bytes × 8; `-` is an empty key (`cipher_null`).
fn key_bits(key: &[u8]) -> Option<u32> {
    if key == b"-" {
        return Some(0);
    }
    if let Some(rest) = key.strip_prefix(b":") {
        let bytes = rest.split(|b| *b == b':').next()?;
        let bytes: u32 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
        return bytes.checked_mul(8);
    }
    if key.iter().all(u8::is_ascii_hexdigit) && key.len() % 2 == 0 {
        return u32::try_from(key.len()).ok()?.checked_mul(4);
    }
    None
}

/// Reads the table of the mapping named `dm_name` (`/sys/block/dm-N/dm/name`) through
/// `/dev/mapper/control` and parses its `crypt` target.
#[cfg(target_os = "linux")]
pub fn read_crypt_table(dm_name: &str) -> Result<CryptTable, String> {
    use rustix::io::Errno;
    use zeroize::Zeroize;

    let control = match rustix::fs::open(
        "/dev/mapper/control",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) | Err(Errno::PERM) => {
            return Err(
                "the kernel's dm table (`/dev/mapper/control`) is readable by root only".to_owned(),
            )
        }
        Err(e) => return Err(format!("/dev/mapper/control: {e}")),
    };
    let name = dm_name.as_bytes();
    if name.is_empty() || name.len() >= DM_NAME_LEN {
        return Err(format!("{dm_name:?} is not a device-mapper name"));
    }
    let mut request = Box::new(DmIoctlBuffer {
        header: DmIoctl {
            version: [4, 0, 0],
            data_size: std::mem::size_of::<DmIoctlBuffer>() as u32,
            data_start: std::mem::size_of::<DmIoctl>() as u32,
            target_count: 0,
            open_count: 0,
            flags: DM_STATUS_TABLE_FLAG | DM_SECURE_DATA_FLAG,
            event_nr: 0,
            padding: 0,
            dev: 0,
            name: [0; DM_NAME_LEN],
            uuid: [0; DM_UUID_LEN],
            data: [0; 7],
        },
        data: [0; TABLE_BUFFER],
    });
    request.header.name[..name.len()].copy_from_slice(name);
    // SAFETY: DM_TABLE_STATUS reads a `struct dm_ioctl` and writes at most `data_size`
    // bytes from its start; `DmIoctlBuffer` is `repr(C)`, starts with the header in the
    // kernel's layout (linux/dm-ioctl.h) and is `data_size` bytes long.
    let updater =
        unsafe { rustix::ioctl::Updater::<{ DM_TABLE_STATUS }, DmIoctlBuffer>::new(&mut *request) };
    // SAFETY: the opcode matches the argument (see above).
    let answer = unsafe { rustix::ioctl::ioctl(&control, updater) };
    let result = match answer {
        Err(Errno::NXIO) => Err(format!("no device-mapper device named {dm_name}")),
        Err(e) => Err(format!("DM_TABLE_STATUS for {dm_name}: {e}")),
        Ok(()) if request.header.flags & DM_BUFFER_FULL_FLAG != 0 => Err(format!(
            "the dm table of {dm_name} is longer than {TABLE_BUFFER} bytes"
        )),
        Ok(()) => crypt_target(&request),
    };
    // The table line holds the volume key.
    request.data.zeroize();
    result
}

/// The first `crypt` target of an answered DM_TABLE_STATUS.
#[cfg(target_os = "linux")]
fn crypt_target(answer: &DmIoctlBuffer) -> Result<CryptTable, String> {
    const SPEC_LEN: usize = 40; // struct dm_target_spec
    let header_len = std::mem::size_of::<DmIoctl>();
    let start = (answer.header.data_start as usize)
        .checked_sub(header_len)
        .ok_or("the kernel's answer starts inside its header")?;
    let end = (answer.header.data_size as usize)
        .saturating_sub(header_len)
        .min(answer.data.len());
    let data = answer
        .data
        .get(start..end)
        .ok_or("the kernel's answer is out of range")?;
    let mut offset = 0usize;
    for _ in 0..answer.header.target_count {
        let spec = data.get(offset..).ok_or("truncated target list")?;
        if spec.len() < SPEC_LEN {
            return Err("truncated target spec".to_owned());
        }
        let target_type = &spec[24..40];
        let target_type = &target_type[..target_type.iter().position(|b| *b == 0).unwrap_or(16)];
        let params = &spec[SPEC_LEN..];
        let params = &params[..params.iter().position(|b| *b == 0).unwrap_or(params.len())];
        if target_type == b"crypt" {
            return parse_crypt_params(params).ok_or_else(|| {
                "the crypt target's table line is not in the documented shape".to_owned()
            });
        }
        // `next`: the offset of the next spec from the start of the data.
        let next = u32::from_ne_bytes([spec[20], spec[21], spec[22], spec[23]]) as usize;
        if next <= offset {
            break;
        }
        offset = next;
    }
    Err("the mapping has no crypt target".to_owned())
}

#[cfg(target_os = "linux")]
const DM_NAME_LEN: usize = 128;
#[cfg(target_os = "linux")]
const DM_UUID_LEN: usize = 129;
#[cfg(target_os = "linux")]
const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
#[cfg(target_os = "linux")]
const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
#[cfg(target_os = "linux")]
const DM_SECURE_DATA_FLAG: u32 = 1 << 15;
/// Room for the table: one crypt line is a few hundred bytes (a 1024-bit hex key, a path
/// and options).
#[cfg(target_os = "linux")]
const TABLE_BUFFER: usize = 16 * 1024;
/// `_IOWR(DM_IOCTL, DM_TABLE_STATUS_CMD, struct dm_ioctl)`.
#[cfg(target_os = "linux")]
const DM_TABLE_STATUS: rustix::ioctl::Opcode =
    rustix::ioctl::opcode::read_write::<DmIoctl>(0xfd, 12);

/// `struct dm_ioctl` (linux/dm-ioctl.h).
#[cfg(target_os = "linux")]
#[repr(C)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

#[cfg(target_os = "linux")]
#[repr(C)]
struct DmIoctlBuffer {
    header: DmIoctl,
    data: [u8; TABLE_BUFFER],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_swap_with_a_hex_key() {
        // `dmsetup table --showkeys` of a plain dm-crypt swap (key shortened to zeros of
        // the same length: 512 bits).
        let line = format!("aes-xts-plain64 {} 0 254:64 0", "0".repeat(128));
        assert_eq!(
            parse_crypt_params(line.as_bytes()),
            Some(CryptTable {
                cipher: "aes-xts-plain64".to_owned(),
                key_bits: 512,
                integrity: None
            })
        );
    }

    #[test]
    fn keyring_key_and_options() {
        // LUKS2 as cryptsetup 2.x loads it (key in the kernel keyring), with
        // authenticated encryption and two flags.
        let line = b"aes-xts-random :96:logon:cryptsetup:0b3c-d0 0 253:3 0 3 allow_discards integrity:32:hmac(sha256) sector_size:4096";
        assert_eq!(
            parse_crypt_params(line),
            Some(CryptTable {
                cipher: "aes-xts-random".to_owned(),
                key_bits: 768,
                integrity: Some("hmac(sha256)".to_owned())
            })
        );
        let cbc = format!("aes-cbc-plain {} 0 7:0 0", "a".repeat(64));
        let table = parse_crypt_params(cbc.as_bytes()).expect("parses");
        assert_eq!(
            (table.cipher.as_str(), table.key_bits),
            ("aes-cbc-plain", 256)
        );
        assert!(super::super::luks::weakness(&table.cipher, table.key_bits, false).is_some());
        assert_eq!(
            parse_crypt_params(b"cipher_null-ecb - 0 8:1 0").map(|t| t.key_bits),
            Some(0)
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        assert_eq!(parse_crypt_params(b""), None);
        assert_eq!(parse_crypt_params(b"aes-xts-plain64"), None);
        assert_eq!(parse_crypt_params(b"aes-xts-plain64 xyz 0 8:1 0"), None);
        assert_eq!(parse_crypt_params(b"aes-xts-plain64 abc 0 8:1 0"), None);
        assert_eq!(
            parse_crypt_params(b"aes-xts-plain64 :x:logon:k 0 8:1 0"),
            None
        );
        assert_eq!(parse_crypt_params(b"aes-xts-plain64 00 0 8:1"), None);
    }
}
