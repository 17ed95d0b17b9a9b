//! Windows implementation: [`super::windows_state`] (firmware type, the
//! `SecureBoot\State` registry value, `Confirm-SecureBootUEFI`).

use posture_core::{Finding, Remediation};

use super::windows_state::{parse, SecureBoot};
use super::ID;
use crate::powershell::query;
use crate::Context;

const SOURCES: &[&str] = &[
    "%firmware_type%",
    r"registry HKLM\SYSTEM\CurrentControlSet\Control\SecureBoot\State",
    "Confirm-SecureBootUEFI",
];

const SCRIPT: &str = r"$k = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecureBoot\State'
$reg = $null; if (Test-Path $k) { $reg = (Get-ItemProperty $k).UEFISecureBootEnabled }
$c = $null; $ce = $null; try { $c = [string](Confirm-SecureBootUEFI) } catch { $ce = $_.Exception.Message }
[pscustomobject]@{ Firmware = $env:firmware_type; UEFISecureBootEnabled = $reg; Confirm = $c; ConfirmError = $ce } | ConvertTo-Json -Compress";

pub(super) fn check(ctx: &Context) -> Finding {
    let finding = match query(ctx, SCRIPT).map(|v| parse(&v)) {
        Err(reason) => Finding::unknown(ID, reason),
        Ok(SecureBoot::Legacy) => {
            Finding::unknown(ID, "booted by legacy BIOS: Secure Boot does not apply")
                .observe("uefi", false)
        }
        Ok(SecureBoot::On) => Finding::pass(ID, "UEFI Secure Boot is on")
            .observe("uefi", true)
            .observe("secure_boot", true),
        Ok(SecureBoot::Off) => Finding::fail(
            ID,
            "UEFI Secure Boot is off",
            Remediation::new(
                "Turn on Secure Boot in the firmware setup (restart, open the UEFI settings \
                 from Settings > System > Recovery > Advanced startup > Troubleshoot > \
                 Advanced options > UEFI Firmware Settings, enable Secure Boot).",
            ),
        )
        .observe("uefi", true)
        .observe("secure_boot", false),
        Ok(SecureBoot::Unknown(reason)) => Finding::unknown(ID, reason),
    };
    SOURCES.iter().fold(finding, |f, s| f.source(*s))
}
