//! Pure parsers of `/proc/self/mountinfo` and `/proc/swaps`, and the rules that decide
//! which mounts hold data at rest.

/// One line of `/proc/self/mountinfo` (proc(5)), with escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Major device number of the filesystem (field 3). `0` for filesystems without a
    /// block device of their own (tmpfs, nfs, btrfs and zfs use anonymous numbers).
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// The directory of the filesystem that forms the root of this mount (field 4);
    /// not `/` for bind mounts and btrfs subvolumes.
    pub root: String,
    /// Where it is mounted (field 5).
    pub mount_point: String,
    /// Filesystem type, e.g. `ext4`, `fuse.sshfs`.
    pub fstype: String,
    /// The mount source, e.g. `/dev/mapper/vg-root`, `rpool/ROOT/ubuntu`, `server:/export`.
    pub source: String,
}

/// Parses mountinfo. Lines that do not have the documented shape are returned as errors
/// (line number and text) so the caller can report them instead of skipping silently.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_mountinfo_line(line)
            .ok_or_else(|| format!("mountinfo line {} is malformed: {line}", index + 1))?;
        mounts.push(parsed);
    }
    Ok(mounts)
}

fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    // id parent major:minor root mount_point options [optional...] - fstype source super
    let separator = fields.iter().position(|f| *f == "-")?;
    if separator < 6 || fields.len() < separator + 3 {
        return None;
    }
    let (major, minor) = fields.get(2)?.split_once(':')?;
    Some(Mount {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root: unescape(fields.get(3)?),
        mount_point: unescape(fields.get(4)?),
        fstype: unescape(fields.get(separator + 1)?),
        source: unescape(fields.get(separator + 2)?),
    })
}

/// Decodes the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash)
/// the kernel uses in mountinfo and `/proc/swaps`.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One active swap area from `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    /// The device or file, e.g. `/dev/dm-2`, `/swapfile`, `/dev/zram0`.
    pub filename: String,
    /// `partition` (a block device) or `file`.
    pub kind: String,
}

/// Parses `/proc/swaps`: a header line, then `Filename Type Size Used Priority`.
pub fn parse_swaps(text: &str) -> Result<Vec<SwapArea>, String> {
    let mut areas = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if index == 0 || line.trim().is_empty() {
            // The first line is the header ("Filename Type Size Used Priority").
            continue;
        }
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some(filename), Some(kind)) => areas.push(SwapArea {
                filename: unescape(filename),
                kind: kind.to_owned(),
            }),
            _ => {
                return Err(format!(
                    "/proc/swaps line {} is malformed: {line}",
                    index + 1
                ))
            }
        }
    }
    Ok(areas)
}

/// What to do with a mount, decided from its type and place alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountClass {
    /// A kernel interface (proc, sysfs, cgroup, ...): holds no data, not reported.
    Pseudo,
    /// Not data at rest on this device's disks; reported under `ignored` with the reason.
    Ignored(&'static str),
    /// A ZFS dataset (the source is the dataset name).
    Zfs,
    /// A stacked file-level encryption filesystem (eCryptfs): it encrypts the files of
    /// one directory tree on another mount, never a whole volume.
    FileLevel(&'static str),
    /// A filesystem on block devices: resolve it.
    Block,
}

/// Kernel interfaces that never hold user data.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "pstore",
    "efivarfs",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "selinuxfs",
    "nfsd",
    "sockfs",
    "pipefs",
    "ramfs",
    "rootfs",
];

/// Network and host-shared filesystems: their data at rest is on another machine.
const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "9p",
    "virtiofs",
    "afs",
    "ncpfs",
    "lustre",
    "davfs",
    "fuse.sshfs",
    "fuse.glusterfs",
    "fuse.davfs2",
    "fuse.rclone",
    "fuse.s3fs",
    "fuse.cephfs",
];

