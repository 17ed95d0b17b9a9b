//! The `disk_encryption` check over real directory trees laid out like a running kernel's
//! `/proc` and `/sys`, built in a temp dir per test, and once over this machine.
//!
//! The trees follow what Linux 6.x exposes (checked against a Debian 12 VM and the
//! layouts that cryptsetup, LVM, md and the block layer create):
//! - `/sys/dev/block/MAJ:MIN` and `/sys/class/block/NAME` are relative symlinks into
//!   `/sys/devices/...`; whole disks also appear as `/sys/block/NAME`.
//! - a partition is a directory inside its disk's directory with a `partition` file
//!   (its number) and no `removable` file; the disk has `removable`.
//! - device-mapper devices live in `/sys/devices/virtual/block/dm-N` with `dm/name`,
//!   `dm/uuid` (`CRYPT-LUKS2-<uuid without dashes>-<name>`, `CRYPT-PLAIN-<name>`,
//!   `LVM-<vg uuid><lv uuid>`), `slaves/<dev>` links down and `holders/dm-N` links up.
//! - md arrays have `md/level` and `slaves/`; zram has `backing_dev` (`none` if unset).
//! - mountinfo lines are shaped like the kernel's `show_mountinfo` (optional fields,
//!   `-` separator, major:minor of the superblock: anonymous `0:N` for btrfs and nfs).

// The Linux implementation over Linux fixture trees; other OSes test their parsers in
// their own files.
#![cfg(target_os = "linux")]
// Test helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use posture_checks::{disk_encryption, ChecksConfig, Context};
use posture_core::{Finding, Status};
use serde_json::Value;

const NVME: &str = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1";
const SATA: &str = "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda";
const USB_STICK: &str =
    "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb";

/// LUKS header uuid (as `cryptsetup luksUUID` prints it) and the LVM uuids of a Debian 12
/// install, anonymised.
const LUKS_UUID: &str = "0b3c9d6e-2a4f-4e1b-9c8d-7e6f5a4b3c2d";
const VG_UUID: &str = "Qm3cFZ1sXbRk2x0nDq8vYl4tHj6gPw9e";
const LV_ROOT_UUID: &str = "Uo7aTc5iNs1fKr3bMz8dLy2hWv4qEx6p";
const LV_SWAP_UUID: &str = "Ha2kLp9sWq4eRt7yUi1oPa3sDf6gHj8k";
const LV_HOME_UUID: &str = "Zx5cVb8nMq2wEr4tYu6iOp9aSd1fGh3j";

fn luks2_uuid(name: &str) -> String {
    format!("CRYPT-LUKS2-{}-{name}", LUKS_UUID.replace('-', ""))
}

fn lvm_uuid(lv: &str) -> String {
    format!("LVM-{VG_UUID}{lv}")
}

/// A block device in the tree.
#[derive(Clone)]
struct Dev {
    name: String,
    /// Its sysfs directory relative to the root, e.g. `sys/devices/virtual/block/dm-0`.
    sys: PathBuf,
}

struct Tree {
    dir: tempfile::TempDir,
    mountinfo: Vec<String>,
    swaps: Vec<String>,
    next_mount_id: u32,
}

/// A relative symlink from inside `from_dir` to `to` (both relative to the root), as
/// sysfs makes them: up to the common ancestor, then down.
fn link(root: &Path, from_dir: &Path, name: &str, to: &Path) {
    let from: Vec<_> = from_dir.components().collect();
    let target: Vec<_> = to.components().collect();
    let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for part in &target[common..] {
        relative.push(part);
    }
    std::fs::create_dir_all(root.join(from_dir)).unwrap();
    std::os::unix::fs::symlink(relative, root.join(from_dir).join(name)).unwrap();
}

impl Tree {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            mountinfo: Vec::new(),
            swaps: Vec::new(),
            next_mount_id: 22,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: impl AsRef<Path>, contents: &str) {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// The entries every block device has: `dev` and the three lookup links.
    fn register(&self, sys: &Path, name: &str, majmin: &str, whole_disk: bool) -> Dev {
        let root = self.root();
        std::fs::create_dir_all(root.join(sys).join("holders")).unwrap();
        self.write(sys.join("dev"), &format!("{majmin}\n"));
        link(root, Path::new("sys/dev/block"), majmin, sys);
        link(root, Path::new("sys/class/block"), name, sys);
        if whole_disk {
            link(root, Path::new("sys/block"), name, sys);
        }
        Dev {
            name: name.to_owned(),
            sys: sys.to_owned(),
        }
    }

    fn disk(&self, devpath: &str, majmin: &str, removable: bool) -> Dev {
        let sys = Path::new("sys").join(devpath);
        let name = sys.file_name().unwrap().to_str().unwrap().to_owned();
        let dev = self.register(&sys, &name, majmin, true);
        std::fs::create_dir_all(self.root().join(&sys).join("slaves")).unwrap();
        self.write(sys.join("removable"), if removable { "1\n" } else { "0\n" });
        dev
    }

    fn partition(&self, disk: &Dev, name: &str, majmin: &str, number: u32) -> Dev {
        let sys = disk.sys.join(name);
        let dev = self.register(&sys, name, majmin, false);
        self.write(sys.join("partition"), &format!("{number}\n"));
        dev
    }

    fn virtual_dev(&self, name: &str, majmin: &str, slaves: &[&Dev]) -> Dev {
        let sys = Path::new("sys/devices/virtual/block").join(name);
        let dev = self.register(&sys, name, majmin, true);
        std::fs::create_dir_all(self.root().join(&sys).join("slaves")).unwrap();
        self.write(sys.join("removable"), "0\n");
        for slave in slaves {
            link(self.root(), &sys.join("slaves"), &slave.name, &slave.sys);
            link(self.root(), &slave.sys.join("holders"), name, &sys);
        }
        dev
    }

    fn dm(&self, n: u32, mapper_name: &str, uuid: &str, slaves: &[&Dev]) -> Dev {
        let name = format!("dm-{n}");
        let dev = self.virtual_dev(&name, &format!("253:{n}"), slaves);
        self.write(dev.sys.join("dm/name"), &format!("{mapper_name}\n"));
        self.write(dev.sys.join("dm/uuid"), &format!("{uuid}\n"));
        self.write(dev.sys.join("dm/suspended"), "0\n");
        dev
    }

    fn md(&self, name: &str, majmin: &str, level: &str, members: &[&Dev]) -> Dev {
        let dev = self.virtual_dev(name, majmin, members);
        self.write(dev.sys.join("md/level"), &format!("{level}\n"));
        dev
    }

    fn zram(&self, n: u32, backing: &str) -> Dev {
        let dev = self.virtual_dev(&format!("zram{n}"), &format!("252:{n}"), &[]);
        self.write(dev.sys.join("backing_dev"), &format!("{backing}\n"));
        self.write(dev.sys.join("disksize"), "8589934592\n");
        dev
    }

    fn loop_dev(&self, n: u32, backing_file: &str) -> Dev {
        let dev = self.virtual_dev(&format!("loop{n}"), &format!("7:{n}"), &[]);
        self.write(
            dev.sys.join("loop/backing_file"),
            &format!("{backing_file}\n"),
        );
        dev
    }

    /// A mountinfo line as the kernel prints it.
    fn mount(&mut self, majmin: &str, root: &str, point: &str, fstype: &str, source: &str) {
        let id = self.next_mount_id;
        self.next_mount_id += 1;
        let parent = if point == "/" { 1 } else { 22 };
        let point_escaped = point.replace(' ', "\\040");
        self.mountinfo.push(format!(
            "{id} {parent} {majmin} {root} {point_escaped} rw,relatime shared:{id} - {fstype} {source} rw"
        ));
    }

    /// The pseudo filesystems every system has; the check must not mistake them for disks.
    fn mount_pseudo(&mut self) {
        self.mount("0:21", "/", "/proc", "proc", "proc");
        self.mount("0:22", "/", "/sys", "sysfs", "sysfs");
        self.mount("0:5", "/", "/dev", "devtmpfs", "udev");
        self.mount("0:25", "/", "/run", "tmpfs", "tmpfs");
        self.mount("0:26", "/", "/sys/fs/cgroup", "cgroup2", "cgroup2");
    }

    fn swap(&mut self, filename: &str, kind: &str) {
        self.swaps
            .push(format!("{filename:<40}{kind}\t8388604\t\t0\t\t-2"));
    }

    fn run(&self) -> Finding {
        let mut mountinfo = self.mountinfo.join("\n");
        mountinfo.push('\n');
        self.write("proc/self/mountinfo", &mountinfo);
        let mut swaps = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
        for line in &self.swaps {
            swaps.push_str(line);
            swaps.push('\n');
        }
        self.write("proc/swaps", &swaps);
        let ctx = Context::fixture(self.root(), ChecksConfig::default(), SystemTime::now());
        let finding = disk_encryption::check(&ctx);
        finding.check_invariants().unwrap();
        finding
    }
}

