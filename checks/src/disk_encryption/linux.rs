//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use std::cell::RefCell;

use serde::Serialize;
use serde_json::{json, Value};

use posture_core::{Finding, Remediation};

use crate::source::{list_dir, read_attr, read_prefix, read_text, SourceError};
use crate::Context;

const MOUNTINFO: &str = "/proc/self/mountinfo";
const SWAPS: &str = "/proc/swaps";
/// The device hibernation resumes from (`MAJ:MIN`, `0:0` when none is set).
const RESUME: &str = "/sys/power/resume";
/// How deep loop devices backed by files on other loop devices are followed.
const MAX_LOOP_DEPTH: usize = 4;

/// Where the Debian installer's guided encrypted setup is explained.
const DEBIAN_ENCRYPTION_URL: &str =
    "https://www.debian.org/releases/stable/amd64/ch06s03.en.html#partman-crypto";
/// `cryptsetup reencrypt`, for encrypting a volume in place.
const REENCRYPT_URL: &str = "https://man7.org/linux/man-pages/man8/cryptsetup-reencrypt.8.html";
/// Encrypted swap with crypttab.
const CRYPTTAB_URL: &str = "https://man7.org/linux/man-pages/man5/crypttab.5.html";

/// How a volume's data is protected at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// Every path to a physical device goes through encryption of these kinds
    /// (`luks2`, `plain`, `zfs-native`, ...).
    Encrypted(Vec<String>),
    /// Some data reaches a physical device in clear.
    Clear,
    /// Only in memory (zram without a writeback device): nothing at rest.
    Memory,
    /// Could not tell, and why.
    Unknown(String),
}

/// Judges a device stack. A loop device's backing file is not followed (see
/// [`protection_with`]).
pub fn protection(node: &BlockNode) -> Protection {
    protection_with(node, &|_| None)
}

/// Judges a device stack; `backing` judges the filesystem a loop device's backing file
/// lives on (`None`: not resolved, the loop device is then `unknown`).
pub fn protection_with(
    node: &BlockNode,
    backing: &dyn Fn(&str) -> Option<Protection>,
) -> Protection {
    match &node.layer {
        Layer::Dm {
            kind: DmKind::Crypt(kind),
            ..
        } => Protection::Encrypted(vec![kind.as_str().to_owned()]),
        Layer::Dm {
            kind: DmKind::NoUuid,
            name,
        } => match combine(&node.below, backing) {
            encrypted @ Protection::Encrypted(_) => encrypted,
            // Without a uuid the target could be dm-crypt set up by hand; its table is
            // only readable by root, so say we cannot tell rather than "clear".
            _ => Protection::Unknown(format!(
                "{} ({name}) is a device-mapper device without a uuid; its target type is only visible to root (`dmsetup table`)",
                node.name
            )),
        },
        // A loop device is as protected as the filesystem its backing file is on: an
        // encrypted container file on a plain disk is encrypted above the loop device (a
        // dm-crypt layer) and the plain disk is judged as its own mount.
        Layer::Loop(file) => file
            .as_deref()
            .and_then(backing)
            .unwrap_or_else(|| {
                Protection::Unknown(format!(
                    "{} is a loop device backed by {}, on a filesystem that was not resolved",
                    node.name,
                    file.as_deref().unwrap_or("an unknown file")
                ))
            }),
        Layer::Zram if node.below.is_empty() => Protection::Memory,
        Layer::Partition(_) | Layer::Disk(_) if node.below.is_empty() => {
            Protection::Clear
        }
        _ if node.below.is_empty() => Protection::Unknown(format!(
            "{} lists no underlying devices in sysfs",
            node.name
        )),
        _ => combine(&node.below, backing),
    }
}

/// Combines the stacks a device is built on: one clear path means data in clear.
fn combine(nodes: &[BlockNode], backing: &dyn Fn(&str) -> Option<Protection>) -> Protection {
    let judged: Vec<Protection> = nodes.iter().map(|n| protection_with(n, backing)).collect();
    if judged.is_empty() {
        return Protection::Unknown("no devices".to_owned());
    }
    if judged.contains(&Protection::Clear) {
        return Protection::Clear;
    }
    if let Some(Protection::Unknown(reason)) =
        judged.iter().find(|p| matches!(p, Protection::Unknown(_)))
    {
        return Protection::Unknown(reason.clone());
    }
    let mut kinds: Vec<String> = judged
        .into_iter()
        .flat_map(|p| match p {
            Protection::Encrypted(kinds) => kinds,
            _ => Vec::new(),
        })
        .collect();
    if kinds.is_empty() {
        return Protection::Memory;
    }
    kinds.sort();
    kinds.dedup();
    Protection::Encrypted(kinds)
}

/// One persistent volume and how it is protected.
#[derive(Debug, Clone)]
struct Volume {
    mount_point: String,
    /// Further mount points of the same filesystem (bind mounts, btrfs subvolumes).
    also_mounted_at: Vec<String>,
    fstype: String,
    source: String,
    chain: Vec<String>,
    protection: Protection,
    /// Number of fscrypt policies found on the filesystem (directories it encrypts).
    fscrypt_policies: usize,
    zfs: Option<ZfsEncryption>,
    /// The dm-crypt layers of its stack, with cipher and key size where the header says.
    crypt_layers: Vec<CryptLayer>,
}

