//! Windows implementation: BitLocker on every fixed volume (operating system and fixed
//! data volumes; removable ones are listed, not judged), from WMI
//! `Win32_EncryptableVolume` ([`super::bitlocker`]), with `manage-bde -status` for the
//! restarts left of a suspension ([`super::manage_bde`]). Reading them needs an administrator.
//!
//! Pass: every fixed volume fully encrypted with protection on. Fail: any fixed volume
//! not encrypted, still encrypting, or with protection suspended. A locked or unreported
//! volume is `unknown`.

use posture_core::{Finding, Remediation};
use serde_json::json;

use super::bitlocker::{parse_answer, VolumeSource, VolumeState};
use super::ID;
use crate::powershell::query;
use crate::Context;

const SOURCE: &str = r"WMI root\cimv2\Security\MicrosoftVolumeEncryption Win32_EncryptableVolume";
const BDE_SOURCE: &str = "manage-bde -status";

/// One object per source, each in its standard shape: the `Win32_EncryptableVolume`
/// properties under their own names, and `manage-bde -status` as printed.
const SCRIPT: &str = r"$v = $null; $ve = $null
try { $v = @(Get-CimInstance -Namespace root/cimv2/Security/MicrosoftVolumeEncryption -ClassName Win32_EncryptableVolume | Select-Object DeviceID, DriveLetter, VolumeType, ProtectionStatus, ConversionStatus, EncryptionMethod) } catch { $ve = $_.Exception.Message }
$bde = $null; try { $bde = (& manage-bde.exe -status 2>&1 | Out-String) } catch { }
[pscustomobject]@{ EncryptableVolume = $v; EncryptableVolumeError = $ve; ManageBde = $bde } | ConvertTo-Json -Compress -Depth 3";

pub(super) fn check(ctx: &Context) -> Finding {
    let (volumes, from) = match query(ctx, SCRIPT).and_then(|v| parse_answer(&v)) {
        Ok(v) => v,
        Err(reason) => {
            return Finding::unknown(
                ID,
                format!("cannot read BitLocker's volumes (needs an administrator): {reason}"),
            )
            .source(SOURCE)
            .source(BDE_SOURCE)
        }
    };
    let observed: Vec<_> = volumes
        .iter()
        .map(|v| {
            json!({
                "volume": v.label(),
                "fixed": v.is_fixed(),
                "state": v.state(),
                "method": v.method_name(),
                "suspend_count": v.suspend_count,
            })
        })
        .collect();
    let fixed: Vec<_> = volumes.iter().filter(|v| v.is_fixed()).collect();
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    for v in &fixed {
        // manage-bde alone does not say whether a data volume is fixed or removable: a
        // USB stick is not judged, so neither is a data volume it cannot place.
        let unplaced = from == VolumeSource::ManageBde && v.volume_type != Some(0);
        if unplaced && v.state() != VolumeState::Protected {
            unknown.push(format!(
                "{} (manage-bde does not say whether it is fixed or removable)",
                v.label()
            ));
            continue;
        }
        match v.state() {
            VolumeState::Protected => {}
            VolumeState::Suspended => problems.push(format!(
                "{} is encrypted but BitLocker protection is suspended{}",
                v.label(),
                v.suspend_count
                    .map(|n| format!(" (resumes after {n} restart(s))"))
                    .unwrap_or_default()
            )),
            VolumeState::EncryptionInProgress => {
                problems.push(format!("{} is still being encrypted", v.label()))
            }
            VolumeState::NotEncrypted => problems.push(format!("{} is not encrypted", v.label())),
            VolumeState::Unknown => unknown.push(v.label().to_owned()),
        }
    }
    let finding = if fixed.is_empty() {
        Finding::unknown(ID, "WMI reported no fixed volume")
    } else if !problems.is_empty() {
        Finding::fail(
            ID,
            problems.join("; "),
            Remediation::new(
                "Turn on BitLocker for every fixed drive: Control Panel > System and Security > \
                 BitLocker Drive Encryption > Turn on BitLocker (or `manage-bde -on C:`); resume \
                 suspended protection with `manage-bde -protectors -enable C:`.",
            )
            .with_url("https://learn.microsoft.com/windows/security/operating-system-security/data-protection/bitlocker/"),
        )
    } else if !unknown.is_empty() {
        Finding::unknown(
            ID,
            format!("cannot tell the BitLocker state of {}", unknown.join(", ")),
        )
    } else {
        Finding::pass(
            ID,
            format!("BitLocker protects every fixed volume ({})", fixed.len()),
        )
    };
    finding
        .observe("volumes", observed)
        .source(SOURCE)
        .source(BDE_SOURCE)
}
