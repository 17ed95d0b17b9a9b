//! Reading the block device stack from sysfs, from a filesystem's device down to the
//! physical disks: device-mapper (`dm/uuid`, `slaves/`), md (`md/level`, `slaves/`),
//! partitions (a directory inside its disk's directory, with a `partition` file), loop
//! (`loop/backing_file`) and zram (`backing_dev`).
//!
//! Everything is read below the context root, so a test can build the same layout in a
//! temp dir. sysfs links are relative (`/sys/dev/block/253:0 -> ../../devices/virtual/
//! block/dm-0`), so canonicalising below the root follows them the same way the kernel's
//! tree does.

use std::path::{Component, Path, PathBuf};

use crate::source::{exists, list_dir, read_attr};
use crate::Context;

use super::dm::{classify_uuid, DmKind};

/// How deep a device stack may be before we call it a loop in the data.
const MAX_DEPTH: usize = 16;

/// One block device and what lies beneath it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockNode {
    /// Kernel name, e.g. `dm-0`, `nvme0n1p3`.
    pub name: String,
    /// Its sysfs directory as a system path, e.g. `/sys/devices/virtual/block/dm-0`.
    pub sys_path: String,
    /// What the device is.
    pub layer: Layer,
    /// The devices it is built on (dm/md `slaves`, a virtual disk under its partition,
    /// a zram device's writeback device).
    pub below: Vec<BlockNode>,
}

/// How a physical disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    /// Built in (or at least not known to be removable).
    Fixed,
    /// Removable media: the kernel's `removable` flag (card readers, USB sticks).
    Removable,
    /// On a USB bus without the `removable` flag: external USB disks report
    /// `removable` 0, but so would a USB disk used as a permanent data disk.
    Usb,
}

/// What a block device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// A device-mapper device: its `dm/name` and what its uuid says it is.
    Dm {
        /// `dm/name`, the `/dev/mapper` name.
        name: String,
        /// The classified `dm/uuid`.
        kind: DmKind,
    },
    /// An md RAID device with its `md/level`.
    Md(String),
    /// A loop device and its backing file, if bound.
    Loop(Option<String>),
    /// A zram (compressed RAM) device.
    Zram,
    /// A partition (of a physical disk unless `below` holds the virtual disk), and how
    /// its disk is attached.
    Partition(Attachment),
    /// A physical disk and how it is attached.
    Disk(Attachment),
    /// A stacking driver we do not know (e.g. bcache): judged by what lies below.
    Other,
}

impl BlockNode {
    /// The device stack in pre-order, one label per device, e.g.
    /// `["dm-1 (LVM)", "dm-0 (LUKS2)", "nvme0n1p3"]`. A device on several others (RAID,
    /// an LV spanning PVs) is followed by each of them in turn.
    pub fn chain(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.push_chain(&mut out);
        out
    }

    fn push_chain(&self, out: &mut Vec<String>) {
        let label = match &self.layer {
            Layer::Dm { kind, .. } => match kind {
                DmKind::Crypt(k) => format!("{} ({})", self.name, k.label()),
                DmKind::Lvm => format!("{} (LVM)", self.name),
                DmKind::PassThrough(what) => format!("{} ({what})", self.name),
                DmKind::NoUuid => format!("{} (device-mapper, no uuid)", self.name),
            },
            Layer::Md(level) => format!("{} (md {level})", self.name),
            Layer::Loop(Some(file)) => format!("{} (loop: {file})", self.name),
            Layer::Loop(None) => format!("{} (loop)", self.name),
            Layer::Zram => format!("{} (zram)", self.name),
            Layer::Partition(Attachment::Removable) | Layer::Disk(Attachment::Removable) => {
                format!("{} (removable)", self.name)
            }
            Layer::Partition(Attachment::Usb) | Layer::Disk(Attachment::Usb) => {
                format!("{} (USB)", self.name)
            }
            Layer::Partition(Attachment::Fixed) | Layer::Disk(Attachment::Fixed) => {
                self.name.clone()
            }
            Layer::Other => format!("{} (stacked)", self.name),
        };
        out.push(label);
        for below in &self.below {
            below.push_chain(out);
        }
    }

