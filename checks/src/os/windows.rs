//! Windows implementation: the version from the registry
//! (`HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`: `CurrentBuild`, `UBR`,
//! `DisplayVersion`, `EditionID`, `InstallationType`), read by PowerShell, judged by
//! [`windows_version::servicing_end`](super::windows_version::servicing_end).

use posture_core::{Finding, OsFacts, Remediation, Timestamp};

use super::windows_version::{parse, servicing_end, WindowsVersion};
use super::ID;
use crate::powershell::query;
use crate::Context;

const SOURCE: &str = r"registry HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";

/// The PowerShell that reads the version (shared with `patch_level`).
pub(crate) const SCRIPT: &str = r"Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' | Select-Object CurrentBuild, UBR, DisplayVersion, EditionID, InstallationType, ProductName | ConvertTo-Json -Compress";

pub(crate) fn read(ctx: &Context) -> Result<WindowsVersion, String> {
    parse(&query(ctx, SCRIPT)?)
}

pub(super) fn os_facts(ctx: &Context) -> OsFacts {
    let version = read(ctx).ok();
    OsFacts {
        family: "windows".to_owned(),
        id: "windows".to_owned(),
        name: version
            .as_ref()
            .map_or_else(|| "Windows".to_owned(), WindowsVersion::name),
        version_id: version.as_ref().map(|v| {
            v.display_version
                .clone()
                .unwrap_or_else(|| v.build.to_string())
        }),
        kernel: version
            .as_ref()
            .map(WindowsVersion::full_build)
            .unwrap_or_default(),
        arch: std::env::consts::ARCH.to_owned(),
    }
}

pub(super) fn check(ctx: &Context) -> Finding {
    let version = match read(ctx) {
        Ok(v) => v,
        Err(reason) => return Finding::unknown(ID, reason).source(SOURCE),
    };
    let name = version.name();
    let base = |f: Finding| {
        f.observe("id", "windows")
            .observe("name", name.clone())
            .observe("build", version.build)
            .observe("ubr", version.ubr)
            .observe("version_id", version.display_version.clone())
            .observe("edition", version.edition.clone())
            .observe("arch", std::env::consts::ARCH)
            .source(SOURCE)
    };
    let Some(end) = servicing_end(&version) else {
        return base(Finding::unknown(
            ID,
            format!("end of servicing of {name} is not known to posture"),
        ))
        .observe("support", "not known");
    };
    let today = Timestamp::from_system_time(ctx.now).to_string();
    if today.get(..10).unwrap_or("") > end {
        base(Finding::fail(
            ID,
            format!("{name} reached end of servicing on {end}"),
            Remediation::new(
                "This Windows release no longer receives security updates. Open Settings > \
                 Windows Update and install the latest feature update (or upgrade with the \
                 Windows 11 Installation Assistant).",
            )
            .with_url("https://learn.microsoft.com/windows/release-health/"),
        ))
        .observe("support", "ended")
        .observe("end_of_life", end)
    } else {
        base(Finding::pass(ID, format!("{name}, serviced until {end}")))
            .observe("support", "supported")
            .observe("end_of_life", end)
    }
}