fn volume<'a>(finding: &'a Finding, mount_point: &str) -> &'a Value {
    finding.observed["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["mount_point"] == mount_point)
        .unwrap_or_else(|| panic!("no volume {mount_point} in {:#?}", finding.observed))
}

fn has_volume(finding: &Finding, mount_point: &str) -> bool {
    finding.observed["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["mount_point"] == mount_point)
}

fn chain(finding: &Finding, mount_point: &str) -> Vec<String> {
    volume(finding, mount_point)["device_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn ignored_why(finding: &Finding, mount_point: &str) -> String {
    finding.observed["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["mount_point"] == mount_point)
        .unwrap_or_else(|| panic!("{mount_point} not ignored in {:#?}", finding.observed))["why"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn remediation(finding: &Finding) -> String {
    finding.remediation.as_ref().unwrap().text.clone()
}

/// An NVMe laptop disk with the EFI partition, /boot, and a third partition for the rest.
fn nvme_with_boot(tree: &mut Tree) -> Dev {
    let disk = tree.disk(NVME, "259:0", false);
    tree.partition(&disk, "nvme0n1p1", "259:1", 1);
    tree.partition(&disk, "nvme0n1p2", "259:2", 2);
    let p3 = tree.partition(&disk, "nvme0n1p3", "259:3", 3);
    tree.mount("259:2", "/", "/boot", "ext4", "/dev/nvme0n1p2");
    tree.mount("259:1", "/", "/boot/efi", "vfat", "/dev/nvme0n1p1");
    p3
}

/// Debian/Ubuntu "guided - use entire disk and set up encrypted LVM": LVM on LUKS2.
fn lvm_on_luks(tree: &mut Tree) {
    tree.mount_pseudo();
    let p3 = nvme_with_boot(tree);
    let crypt = tree.dm(0, "nvme0n1p3_crypt", &luks2_uuid("nvme0n1p3_crypt"), &[&p3]);
    tree.dm(1, "vgubuntu-root", &lvm_uuid(LV_ROOT_UUID), &[&crypt]);
    tree.dm(2, "vgubuntu-swap_1", &lvm_uuid(LV_SWAP_UUID), &[&crypt]);
    tree.mount("253:1", "/", "/", "ext4", "/dev/mapper/vgubuntu-root");
    tree.swap("/dev/dm-2", "partition");
}

#[test]
fn luks2_on_a_partition_passes() {
    // Fedora 40 Workstation default: btrfs on LUKS2 on the third partition, / and /home
    // are subvolumes (same anonymous device number), swap on zram.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let p3 = nvme_with_boot(&mut tree);
    let name = format!("luks-{LUKS_UUID}");
    let crypt = tree.dm(0, &name, &luks2_uuid(&name), &[&p3]);
    let source = format!("/dev/mapper/{name}");
    tree.mount("0:34", "/root", "/", "btrfs", &source);
    tree.mount("0:34", "/home", "/home", "btrfs", &source);
    link(
        tree.root(),
        Path::new("sys/fs/btrfs/5b1d2c3e-8f9a-4b0c-9d1e-2f3a4b5c6d7e/devices"),
        "dm-0",
        &crypt.sys,
    );
    tree.zram(0, "none");
    tree.swap("/dev/zram0", "partition");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(finding.observed["root"], "luks2");
    assert_eq!(chain(&finding, "/"), ["dm-0 (LUKS2)", "nvme0n1p3"]);
    // One btrfs filesystem, two subvolumes: one volume with both mount points.
    assert_eq!(
        volume(&finding, "/")["also_mounted_at"],
        serde_json::json!(["/home"])
    );
    assert_eq!(finding.observed["swap"]["state"], "zram");
}

#[test]
fn btrfs_raid1_with_a_plain_member_fails() {
    // mountinfo names only one device of a multi-device btrfs; /sys/fs/btrfs lists all.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let p3 = nvme_with_boot(&mut tree);
    let sata = tree.disk(SATA, "8:0", false);
    let sda1 = tree.partition(&sata, "sda1", "8:1", 1);
    let crypt = tree.dm(0, "cryptroot", &luks2_uuid("cryptroot"), &[&p3]);
    let devices = Path::new("sys/fs/btrfs/5b1d2c3e-8f9a-4b0c-9d1e-2f3a4b5c6d7e/devices");
    link(tree.root(), devices, "dm-0", &crypt.sys);
    link(tree.root(), devices, "sda1", &sda1.sys);
    tree.mount("0:34", "/@", "/", "btrfs", "/dev/mapper/cryptroot");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(chain(&finding, "/"), ["dm-0 (LUKS2)", "nvme0n1p3", "sda1"]);
}

#[test]
fn lvm_on_luks_passes() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(
        chain(&finding, "/"),
        ["dm-1 (LVM)", "dm-0 (LUKS2)", "nvme0n1p3"]
    );
    assert_eq!(volume(&finding, "/")["encryption"], "luks2");
    assert_eq!(volume(&finding, "/")["full_volume"], true);
    assert_eq!(finding.observed["swap"]["state"], "encrypted");
    assert_eq!(
        finding.observed["swap"]["areas"][0]["device_chain"][1],
        "dm-0 (LUKS2)"
    );
    assert!(ignored_why(&finding, "/boot").contains("boot"));
    assert!(ignored_why(&finding, "/boot/efi").contains("EFI"));
}

#[test]
fn luks_on_lvm_passes() {
    // LVs first, each LV then LUKS-formatted (a common server and RHEL kickstart layout).
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(SATA, "8:0", false);
    let boot = tree.partition(&disk, "sda1", "8:1", 1);
    let pv = tree.partition(&disk, "sda2", "8:2", 2);
    let _ = boot;
    tree.mount("8:1", "/", "/boot", "xfs", "/dev/sda1");
    let lv_root = tree.dm(0, "vg0-root", &lvm_uuid(LV_ROOT_UUID), &[&pv]);
    let lv_home = tree.dm(1, "vg0-home", &lvm_uuid(LV_HOME_UUID), &[&pv]);
    let root_uuid = format!(
        "CRYPT-LUKS1-{}-root_crypt",
        "4f1e2d3c4b5a69788796a5b4c3d2e1f0"
    );
    tree.dm(2, "root_crypt", &root_uuid, &[&lv_root]);
    tree.dm(3, "home_crypt", &luks2_uuid("home_crypt"), &[&lv_home]);
    tree.mount("253:2", "/", "/", "xfs", "/dev/mapper/root_crypt");
    tree.mount("253:3", "/", "/home", "xfs", "/dev/mapper/home_crypt");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(chain(&finding, "/"), ["dm-2 (LUKS1)", "dm-0 (LVM)", "sda2"]);
    assert_eq!(finding.observed["root"], "luks1");
    assert_eq!(volume(&finding, "/home")["encryption"], "luks2");
    assert_eq!(finding.observed["swap"]["state"], "none");
}

#[test]
fn unencrypted_system_fails_with_reinstall_advice() {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(SATA, "8:0", false);
    tree.partition(&disk, "sda1", "8:1", 1);
    tree.partition(&disk, "sda2", "8:2", 2);
    tree.mount("8:1", "/", "/", "ext4", "/dev/sda1");
    tree.swap("/dev/sda2", "partition");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(finding.observed["root"], "none");
    assert_eq!(chain(&finding, "/"), ["sda1"]);
    assert_eq!(volume(&finding, "/")["status"], "fail");
    let text = remediation(&finding);
    assert!(text.contains("reinstall"), "{text}");
    assert!(text.contains("cryptsetup reencrypt --encrypt"), "{text}");
    assert!(text.contains("backup"), "{text}");
    assert!(finding
        .remediation
        .as_ref()
        .unwrap()
        .url
        .as_deref()
        .unwrap()
        .contains("debian.org"));
    assert!(finding.summary.contains("/ (sda1)"), "{}", finding.summary);
    assert_eq!(finding.observed["swap"]["state"], "unencrypted");
}

#[test]
fn encrypted_home_does_not_pass_plain_root() {
    // Regression: agents that report "an encrypted volume exists" pass this machine.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(NVME, "259:0", false);
    tree.partition(&disk, "nvme0n1p1", "259:1", 1);
    tree.partition(&disk, "nvme0n1p2", "259:2", 2);
    let p3 = tree.partition(&disk, "nvme0n1p3", "259:3", 3);
    tree.mount("259:1", "/", "/boot/efi", "vfat", "/dev/nvme0n1p1");
    tree.mount("259:2", "/", "/", "ext4", "/dev/nvme0n1p2");
    tree.dm(0, "home_crypt", &luks2_uuid("home_crypt"), &[&p3]);
    tree.mount("253:0", "/", "/home", "ext4", "/dev/mapper/home_crypt");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(finding.observed["root"], "none");
    assert_eq!(volume(&finding, "/")["status"], "fail");
    assert_eq!(volume(&finding, "/home")["status"], "pass");
    assert_eq!(volume(&finding, "/home")["encryption"], "luks2");
    assert!(
        finding.summary.contains("/ (nvme0n1p2)"),
        "{}",
        finding.summary
    );
    assert!(!finding.summary.contains("/home"), "{}", finding.summary);
}

#[test]
fn encrypted_root_does_not_cover_plain_home_disk() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    let sata = tree.disk(SATA, "8:0", false);
    tree.partition(&sata, "sda1", "8:1", 1);
    tree.mount("8:1", "/", "/home", "ext4", "/dev/sda1");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(volume(&finding, "/")["status"], "pass");
    assert_eq!(volume(&finding, "/home")["status"], "fail");
    assert!(remediation(&finding).contains("/home"));
}

#[test]
fn logical_volume_spanning_a_plain_disk_fails() {
    // An LV extended onto a second, unencrypted PV: part of / is written in clear.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let p3 = nvme_with_boot(&mut tree);
    let sata = tree.disk(SATA, "8:0", false);
    let sda1 = tree.partition(&sata, "sda1", "8:1", 1);
    let crypt = tree.dm(0, "nvme0n1p3_crypt", &luks2_uuid("nvme0n1p3_crypt"), &[&p3]);
    tree.dm(1, "vg-root", &lvm_uuid(LV_ROOT_UUID), &[&crypt, &sda1]);
    tree.mount("253:1", "/", "/", "ext4", "/dev/mapper/vg-root");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(volume(&finding, "/")["encryption"], "none");
}

#[test]
fn raid1_of_two_luks_members_passes_and_half_encrypted_raid_fails() {
    for second_encrypted in [true, false] {
        let mut tree = Tree::new();
        tree.mount_pseudo();
        let nvme = tree.disk(NVME, "259:0", false);
        let a = tree.partition(&nvme, "nvme0n1p2", "259:2", 2);
        let sata = tree.disk(SATA, "8:0", false);
        let b = tree.partition(&sata, "sda2", "8:2", 2);
        let ca = tree.dm(0, "crypt_a", &luks2_uuid("crypt_a"), &[&a]);
        let member_b = if second_encrypted {
            tree.dm(1, "crypt_b", &luks2_uuid("crypt_b"), &[&b])
        } else {
            b
        };
        tree.md("md0", "9:0", "raid1", &[&ca, &member_b]);
        tree.mount("9:0", "/", "/", "ext4", "/dev/md0");

        let finding = tree.run();
        let expected = if second_encrypted {
            Status::Pass
        } else {
            Status::Fail
        };
        assert_eq!(finding.status, expected, "{finding:#?}");
        assert_eq!(chain(&finding, "/")[0], "md0 (md raid1)");
    }
}

#[test]
fn unresolvable_chain_is_unknown_never_pass() {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    // mountinfo names 253:5 but sysfs has no such device.
    tree.mount("253:5", "/", "/", "ext4", "/dev/mapper/vg-root");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert!(finding.reason.as_deref().unwrap().contains("253:5"));
    assert_eq!(volume(&finding, "/")["status"], "unknown");
}

#[test]
fn dm_device_without_uuid_is_unknown() {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let sata = tree.disk(SATA, "8:0", false);
    let sda2 = tree.partition(&sata, "sda2", "8:2", 2);
    tree.dm(0, "handmade", "", &[&sda2]);
    tree.mount("253:0", "/", "/", "ext4", "/dev/mapper/handmade");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert!(finding
        .reason
        .as_deref()
        .unwrap()
        .contains("without a uuid"));
}

#[test]
fn missing_mountinfo_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::fixture(dir.path(), ChecksConfig::default(), SystemTime::now());
    let finding = disk_encryption::check(&ctx);
    assert_eq!(finding.status, Status::Unknown);
    assert!(finding.reason.unwrap().contains("mountinfo"));
}

#[test]
fn zfs_root_in_a_fixture_is_unknown() {
    // Ubuntu's ZFS layout: datasets have anonymous device numbers; encryption is a
    // dataset property that only `zfs get` can read, which fixtures never run.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    tree.mount("0:45", "/", "/", "zfs", "rpool/ROOT/ubuntu_8h2k1m");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert!(finding.reason.as_deref().unwrap().contains("zfs get"));
    assert_eq!(
        chain(&finding, "/"),
        ["rpool/ROOT/ubuntu_8h2k1m (ZFS dataset)"]
    );
}

#[test]
fn fscrypt_only_home_is_not_full_volume_encryption() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    let sata = tree.disk(SATA, "8:0", false);
    tree.partition(&sata, "sda1", "8:1", 1);
    tree.mount("8:1", "/", "/home", "ext4", "/dev/sda1");
    // The fscrypt tool's metadata at the filesystem root: one policy, one protector.
    tree.write("home/.fscrypt/policies/8a3c1e2f4b5d6a7e", "policy");
    tree.write("home/.fscrypt/protectors/1f2e3d4c5b6a7988", "protector");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    let home = volume(&finding, "/home");
    assert_eq!(home["encryption"], "fscrypt");
    assert_eq!(home["fscrypt"], true);
    assert_eq!(home["full_volume"], false);
    assert!(remediation(&finding).contains("fscrypt"));
}

#[test]
fn swap_on_plain_dm_crypt_passes() {
    // Debian crypttab `cswap /dev/disk/by-partuuid/... /dev/urandom swap,...`.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let p3 = nvme_with_boot(&mut tree);
    let disk_sys = p3.sys.parent().unwrap().to_owned();
    let disk = Dev {
        name: "nvme0n1".into(),
        sys: disk_sys,
    };
    let p4 = tree.partition(&disk, "nvme0n1p4", "259:4", 4);
    tree.dm(0, "nvme0n1p3_crypt", &luks2_uuid("nvme0n1p3_crypt"), &[&p3]);
    tree.dm(1, "cswap", "CRYPT-PLAIN-cswap", &[&p4]);
    tree.mount("253:0", "/", "/", "ext4", "/dev/mapper/nvme0n1p3_crypt");
    tree.swap("/dev/dm-1", "partition");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(finding.observed["swap"]["state"], "encrypted");
    assert_eq!(finding.observed["swap"]["areas"][0]["encryption"], "plain");
    // The layer is named; a plain mapping has no header to read the cipher from.
    let layer = &finding.observed["swap"]["areas"][0]["crypt_layers"][0];
    assert_eq!(layer["device"], "dm-1");
    assert_eq!(layer["format"], "plain");
    assert_eq!(layer["header_device"], "nvme0n1p4");
    assert!(
        layer["header"]
            .as_str()
            .unwrap()
            .starts_with("no LUKS header"),
        "{layer}"
    );
}

#[test]
fn swap_on_zram_passes() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.swaps.clear();
    tree.zram(0, "none");
    tree.swap("/dev/zram0", "partition");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(finding.observed["swap"]["state"], "zram");
}

