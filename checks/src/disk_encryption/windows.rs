//! Windows implementation: BitLocker on every fixed volume (operating system and fixed
//! data volumes; removable ones are listed, not judged), from WMI
//! `Win32_EncryptableVolume` ([`super::bitlocker`]). Reading it needs an administrator.
//!
//! Pass: every fixed volume fully encrypted with protection on. Fail: any fixed volume
//! not encrypted, still encrypting, or with protection suspended. A locked or unreported
//! volume is `unknown`.

use posture_core::{Finding, Remediation};
use serde_json::json;

use super::bitlocker::{parse, VolumeState};
use super::ID;
use crate::powershell::query;
use crate::Context;

const SOURCE: &str = r"WMI root\cimv2\Security\MicrosoftVolumeEncryption Win32_EncryptableVolume";

const SCRIPT: &str = r"$v = @(Get-CimInstance -Namespace root/cimv2/Security/MicrosoftVolumeEncryption -ClassName Win32_EncryptableVolume | ForEach-Object { $sc = $null; try { $sc = (Invoke-CimMethod -InputObject $_ -MethodName GetSuspendCount).SuspendCount } catch { }; [pscustomobject]@{ DriveLetter = $_.DriveLetter; DeviceID = $_.DeviceID; VolumeType = $_.VolumeType; ProtectionStatus = $_.ProtectionStatus; ConversionStatus = $_.ConversionStatus; EncryptionMethod = $_.EncryptionMethod; SuspendCount = $sc } })
ConvertTo-Json -InputObject $v -Compress";

pub(super) fn check(ctx: &Context) -> Finding {
    let volumes = match query(ctx, SCRIPT) {
        Ok(v) => parse(&v),
        Err(reason) => {
            return Finding::unknown(
                ID,
                format!("cannot read BitLocker's volumes (needs an administrator): {reason}"),
            )
            .source(SOURCE)
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
    finding.observe("volumes", observed).source(SOURCE)
}
