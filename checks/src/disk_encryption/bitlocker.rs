//! BitLocker per volume from WMI `Win32_EncryptableVolume`
//! (`root\cimv2\Security\MicrosoftVolumeEncryption`; pure; every OS).
//!
//! Fields (Microsoft Learn, "Win32_EncryptableVolume class" and its `GetConversionStatus`,
//! `GetEncryptionMethod`, `GetSuspendCount` methods): `VolumeType` 0 = operating system
//! volume, 1 = fixed data volume, 2 = removable data volume; `ProtectionStatus` 0 =
//! protection off, 1 = on, 2 = unknown (the volume is locked); `ConversionStatus` 0 =
//! fully decrypted, 1 = fully encrypted, 2 = encryption in progress, 3 = decryption in
//! progress, 4 = encryption paused, 5 = decryption paused; `EncryptionMethod` 0 = none,
//! 1/2 = AES-128/256 with diffuser, 3/4 = AES-128/256, 5 = hardware encryption (the
//! drive's own, self-encrypting drive), 6/7 = XTS-AES-128/256; `SuspendCount` = restarts
//! left before suspended protection resumes by itself.
//!
//! The check's script writes one object per source: `EncryptableVolume`, the
//! `Win32_EncryptableVolume` instances with their own property names (the shape of
//! `Get-CimInstance ... | Select-Object DriveLetter, ... | ConvertTo-Json`, and of a
//! published `Format-List` capture read with [`crate::ps_json::from_list_text`]), and
//! `ManageBde`, the text of `manage-bde -status` ([`super::manage_bde`]), which gives the
//! restarts left of a suspension and stands in when WMI answered nothing.
//!
//! "Suspended" is a fully encrypted volume whose protection is off: its key is stored in
//! the clear on the volume, so the data is readable by anyone with the disk.

use serde::Serialize;
use serde_json::Value;

use super::manage_bde;
use crate::ps_json::{list, text, uint};

/// One volume as WMI reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// `C:`; empty for a volume without a letter.
    pub drive_letter: String,
    /// `\\?\Volume{...}\`.
    pub device_id: String,
    /// 0 OS, 1 fixed data, 2 removable; `None` if WMI did not say.
    pub volume_type: Option<u64>,
    /// 0 off, 1 on, 2 unknown.
    pub protection_status: Option<u64>,
    /// 0..=5, see the module documentation.
    pub conversion_status: Option<u64>,
    /// 0..=7, see the module documentation.
    pub encryption_method: Option<u64>,
    /// Restarts before suspended protection resumes.
    pub suspend_count: Option<u64>,
}

/// What a volume's state means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeState {
    /// Fully encrypted, protection on.
    Protected,
    /// Fully encrypted, protection suspended (key in the clear).
    Suspended,
    /// Encryption running or paused: part of the volume is still plain.
    EncryptionInProgress,
    /// Decrypted or being decrypted.
    NotEncrypted,
    /// Locked or not reported: cannot tell.
    Unknown,
}

impl Volume {
    /// The volume's state.
    pub fn state(&self) -> VolumeState {
        match (self.conversion_status, self.protection_status) {
            (Some(1), Some(1)) => VolumeState::Protected,
            (Some(1), Some(0)) => VolumeState::Suspended,
            (Some(2) | Some(4), _) => VolumeState::EncryptionInProgress,
            (Some(0) | Some(3) | Some(5), _) => VolumeState::NotEncrypted,
            _ => VolumeState::Unknown,
        }
    }

    /// Whether the check judges it: OS and fixed data volumes (removable ones are not).
    pub fn is_fixed(&self) -> bool {
        !matches!(self.volume_type, Some(2))
    }

    /// The encryption method's name.
    pub fn method_name(&self) -> &'static str {
        match self.encryption_method {
            Some(0) => "none",
            Some(1) => "AES-128 with diffuser",
            Some(2) => "AES-256 with diffuser",
            Some(3) => "AES-128",
            Some(4) => "AES-256",
            Some(5) => "hardware encryption",
            Some(6) => "XTS-AES-128",
            Some(7) => "XTS-AES-256",
            _ => "unknown",
        }
    }

    /// `C:` or the device id.
    pub fn label(&self) -> &str {
        if self.drive_letter.is_empty() {
            &self.device_id
        } else {
            &self.drive_letter
        }
    }
}

/// Parses the volumes.
pub fn parse(value: &Value) -> Vec<Volume> {
    list(value)
        .into_iter()
        .map(|v| Volume {
            drive_letter: text(v, "DriveLetter").unwrap_or_default(),
            device_id: text(v, "DeviceID").unwrap_or_default(),
            volume_type: uint(v, "VolumeType"),
            protection_status: uint(v, "ProtectionStatus"),
            conversion_status: uint(v, "ConversionStatus"),
            encryption_method: uint(v, "EncryptionMethod"),
            suspend_count: uint(v, "SuspendCount"),
        })
        .collect()
}

/// Which source the volumes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeSource {
    /// `Win32_EncryptableVolume` (with `manage-bde`'s reboot counts).
    Wmi,
    /// `manage-bde -status` alone: it does not say whether a data volume is fixed or
    /// removable.
    ManageBde,
}

/// Parses the check's answer (see the module documentation): the WMI volumes, each
/// completed with the restarts left that `manage-bde` printed for its drive letter; or,
/// when WMI gave none, the volumes of `manage-bde`. `Err` (the reason) when neither
/// source reported a volume.
pub fn parse_answer(value: &Value) -> Result<(Vec<Volume>, VolumeSource), String> {
    let from_bde = value
        .get("ManageBde")
        .and_then(Value::as_str)
        .map(manage_bde::parse)
        .unwrap_or_default();
    let mut volumes = parse(value.get("EncryptableVolume").unwrap_or(&Value::Null));
    if volumes.is_empty() {
        if from_bde.is_empty() {
            let why = text(value, "EncryptableVolumeError")
                .unwrap_or_else(|| "no volume reported".to_owned());
            return Err(format!(
                "neither Win32_EncryptableVolume nor manage-bde reported a volume ({why})"
            ));
        }
        return Ok((from_bde, VolumeSource::ManageBde));
    }
    for v in &mut volumes {
        if v.suspend_count.is_none() && !v.drive_letter.is_empty() {
            v.suspend_count = from_bde
                .iter()
                .find(|b| b.drive_letter.eq_ignore_ascii_case(&v.drive_letter))
                .and_then(|b| b.suspend_count);
        }
    }
    Ok((volumes, VolumeSource::Wmi))
}
