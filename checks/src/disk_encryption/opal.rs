//! Self-encrypting drives (TCG Opal): is locking enabled on the disk under a volume?
//!
//! An Opal drive always encrypts its media, but with locking disabled anyone who reads the
//! drive gets plaintext; only with the Locking SP enabled (and a range locked on power
//! loss) is the data protected at rest. Two views of the same state:
//! - the Level 0 Discovery response (TCG Storage Architecture Core Spec, 3.3.6), which a
//!   drive returns to Security Protocol In / NVMe Security Receive, protocol 0x01, ComID
//!   0x0001: a 48-byte header, then feature descriptors; the Locking feature (code
//!   0x0002) carries LockingSupported, LockingEnabled, Locked, MediaEncryption,
//!   MBREnabled and MBRDone. [`parse_level0`] is a pure parser of it;
//! - the kernel's own reading of it, `IOC_OPAL_GET_STATUS` (`linux/sed-opal.h`, Linux
//!   6.0+): `OPAL_FL_*` flags on the block device, no credentials needed (the kernel
//!   runs Level 0 Discovery itself). [`read_status`] issues it; it needs the device open
//!   (root or the `disk` group) and `CAP_SYS_ADMIN`.
//!
//! What is not readable: whether each locking range locks on power loss (`LockOnReset`)
//! and which ranges have read locking enabled are columns of the drive's Locking table,
//! readable only with the drive's Admin1 credential (`IOC_OPAL_GET_LR_STATUS` takes that
//! key). Opal's default `LockOnReset` is `{PowerCycle}`; the finding says that it was not
//! verified.
//!
//! No vendor tool is run.

#[cfg(target_os = "linux")]
use crate::Context;

/// Level 0 Discovery feature code of the Locking feature.
const FEATURE_LOCKING: u16 = 0x0002;
/// Length of the Level 0 Discovery header.
const HEADER_LEN: usize = 48;

/// The Locking feature's bits (Level 0 Discovery byte 4 of the descriptor; the kernel's
/// `OPAL_FL_*` flags carry the same bits except MediaEncryption).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Locking {
    /// The drive supports the Locking SP.
    pub supported: bool,
    /// The Locking SP is enabled (a range can lock).
    pub enabled: bool,
    /// At least one range is locked now.
    pub locked: bool,
    /// The media is encrypted (`None`: the source does not say, as with the kernel's flags).
    pub media_encryption: Option<bool>,
    /// The shadow MBR (pre-boot authentication image) is enabled.
    pub mbr_enabled: bool,
    /// The shadow MBR is done (hidden after unlock).
    pub mbr_done: bool,
}

impl Locking {
    fn from_byte(byte: u8) -> Locking {
        Locking {
            supported: byte & 0x01 != 0,
            enabled: byte & 0x02 != 0,
            locked: byte & 0x04 != 0,
            media_encryption: Some(byte & 0x08 != 0),
            mbr_enabled: byte & 0x10 != 0,
            mbr_done: byte & 0x20 != 0,
        }
    }

    /// From the kernel's `opal_status.flags` (`OPAL_FL_LOCKING_SUPPORTED` 0x2,
    /// `OPAL_FL_LOCKING_ENABLED` 0x4, `OPAL_FL_LOCKED` 0x8, `OPAL_FL_MBR_ENABLED` 0x10,
    /// `OPAL_FL_MBR_DONE` 0x20).
    pub fn from_kernel_flags(flags: u32) -> Locking {
        Locking {
            supported: flags & 0x02 != 0,
            enabled: flags & 0x04 != 0,
            locked: flags & 0x08 != 0,
            media_encryption: None,
            mbr_enabled: flags & 0x10 != 0,
            mbr_done: flags & 0x20 != 0,
        }
    }

    /// Whether the drive protects data at rest: locking supported and enabled.
    pub fn protects(&self) -> bool {
        self.supported && self.enabled
    }
}

/// A parsed Level 0 Discovery response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level0 {
    /// `(major, minor)` version of the data structure.
    pub version: (u16, u16),
    /// Feature codes present, in order (`0x0001` TPer, `0x0002` Locking, `0x0203` Opal
    /// SSC 2.0, ...).
    pub features: Vec<u16>,
    /// The Locking feature, when present.
    pub locking: Option<Locking>,
    /// Whether the last descriptor was cut off by the end of the buffer (skipped).
    pub truncated: bool,
}