/// One dm-crypt layer of a device stack: which device encrypts, in which format, with
/// which cipher and key size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CryptLayer {
    /// The dm device (`dm-0`).
    pub device: String,
    /// `luks1`, `luks2`, `plain`, ...
    pub format: String,
    /// The device under the mapping, where a LUKS header is looked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_device: Option<String>,
    /// What the header says (cipher, key bits, integrity), when it was read.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub params: Option<LuksParams>,
    /// Where the header is: `on device`, `detached: ...`, `not read: ...`.
    pub header: String,
    /// Why the cipher is weak, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weakness: Option<String>,
    /// Set when the layer is below a loop device: the loop's backing file, which lives on
    /// a filesystem this layer encrypts (`/mnt/data/disk.img`; `A -> B` when the
    /// filesystem holding A is itself on a loop file B).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_loop_file: Option<String>,
}

/// The dm-crypt layers of a stack, top down, with their LUKS headers read.
fn crypt_layers(ctx: &Context, node: &BlockNode, out: &mut Vec<CryptLayer>) {
    if let Layer::Dm {
        name,
        kind: DmKind::Crypt(kind),
    } = &node.layer
    {
        out.push(read_crypt_layer(ctx, node, name, *kind));
    }
    for below in &node.below {
        crypt_layers(ctx, below, out);
    }
}

/// `mapper_name` is the mapping's `dm/name`, as sysfs gave it for `node`.
fn read_crypt_layer(
    ctx: &Context,
    node: &BlockNode,
    mapper_name: &str,
    kind: CryptKind,
) -> CryptLayer {
    // With LUKS2 authenticated encryption, cryptsetup puts a dm-integrity device
    // (`CRYPT-SUBDEV-…`, `<name>_dif`) between dm-crypt and the disk; the header is on the
    // disk, below it.
    let mut below = node.below.first();
    while let Some(Layer::Dm {
        kind: DmKind::PassThrough(what),
        ..
    }) = below.map(|b| &b.layer)
    {
        if !what.starts_with("dm-crypt ") {
            break;
        }
        below = below.and_then(|b| b.below.first());
    }
    let header_device = below.map(|b| b.name.clone());
    let mut layer = CryptLayer {
        device: node.name.clone(),
        format: kind.as_str().to_owned(),
        header_device: header_device.clone(),
        params: None,
        header: String::new(),
        weakness: None,
        via_loop_file: None,
    };
    if !matches!(kind, CryptKind::Luks1 | CryptKind::Luks2) {
        layer.header = "no LUKS header".to_owned();
        from_dm_table(ctx, mapper_name, kind, &mut layer);
        return layer;
    }
    let Some(device) = header_device else {
        layer.header = "not read: no device below the mapping in sysfs".to_owned();
        return layer;
    };
    match read_luks_header(ctx, &format!("/dev/{device}")) {
        Ok(params) => {
            layer.weakness = params.weakness();
            layer.params = Some(params);
            layer.header = "on device".to_owned();
        }
        Err(HeaderRead::Detached) => {
            layer.header = format!(
                "detached: {device} does not start with a LUKS header (it is kept elsewhere, `cryptsetup --header`)"
            );
            from_dm_table(ctx, mapper_name, kind, &mut layer);
        }
        Err(HeaderRead::Failed(reason)) => layer.header = format!("not read: {reason}"),
    }
    layer
}

/// For a mapping without a readable header (plain dm-crypt, a detached LUKS header): the
/// cipher and key size from the kernel's dm table (root, live system), judged like a
/// header's; otherwise the layer says why they are not known.
fn from_dm_table(ctx: &Context, mapper_name: &str, kind: CryptKind, layer: &mut CryptLayer) {
    let table = if ctx.live {
        super::dm_table::read_crypt_table(mapper_name)
    } else {
        Err("the kernel's dm table is read on the live system only".to_owned())
    };
    match table {
        Ok(table) => {
            let params = LuksParams {
                version: match kind {
                    CryptKind::Luks1 => 1,
                    CryptKind::Luks2 => 2,
                    _ => 0,
                },
                cipher: table.cipher,
                key_bits: table.key_bits,
                integrity: table.integrity,
            };
            layer.weakness = params.weakness();
            layer.params = Some(params);
            layer
                .header
                .push_str("; cipher and key size from the kernel's dm table");
        }
        Err(why) => layer
            .header
            .push_str(&format!("; the cipher is not known: {why}")),
    }
}

enum HeaderRead {
    Detached,
    Failed(String),
}

/// Reads the LUKS header at the start of a block device (needs root).
fn read_luks_header(ctx: &Context, dev: &str) -> Result<LuksParams, HeaderRead> {
    let failed = |e: SourceError| HeaderRead::Failed(e.to_string());
    let first = read_prefix(ctx, dev, luks::BINARY_HEADER_LEN as u64).map_err(failed)?;
    let header = match luks::luks2_header_len(&first) {
        Err(HeaderError::NotLuks) => return Err(HeaderRead::Detached),
        Err(HeaderError::Malformed(why)) => return Err(HeaderRead::Failed(why)),
        Ok(None) => first,
        Ok(Some(size)) => read_prefix(ctx, dev, size).map_err(failed)?,
    };
    match parse_header(&header) {
        Ok(params) => Ok(params),
        Err(HeaderError::NotLuks) => Err(HeaderRead::Detached),
        Err(HeaderError::Malformed(why)) => Err(HeaderRead::Failed(why)),
    }
}

impl Volume {
    fn weaknesses(&self) -> Vec<String> {
        self.crypt_layers
            .iter()
            .filter_map(|l| l.weakness.as_ref().map(|w| format!("{}: {w}", l.device)))
            .collect()
    }