    /// Whether every physical device at the bottom is removable media. USB disks
    /// without the `removable` flag count only when `usb_counts` (the caller knows the
    /// mount is where desktops put plugged-in media).
    pub fn all_removable(&self, usb_counts: bool) -> bool {
        let mut leaves = Vec::new();
        self.leaves(&mut leaves);
        !leaves.is_empty()
            && leaves.iter().all(|leaf| match leaf.layer {
                Layer::Partition(attachment) | Layer::Disk(attachment) => {
                    attachment == Attachment::Removable
                        || (usb_counts && attachment == Attachment::Usb)
                }
                _ => false,
            })
    }

    fn leaves<'a>(&'a self, out: &mut Vec<&'a BlockNode>) {
        if self.below.is_empty() {
            out.push(self);
        }
        for below in &self.below {
            below.leaves(out);
        }
    }
}

/// Reads the stack of the block device `major:minor` (`/sys/dev/block/MAJ:MIN`).
pub fn read_devnum(ctx: &Context, major: u32, minor: u32) -> Result<BlockNode, String> {
    let link = format!("/sys/dev/block/{major}:{minor}");
    let path = canonical(ctx, &link)?;
    read_node(ctx, &path, 0)
}

/// Reads the stack of a block device by kernel name (`/sys/class/block/NAME`).
pub fn read_name(ctx: &Context, name: &str) -> Result<BlockNode, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("`{name}` is not a block device name"));
    }
    let path = canonical(ctx, &format!("/sys/class/block/{name}"))?;
    read_node(ctx, &path, 0)
}

/// Reads the stack of the device behind a `/dev` path as it appears in mountinfo or
/// `/proc/swaps`: `/dev/dm-2`, `/dev/nvme0n1p2`, `/dev/mapper/NAME`, `/dev/VG/LV`.
pub fn read_dev_path(ctx: &Context, dev: &str) -> Result<BlockNode, String> {
    let name = kernel_name_of(ctx, dev)?;
    read_name(ctx, &name)
}

fn kernel_name_of(ctx: &Context, dev: &str) -> Result<String, String> {
    let Some(rest) = dev.strip_prefix("/dev/") else {
        return Err(format!("`{dev}` is not a device path"));
    };
    // A device node or udev symlink below the root names the device directly.
    if let Ok(real) = std::fs::canonicalize(ctx.path(dev)) {
        if let Some(name) = real.file_name().and_then(|n| n.to_str()) {
            if exists(ctx, format!("/sys/class/block/{name}")) {
                return Ok(name.to_owned());
            }
        }
    }
    if !rest.contains('/') {
        return Ok(rest.to_owned());
    }
    // /dev/mapper/NAME, and /dev/VG/LV whose mapper name is VG-LV with '-' doubled.
    let mapper_name = match rest.split_once('/') {
        Some(("mapper", name)) => name.to_owned(),
        Some((vg, lv)) if !lv.contains('/') => {
            format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
        }
        _ => return Err(format!("cannot tell which block device `{dev}` is")),
    };
    dm_by_name(ctx, &mapper_name)
        .ok_or_else(|| format!("no device-mapper device is named `{mapper_name}` (for `{dev}`)"))
}

/// Finds `dm-N` whose `dm/name` is `mapper_name`.
fn dm_by_name(ctx: &Context, mapper_name: &str) -> Option<String> {
    list_dir(ctx, "/sys/block")
        .ok()?
        .into_iter()
        .filter(|name| name.starts_with("dm-"))
        .find(|name| {
            read_attr(ctx, format!("/sys/block/{name}/dm/name")).is_ok_and(|n| n == mapper_name)
        })
}

/// The member devices of the btrfs filesystem that `member` belongs to
/// (`/sys/fs/btrfs/<fsid>/devices/<name>`), or just `member` when sysfs does not say.
pub fn btrfs_members(ctx: &Context, member: &str) -> Vec<String> {
    let Ok(filesystems) = list_dir(ctx, "/sys/fs/btrfs") else {
        return vec![member.to_owned()];
    };
    for fsid in filesystems {
        let devices_dir = format!("/sys/fs/btrfs/{fsid}/devices");
        if let Ok(devices) = list_dir(ctx, &devices_dir) {
            if devices.iter().any(|d| d == member) {
                return devices;
            }
        }
    }
    vec![member.to_owned()]
}

