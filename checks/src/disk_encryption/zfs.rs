//! ZFS native encryption of a mounted dataset, and ZFS on LUKS.
//!
//! ZFS keeps the `encryption` property in the pool, not in sysfs, so the only source is
//! the `zfs` command: `zfs get -H -o value encryption,keystatus <dataset>` (read-only,
//! needs no root, finishes in milliseconds). It runs only on the live system
//! (`Context::live`); against a fixture tree the answer is `unknown`.
//!
//! A dataset without native encryption may still be encrypted below the pool: vdevs on
//! dm-crypt (ZFS on LUKS). ZFS opens its vdevs exclusively but does not register as a
//! sysfs holder, so the pool's devices come from `zpool status -P <pool>` (also read-only,
//! no root); each leaf vdev is then resolved through sysfs like any block device.

use std::time::Duration;

use crate::source::run_command;
use crate::Context;

/// How long `zfs get` may take: the whole check has a few seconds.
const ZFS_TIMEOUT: Duration = Duration::from_secs(3);

/// A dataset's encryption properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZfsEncryption {
    /// The `encryption` property: `off` or a cipher such as `aes-256-gcm`.
    pub encryption: String,
    /// The `keystatus` property: `available`, `unavailable`, or `-` when not encrypted.
    pub keystatus: String,
}

impl ZfsEncryption {
    /// Whether the dataset is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encryption != "off"
    }

    /// The key size in the `encryption` value (`aes-256-gcm`: 256); 0 when the value
    /// names none.
    pub fn key_bits(&self) -> u32 {
        self.encryption
            .split('-')
            .nth(1)
            .and_then(|bits| bits.parse().ok())
            .unwrap_or(0)
    }

    /// Why the cipher is weak, when it is: the same rule as for dm-crypt, AES with less
    /// than a 256-bit key (OpenZFS offers aes-128-ccm/gcm and aes-192-ccm/gcm; its default
    /// for `encryption=on` is aes-256-gcm). A value whose key size is not in its name is
    /// not judged.
    pub fn weakness(&self) -> Option<String> {
        let bits = self.key_bits();
        if !self.is_encrypted() || bits == 0 {
            return None;
        }
        super::luks::weakness(&self.encryption, bits, false)
    }
}

/// Parses the two lines of `zfs get -H -o value encryption,keystatus`.
pub fn parse_zfs_get(stdout: &str) -> Result<ZfsEncryption, String> {
    let mut lines = stdout.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next(), lines.next()) {
        (Some(encryption), Some(keystatus), None) => Ok(ZfsEncryption {
            encryption: encryption.to_owned(),
            keystatus: keystatus.to_owned(),
        }),
        _ => Err(format!(
            "unexpected output of `zfs get encryption,keystatus`: {stdout:?}"
        )),
    }
}

/// Reads a dataset's encryption with `zfs get` (live system only).
pub fn read_zfs_encryption(ctx: &Context, dataset: &str) -> Result<ZfsEncryption, String> {
    if !ctx.live {
        return Err(format!(
            "ZFS dataset {dataset}: its encryption is read with `zfs get`, which is only run on the live system"
        ));
    }
    let args = ["get", "-H", "-o", "value", "encryption,keystatus", dataset];
    let output = run_command(ctx, "zfs", &args, ZFS_TIMEOUT)
        .and_then(|o| o.success("zfs get encryption,keystatus"))
        .map_err(|e| format!("ZFS dataset {dataset}: {e}"))?;
    parse_zfs_get(&output.stdout)
}