    fn status(&self) -> &'static str {
        match self.protection {
            Protection::Encrypted(_) if !self.weaknesses().is_empty() => "fail",
            Protection::Encrypted(_) => "pass",
            Protection::Clear => "fail",
            Protection::Memory | Protection::Unknown(_) => "unknown",
        }
    }

    fn encryption(&self) -> String {
        match &self.protection {
            Protection::Encrypted(kinds) => kinds.join("+"),
            Protection::Clear if self.fscrypt_policies > 0 => "fscrypt".to_owned(),
            Protection::Clear => "none".to_owned(),
            Protection::Memory | Protection::Unknown(_) => "unknown".to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        let mut value = json!({
            "mount_point": self.mount_point,
            "also_mounted_at": self.also_mounted_at,
            "fstype": self.fstype,
            "source": self.source,
            "device_chain": self.chain,
            "encryption": self.encryption(),
            "full_volume": matches!(self.protection, Protection::Encrypted(_)),
            "fscrypt": self.fscrypt_policies > 0,
            "crypt_layers": self.crypt_layers,
            "status": self.status(),
        });
        if let (Protection::Unknown(reason), Some(map)) = (&self.protection, value.as_object_mut())
        {
            map.insert("reason".to_owned(), reason.clone().into());
        }
        if let (Some(zfs), Some(map)) = (&self.zfs, value.as_object_mut()) {
            map.insert("zfs_encryption".to_owned(), zfs.encryption.clone().into());
            map.insert("zfs_keystatus".to_owned(), zfs.keystatus.clone().into());
        }
        value
    }
}

/// fscrypt (the `fscrypt` tool) keeps its policies in `<mount root>/.fscrypt/policies`.
fn fscrypt_policies(ctx: &Context, mount_point: &str) -> usize {
    let dir = format!("{}/.fscrypt/policies", mount_point.trim_end_matches('/'));
    list_dir(ctx, dir).map(|p| p.len()).unwrap_or(0)
}

enum Outcome {
    Volume(Box<Volume>),
    Ignored(String),
}

/// The protection of the filesystem holding `file`: the mount with the longest mount
/// point containing it (other than `exclude`), judged the same way.
fn backing_file_protection(
    ctx: &Context,
    file: &str,
    mounts: &[Mount],
    exclude: &str,
    depth: usize,
) -> Option<Protection> {
    backing_file_volume(ctx, file, mounts, exclude, depth).map(|(protection, _)| protection)
}

/// Like [`backing_file_protection`], with the encryption layers of that filesystem (so a
/// volume on a loop file names the layer that actually encrypts it).
fn backing_file_volume(
    ctx: &Context,
    file: &str,
    mounts: &[Mount],
    exclude: &str,
    depth: usize,
) -> Option<(Protection, Vec<CryptLayer>)> {
    if depth >= MAX_LOOP_DEPTH {
        return None;
    }
    let holder = mounts
        .iter()
        .filter(|m| m.mount_point != exclude && mounts::is_under(file, &m.mount_point))
        .max_by_key(|m| m.mount_point.len())?;
    let outcome = match classify(holder) {
        MountClass::Pseudo | MountClass::FileLevel(_) => return None,
        MountClass::Ignored(why) => {
            return Some((
                Protection::Unknown(format!(
                    "loop backing file {file} is on {}: {why}",
                    holder.mount_point
                )),
                Vec::new(),
            ))
        }
        MountClass::Zfs => Outcome::Volume(Box::new(zfs_volume(ctx, holder))),
        MountClass::Block => block_volume(ctx, holder, mounts, depth + 1),
    };
    match outcome {
        Outcome::Volume(volume) => Some((volume.protection, volume.crypt_layers)),
        Outcome::Ignored(why) => Some((
            Protection::Unknown(format!(
                "loop backing file {file} is on {}: {why}",
                holder.mount_point
            )),
            Vec::new(),
        )),
    }
}

fn block_volume(ctx: &Context, mount: &Mount, mounts: &[Mount], depth: usize) -> Outcome {
    let is_root = mount.mount_point == "/";
    // The layers of the filesystems that loop backing files live on, when they encrypt:
    // they are this volume's encryption layers too.
    let carried: RefCell<Vec<CryptLayer>> = RefCell::new(Vec::new());
    let backing = |file: &str| {
        let (protection, layers) =
            backing_file_volume(ctx, file, mounts, &mount.mount_point, depth)?;
        if matches!(protection, Protection::Encrypted(_)) {
            carried
                .borrow_mut()
                .extend(layers.into_iter().map(|mut layer| {
                    layer.via_loop_file = Some(match layer.via_loop_file.take() {
                        Some(deeper) => format!("{file} -> {deeper}"),
                        None => file.to_owned(),
                    });
                    layer
                }));
        }
        Some(protection)
    };
    let nodes: Result<Vec<BlockNode>, String> = if mount.major != 0 {
        sysfs::read_devnum(ctx, mount.major, mount.minor).map(|n| vec![n])
    } else if mount.source.starts_with("/dev/") {
        // btrfs, bcachefs and fuseblk have anonymous device numbers: the source names
        // the device (bcachefs joins several with ':'), and btrfs lists its members.
        read_source_devices(ctx, mount)
    } else if is_root {
        Err(format!(
            "the root filesystem is {} from `{}`, not a block device; its backing store is not resolved",
            mount.fstype, mount.source
        ))
    } else {
        return Outcome::Ignored(format!(
            "{} from `{}` has no block device behind it",
            mount.fstype, mount.source
        ));
    };
    let mut layers = Vec::new();
    let (chain, protection) = match nodes {
        Err(reason) => (Vec::new(), Protection::Unknown(reason)),
        Ok(nodes) => {
            // Desktops mount plugged-in media below /media or /run/media; a USB disk
            // mounted elsewhere (say /home) is treated as the fixed disk it acts as.
            let media_dir = ["/media", "/run/media"]
                .iter()
                .any(|dir| mounts::is_under(&mount.mount_point, dir));
            if !is_root && nodes.iter().all(|n| n.all_removable(media_dir)) {
                let names: Vec<String> = nodes.iter().flat_map(BlockNode::chain).collect();
                return Outcome::Ignored(format!("removable media ({})", names.join(", ")));
            }
            let protection = match combine(&nodes, &backing) {
                Protection::Memory if !is_root => {
                    return Outcome::Ignored("in memory (zram), gone at power-off".to_owned())
                }
                Protection::Memory => {
                    Protection::Unknown("the root filesystem is on zram (in memory)".to_owned())
                }
                other => other,
            };
            for node in &nodes {
                crypt_layers(ctx, node, &mut layers);
            }
            layers.extend(carried.take());
            let mut protection = protection;
            if protection == Protection::Clear && mount.fstype == "bcachefs" {
                let (native, native_layers) = bcachefs_native(ctx, &nodes);
                protection = native;
                layers.extend(native_layers);
            }
            if protection == Protection::Clear {
                protection = opal_protection(ctx, &nodes, &mut layers);
            }
            (
                nodes.iter().flat_map(BlockNode::chain).collect(),
                protection,
            )
        }
    };
    Outcome::Volume(Box::new(Volume {
        mount_point: mount.mount_point.clone(),
        also_mounted_at: Vec::new(),
        fstype: mount.fstype.clone(),
        source: mount.source.clone(),
        chain,
        protection,
        fscrypt_policies: fscrypt_policies(ctx, &mount.mount_point),
        zfs: None,
        crypt_layers: layers,
    }))
}