/// Classifies a mount. `/` is never ignored: whatever it is, it is judged.
pub fn classify(mount: &Mount) -> MountClass {
    let fstype = mount.fstype.as_str();
    let point = mount.mount_point.as_str();
    if PSEUDO.contains(&fstype) && point != "/" {
        return MountClass::Pseudo;
    }
    if fstype == "zfs" {
        return MountClass::Zfs;
    }
    if point == "/" {
        return MountClass::Block;
    }
    if fstype == "ecryptfs" {
        return MountClass::FileLevel("ecryptfs");
    }
    if NETWORK.contains(&fstype) {
        return MountClass::Ignored("network filesystem: its data is stored on another machine");
    }
    if fstype == "tmpfs" {
        return MountClass::Ignored("tmpfs: in memory, gone at power-off");
    }
    if matches!(fstype, "squashfs" | "erofs") {
        return MountClass::Ignored("read-only image (snap, AppImage or live system)");
    }
    if matches!(fstype, "iso9660" | "udf") {
        return MountClass::Ignored("optical media");
    }
    if fstype == "overlay" {
        return MountClass::Ignored("overlay: its layers are directories on other mounts");
    }
    if fstype.starts_with("fuse.") {
        return MountClass::Ignored("FUSE filesystem: stored by a user-space program elsewhere");
    }
    if is_under(point, "/boot/efi") || is_under(point, "/efi") {
        return MountClass::Ignored("EFI system partition: boot loader only, cannot be encrypted");
    }
    if is_under(point, "/boot") {
        return MountClass::Ignored("boot partition: kernel and initramfs, holds no user data");
    }
    MountClass::Block
}

/// Whether `path` is `dir` or below it.
pub fn is_under(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/') || dir == "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_optional_fields_and_escapes() {
        // Captured from a Debian 12 laptop (trimmed), plus a mount point with a space.
        let text = "29 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw,errors=remount-ro\n\
                    97 29 0:45 / /media/me/My\\040Disk rw,nosuid master:3 shared:60 - vfat /dev/sdb1 rw\n";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!((mounts[0].major, mounts[0].minor), (253, 1));
        assert_eq!(mounts[0].fstype, "ext4");
        assert_eq!(mounts[0].source, "/dev/mapper/vg-root");
        assert_eq!(mounts[1].mount_point, "/media/me/My Disk");
        assert_eq!(mounts[1].fstype, "vfat");
    }

    #[test]
    fn malformed_mountinfo_is_an_error() {
        assert!(parse_mountinfo("29 1 253:1 / /\n").is_err());
    }

    #[test]
    fn parses_swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /dev/dm-2                               partition\t999420\t\t0\t\t-2\n\
                    /swap\\040file                           file\t\t1048572\t\t0\t\t-3\n";
        let areas = parse_swaps(text).unwrap();
        assert_eq!(areas.len(), 2);
        assert_eq!(areas[0].filename, "/dev/dm-2");
        assert_eq!(areas[0].kind, "partition");
        assert_eq!(areas[1].filename, "/swap file");
        assert_eq!(areas[1].kind, "file");
    }

    #[test]
    fn boot_and_efi_are_ignored_but_root_never_is() {
        let mount = |point: &str, fstype: &str| Mount {
            major: 259,
            minor: 1,
            root: "/".into(),
            mount_point: point.into(),
            fstype: fstype.into(),
            source: "/dev/nvme0n1p1".into(),
        };
        assert!(matches!(
            classify(&mount("/boot", "ext4")),
            MountClass::Ignored(_)
        ));
        assert!(matches!(
            classify(&mount("/boot/efi", "vfat")),
            MountClass::Ignored(_)
        ));
        assert_eq!(classify(&mount("/bootstrap", "ext4")), MountClass::Block);
        assert_eq!(classify(&mount("/", "tmpfs")), MountClass::Block);
        assert_eq!(classify(&mount("/home", "btrfs")), MountClass::Block);
        assert_eq!(classify(&mount("/proc", "proc")), MountClass::Pseudo);
    }
}