#[test]
fn zram_writing_back_to_a_plain_partition_fails() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.swaps.clear();
    let sata = tree.disk(SATA, "8:0", false);
    tree.partition(&sata, "sda1", "8:1", 1);
    tree.zram(0, "/dev/sda1");
    tree.swap("/dev/zram0", "partition");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(finding.observed["swap"]["state"], "unencrypted");
}

#[test]
fn plain_swap_partition_fails_even_with_encrypted_root() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.swaps.clear();
    let sata = tree.disk(SATA, "8:0", false);
    tree.partition(&sata, "sda3", "8:3", 3);
    tree.swap("/dev/sda3", "partition");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(volume(&finding, "/")["status"], "pass");
    assert_eq!(finding.observed["swap"]["state"], "unencrypted");
    assert!(finding.summary.contains("swap /dev/sda3"));
    let text = remediation(&finding);
    assert!(text.contains("leaks through swap"), "{text}");
    assert!(text.contains("/dev/urandom"), "{text}");
}

#[test]
fn no_swap_passes() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.swaps.clear();
    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(finding.observed["swap"]["state"], "none");
    assert_eq!(finding.observed["swap"]["areas"], serde_json::json!([]));
}

#[test]
fn swap_file_follows_its_filesystem() {
    for encrypted_root in [true, false] {
        let mut tree = Tree::new();
        tree.mount_pseudo();
        let p3 = nvme_with_boot(&mut tree);
        if encrypted_root {
            tree.dm(0, "nvme0n1p3_crypt", &luks2_uuid("nvme0n1p3_crypt"), &[&p3]);
            tree.mount("253:0", "/", "/", "ext4", "/dev/mapper/nvme0n1p3_crypt");
        } else {
            tree.mount("259:3", "/", "/", "ext4", "/dev/nvme0n1p3");
        }
        tree.swap("/swap.img", "file");
        let finding = tree.run();
        let state = &finding.observed["swap"]["state"];
        if encrypted_root {
            assert_eq!(finding.status, Status::Pass, "{finding:#?}");
            assert_eq!(state, "encrypted");
        } else {
            assert_eq!(finding.status, Status::Fail, "{finding:#?}");
            assert_eq!(state, "unencrypted");
        }
    }
}