/// The physical disks reached by paths of a stack that pass no encryption layer, as
/// `(kernel name, sysfs directory)`. `false` when such a path goes through something a
/// disk's hardware encryption cannot be credited to (a loop device's backing file).
fn clear_disks(node: &BlockNode, out: &mut Vec<(String, String)>) -> bool {
    match &node.layer {
        Layer::Dm {
            kind: DmKind::Crypt(_),
            ..
        } => true,
        Layer::Loop(_) => false,
        Layer::Zram if node.below.is_empty() => true,
        Layer::Disk(_) if node.below.is_empty() => {
            out.push((node.name.clone(), node.sys_path.clone()));
            true
        }
        Layer::Partition(_) if node.below.is_empty() => {
            // A partition's directory is inside its disk's directory.
            let disk = std::path::Path::new(&node.sys_path).parent();
            match disk.and_then(|d| Some((d.file_name()?.to_str()?, d.to_str()?))) {
                Some((name, path)) => {
                    out.push((name.to_owned(), path.to_owned()));
                    true
                }
                None => false,
            }
        }
        _ => !node.below.is_empty() && node.below.iter().all(|b| clear_disks(b, out)),
    }
}

/// A stack judged clear is still protected at rest when every disk its clear paths reach
/// is a self-encrypting drive with Opal locking enabled. Records what was found for each
/// disk (also when it does not help) in `layers`.
fn opal_protection(ctx: &Context, nodes: &[BlockNode], layers: &mut Vec<CryptLayer>) -> Protection {
    let mut disks = Vec::new();
    if !nodes.iter().all(|n| clear_disks(n, &mut disks)) || disks.is_empty() {
        return Protection::Clear;
    }
    disks.sort();
    disks.dedup();
    let mut all_locking = true;
    for (disk, sys_path) in &disks {
        let state = opal::read_status(ctx, disk, sys_path);
        let header = match &state {
            OpalState::Read(l) if l.protects() => format!(
                "self-encrypting drive (Opal), locking enabled{}; the drive encrypts with its own media key (it reports neither cipher nor key size); whether each locking range locks on power loss (LockOnReset) is readable only with the drive's Admin1 credential, not verified (Opal's default is power cycle)",
                if l.mbr_enabled { ", shadow MBR (pre-boot unlock) enabled" } else { "" }
            ),
            OpalState::Read(_) => "Opal drive with locking not enabled: its media key is not protected, so the data reads back in clear".to_owned(),
            OpalState::NotApplicable(why) => format!("no Opal: {why}"),
            OpalState::Unknown(why) => format!("Opal state not read: {why}"),
        };
        all_locking &= matches!(&state, OpalState::Read(l) if l.protects());
        layers.push(CryptLayer {
            device: disk.clone(),
            format: "opal".to_owned(),
            header_device: None,
            params: None,
            header,
            weakness: None,
            via_loop_file: None,
        });
    }
    if all_locking {
        Protection::Encrypted(vec!["opal".to_owned()])
    } else {
        Protection::Clear
    }
}

