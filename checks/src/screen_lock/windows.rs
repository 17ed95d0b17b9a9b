//! Windows implementation: [`super::windows_policy`] (machine inactivity limit, screen
//! saver lock) judged against [`ScreenLockConfig::max_idle_minutes`](crate::ScreenLockConfig)
//! by the shared [`super::problems`].
//!
//! The user's screen saver settings are those of the user posture runs as. Run by the
//! Windows service (as `SYSTEM`) only the machine-wide limit applies to every user; when
//! it is not set the answer is `unknown`, not a guess from SYSTEM's own settings.

use posture_core::{Finding, Remediation};

use super::windows_policy::parse;
use super::{problems, ID};
use crate::powershell::query;
use crate::Context;

const SOURCES: &[&str] = &[
    r"registry HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System",
    r"registry HKCU\Control Panel\Desktop",
    r"registry HKCU\Software\Policies\Microsoft\Windows\Control Panel\Desktop",
];

const SCRIPT: &str = r"function Get-Values($path, $names) { if (Test-Path $path) { Get-ItemProperty $path | Select-Object $names } else { $null } }
$n = @('ScreenSaveActive', 'ScreenSaverIsSecure', 'ScreenSaveTimeOut')
[pscustomobject]@{
  Machine = Get-Values 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System' @('InactivityTimeoutSecs')
  User = Get-Values 'HKCU:\Control Panel\Desktop' $n
  UserPolicy = Get-Values 'HKCU:\Software\Policies\Microsoft\Windows\Control Panel\Desktop' $n
  IsSystem = ([Security.Principal.WindowsIdentity]::GetCurrent().IsSystem)
} | ConvertTo-Json -Compress -Depth 3";

pub(super) fn check(ctx: &Context) -> Finding {
    let answer = match query(ctx, SCRIPT) {
        Ok(v) => v,
        Err(reason) => return Finding::unknown(ID, reason).source(SOURCES[0]),
    };
    let settings = parse(&answer);
    let is_system = answer
        .get("IsSystem")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let max = ctx.config.screen_lock.max_idle_minutes;
    let found = problems(&settings, max);
    let finding = if found.is_empty() {
        Finding::pass(
            ID,
            format!(
                "the session locks after {} s of inactivity",
                settings.lock_after_seconds.unwrap_or(0)
            ),
        )
    } else if is_system
        && settings
            .settings
            .get("machine_inactivity_limit_seconds")
            .is_some_and(serde_json::Value::is_null)
    {
        Finding::unknown(
            ID,
            "run as SYSTEM: no machine inactivity limit is set, and the users' own screen \
             saver settings are not read by the service",
        )
    } else {
        Finding::fail(
            ID,
            found.join("; "),
            Remediation::new(format!(
                "Windows: open Settings > Personalization > Lock screen > Screen saver, choose a \
                 screen saver, set Wait to {max} minutes or less and tick \"On resume, display \
                 logon screen\" (administrators: set the policy \"Interactive logon: Machine \
                 inactivity limit\")."
            )),
        )
    };
    let finding = finding
        .observe("desktop", "windows")
        .observe("settings", settings.settings.clone())
        .observe("lock_after_seconds", settings.lock_after_seconds);
    SOURCES.iter().fold(finding, |f, s| f.source(*s))
}