#[test]
fn bind_mounts_are_one_volume() {
    // This VM's own shape: / on a whole virtio disk, bind-mounted again at /run/netns.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    tree.disk(
        "devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
        "254:0",
        false,
    );
    tree.mount("254:0", "/", "/", "ext4", "/dev/vda");
    tree.mount("254:0", "/run/netns", "/run/netns", "ext4", "/dev/vda");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(finding.observed["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(
        volume(&finding, "/")["also_mounted_at"],
        serde_json::json!(["/run/netns"])
    );
    assert_eq!(finding.summary, "not encrypted: / (vda)");
}

#[test]
fn swap_file_on_a_usb_stick_is_not_credited_to_the_encrypted_root() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.swaps.clear();
    let stick = tree.disk(USB_STICK, "8:16", true);
    tree.partition(&stick, "sdb1", "8:17", 1);
    tree.mount("8:17", "/", "/media/me/STICK", "ext4", "/dev/sdb1");
    tree.swap("/media/me/STICK/swapfile", "file");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert_eq!(finding.observed["swap"]["state"], "unknown");
}

#[test]
fn boot_efi_tmpfs_snaps_network_and_usb_sticks_are_ignored() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.mount("0:40", "/", "/tmp", "tmpfs", "tmpfs");
    let loop0 = tree.loop_dev(0, "/var/lib/snapd/snaps/core22_1380.snap");
    let _ = loop0;
    tree.mount("7:0", "/", "/snap/core22/1380", "squashfs", "/dev/loop0");
    tree.mount("0:50", "/", "/mnt/share", "nfs4", "fileserver:/export/home");
    tree.mount("0:51", "/", "/mnt/win", "cifs", "//nas/share");
    let stick = tree.disk(USB_STICK, "8:16", true);
    tree.partition(&stick, "sdb1", "8:17", 1);
    tree.mount("8:17", "/", "/media/me/STICK 1", "vfat", "/dev/sdb1");

    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert!(ignored_why(&finding, "/boot").contains("boot partition"));
    assert!(ignored_why(&finding, "/boot/efi").contains("EFI"));
    assert!(ignored_why(&finding, "/tmp").contains("tmpfs"));
    assert!(ignored_why(&finding, "/snap/core22/1380").contains("read-only image"));
    assert!(ignored_why(&finding, "/mnt/share").contains("network"));
    assert!(ignored_why(&finding, "/mnt/win").contains("network"));
    assert!(ignored_why(&finding, "/media/me/STICK 1").contains("removable"));
    for pseudo in ["/proc", "/sys", "/dev"] {
        assert!(!has_volume(&finding, pseudo));
    }
    assert_eq!(finding.observed["volumes"].as_array().unwrap().len(), 1);
}