/// bcachefs native encryption of a filesystem whose devices are not under dm-crypt: the
/// superblock of each member device (needs root).
fn bcachefs_native(ctx: &Context, nodes: &[BlockNode]) -> (Protection, Vec<CryptLayer>) {
    let mut layers = Vec::new();
    let mut all_encrypted = true;
    for node in nodes {
        let dev = format!("/dev/{}", node.name);
        let parsed = read_prefix(ctx, &dev, bcachefs::READ_LEN)
            .map_err(|e| e.to_string())
            .and_then(|bytes| parse_superblock(&bytes));
        match parsed {
            Err(reason) => {
                return (
                    Protection::Unknown(format!(
                        "bcachefs native encryption is recorded in the superblock of {dev}, which was not read: {reason}"
                    )),
                    layers,
                )
            }
            Ok(sb) if sb.is_encrypted() => layers.push(CryptLayer {
                device: node.name.clone(),
                format: "bcachefs-native".to_owned(),
                header_device: None,
                params: Some(LuksParams {
                    version: 0,
                    cipher: "chacha20-poly1305".to_owned(),
                    key_bits: 256,
                    integrity: None,
                }),
                header: format!(
                    "bcachefs superblock (format {}) has a crypt field",
                    sb.version_text()
                ),
                weakness: None,
                via_loop_file: None,
            }),
            Ok(_) => all_encrypted = false,
        }
    }
    if all_encrypted && !layers.is_empty() {
        (
            Protection::Encrypted(vec!["bcachefs-native".to_owned()]),
            layers,
        )
    } else {
        (Protection::Clear, Vec::new())
    }
}

fn read_source_devices(ctx: &Context, mount: &Mount) -> Result<Vec<BlockNode>, String> {
    let mut nodes = Vec::new();
    for device in mount.source.split(':') {
        let node = sysfs::read_dev_path(ctx, device)?;
        if mount.fstype == "btrfs" {
            let members = sysfs::btrfs_members(ctx, &node.name);
            if members.len() > 1 {
                for member in members {
                    nodes.push(sysfs::read_name(ctx, &member)?);
                }
                continue;
            }
        }
        nodes.push(node);
    }
    Ok(nodes)
}

fn zfs_volume(ctx: &Context, mount: &Mount) -> Volume {
    let dataset = mount.source.clone();
    let mut chain = vec![format!("{dataset} (ZFS dataset)")];
    let mut layers = Vec::new();
    let (protection, zfs) = match zfs::read_zfs_encryption(ctx, &dataset) {
        Ok(props) if props.is_encrypted() => {
            layers.push(CryptLayer {
                device: dataset.clone(),
                format: "zfs-native".to_owned(),
                header_device: None,
                params: Some(LuksParams {
                    version: 0,
                    cipher: props.encryption.clone(),
                    key_bits: props.key_bits(),
                    integrity: None,
                }),
                header: format!("ZFS dataset property, key {}", props.keystatus),
                weakness: props.weakness(),
                via_loop_file: None,
            });
            (
                Protection::Encrypted(vec![format!("zfs-native ({})", props.encryption)]),
                Some(props),
            )
        }
        Ok(props) => {
            // No native encryption: the pool's devices may be encrypted (ZFS on LUKS).
            let pool = dataset.split('/').next().unwrap_or(&dataset).to_owned();
            let protection = zfs_pool_protection(ctx, &pool, &mut chain, &mut layers);
            (protection, Some(props))
        }
        Err(reason) => (Protection::Unknown(reason), None),
    };
    Volume {
        mount_point: mount.mount_point.clone(),
        also_mounted_at: Vec::new(),
        fstype: mount.fstype.clone(),
        source: dataset.clone(),
        chain,
        protection,
        fscrypt_policies: 0,
        zfs,
        crypt_layers: layers,
    }
}

/// How a pool's devices protect it: every leaf vdev resolved through sysfs and judged as
/// a block device stack (dm-crypt, or an Opal drive with locking enabled).
fn zfs_pool_protection(
    ctx: &Context,
    pool: &str,
    chain: &mut Vec<String>,
    layers: &mut Vec<CryptLayer>,
) -> Protection {
    let vdevs = match zfs::read_pool_vdevs(ctx, pool) {
        Ok(vdevs) => vdevs,
        Err(reason) => {
            return Protection::Unknown(format!(
                "the dataset has no ZFS native encryption and its pool's devices were not read: {reason}"
            ))
        }
    };
    let mut nodes = Vec::new();
    for vdev in vdevs {
        let path = zfs::vdev_path(ctx, &vdev);
        match sysfs::read_dev_path(ctx, &path) {
            Ok(node) => nodes.push(node),
            Err(reason) => {
                return Protection::Unknown(format!("ZFS pool {pool}: vdev {vdev}: {reason}"))
            }
        }
    }
    chain.extend(nodes.iter().flat_map(BlockNode::chain));
    for node in &nodes {
        crypt_layers(ctx, node, layers);
    }
    match combine(&nodes, &|_| None) {
        Protection::Clear => opal_protection(ctx, &nodes, layers),
        other => other,
    }
}

/// Whether two mounts show the same filesystem: same superblock device and source.
/// ZFS datasets are separate volumes (each has its own encryption property).
fn same_filesystem(a: &Mount, b: &Mount) -> bool {
    a.fstype != "zfs"
        && (a.major, a.minor) == (b.major, b.minor)
        && a.fstype == b.fstype
        && a.source == b.source
}

/// One active swap area and how it is protected.
struct Swap {
    filename: String,
    kind: String,
    chain: Vec<String>,
    protection: Protection,
    /// The encryption layers, as for a volume (a swap file: its filesystem's).
    crypt_layers: Vec<CryptLayer>,
}

impl Swap {
    fn to_json(&self) -> Value {
        let encryption = match &self.protection {
            Protection::Encrypted(kinds) => kinds.join("+"),
            Protection::Clear => "none".to_owned(),
            Protection::Memory => "zram (in memory)".to_owned(),
            Protection::Unknown(_) => "unknown".to_owned(),
        };
        let mut value = json!({
            "filename": self.filename,
            "type": self.kind,
            "device_chain": self.chain,
            "encryption": encryption,
            "crypt_layers": self.crypt_layers,
        });
        if let (Protection::Unknown(reason), Some(map)) = (&self.protection, value.as_object_mut())
        {
            map.insert("reason".to_owned(), reason.clone().into());
        }
        value
    }
}