/// The leaf vdevs of `zpool status [-P]` output for one pool: the rows of its `config:`
/// table that have no rows indented below them, the pool's own row and grouping rows
/// (`mirror-0`, `raidz2-0`, `logs`, `cache`, `special`, `spares`) excluded. With `-P` a
/// leaf is a full path; without it a name (`sda`, `dm-uuid-CRYPT-LUKS2-...`).
pub fn parse_zpool_status_vdevs(text: &str) -> Result<Vec<String>, String> {
    let mut rows: Vec<(usize, String)> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !in_table {
            if trimmed.starts_with("NAME") && trimmed.contains("STATE") {
                in_table = true;
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with("errors:") {
            break;
        }
        let indent = line.len() - trimmed.len();
        let name = trimmed.split_whitespace().next().unwrap_or_default();
        rows.push((indent, name.to_owned()));
    }
    if rows.is_empty() {
        return Err("no `config:` table in `zpool status` output".to_owned());
    }
    let mut leaves = Vec::new();
    // Row 0 is the pool itself.
    for i in 1..rows.len() {
        let (indent, name) = &rows[i];
        let has_children = rows.get(i + 1).is_some_and(|(next, _)| next > indent);
        let grouping = ["logs", "cache", "spares", "special", "dedup"].contains(&name.as_str());
        if !has_children && !grouping {
            leaves.push(name.clone());
        }
    }
    if leaves.is_empty() {
        return Err("`zpool status` lists no devices for the pool".to_owned());
    }
    Ok(leaves)
}

/// The device path of a leaf vdev as `zpool status` names it: a path as is, else the
/// udev names ZFS uses (`/dev/disk/by-id/NAME`, `/dev/mapper/NAME`, `/dev/NAME`), the
/// first that exists below the context root.
pub fn vdev_path(ctx: &Context, name: &str) -> String {
    if name.starts_with('/') {
        return name.to_owned();
    }
    for dir in [
        "/dev/disk/by-id",
        "/dev/mapper",
        "/dev/disk/by-partuuid",
        "/dev",
    ] {
        let path = format!("{dir}/{name}");
        if crate::source::exists(ctx, &path) {
            return path;
        }
    }
    format!("/dev/{name}")
}

/// Reads a pool's leaf vdevs with `zpool status -P` (live system only).
pub fn read_pool_vdevs(ctx: &Context, pool: &str) -> Result<Vec<String>, String> {
    if !ctx.live {
        return Err(format!(
            "ZFS pool {pool}: its devices are read with `zpool status`, which is only run on the live system"
        ));
    }
    let output = run_command(ctx, "zpool", &["status", "-P", pool], ZFS_TIMEOUT)
        .and_then(|o| o.success("zpool status -P"))
        .map_err(|e| format!("ZFS pool {pool}: {e}"))?;
    parse_zpool_status_vdevs(&output.stdout).map_err(|e| format!("ZFS pool {pool}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `zpool status` outputs (see the fixtures' README): a root pool mirrored over
    /// two LUKS2 mappings, and a pool on one plain partition.
    #[test]
    fn zpool_status_leaves() {
        let luks =
            include_str!("../../tests/fixtures/disk_encryption/zpool-status-mirror-on-luks2.txt");
        assert_eq!(
            parse_zpool_status_vdevs(luks).unwrap(),
            vec![
                "dm-uuid-CRYPT-LUKS2-bcb691b129a64eb29b0e2229a09b65d8-ata-CT1000MX500SSD1_2205E6057147_crypt",
                "dm-uuid-CRYPT-LUKS2-4df0ad7f3699492588873511a6664d8e-ata-CT1000MX500SSD1_2205E605725B_crypt",
            ]
        );
        let plain =
            include_str!("../../tests/fixtures/disk_encryption/zpool-status-single-disk.txt");
        assert_eq!(parse_zpool_status_vdevs(plain).unwrap(), vec!["mfid1p1"]);
        assert!(parse_zpool_status_vdevs("cannot open 'x': no such pool\n").is_err());
    }

    #[test]
    fn parses_encrypted_and_plain_datasets() {
        // Output shape of OpenZFS 2.1 (Ubuntu 22.04) for rpool/USERDATA and bpool.
        let encrypted = parse_zfs_get("aes-256-gcm\navailable\n").unwrap();
        assert!(encrypted.is_encrypted());
        assert_eq!(encrypted.keystatus, "available");
        assert_eq!(encrypted.key_bits(), 256);
        assert_eq!(encrypted.weakness(), None);
        let plain = parse_zfs_get("off\n-\n").unwrap();
        assert!(!plain.is_encrypted());
        assert_eq!(plain.weakness(), None);
        assert!(parse_zfs_get("cannot open 'x': dataset does not exist\n").is_err());
    }

    /// The values OpenZFS 2.1 accepts for `encryption` (zfsprops(7)): AES-128 and AES-192
    /// are weak by the rule dm-crypt ciphers are judged by, AES-256 is not.
    #[test]
    fn weak_zfs_ciphers() {
        for (value, bits, weak) in [
            ("aes-128-ccm", 128, true),
            ("aes-192-ccm", 192, true),
            ("aes-256-ccm", 256, false),
            ("aes-128-gcm", 128, true),
            ("aes-192-gcm", 192, true),
            ("aes-256-gcm", 256, false),
        ] {
            let props = parse_zfs_get(&format!("{value}\navailable\n")).unwrap();
            assert_eq!(props.key_bits(), bits, "{value}");
            assert_eq!(props.weakness().is_some(), weak, "{value}");
        }
        let unnamed = parse_zfs_get("future-cipher\navailable\n").unwrap();
        assert_eq!((unnamed.key_bits(), unnamed.weakness()), (0, None));
    }

    #[test]
    fn not_run_against_fixtures() {
        let ctx = Context::fixture(
            "/nonexistent",
            crate::ChecksConfig::default(),
            std::time::SystemTime::now(),
        );
        let err = read_zfs_encryption(&ctx, "rpool/ROOT/ubuntu").unwrap_err();
        assert!(err.contains("live system"), "{err}");
    }
}
