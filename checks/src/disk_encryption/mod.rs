//! `disk_encryption`: is every persistent local volume, and swap, encrypted at rest?
//!
//! Sources (all below the context root, so tests run this code over built trees):
//! - `/proc/self/mountinfo`: every mount, with its device number (`major:minor`),
//!   filesystem type and source.
//! - sysfs: `/sys/dev/block/MAJ:MIN` and `/sys/class/block/NAME` lead to the device's
//!   directory; device-mapper (`dm/uuid`, `dm/name`), md and the `slaves/` links are
//!   followed down to the physical disks. LVM-on-LUKS and
//!   LUKS-on-LVM are both just stacks: the volume is encrypted when every path from it
//!   to a physical device passes through a dm-crypt layer.
//! - `/proc/swaps`: active swap areas (each with its encryption layers, as for volumes).
//! - `<mount point>/.fscrypt/policies`: fscrypt's metadata, when fscrypt is set up.
//! - ZFS datasets: `zfs get -H -o value encryption,keystatus <dataset>`, live system only;
//!   a dataset without native encryption is judged by its pool's devices (`zpool status -P
//!   <pool>`, then sysfs), so ZFS on LUKS counts as encrypted through the LUKS layer. A
//!   native cipher with less than a 256-bit AES key (`aes-128-ccm`) is weak, as for dm-crypt.
//! - bcachefs: the superblock of each member device (root only): a `crypt` field means
//!   native encryption (ChaCha20/Poly1305, 256-bit key).
//! - Self-encrypting drives: for a volume whose stack has no encryption layer, the Opal
//!   locking state of each disk under it (`IOC_OPAL_GET_STATUS`, live, root); a drive with
//!   locking enabled counts as encrypted by the hardware layer.
//! - The LUKS header at the start of the device under each dm-crypt mapping (root only):
//!   which layer encrypts, with which cipher and key size; a weak cipher (`cipher_null`,
//!   ECB, CBC with a plain IV, AES-128-XTS) fails. A device that does not start with a
//!   header is a detached-header volume: still encrypted.
//! - The kernel's dm table (`DM_TABLE_STATUS` on `/dev/mapper/control`, root only) for a
//!   mapping without a readable header (plain dm-crypt, a detached LUKS header): its
//!   cipher and key size, judged as a header's. Only the key's length is taken from the
//!   line; the buffer holding it is zeroed.
//! - `/sys/power/resume`: hibernation writes all of memory (keys included) to that device;
//!   an unencrypted resume device fails.
//! - Loop devices are as protected as the filesystem their backing file is on, so an
//!   encrypted container file never makes a plain `/` count as encrypted. A volume on a
//!   loop file lists the encryption layers of the filesystem holding the file as its own
//!   (`via_loop_file` names the file), weak ciphers included.
//! - eCryptfs mounts and fscrypt policies are reported under `file_level`: they encrypt
//!   directories, not volumes, and never make a volume pass.
//!
//! Every mount is judged on its own: an encrypted second disk never makes up for an
//! unencrypted `/`. `/boot`, the EFI partition, removable media, tmpfs, squashfs and
//! network mounts are listed under `ignored` with the reason. A stack that cannot be
//! resolved makes the volume `unknown`, never `pass`.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

mod bcachefs;
pub mod bitlocker;
mod dm;
// The reader is Linux's; the parser is pure and tested on every OS.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod dm_table;
pub mod fdesetup;
mod luks;
pub mod manage_bde;
mod mounts;
mod opal;
#[cfg(target_os = "linux")]
mod sysfs;
#[cfg(target_os = "linux")]
mod zfs;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "windows")]
mod windows;

pub use bcachefs::{parse_superblock, BcachefsSuper};
pub use dm::{classify_uuid, CryptKind, DmKind};
#[cfg(target_os = "linux")]
pub use linux::*;
pub use luks::{parse_header, parse_luks2_json, weakness, HeaderError, LuksParams};
pub use mounts::{classify, parse_mountinfo, parse_swaps, Mount, MountClass, SwapArea};
pub use opal::{parse_level0, Level0, Locking, OpalState};
#[cfg(target_os = "linux")]
pub use sysfs::{Attachment, BlockNode, Layer};
#[cfg(target_os = "linux")]
pub use zfs::{parse_zfs_get, parse_zpool_status_vdevs, ZfsEncryption};

use posture_core::Finding;

use crate::Context;

/// Check id.
pub const ID: &str = "disk_encryption";

/// Runs the check for the OS this was built for.
pub fn check(ctx: &Context) -> Finding {
    #[cfg(target_os = "linux")]
    return linux::check(ctx);
    #[cfg(target_os = "macos")]
    return macos::check(ctx);
    #[cfg(target_os = "windows")]
    return windows::check(ctx);
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    return crate::unsupported_os(ID, ctx);
}