#[test]
fn usb_disk_without_removable_flag_counts_unless_under_media() {
    // External USB SSDs report removable=0. Plugged in and automounted below /media they
    // are removable media; mounted at /home they are the laptop's home and must be checked.
    for (point, expected) in [("/media/me/T7", Status::Pass), ("/home", Status::Fail)] {
        let mut tree = Tree::new();
        lvm_on_luks(&mut tree);
        let ssd = tree.disk(USB_STICK, "8:16", false);
        tree.partition(&ssd, "sdb1", "8:17", 1);
        tree.mount("8:17", "/", point, "exfat", "/dev/sdb1");
        let finding = tree.run();
        assert_eq!(finding.status, expected, "{point}: {finding:#?}");
        if expected == Status::Fail {
            assert_eq!(chain(&finding, point), ["sdb1 (USB)"]);
        } else {
            assert!(ignored_why(&finding, point).contains("removable"));
        }
    }
}

#[test]
fn plain_usb_disk_is_ignored_but_plain_usb_root_is_not() {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let stick = tree.disk(USB_STICK, "8:16", true);
    tree.partition(&stick, "sdb1", "8:17", 1);
    tree.mount("8:17", "/", "/", "ext4", "/dev/sdb1");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(chain(&finding, "/"), ["sdb1 (removable)"]);
}

