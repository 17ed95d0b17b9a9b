//! Windows version facts from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion` (as
//! `Get-ItemProperty` writes them with `ConvertTo-Json`), and the servicing end of each
//! release (pure; every OS).
//!
//! The release of a build and its end of servicing come from Microsoft's lifecycle pages
//! (`https://learn.microsoft.com/lifecycle/products/windows-11-home-and-pro`,
//! `.../windows-11-enterprise-and-education`, `.../windows-10-home-and-pro`,
//! `.../windows-10-enterprise-ltsc-2021`, `.../windows-11-enterprise-ltsc-2024`).
//! `ProductName` is not trusted for "10 or 11": Windows 11 still writes "Windows 10" there;
//! the build number decides (22000 and later is Windows 11).

use serde_json::Value;

use crate::ps_json::{text, uint};

/// The version facts posture uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsVersion {
    /// `CurrentBuild`, e.g. 26100.
    pub build: u32,
    /// `UBR` (update build revision), e.g. 4652; raised by every cumulative update.
    pub ubr: u32,
    /// `DisplayVersion`, e.g. `24H2` (absent before 20H2).
    pub display_version: Option<String>,
    /// `EditionID`, e.g. `Professional`, `Enterprise`, `EnterpriseS` (LTSC).
    pub edition: String,
    /// `InstallationType`: `Client` or `Server`.
    pub installation_type: String,
}

impl WindowsVersion {
    /// `10.0.<build>.<ubr>`.
    pub fn full_build(&self) -> String {
        format!("10.0.{}.{}", self.build, self.ubr)
    }

    /// `Windows 11` or `Windows 10` by build number (servers: `Windows Server`).
    pub fn product(&self) -> &'static str {
        if self.installation_type.eq_ignore_ascii_case("server") {
            "Windows Server"
        } else if self.build >= 22000 {
            "Windows 11"
        } else {
            "Windows 10"
        }
    }

    /// `Windows 11 Professional 24H2 (build 26100.4652)`.
    pub fn name(&self) -> String {
        let mut name = format!("{} {}", self.product(), self.edition);
        if let Some(v) = &self.display_version {
            name.push(' ');
            name.push_str(v);
        }
        format!("{name} (build {}.{})", self.build, self.ubr)
    }
}

/// Parses the `CurrentVersion` key's values.
pub fn parse(value: &Value) -> Result<WindowsVersion, String> {
    let build = uint(value, "CurrentBuild")
        .or_else(|| uint(value, "CurrentBuildNumber"))
        .and_then(|b| u32::try_from(b).ok())
        .ok_or("CurrentBuild is missing or not a number")?;
    let ubr = uint(value, "UBR")
        .and_then(|b| u32::try_from(b).ok())
        .ok_or("UBR is missing or not a number")?;
    Ok(WindowsVersion {
        build,
        ubr,
        display_version: text(value, "DisplayVersion").filter(|v| !v.is_empty()),
        edition: text(value, "EditionID").unwrap_or_default(),
        installation_type: text(value, "InstallationType").unwrap_or_else(|| "Client".into()),
    })
}

/// Whether the edition gets the longer (Enterprise/Education) servicing.
fn enterprise_servicing(edition: &str) -> bool {
    let e = edition.to_ascii_lowercase();
    e.starts_with("enterprise") || e.starts_with("education") || e.starts_with("iotenterprise")
}

/// Last day of servicing (`YYYY-MM-DD`) of a client release, `None` when not in the table.
pub fn servicing_end(version: &WindowsVersion) -> Option<&'static str> {
    if version.installation_type.eq_ignore_ascii_case("server") {
        return None;
    }
    let ltsc = version
        .edition
        .to_ascii_lowercase()
        .ends_with("enterprises");
    let long = enterprise_servicing(&version.edition);
    Some(match (version.build, ltsc, long) {
        (26100, true, _) => "2029-10-09", // Windows 11 Enterprise LTSC 2024
        (19044, true, _) => "2027-01-12", // Windows 10 Enterprise LTSC 2021
        (26200, _, false) => "2027-10-12", // Windows 11 25H2
        (26200, _, true) => "2028-10-10",
        (26100, _, false) => "2026-10-13", // Windows 11 24H2
        (26100, _, true) => "2027-10-12",
        (22631, _, false) => "2025-11-11", // Windows 11 23H2
        (22631, _, true) => "2026-11-10",
        (22621, _, false) => "2024-10-08", // Windows 11 22H2
        (22621, _, true) => "2025-10-14",
        (22000, _, false) => "2023-10-10", // Windows 11 21H2
        (22000, _, true) => "2024-10-08",
        (19045, _, _) => "2025-10-14", // Windows 10 22H2 (Extended Security Updates aside)
        (b, _, _) if b < 19045 => "2023-06-13", // older Windows 10 releases: all ended by then
        _ => return None,
    })
}