fn read_swap(
    ctx: &Context,
    mount_points: &[String],
    volumes: &[Volume],
) -> Result<Vec<Swap>, String> {
    let text = read_text(ctx, SWAPS).map_err(|e| e.to_string())?;
    let areas = parse_swaps(&text)?;
    Ok(areas
        .into_iter()
        .map(|area| {
            let mut layers = Vec::new();
            let (chain, protection) = if area.kind == "partition" {
                match sysfs::read_dev_path(ctx, &area.filename) {
                    Ok(node) => {
                        crypt_layers(ctx, &node, &mut layers);
                        (node.chain(), protection(&node))
                    }
                    Err(reason) => (Vec::new(), Protection::Unknown(reason)),
                }
            } else {
                // A swap file is as safe as the filesystem it lives on: the mount with
                // the longest mount point containing it, among all mounts (so a file on
                // an ignored USB disk is not credited to `/`).
                let holder = mount_points
                    .iter()
                    .filter(|point| mounts::is_under(&area.filename, point))
                    .max_by_key(|point| point.len())
                    .and_then(|point| {
                        volumes
                            .iter()
                            .find(|v| v.mount_point == *point || v.also_mounted_at.contains(point))
                    });
                match holder {
                    Some(volume) => {
                        let mut chain = vec![format!("file on {}", volume.mount_point)];
                        chain.extend(volume.chain.iter().cloned());
                        layers.clone_from(&volume.crypt_layers);
                        (chain, volume.protection.clone())
                    }
                    None => (
                        Vec::new(),
                        Protection::Unknown(format!(
                            "swap file {} is not on a filesystem that was resolved",
                            area.filename
                        )),
                    ),
                }
            };
            Swap {
                filename: area.filename,
                kind: area.kind,
                chain,
                protection,
                crypt_layers: layers,
            }
        })
        .collect())
}

fn swap_state(swaps: &[Swap]) -> &'static str {
    if swaps.is_empty() {
        "none"
    } else if swaps.iter().any(|s| s.protection == Protection::Clear) {
        "unencrypted"
    } else if swaps
        .iter()
        .any(|s| matches!(s.protection, Protection::Unknown(_)))
    {
        "unknown"
    } else if swaps.iter().all(|s| s.protection == Protection::Memory) {
        "zram"
    } else {
        "encrypted"
    }
}

/// A failure: a short name for the summary, a paragraph for the remediation.
struct Problem {
    what: String,
    fix: String,
    url: &'static str,
}

fn volume_problem(volume: &Volume) -> Problem {
    let device = volume
        .chain
        .last()
        .cloned()
        .unwrap_or_else(|| volume.source.clone());
    let what = format!("{} ({device})", volume.mount_point);
    if volume.zfs.is_some() {
        return Problem {
            fix: format!(
                "ZFS dataset {} ({}) is not encrypted, and neither are its pool's devices (no dm-crypt under them). ZFS encryption is chosen when a dataset is created: create an encrypted dataset (`zfs create -o encryption=on -o keyformat=passphrase <pool>/<name>`), copy the data into it (`zfs send | zfs recv`) and destroy the old one, after a backup.",
                volume.source, volume.mount_point
            ),
            what,
            url: "https://openzfs.github.io/openzfs-docs/man/master/7/zfsprops.7.html#encryption",
        };
    }
    // fscrypt encrypts the contents and names of chosen directories only; everything
    // else on the filesystem (/etc, /var, logs, caches, other users' files), all file
    // metadata (sizes, times, permissions) and the directory tree stay readable to
    // anyone with the disk. That is not full-volume encryption, so it does not pass.
    let fscrypt_note = if volume.fscrypt_policies > 0 {
        format!(
            " fscrypt is set up on {} but protects only the directories it was applied to; the rest of the filesystem and all file metadata stay readable.",
            volume.mount_point
        )
    } else {
        String::new()
    };
    if volume.mount_point == "/" {
        Problem {
            fix: format!(
                "The system disk (/ on {device}) is not encrypted: anyone who takes the laptop or its disk can read every file.{fscrypt_note} Back up your data, then reinstall with full-disk encryption (in the Debian or Ubuntu installer choose the guided \"encrypted LVM\" / \"encrypt the new installation\" option, which sets up LUKS). Encrypting in place is possible with `cryptsetup reencrypt --encrypt --reduce-device-size 32M <device>` from a live system, but only with a verified backup first, and /etc/crypttab and the initramfs must then be updated."
            ),
            what,
            url: DEBIAN_ENCRYPTION_URL,
        }
    } else {
        Problem {
            fix: format!(
                "The filesystem at {} (on {device}) is not encrypted.{fscrypt_note} Move its data into the encrypted system volume, or back it up and encrypt it in place (`cryptsetup reencrypt --encrypt --reduce-device-size 32M <device>`, then add it to /etc/crypttab).",
                volume.mount_point
            ),
            what,
            url: REENCRYPT_URL,
        }
    }
}

const WEAK_SUFFIX: &str = " (weak cipher)";