/// Whether the device at `sys_dir` is encrypted, walked independently of the check:
/// a `CRYPT-` dm device that is not verity/integrity/temp, or all slaves encrypted.
fn independently_encrypted(sys_dir: &Path) -> bool {
    let uuid = std::fs::read_to_string(sys_dir.join("dm/uuid")).unwrap_or_default();
    if uuid.starts_with("CRYPT-")
        && ![
            "CRYPT-VERITY-",
            "CRYPT-INTEGRITY-",
            "CRYPT-TEMP-",
            "CRYPT-SUBDEV-",
        ]
        .iter()
        .any(|p| uuid.starts_with(p))
    {
        return true;
    }
    if sys_dir.join("partition").exists() {
        return independently_encrypted(sys_dir.parent().unwrap());
    }
    let slaves: Vec<PathBuf> = std::fs::read_dir(sys_dir.join("slaves"))
        .map(|entries| {
            entries
                .map(|e| std::fs::canonicalize(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    !slaves.is_empty() && slaves.iter().all(|s| independently_encrypted(s))
}

#[test]
fn live_system_root_verdict_matches_an_independent_reading() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_line = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .expect("a mount at /");
    let majmin = root_line.split(' ').nth(2).unwrap();
    let expected_root_encrypted = if majmin.starts_with("0:") {
        None // btrfs/zfs/overlay root: not something this simple reading can judge
    } else {
        let dir = std::fs::canonicalize(format!("/sys/dev/block/{majmin}")).unwrap();
        Some(independently_encrypted(&dir))
    };

    let finding = disk_encryption::check(&Context::system(ChecksConfig::default()));
    finding.check_invariants().unwrap();
    let root = volume(&finding, "/");
    match expected_root_encrypted {
        Some(false) => {
            assert_eq!(finding.status, Status::Fail, "{finding:#?}");
            assert_eq!(root["status"], "fail");
            assert_eq!(root["full_volume"], false);
        }
        Some(true) => {
            assert_eq!(root["status"], "pass", "{finding:#?}");
            assert_eq!(root["full_volume"], true);
        }
        None => assert_ne!(root["status"], "fail", "{finding:#?}"),
    }
}

// ---- cipher and key size from real LUKS headers (tests/fixtures/disk_encryption) --------

fn header_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/disk_encryption")
            .join(name),
    )
    .unwrap()
}

/// A single LUKS volume on nvme0n1p3 holding `/`, whose device node carries `header`.
fn luks_root(uuid_kind: &str, header: &[u8]) -> Tree {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let p3 = nvme_with_boot(&mut tree);
    let uuid = format!(
        "CRYPT-{uuid_kind}-{}-root_crypt",
        LUKS_UUID.replace('-', "")
    );
    tree.dm(0, "root_crypt", &uuid, &[&p3]);
    tree.mount("253:0", "/", "/", "ext4", "/dev/mapper/root_crypt");
    std::fs::create_dir_all(tree.root().join("dev")).unwrap();
    std::fs::write(tree.root().join("dev/nvme0n1p3"), header).unwrap();
    tree
}

fn crypt_layer(finding: &Finding, mount_point: &str) -> Value {
    volume(finding, mount_point)["crypt_layers"][0].clone()
}

#[test]
fn luks2_header_gives_cipher_and_key_size() {
    let finding = luks_root("LUKS2", &header_fixture("luks2-aes-xts-512.hdr")).run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    let layer = crypt_layer(&finding, "/");
    assert_eq!(layer["device"], "dm-0");
    assert_eq!(layer["format"], "luks2");
    assert_eq!(layer["header_device"], "nvme0n1p3");
    assert_eq!(layer["cipher"], "aes-xts-plain64");
    assert_eq!(layer["key_bits"], 512);
    assert_eq!(layer["header"], "on device");
}

#[test]
fn luks1_aes_128_xts_is_a_weak_cipher_finding() {
    // cryptsetup 1.x's default: aes-xts-plain64 with a 256-bit key, i.e. AES-128.
    let finding = luks_root("LUKS1", &header_fixture("luks1-aes-xts-256.hdr")).run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(finding.summary, "encrypted with a weak cipher: /");
    let layer = crypt_layer(&finding, "/");
    assert_eq!(
        (layer["cipher"].as_str(), layer["key_bits"].as_u64()),
        (Some("aes-xts-plain64"), Some(256))
    );
    assert!(layer["weakness"].as_str().unwrap().contains("AES-128"));
    assert_eq!(volume(&finding, "/")["status"], "fail");
    assert!(remediation(&finding).contains("cryptsetup reencrypt"));
}

#[test]
fn luks1_aes_cbc_plain_is_a_weak_cipher_finding() {
    let finding = luks_root("LUKS1", &header_fixture("luks1-aes-cbc-plain.hdr")).run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert!(crypt_layer(&finding, "/")["weakness"]
        .as_str()
        .unwrap()
        .contains("watermarking"));
}

#[test]
fn luks2_aes_cbc_essiv_256_is_not_weak() {
    let finding = luks_root("LUKS2", &header_fixture("luks2-aes-cbc-essiv-256.hdr")).run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(crypt_layer(&finding, "/")["cipher"], "aes-cbc-essiv:sha256");
}

#[test]
fn luks_with_a_detached_header_is_encrypted_with_cipher_unknown() {
    // `cryptsetup luksFormat --header`: the data device starts with ciphertext, not LUKS.
    let finding = luks_root("LUKS2", &[0x5a; 16384]).run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    let layer = crypt_layer(&finding, "/");
    assert!(
        layer["header"].as_str().unwrap().starts_with("detached"),
        "{layer}"
    );
    assert!(layer.get("cipher").is_none());
}

#[test]
fn unreadable_header_device_keeps_the_volume_encrypted() {
    let mut tree = luks_root("LUKS2", b"");
    std::fs::remove_file(tree.root().join("dev/nvme0n1p3")).unwrap();
    tree.swaps.clear();
    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert!(crypt_layer(&finding, "/")["header"]
        .as_str()
        .unwrap()
        .starts_with("not read"));
}

#[test]
fn luks2_json_dump_and_on_disk_header_agree() {
    // `cryptsetup luksDump --dump-json-metadata` of the same volumes.
    for (hdr, dump) in [
        ("luks2-aes-xts-512.hdr", "luks2-aes-xts-512.dump.json"),
        (
            "luks2-detached-header.hdr",
            "luks2-detached-header.dump.json",
        ),
    ] {
        let from_header = disk_encryption::parse_header(&header_fixture(hdr)).unwrap();
        let text = String::from_utf8(header_fixture(dump)).unwrap();
        let from_dump = disk_encryption::parse_luks2_json(&text).unwrap();
        assert_eq!(from_header, from_dump, "{hdr}");
        assert_eq!(from_header.cipher, "aes-xts-plain64");
        assert_eq!(from_header.key_bits, 512);
    }
}

// ---- loop devices, hibernation, file-level encryption ----------------------------------

/// Regression (a false pass in another agent): an encrypted container file, opened on a
/// loop device and mounted, must not make a plain root count as encrypted.
#[test]
fn encrypted_loop_file_does_not_make_a_plain_root_encrypted() {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(SATA, "8:0", false);
    tree.partition(&disk, "sda1", "8:1", 1);
    tree.mount("8:1", "/", "/", "ext4", "/dev/sda1");
    let loop0 = tree.loop_dev(0, "/home/me/vault.img");
    tree.dm(0, "vault", &luks2_uuid("vault"), &[&loop0]);
    tree.mount("253:0", "/", "/mnt/vault", "ext4", "/dev/mapper/vault");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(finding.observed["root"], "none");
    assert_eq!(volume(&finding, "/mnt/vault")["status"], "pass");
    assert_eq!(
        chain(&finding, "/mnt/vault"),
        ["dm-0 (LUKS2)", "loop0 (loop: /home/me/vault.img)"]
    );
    assert_eq!(finding.summary, "not encrypted: / (sda1)");
}

#[test]
fn plain_loop_file_is_as_protected_as_the_filesystem_it_is_on() {
    // A plain image file mounted through a loop device: on the encrypted root it is
    // encrypted (by the root's LUKS), on a plain data disk it is not.
    for (image, expected) in [
        ("/var/lib/images/data.img", "pass"),
        ("/srv/data.img", "fail"),
    ] {
        let mut tree = Tree::new();
        lvm_on_luks(&mut tree);
        let disk = tree.disk(SATA, "8:0", false);
        tree.partition(&disk, "sda1", "8:1", 1);
        tree.mount("8:1", "/", "/srv", "ext4", "/dev/sda1");
        tree.loop_dev(0, image);
        tree.mount("7:0", "/", "/mnt/data", "ext4", "/dev/loop0");
        let finding = tree.run();
        assert_eq!(
            volume(&finding, "/mnt/data")["status"],
            expected,
            "{image}: {finding:#?}"
        );
    }
}

/// A plain image file on a loop device, on the LUKS root: the finding names the layer
/// that encrypts it (the root's dm-crypt, with the cipher from its header) and the file
/// it goes through; a weak cipher there makes the loop volume weak too.
#[test]
fn loop_file_on_an_encrypted_filesystem_names_the_layer_below() {
    for (hdr, kind, bits, status) in [
        ("luks2-aes-xts-512.hdr", "LUKS2", 512, "pass"),
        ("luks1-aes-xts-256.hdr", "LUKS1", 256, "fail"),
    ] {
        let mut tree = luks_root(kind, &header_fixture(hdr));
        tree.loop_dev(0, "/var/lib/images/data.img");
        tree.mount("7:0", "/", "/mnt/data", "ext4", "/dev/loop0");
        let finding = tree.run();
        let data = volume(&finding, "/mnt/data");
        assert_eq!(data["status"], status, "{hdr}: {finding:#?}");
        assert_eq!(data["encryption"], kind.to_lowercase());
        let layers = data["crypt_layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{data}");
        let layer = &layers[0];
        assert_eq!(layer["device"], "dm-0");
        assert_eq!(layer["header_device"], "nvme0n1p3");
        assert_eq!(layer["cipher"], "aes-xts-plain64");
        assert_eq!(layer["key_bits"], bits);
        assert_eq!(layer["via_loop_file"], "/var/lib/images/data.img");
        // The root's own layer is not marked as going through a loop file.
        assert!(crypt_layer(&finding, "/").get("via_loop_file").is_none());
        if status == "fail" {
            assert!(finding.summary.contains("/mnt/data"), "{}", finding.summary);
        }
    }
    // On a plain filesystem: no layer is invented.
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    let disk = tree.disk(SATA, "8:0", false);
    tree.partition(&disk, "sda1", "8:1", 1);
    tree.mount("8:1", "/", "/srv", "ext4", "/dev/sda1");
    tree.loop_dev(0, "/srv/data.img");
    tree.mount("7:0", "/", "/mnt/data", "ext4", "/dev/loop0");
    let finding = tree.run();
    assert_eq!(volume(&finding, "/mnt/data")["status"], "fail");
    assert_eq!(
        volume(&finding, "/mnt/data")["crypt_layers"],
        Value::Array(Vec::new())
    );
}

#[test]
fn hibernation_resuming_from_an_unencrypted_swap_partition_fails() {
    // Encrypted root, but `resume=/dev/sda2`: the RAM image (with the LUKS key) is in clear.
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    let disk = tree.disk(SATA, "8:0", false);
    tree.partition(&disk, "sda2", "8:2", 2);
    tree.write("sys/power/resume", "8:2\n");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(
        finding.observed["hibernation"]["resume_device"],
        "/dev/sda2"
    );
    assert_eq!(finding.observed["hibernation"]["encrypted"], false);
    assert!(remediation(&finding).contains("Hibernation resumes from /dev/sda2"));
}

#[test]
fn hibernation_resuming_from_swap_inside_luks_passes() {
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.write("sys/power/resume", "253:2\n");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(finding.observed["hibernation"]["encrypted"], true);
    // No resume device configured.
    let mut tree = Tree::new();
    lvm_on_luks(&mut tree);
    tree.write("sys/power/resume", "0:0\n");
    assert!(tree.run().observed["hibernation"]["resume_device"].is_null());
}

#[test]
fn ecryptfs_home_is_file_level_and_does_not_pass_a_plain_root() {
    // Ubuntu's old "encrypt my home folder": eCryptfs over /home/.ecryptfs/alice/.Private.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(SATA, "8:0", false);
    tree.partition(&disk, "sda1", "8:1", 1);
    tree.mount("8:1", "/", "/", "ext4", "/dev/sda1");
    tree.mount(
        "0:60",
        "/",
        "/home/alice",
        "ecryptfs",
        "/home/.ecryptfs/alice/.Private",
    );
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    let file_level = &finding.observed["file_level"][0];
    assert_eq!(file_level["kind"], "ecryptfs");
    assert_eq!(file_level["mount_point"], "/home/alice");
    assert_eq!(file_level["full_volume"], false);
    assert!(!has_volume(&finding, "/home/alice"));
}

#[test]
fn btrfs_raid1_on_two_luks_devices_passes() {
    // btrfs multi-device (raid1) with each member on its own LUKS2 mapping.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let p3 = nvme_with_boot(&mut tree);
    let disk = tree.disk(SATA, "8:0", false);
    let sda1 = tree.partition(&disk, "sda1", "8:1", 1);
    let a = tree.dm(0, "luks-a", &luks2_uuid("luks-a"), &[&p3]);
    let b = tree.dm(1, "luks-b", &luks2_uuid("luks-b"), &[&sda1]);
    let fsid = Path::new("sys/fs/btrfs/7c1d2c3e-8f9a-4b0c-9d1e-2f3a4b5c6d7e/devices");
    link(tree.root(), fsid, "dm-0", &a.sys);
    link(tree.root(), fsid, "dm-1", &b.sys);
    tree.mount("0:34", "/@", "/", "btrfs", "/dev/mapper/luks-a");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(
        chain(&finding, "/"),
        ["dm-0 (LUKS2)", "nvme0n1p3", "dm-1 (LUKS2)", "sda1"]
    );
}

// ---- on this machine's kernel: loop devices and a real btrfs multi-device filesystem ---

const LIVE_OUT: &str = "POSTURE_DISK_LIVE_OUT";

/// Helper run by `live_btrfs_raid1_on_loop_files` inside a private mount namespace.
#[test]
#[ignore = "helper: run by live_btrfs_raid1_on_loop_files in a private mount namespace"]
fn live_child() {
    let finding = disk_encryption::check(&Context::system(ChecksConfig::default()));
    let out = std::env::var(LIVE_OUT).expect("run by the live test");
    std::fs::write(out, serde_json::to_vec(&finding).unwrap()).unwrap();
}

fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success();
        assert!(
            found,
            "{tool} is not installed: run scripts/setup.sh (this test must not be skipped)"
        );
    }
}