fn read_node(ctx: &Context, sys_path: &str, depth: usize) -> Result<BlockNode, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "device stack below {sys_path} is deeper than {MAX_DEPTH} levels"
        ));
    }
    let name = Path::new(sys_path)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{sys_path} is not a block device directory"))?
        .to_owned();

    if exists(ctx, format!("{sys_path}/partition")) {
        let parent = Path::new(sys_path)
            .parent()
            .and_then(|p| p.to_str())
            .ok_or_else(|| format!("partition {sys_path} has no disk directory"))?;
        let disk = read_node(ctx, parent, depth + 1)?;
        return Ok(match disk.layer {
            Layer::Disk(attachment) => BlockNode {
                name,
                sys_path: sys_path.to_owned(),
                layer: Layer::Partition(attachment),
                below: Vec::new(),
            },
            // A partition of an md array, a loop device, ...: what matters is below it.
            _ => BlockNode {
                name,
                sys_path: sys_path.to_owned(),
                layer: Layer::Partition(Attachment::Fixed),
                below: vec![disk],
            },
        });
    }

    let (layer, below) = if exists(ctx, format!("{sys_path}/dm")) {
        let uuid = read_optional(ctx, &format!("{sys_path}/dm/uuid"))?;
        let dm_name = read_optional(ctx, &format!("{sys_path}/dm/name"))?;
        let layer = Layer::Dm {
            name: dm_name,
            kind: classify_uuid(&uuid),
        };
        (layer, read_slaves(ctx, sys_path, depth)?)
    } else if exists(ctx, format!("{sys_path}/md")) {
        let level = read_optional(ctx, &format!("{sys_path}/md/level"))?;
        (Layer::Md(level), read_slaves(ctx, sys_path, depth)?)
    } else if name.starts_with("loop") {
        let backing = read_attr(ctx, format!("{sys_path}/loop/backing_file")).ok();
        (Layer::Loop(backing), Vec::new())
    } else if name.starts_with("zram") {
        // A zram device may write pages back to a real device (`backing_dev`, "none"
        // when unset); that device then holds the data at rest.
        let backing = read_attr(ctx, format!("{sys_path}/backing_dev")).unwrap_or_default();
        let below = if backing.is_empty() || backing == "none" {
            Vec::new()
        } else {
            let name = kernel_name_of(ctx, &backing)?;
            let path = canonical(ctx, &format!("/sys/class/block/{name}"))?;
            vec![read_node(ctx, &path, depth + 1)?]
        };
        (Layer::Zram, below)
    } else {
        let slaves = read_slaves(ctx, sys_path, depth)?;
        if slaves.is_empty() {
            (Layer::Disk(attachment(ctx, sys_path)), Vec::new())
        } else {
            (Layer::Other, slaves)
        }
    };
    Ok(BlockNode {
        name,
        sys_path: sys_path.to_owned(),
        layer,
        below,
    })
}

/// The kernel's `removable` flag, else whether the device path runs through a USB bus
/// (`.../0000:00:14.0/usb2/2-1/...`).
fn attachment(ctx: &Context, sys_path: &str) -> Attachment {
    if read_attr(ctx, format!("{sys_path}/removable")).is_ok_and(|v| v == "1") {
        Attachment::Removable
    } else if sys_path.split('/').any(|part| part.starts_with("usb")) {
        Attachment::Usb
    } else {
        Attachment::Fixed
    }
}

fn read_slaves(ctx: &Context, sys_path: &str, depth: usize) -> Result<Vec<BlockNode>, String> {
    let dir = format!("{sys_path}/slaves");
    let names = match list_dir(ctx, &dir) {
        Ok(names) => names,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    names
        .iter()
        .map(|slave| {
            let path = canonical(ctx, &format!("{dir}/{slave}"))?;
            read_node(ctx, &path, depth + 1)
        })
        .collect()
}

fn read_optional(ctx: &Context, path: &str) -> Result<String, String> {
    match read_attr(ctx, path) {
        Ok(value) => Ok(value),
        Err(e) if e.is_not_found() => Ok(String::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// Follows the links of a system path below the root and returns the result as a
/// system path again.
fn canonical(ctx: &Context, system_path: &str) -> Result<String, String> {
    let root = std::fs::canonicalize(&ctx.root)
        .map_err(|e| format!("cannot resolve root {}: {e}", ctx.root.display()))?;
    let real = std::fs::canonicalize(ctx.path(system_path)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{system_path} does not exist")
        } else {
            format!("cannot resolve {system_path}: {e}")
        }
    })?;
    let relative = real
        .strip_prefix(&root)
        .map_err(|_| format!("{system_path} points outside the root"))?;
    let mut system = PathBuf::from("/");
    for component in relative.components() {
        if let Component::Normal(part) = component {
            system.push(part);
        }
    }
    system
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{system_path} resolves to a path that is not UTF-8"))
}