fn weak_cipher_problem(volume: &Volume, weak: &[String]) -> Problem {
    if volume.zfs.is_some() {
        return Problem {
            what: format!("{}{WEAK_SUFFIX}", volume.mount_point),
            fix: format!(
                "ZFS dataset {} ({}) is encrypted with a weak cipher ({}). ZFS fixes a dataset's cipher when it is created: create a new dataset with the current default (`zfs create -o encryption=aes-256-gcm -o keyformat=passphrase <pool>/<name>`), copy the data into it and destroy the old one, after a backup.",
                volume.source,
                volume.mount_point,
                weak.join("; ")
            ),
            url: "https://openzfs.github.io/openzfs-docs/man/master/7/zfsprops.7.html#encryption",
        };
    }
    Problem {
        what: format!("{}{WEAK_SUFFIX}", volume.mount_point),
        fix: format!(
            "{} is encrypted with a weak cipher ({}). Re-encrypt it in place with the current default, after a backup: `cryptsetup reencrypt --cipher aes-xts-plain64 --key-size 512 <device>` (LUKS2; convert a LUKS1 header first with `cryptsetup convert --type luks2 <device>`).",
            volume.mount_point,
            weak.join("; ")
        ),
        url: REENCRYPT_URL,
    }
}

/// Where hibernation resumes from.
struct Hibernation {
    device: String,
    chain: Vec<String>,
    protection: Protection,
}

/// The kernel's resume device (`/sys/power/resume`, set from `resume=` or by the
/// initramfs): the hibernation image is written there.
fn read_hibernation(ctx: &Context, mounts: &[Mount]) -> Option<Hibernation> {
    let value = read_attr(ctx, RESUME).ok()?;
    let (major, minor) = value.split_once(':')?;
    let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
    if (major, minor) == (0, 0) {
        return None;
    }
    let device = format!("{major}:{minor}");
    Some(match sysfs::read_devnum(ctx, major, minor) {
        Ok(node) => Hibernation {
            device: format!("/dev/{}", node.name),
            chain: node.chain(),
            protection: protection_with(&node, &|file| {
                backing_file_protection(ctx, file, mounts, "", 0)
            }),
        },
        Err(reason) => Hibernation {
            device,
            chain: Vec::new(),
            protection: Protection::Unknown(reason),
        },
    })
}

fn swap_problem(swap: &Swap) -> Problem {
    Problem {
        what: format!("swap {}", swap.filename),
        fix: format!(
            "Swap on {} is not encrypted. The kernel writes memory there (open documents, passwords, keys), so data at rest leaks through swap even when every filesystem is encrypted. Encrypt it with a fresh random key at each boot (an /etc/crypttab line such as `cswap /dev/disk/by-partuuid/<id> /dev/urandom swap,cipher=aes-xts-plain64,size=512`, then use /dev/mapper/cswap in /etc/fstab), or put swap inside the encrypted volume (needed for hibernation), or replace it with zram.",
            swap.filename
        ),
        url: CRYPTTAB_URL,
    }
}