impl Level0 {
    /// The security subsystem class the drive announces, by feature code.
    pub fn ssc(&self) -> Option<&'static str> {
        self.features.iter().find_map(|code| match code {
            0x0200 => Some("Opal 1.0"),
            0x0203 => Some("Opal 2.0"),
            0x0100 => Some("Enterprise"),
            0x0301 => Some("Opalite"),
            0x0302 => Some("Pyrite 1.0"),
            0x0303 => Some("Pyrite 2.0"),
            0x0304 => Some("Ruby"),
            0x0204 => Some("Key Per I/O"),
            _ => None,
        })
    }
}

/// Parses a Level 0 Discovery response: header (length of the parameter data, 4 bytes
/// big-endian, not counting itself; version 2 + 2 bytes; 40 reserved or vendor bytes),
/// then descriptors (code 2 bytes, version 1 byte, length 1 byte, data). A descriptor cut
/// off by the end of the buffer is skipped and flagged, so a short read still yields the
/// features before it.
pub fn parse_level0(bytes: &[u8]) -> Result<Level0, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "Level 0 Discovery response is {} bytes, shorter than its 48-byte header",
            bytes.len()
        ));
    }
    let be32 = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes)
    };
    let length = usize::try_from(be32(0)).unwrap_or(usize::MAX);
    let major = u16::from_be_bytes([bytes[4], bytes[5]]);
    let minor = u16::from_be_bytes([bytes[6], bytes[7]]);
    if length < HEADER_LEN - 4 {
        return Err(format!(
            "Level 0 Discovery length field is {length}, less than the header"
        ));
    }
    let end = length.saturating_add(4).min(bytes.len());
    let mut features = Vec::new();
    let mut locking = None;
    let mut truncated = false;
    let mut at = HEADER_LEN;
    while at + 4 <= end {
        let code = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let data_len = usize::from(bytes[at + 3]);
        let next = at + 4 + data_len;
        if next > end {
            truncated = true;
            break;
        }
        features.push(code);
        if code == FEATURE_LOCKING {
            let byte = bytes
                .get(at + 4)
                .copied()
                .ok_or_else(|| "Locking feature descriptor has no data".to_owned())?;
            locking = Some(Locking::from_byte(byte));
        }
        at = next;
    }
    Ok(Level0 {
        version: (major, minor),
        features,
        locking,
        truncated,
    })
}

/// What is known about one disk's Opal state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpalState {
    /// The kernel read the Locking feature.
    Read(Locking),
    /// The disk has no Opal (the kernel says so, or its driver has no security commands).
    NotApplicable(String),
    /// Could not tell, and why.
    Unknown(String),
}

/// `IOC_OPAL_GET_STATUS`: `_IOR('p', 236, struct opal_status)` (`linux/sed-opal.h`).
#[cfg(target_os = "linux")]
const IOC_OPAL_GET_STATUS: rustix::ioctl::Opcode =
    rustix::ioctl::opcode::read::<OpalStatus>(b'p', 236);

/// `struct opal_status { __u32 flags; __u32 reserved; }`.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct OpalStatus {
    flags: u32,
    reserved: u32,
}

/// Whether a disk's driver can carry TCG security commands at all, from its sysfs path
/// alone (no root needed): virtio, Xen and the kernel's RAM/loop devices have none.
// Only the Linux reader asks; the function is pure and tested on every OS.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn driver_without_security(disk: &str, sys_path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = sys_path.split('/').collect();
    if parts.iter().any(|p| p.starts_with("virtio")) || disk.starts_with("vd") {
        return Some("a virtio disk: virtio-blk has no security protocol commands, so no Opal");
    }
    if disk.starts_with("xvd") || parts.contains(&"vbd") {
        return Some("a Xen virtual disk: no security protocol commands, so no Opal");
    }
    if ["loop", "zram", "ram", "nbd", "md", "dm-", "mmcblk"]
        .iter()
        .any(|p| disk.starts_with(p))
    {
        return Some("not a drive with TCG security commands");
    }
    None
}

/// Reads a disk's Opal state through the kernel (live system only). `disk` is the kernel
/// name of the whole disk (`nvme0n1`, `sda`), `sys_path` its sysfs directory.
#[cfg(target_os = "linux")]
pub fn read_status(ctx: &Context, disk: &str, sys_path: &str) -> OpalState {
    if let Some(why) = driver_without_security(disk, sys_path) {
        return OpalState::NotApplicable(format!("{disk} is {why}"));
    }
    if !ctx.live {
        return OpalState::Unknown(format!(
            "{disk}: the Opal state is read with an ioctl on the live system only"
        ));
    }
    read_status_live(ctx, disk)
}

