//! Windows implementation: Windows Update's policy, service start type and pause
//! ([`super::windows_update_policy`]).

use posture_core::{Finding, Remediation, Timestamp};

use super::windows_update_policy::problems;
use super::ID;
use crate::powershell::query;
use crate::Context;

const SOURCES: &[&str] = &[
    r"registry HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU",
    "service wuauserv",
    r"registry HKLM\SOFTWARE\Microsoft\WindowsUpdate\UX\Settings",
];

const SCRIPT: &str = r"$au = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU'
$ux = 'HKLM:\SOFTWARE\Microsoft\WindowsUpdate\UX\Settings'
$policy = $null; if (Test-Path $au) { $policy = Get-ItemProperty $au | Select-Object NoAutoUpdate, AUOptions }
$pause = $null; if (Test-Path $ux) { $pause = (Get-ItemProperty $ux).PauseUpdatesExpiryTime }
$start = [string](Get-Service wuauserv).StartType
[pscustomobject]@{ Policy = $policy; ServiceStart = $start; PauseExpiry = $pause } | ConvertTo-Json -Compress -Depth 3";

pub(super) fn check(ctx: &Context) -> Finding {
    let answer = match query(ctx, SCRIPT) {
        Ok(v) => v,
        Err(reason) => return Finding::unknown(ID, reason).source(SOURCES[0]),
    };
    let now = Timestamp::from_system_time(ctx.now).to_string();
    let (found, options) = problems(&answer, &now);
    let finding = if found.is_empty() {
        Finding::pass(
            ID,
            "Windows Update downloads and installs updates automatically",
        )
    } else {
        Finding::fail(
            ID,
            format!("automatic updates are off: {}", found.join("; ")),
            Remediation::new(
                "Open Settings > Windows Update: resume updates if paused and turn on \"Get the \
                 latest updates as soon as they're available\"; if Group Policy turns them off, \
                 ask IT to allow automatic updates.",
            ),
        )
    };
    let finding = finding
        .observe("package_manager", "windows_update")
        .observe("mechanism", "windows_update")
        .observe("au_options", options)
        .observe("enabled", found.is_empty());
    SOURCES.iter().fold(finding, |f, s| f.source(*s))
}
