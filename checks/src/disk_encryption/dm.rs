//! What a device-mapper device is, from its `dm/uuid`.
//!
//! The uuid prefix is set by the tool that created the mapping and is the only
//! unprivileged way to know its target type (`dmsetup table` needs root):
//! - cryptsetup (and systemd-cryptsetup, which uses libcryptsetup) writes
//!   `CRYPT-<TYPE>-[<uuid without dashes>-]<name>` (libcryptsetup `dm_prepare_uuid`):
//!   `CRYPT-LUKS2-0b3c...-luks-0b3c...`, `CRYPT-PLAIN-cswap`. The same prefix is used for
//!   mappings that do not encrypt: `CRYPT-VERITY-`, `CRYPT-INTEGRITY-`, `CRYPT-TEMP-`,
//!   `CRYPT-SUBDEV-`.
//! - LVM writes `LVM-<vg uuid><lv uuid>` (32 + 32 characters, no dashes) with a suffix for
//!   hidden sub-volumes (`-real`, `-cow`, `-tpool`, ...).
//! - multipath writes `mpath-<wwid>`; kpartx partitions `part<N>-<parent uuid>`.

/// An encryption format dm-crypt runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CryptKind {
    /// LUKS version 1.
    Luks1,
    /// LUKS version 2.
    Luks2,
    /// Plain dm-crypt (no header), e.g. swap with a random key.
    Plain,
    /// BitLocker, opened by cryptsetup.
    BitLocker,
    /// TrueCrypt / VeraCrypt.
    TrueCrypt,
    /// loop-AES compatible.
    LoopAes,
    /// FileVault 2, opened by cryptsetup.
    FileVault2,
}

impl CryptKind {
    /// The name used in `observed` (`luks2`, `plain`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CryptKind::Luks1 => "luks1",
            CryptKind::Luks2 => "luks2",
            CryptKind::Plain => "plain",
            CryptKind::BitLocker => "bitlocker",
            CryptKind::TrueCrypt => "tcrypt",
            CryptKind::LoopAes => "loop-aes",
            CryptKind::FileVault2 => "filevault2",
        }
    }

    /// The label in a device chain (`LUKS2`, `plain dm-crypt`, ...).
    pub fn label(self) -> &'static str {
        match self {
            CryptKind::Luks1 => "LUKS1",
            CryptKind::Luks2 => "LUKS2",
            CryptKind::Plain => "plain dm-crypt",
            CryptKind::BitLocker => "BitLocker",
            CryptKind::TrueCrypt => "TrueCrypt",
            CryptKind::LoopAes => "loop-AES",
            CryptKind::FileVault2 => "FileVault2",
        }
    }
}

/// What a device-mapper device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmKind {
    /// dm-crypt: everything below it is ciphertext.
    Crypt(CryptKind),
    /// An LVM logical volume (or one of its hidden sub-volumes).
    Lvm,
    /// Another mapping that passes data through unencrypted (verity, integrity, multipath,
    /// kpartx, cryptsetup's temporary devices, ...), named for the chain.
    PassThrough(String),
    /// A mapping without a uuid: its target type cannot be read without root.
    NoUuid,
}

/// Classifies a `dm/uuid` value.
pub fn classify_uuid(uuid: &str) -> DmKind {
    let uuid = uuid.trim();
    if uuid.is_empty() {
        return DmKind::NoUuid;
    }
    if let Some(rest) = uuid.strip_prefix("CRYPT-") {
        let subsystem = rest.split('-').next().unwrap_or("");
        return match subsystem {
            "LUKS1" => DmKind::Crypt(CryptKind::Luks1),
            "LUKS2" => DmKind::Crypt(CryptKind::Luks2),
            "PLAIN" => DmKind::Crypt(CryptKind::Plain),
            "BITLK" => DmKind::Crypt(CryptKind::BitLocker),
            "TCRYPT" => DmKind::Crypt(CryptKind::TrueCrypt),
            "LOOPAES" => DmKind::Crypt(CryptKind::LoopAes),
            "FVAULT2" => DmKind::Crypt(CryptKind::FileVault2),
            // VERITY, INTEGRITY, TEMP, SUBDEV and anything newer: not proof of encryption,
            // so the chain is judged by what lies below.
            other => DmKind::PassThrough(format!("dm-crypt {other}")),
        };
    }
    if uuid.starts_with("LVM-") {
        return DmKind::Lvm;
    }
    let prefix = uuid.split('-').next().unwrap_or(uuid);
    if prefix.starts_with("part") {
        return DmKind::PassThrough("partition mapping".to_owned());
    }
    DmKind::PassThrough(prefix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt_uuids() {
        // Shapes from libcryptsetup's dm_prepare_uuid and a Fedora 40 / Debian 12 install.
        assert_eq!(
            classify_uuid("CRYPT-LUKS2-0b3c9d6e2a4f4e1b9c8d7e6f5a4b3c2d-luks-0b3c9d6e-2a4f-4e1b-9c8d-7e6f5a4b3c2d\n"),
            DmKind::Crypt(CryptKind::Luks2)
        );
        assert_eq!(
            classify_uuid("CRYPT-LUKS1-4f1e2d3c4b5a69788796a5b4c3d2e1f0-sda5_crypt"),
            DmKind::Crypt(CryptKind::Luks1)
        );
        assert_eq!(
            classify_uuid("CRYPT-PLAIN-cswap"),
            DmKind::Crypt(CryptKind::Plain)
        );
        assert_eq!(
            classify_uuid("CRYPT-BITLK-6b1f0f7e0a9c4a52b0b7d1c3e4f5a6b7-win"),
            DmKind::Crypt(CryptKind::BitLocker)
        );
    }

    #[test]
    fn non_encrypting_mappings_pass_through() {
        assert!(matches!(
            classify_uuid("CRYPT-VERITY-8c2c1e9f0d7b4a6e9f1a2b3c4d5e6f70-root"),
            DmKind::PassThrough(_)
        ));
        assert!(matches!(
            classify_uuid("CRYPT-TEMP-root-hotzone-forward"),
            DmKind::PassThrough(_)
        ));
        assert_eq!(
            classify_uuid("LVM-Qm3cFZ1sXbRk2x0nDq8vYl4tHj6gPw9eUo7aTc5iNs1fKr3bMz8dLy2hWv4qEx6p"),
            DmKind::Lvm
        );
        assert!(matches!(
            classify_uuid("mpath-3600508b400105e210000900000490000"),
            DmKind::PassThrough(_)
        ));
        assert_eq!(classify_uuid(""), DmKind::NoUuid);
    }
}