#[cfg(target_os = "linux")]
fn read_status_live(ctx: &Context, disk: &str) -> OpalState {
    use rustix::io::Errno;

    let dev = format!("/dev/{disk}");
    let path = ctx.path(&dev);
    // O_NONBLOCK: a removable drive without media must not make the open wait.
    let fd = match rustix::fs::open(
        &path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) | Err(Errno::PERM) => {
            return OpalState::Unknown(format!(
                "{dev}: reading its Opal locking state (IOC_OPAL_GET_STATUS) needs the device open, as root or in the `disk` group"
            ))
        }
        Err(e) => return OpalState::Unknown(format!("{dev}: cannot open: {e}")),
    };
    // SAFETY: IOC_OPAL_GET_STATUS writes exactly one `struct opal_status` (two u32, the
    // layout of `OpalStatus`, `repr(C)`) and reads nothing from it.
    let getter = unsafe { rustix::ioctl::Getter::<IOC_OPAL_GET_STATUS, OpalStatus>::new() };
    // SAFETY: the opcode and output type match `linux/sed-opal.h` (see above).
    match unsafe { rustix::ioctl::ioctl(&fd, getter) } {
        Ok(status) if status.flags & 0x01 == 0 => {
            OpalState::NotApplicable(format!("{dev}: the kernel reports no Opal support"))
        }
        Ok(status) => OpalState::Read(Locking::from_kernel_flags(status.flags)),
        // The block layer answers ENOTTY when the driver registered no security
        // commands (or the kernel predates IOC_OPAL_GET_STATUS, 6.0).
        Err(Errno::NOTTY) | Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => OpalState::NotApplicable(
            format!("{dev}: the kernel has no Opal interface for it (ENOTTY: no security commands, or a kernel before 6.0)"),
        ),
        Err(Errno::ACCESS) | Err(Errno::PERM) => OpalState::Unknown(format!(
            "{dev}: IOC_OPAL_GET_STATUS needs CAP_SYS_ADMIN"
        )),
        Err(e) => OpalState::Unknown(format!("{dev}: IOC_OPAL_GET_STATUS failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_flags() {
        let l = Locking::from_kernel_flags(0x01 | 0x02 | 0x04 | 0x10 | 0x20);
        assert!(l.protects());
        assert!(l.mbr_enabled && l.mbr_done && !l.locked);
        assert!(!Locking::from_kernel_flags(0x01 | 0x02).protects());
    }

    #[test]
    fn virtual_disks_have_no_opal() {
        assert!(driver_without_security(
            "vda",
            "/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda"
        )
        .is_some());
        assert!(driver_without_security(
            "nvme0n1",
            "/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"
        )
        .is_none());
    }

    fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A real NVMe Opal 2.0 drive, locking supported but never set up (see the fixtures'
    /// README for where it was captured). The dump stops at 160 bytes, inside the Opal
    /// 2.0 descriptor.
    #[test]
    fn nvme_drive_with_locking_disabled() {
        let bytes = hex(include_str!(
            "../../tests/fixtures/disk_encryption/opal-level0-nvme-locking-disabled.hex"
        ));
        let level0 = parse_level0(&bytes).unwrap();
        assert_eq!(level0.version, (0, 1));
        assert_eq!(
            level0.features,
            vec![0x0001, 0x0002, 0x0003, 0x0201, 0x0202]
        );
        assert!(level0.truncated);
        let locking = level0.locking.unwrap();
        assert!(locking.supported && !locking.enabled && !locking.locked);
        assert_eq!(locking.media_encryption, Some(true));
        assert!(!locking.protects());
    }

    /// A real SATA Opal 2.0 drive set up with sedutil: locking enabled, shadow MBR enabled
    /// and done (unlocked by the pre-boot image).
    #[test]
    fn sata_drive_with_locking_enabled() {
        let bytes = hex(include_str!(
            "../../tests/fixtures/disk_encryption/opal-level0-sata-locking-enabled.hex"
        ));
        let level0 = parse_level0(&bytes).unwrap();
        assert_eq!(level0.ssc(), Some("Opal 2.0"));
        assert_eq!(
            level0.features,
            vec![0x0001, 0x0002, 0x0203, 0x0201, 0x0202, 0xc001]
        );
        let locking = level0.locking.unwrap();
        assert!(locking.protects());
        assert!(locking.mbr_enabled && locking.mbr_done && !locking.locked);
        assert_eq!(locking.media_encryption, Some(true));
    }

    #[test]
    fn short_or_empty_responses_are_errors() {
        assert!(parse_level0(&[0; 10]).is_err());
        let mut header = vec![0u8; 48];
        header[3] = 0x10; // length 16: less than the header
        assert!(parse_level0(&header).is_err());
    }
}