/// A real kernel stack: two loop devices over image files, one btrfs raid1 filesystem on
/// both, mounted in a private mount namespace; the real check then reads the kernel's own
/// mountinfo, `/sys/fs/btrfs/<fsid>/devices`, and `loop/backing_file`, and follows the
/// backing files to the filesystem they are on. Needs root and loop devices (CI runs as
/// root); fails loudly when a tool is missing.
///
/// dm-crypt is not exercised here: this build machine's kernel has no device-mapper
/// (`/dev/mapper/control` is absent and modules cannot be loaded), so LUKS stacks are
/// covered by the sysfs trees and the real LUKS headers above.
#[test]
fn live_btrfs_raid1_on_loop_files() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        eprintln!("NOT RUN: live_btrfs_raid1_on_loop_files needs root (CI runs as root)");
        return;
    }
    require_tools(&["losetup", "mkfs.btrfs", "unshare", "mount"]);
    assert!(
        Path::new("/dev/loop-control").exists(),
        "no /dev/loop-control: the kernel has no loop devices"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("finding.json");
    let exe = std::env::current_exe().unwrap();
    let script = r#"
        set -e
        cd "$1"
        truncate -s 160M a.img b.img
        A=$(losetup -f --show a.img); B=$(losetup -f --show b.img)
        trap 'umount mnt 2>/dev/null; losetup -d "$A" "$B"' EXIT
        mkfs.btrfs -q -f -d raid1 -m raid1 "$A" "$B" >/dev/null
        mkdir mnt
        mount -t btrfs "$A" mnt
        echo "$A $B" > loops
        "$2" --exact live_child --ignored --nocapture >/dev/null
    "#;
    let output = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(dir.path())
        .arg(&exe)
        .env(LIVE_OUT, &out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "live setup failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let finding: Finding = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let loops = std::fs::read_to_string(dir.path().join("loops")).unwrap();
    let names: Vec<&str> = loops
        .split_whitespace()
        .map(|l| l.trim_start_matches("/dev/"))
        .collect();
    let mount_point = dir.path().join("mnt");
    let mount_point = mount_point.to_str().unwrap();
    let btrfs = volume(&finding, mount_point);
    assert_eq!(btrfs["fstype"], "btrfs");
    let chain: Vec<&str> = btrfs["device_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(chain.len(), 2, "both raid1 members: {chain:?}");
    for (label, name) in chain.iter().zip(&names) {
        assert!(label.starts_with(&format!("{name} (loop: ")), "{label}");
    }
    // The image files are on this machine's root filesystem: the btrfs volume is exactly
    // as protected as `/`, never `unknown` and never better.
    assert_eq!(
        btrfs["status"],
        volume(&finding, "/")["status"],
        "{finding:#?}"
    );
    assert_eq!(btrfs["encryption"], volume(&finding, "/")["encryption"]);
}

#[test]
fn dm_integrity_under_dm_crypt_is_encrypted_and_the_header_is_read_below_it() {
    // `cryptsetup luksFormat --integrity hmac-sha256`: dm-crypt (CRYPT-LUKS2) over a
    // dm-integrity device (CRYPT-SUBDEV, `<name>_dif`) over the partition, whose start
    // holds the LUKS2 header.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let p3 = nvme_with_boot(&mut tree);
    let dif = tree.dm(
        0,
        "root_crypt_dif",
        &format!("CRYPT-SUBDEV-{}-root_crypt_dif", LUKS_UUID.replace('-', "")),
        &[&p3],
    );
    tree.dm(1, "root_crypt", &luks2_uuid("root_crypt"), &[&dif]);
    tree.mount("253:1", "/", "/", "ext4", "/dev/mapper/root_crypt");
    std::fs::create_dir_all(tree.root().join("dev")).unwrap();
    std::fs::write(
        tree.root().join("dev/nvme0n1p3"),
        header_fixture("luks2-aes-xts-512.hdr"),
    )
    .unwrap();
    let finding = tree.run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(
        chain(&finding, "/"),
        ["dm-1 (LUKS2)", "dm-0 (dm-crypt SUBDEV)", "nvme0n1p3"]
    );
    let layer = crypt_layer(&finding, "/");
    assert_eq!(layer["header_device"], "nvme0n1p3");
    assert_eq!(layer["cipher"], "aes-xts-plain64");
}

/// bcachefs on two plain NVMe partitions (anonymous device number, source names both),
/// whose device nodes carry `superblock`.
fn bcachefs_root(superblock: Option<&[u8]>) -> Tree {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(NVME, "259:0", false);
    tree.partition(&disk, "nvme0n1p1", "259:1", 1);
    tree.partition(&disk, "nvme0n1p2", "259:2", 2);
    tree.mount(
        "0:40",
        "/",
        "/",
        "bcachefs",
        "/dev/nvme0n1p1:/dev/nvme0n1p2",
    );
    if let Some(sb) = superblock {
        std::fs::create_dir_all(tree.root().join("dev")).unwrap();
        for dev in ["nvme0n1p1", "nvme0n1p2"] {
            std::fs::write(tree.root().join("dev").join(dev), sb).unwrap();
        }
    }
    tree
}

/// The real 1.33 superblock with a `crypt` field appended (see the unit test in
/// `bcachefs.rs`: derived, not captured).
fn encrypted_bcachefs_superblock() -> Vec<u8> {
    let mut bytes = header_fixture("bcachefs-3-util-linux.sb");
    let sb = 4096;
    let u64s = u32::from_le_bytes(bytes[sb + 124..sb + 128].try_into().unwrap());
    let end = sb + 752 + u64s as usize * 8;
    bytes[end..end + 8].copy_from_slice(&[12, 0, 0, 0, 2, 0, 0, 0]);
    bytes[sb + 124..sb + 128].copy_from_slice(&(u64s + 12).to_le_bytes());
    bytes
}

#[test]
fn bcachefs_native_encryption_passes_with_cipher_and_key_size() {
    let finding = bcachefs_root(Some(&encrypted_bcachefs_superblock())).run();
    assert_eq!(finding.status, Status::Pass, "{finding:#?}");
    assert_eq!(finding.observed["root"], "bcachefs-native");
    let layers = volume(&finding, "/")["crypt_layers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(layers.len(), 2, "{layers:#?}");
    for layer in layers {
        assert_eq!(layer["format"], "bcachefs-native");
        assert_eq!(layer["cipher"], "chacha20-poly1305");
        assert_eq!(layer["key_bits"], 256);
    }
}

#[test]
fn bcachefs_without_crypt_field_fails() {
    let finding = bcachefs_root(Some(&header_fixture("bcachefs-3-util-linux.sb"))).run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    assert_eq!(finding.observed["root"], "none");
}

#[test]
fn bcachefs_with_unreadable_superblock_is_unknown_never_fail_or_pass() {
    let finding = bcachefs_root(None).run();
    assert_eq!(finding.status, Status::Unknown, "{finding:#?}");
    assert!(
        finding.summary.contains("superblock of /dev/nvme0n1p1"),
        "{}",
        finding.summary
    );
}

#[test]
fn plain_nvme_root_records_why_opal_was_not_read() {
    // Not on the live system, so no ioctl: the Opal state is "not read" with the reason,
    // and the volume fails as plain.
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(NVME, "259:0", false);
    tree.partition(&disk, "nvme0n1p2", "259:2", 2);
    tree.mount("259:2", "/", "/", "ext4", "/dev/nvme0n1p2");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    let layer = crypt_layer(&finding, "/");
    assert_eq!(layer["format"], "opal");
    assert_eq!(layer["device"], "nvme0n1");
    assert!(
        layer["header"]
            .as_str()
            .unwrap()
            .contains("live system only"),
        "{layer:#?}"
    );
}

#[test]
fn plain_virtio_root_has_no_opal_without_opening_the_disk() {
    let mut tree = Tree::new();
    tree.mount_pseudo();
    let disk = tree.disk(
        "devices/pci0000:00/0000:00:04.0/virtio1/block/vda",
        "254:0",
        false,
    );
    tree.partition(&disk, "vda1", "254:1", 1);
    tree.mount("254:1", "/", "/", "ext4", "/dev/vda1");
    let finding = tree.run();
    assert_eq!(finding.status, Status::Fail, "{finding:#?}");
    let layer = crypt_layer(&finding, "/");
    assert!(
        layer["header"]
            .as_str()
            .unwrap()
            .starts_with("no Opal: vda is a virtio disk"),
        "{layer:#?}"
    );
}