/// Runs the check.
pub(super) fn check(ctx: &Context) -> Finding {
    let text = match read_text(ctx, MOUNTINFO) {
        Ok(text) => text,
        Err(e) => return Finding::unknown(ID, e.to_string()).source(MOUNTINFO),
    };
    let all_mounts = match parse_mountinfo(&text) {
        Ok(mounts) => mounts,
        Err(reason) => return Finding::unknown(ID, reason).source(MOUNTINFO),
    };
    // A later mount on the same directory hides the earlier one.
    let mut mounts: Vec<Mount> = Vec::new();
    for mount in all_mounts {
        mounts.retain(|m| m.mount_point != mount.mount_point);
        mounts.push(mount);
    }

    let mut volumes: Vec<(Mount, Volume)> = Vec::new();
    let mut ignored = Vec::new();
    let mut file_level = Vec::new();
    let mut used_zfs = false;
    for mount in &mounts {
        // Bind mounts and btrfs subvolumes show the same filesystem again: one volume
        // with several mount points, and `/` as its name when it is one of them.
        if let Some((_, volume)) = volumes
            .iter_mut()
            .find(|(seen, _)| same_filesystem(seen, mount))
        {
            if mount.mount_point == "/" {
                let previous = std::mem::replace(&mut volume.mount_point, "/".to_owned());
                volume.also_mounted_at.push(previous);
            } else {
                volume.also_mounted_at.push(mount.mount_point.clone());
            }
            continue;
        }
        let outcome = match classify(mount) {
            MountClass::Pseudo => continue,
            MountClass::Ignored(why) => Outcome::Ignored(why.to_owned()),
            MountClass::Zfs => {
                used_zfs = true;
                Outcome::Volume(Box::new(zfs_volume(ctx, mount)))
            }
            MountClass::FileLevel(kind) => {
                // eCryptfs encrypts one directory tree (typically a home directory) on
                // another mount; that mount is judged on its own.
                file_level.push(json!({
                    "mount_point": mount.mount_point,
                    "kind": kind,
                    "lower_directory": mount.source,
                    "full_volume": false,
                }));
                continue;
            }
            MountClass::Block => block_volume(ctx, mount, &mounts, 0),
        };
        match outcome {
            Outcome::Volume(volume) => volumes.push((mount.clone(), *volume)),
            Outcome::Ignored(why) => ignored.push(json!({
                "mount_point": mount.mount_point,
                "fstype": mount.fstype,
                "source": mount.source,
                "why": why,
            })),
        }
    }

    let volumes: Vec<Volume> = volumes.into_iter().map(|(_, v)| v).collect();
    let mount_points: Vec<String> = mounts.iter().map(|m| m.mount_point.clone()).collect();
    let swap = read_swap(ctx, &mount_points, &volumes);

    let mut problems: Vec<Problem> = Vec::new();
    let mut unknowns: Vec<String> = Vec::new();
    let root = volumes.iter().find(|v| v.mount_point == "/");
    if root.is_none() {
        unknowns.push(format!("no filesystem is mounted at / in {MOUNTINFO}"));
    }
    for volume in &volumes {
        if volume.fscrypt_policies > 0 {
            file_level.push(json!({
                "mount_point": volume.mount_point,
                "kind": "fscrypt",
                "policies": volume.fscrypt_policies,
                "full_volume": false,
            }));
        }
        let weak = volume.weaknesses();
        if !weak.is_empty() && matches!(volume.protection, Protection::Encrypted(_)) {
            problems.push(weak_cipher_problem(volume, &weak));
        }
        match &volume.protection {
            Protection::Clear => problems.push(volume_problem(volume)),
            Protection::Unknown(reason) => {
                unknowns.push(format!("{}: {reason}", volume.mount_point))
            }
            Protection::Encrypted(_) | Protection::Memory => {}
        }
    }
    let swap_json = match &swap {
        Ok(swaps) => {
            for area in swaps {
                match &area.protection {
                    Protection::Clear => problems.push(swap_problem(area)),
                    Protection::Unknown(reason) => {
                        unknowns.push(format!("swap {}: {reason}", area.filename))
                    }
                    Protection::Encrypted(_) | Protection::Memory => {}
                }
            }
            json!({
                "state": swap_state(swaps),
                "areas": swaps.iter().map(Swap::to_json).collect::<Vec<_>>(),
            })
        }
        Err(reason) => {
            unknowns.push(format!("swap: {reason}"));
            json!({ "state": "unknown", "reason": reason })
        }
    };

    let hibernation = read_hibernation(ctx, &mounts);
    let hibernation_json = match &hibernation {
        None => json!({ "resume_device": null }),
        Some(h) => {
            match &h.protection {
                Protection::Clear => problems.push(Problem {
                    what: format!("hibernation image on {}", h.device),
                    fix: format!(
                        "Hibernation resumes from {} ({}), which is not encrypted: at hibernation the kernel writes all of memory there, including the disk encryption keys, so the encrypted volumes can be opened from this image. Put the resume swap inside the encrypted volume (swap on an LV of the LUKS volume, as the Debian installer's encrypted LVM does, or a swap file on the encrypted root) and update `resume=` / /etc/initramfs-tools/conf.d/resume, or disable hibernation.",
                        h.device,
                        h.chain.join(" -> ")
                    ),
                    url: CRYPTTAB_URL,
                }),
                Protection::Unknown(reason) => {
                    unknowns.push(format!("hibernation resume device {}: {reason}", h.device))
                }
                Protection::Encrypted(_) | Protection::Memory => {}
            }
            json!({
                "resume_device": h.device,
                "device_chain": h.chain,
                "encrypted": matches!(h.protection, Protection::Encrypted(_)),
            })
        }
    };
    let root_encryption = root.map_or_else(|| "unknown".to_owned(), Volume::encryption);
    let swap_state_text = swap_json
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let finding = if problems.is_empty() && unknowns.is_empty() {
        Finding::pass(
            ID,
            format!(
                "all {} persistent volumes are encrypted (/: {root_encryption}); swap: {swap_state_text}",
                volumes.len()
            ),
        )
    } else if problems.is_empty() {
        Finding::unknown(ID, unknowns.join("; "))
    } else {
        let what: Vec<&str> = problems.iter().map(|p| p.what.as_str()).collect();
        let fix: Vec<&str> = problems.iter().map(|p| p.fix.as_str()).collect();
        let url = problems.first().map_or(DEBIAN_ENCRYPTION_URL, |p| p.url);
        let (weak, clear): (Vec<&str>, Vec<&str>) =
            what.iter().partition(|w| w.ends_with(WEAK_SUFFIX));
        let weak: Vec<&str> = weak
            .iter()
            .map(|w| w.trim_end_matches(WEAK_SUFFIX))
            .collect();
        let summary = match (clear.is_empty(), weak.is_empty()) {
            (false, true) => format!("not encrypted: {}", clear.join(", ")),
            (true, _) => format!("encrypted with a weak cipher: {}", weak.join(", ")),
            (false, false) => format!(
                "not encrypted: {}; encrypted with a weak cipher: {}",
                clear.join(", "),
                weak.join(", ")
            ),
        };
        Finding::fail(ID, summary, Remediation::new(fix.join(" ")).with_url(url))
    };

    let mut finding = finding
        .observe("root", root_encryption)
        .observe(
            "volumes",
            volumes.iter().map(Volume::to_json).collect::<Vec<_>>(),
        )
        .observe("swap", swap_json)
        .observe("hibernation", hibernation_json)
        .observe("file_level", file_level)
        .observe("ignored", ignored)
        .source(MOUNTINFO)
        .source("/sys/dev/block")
        .source("/sys/class/block")
        .source(SWAPS)
        .source(RESUME);
    if volumes
        .iter()
        .any(|v| v.crypt_layers.iter().any(|l| l.format.starts_with("luks")))
    {
        finding =
            finding.source("LUKS header at the start of the device under each dm-crypt mapping");
    }
    if volumes
        .iter()
        .any(|v| v.crypt_layers.iter().any(|l| l.format == "opal"))
    {
        finding = finding.source("IOC_OPAL_GET_STATUS on each disk under an unencrypted stack");
    }
    if volumes.iter().any(|v| v.fstype == "bcachefs") {
        finding = finding.source("bcachefs superblock of each member device");
    }
    if volumes.iter().any(|v| v.fscrypt_policies > 0) {
        finding = finding.source("<mount point>/.fscrypt/policies");
    }
    if used_zfs {
        finding = finding
            .source("zfs get -H -o value encryption,keystatus <dataset>")
            .source("zpool status -P <pool> (datasets without native encryption)");
    }
    finding
}
