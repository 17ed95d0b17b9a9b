//! ZFS native encryption of a mounted dataset.
//!
//! ZFS keeps the `encryption` property in the pool, not in sysfs, so the only source is
//! the `zfs` command: `zfs get -H -o value encryption,keystatus <dataset>` (read-only,
//! needs no root, finishes in milliseconds). It runs only on the live system
//! (`Context::live`); against a fixture tree the answer is `unknown`.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_encrypted_and_plain_datasets() {
        // Output shape of OpenZFS 2.1 (Ubuntu 22.04) for rpool/USERDATA and bpool.
        let encrypted = parse_zfs_get("aes-256-gcm\navailable\n").unwrap();
        assert!(encrypted.is_encrypted());
        assert_eq!(encrypted.keystatus, "available");
        let plain = parse_zfs_get("off\n-\n").unwrap();
        assert!(!plain.is_encrypted());
        assert!(parse_zfs_get("cannot open 'x': dataset does not exist\n").is_err());
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
