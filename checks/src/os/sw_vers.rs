//! macOS version: `sw_vers` output and `/System/Library/CoreServices/SystemVersion.plist`,
//! and what posture knows about a macOS release's support.
//!
//! `sw_vers` prints `ProductName:`, `ProductVersion:`, `BuildVersion:` lines (tab
//! separated) and, on macOS 13 and later after a Rapid Security Response,
//! `ProductVersionExtra:` (e.g. `(a)`). The plist has the same keys.

use serde_json::Value;

/// A macOS version as the system reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacVersion {
    /// `ProductName`: `macOS` (`Mac OS X` on old releases).
    pub product_name: String,
    /// `ProductVersion`, e.g. `14.2.1`.
    pub version: String,
    /// `BuildVersion`, e.g. `23C71`.
    pub build: Option<String>,
    /// `ProductVersionExtra`: the Rapid Security Response / Background Security
    /// Improvement letter, e.g. `(a)`.
    pub extra: Option<String>,
}

impl MacVersion {
    /// The major version (`14` of `14.2.1`; `10` for every 10.x release).
    pub fn major(&self) -> Option<u32> {
        self.version.split('.').next()?.trim().parse().ok()
    }

    /// The version's numeric parts (`[14, 2, 1]`).
    pub fn parts(&self) -> Vec<u32> {
        self.version
            .split('.')
            .map_while(|p| p.trim().parse().ok())
            .collect()
    }

    /// `macOS Sonoma 14.2.1 (a) (23C71)`, as people read it.
    pub fn display(&self) -> String {
        let mut out = self.product_name.clone();
        if let Some(name) = self.major().and_then(release_name) {
            out.push(' ');
            out.push_str(name);
        }
        out.push(' ');
        out.push_str(&self.version);
        if let Some(extra) = &self.extra {
            out.push(' ');
            out.push_str(extra);
        }
        if let Some(build) = &self.build {
            out.push_str(&format!(" ({build})"));
        }
        out
    }
}

/// Parses `sw_vers` output. `None` when there is no `ProductVersion`.
pub fn parse_sw_vers(text: &str) -> Option<MacVersion> {
    let mut version = MacVersion::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "ProductName" => version.product_name = value,
            "ProductVersion" => version.version = value,
            "BuildVersion" => version.build = Some(value).filter(|v| !v.is_empty()),
            "ProductVersionExtra" => version.extra = Some(value).filter(|v| !v.is_empty()),
            _ => {}
        }
    }
    finish(version)
}

/// Reads `SystemVersion.plist` (already parsed by [`crate::plist::parse`]).
pub fn from_system_version_plist(plist: &Value) -> Option<MacVersion> {
    let get = |key: &str| {
        plist
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    finish(MacVersion {
        product_name: get("ProductName").unwrap_or_default(),
        version: get("ProductVersion").unwrap_or_default(),
        build: get("ProductBuildVersion"),
        extra: get("ProductVersionExtra"),
    })
}

fn finish(mut version: MacVersion) -> Option<MacVersion> {
    if version.version.is_empty() || version.parts().is_empty() {
        return None;
    }
    if version.product_name.is_empty() {
        version.product_name = "macOS".to_owned();
    }
    Some(version)
}

/// Marketing names of the releases posture knows (for people only; nothing decides on them).
pub fn release_name(major: u32) -> Option<&'static str> {
    Some(match major {
        11 => "Big Sur",
        12 => "Monterey",
        13 => "Ventura",
        14 => "Sonoma",
        15 => "Sequoia",
        26 => "Tahoe",
        _ => return None,
    })
}

/// The newest major release known (when this table was last updated) to have stopped
/// receiving security updates. Apple publishes no end-of-life dates; in practice it ships
/// security updates for the current release and the two before it, so macOS 13 Ventura
/// stopped receiving them after macOS 26 shipped in 2025 (10.x, 11 and 12 before it).
/// Raise this when Apple drops the next release.
pub const LAST_ENDED_MAJOR: u32 = 13;

/// Support of a macOS release, as far as posture can know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacSupport {
    /// A release Apple no longer ships security updates for.
    Ended,
    /// A release newer than every known-ended one: supported unless Apple has dropped it
    /// since this table was written (the `patch_level` check says whether it is current).
    Supported,
}

/// Support of `version` (`None` when its major version cannot be read).
pub fn support(version: &MacVersion) -> Option<MacSupport> {
    let major = version.major()?;
    Some(if major <= LAST_ENDED_MAJOR {
        MacSupport::Ended
    } else {
        MacSupport::Supported
    })
}

/// The `os` finding for a macOS version read from `source` (pure).
pub fn decide(version: Option<&MacVersion>, source: &str) -> posture_core::Finding {
    use posture_core::{Finding, Remediation};
    let Some(version) = version else {
        return Finding::unknown(super::ID, format!("no macOS version in {source}")).source(source);
    };
    let name = version.display();
    let base = |f: Finding| {
        f.observe("id", "macos")
            .observe("name", name.clone())
            .observe("version_id", version.version.clone())
            .observe("build", version.build.clone())
            .observe("security_response", version.extra.clone())
            .observe("arch", std::env::consts::ARCH)
            .source(source)
    };
    match support(version) {
        Some(MacSupport::Supported) => base(Finding::pass(super::ID, name.clone()))
            .observe("support", "supported")
            .observe(
                "support_basis",
                format!(
                    "Apple publishes no end-of-life dates; releases up to macOS \
                     {LAST_ENDED_MAJOR} are known to receive no more security updates"
                ),
            ),
        Some(MacSupport::Ended) => base(Finding::fail(
            super::ID,
            format!("{name} no longer receives security updates"),
            Remediation::new(
                "This macOS release no longer receives security updates. Upgrade macOS: open \
                 System Settings > General > Software Update (or, if this Mac cannot run a \
                 supported release, replace it).",
            )
            .with_url("https://support.apple.com/en-us/108382"),
        ))
        .observe("support", "ended"),
        None => base(Finding::unknown(
            super::ID,
            format!("cannot read the major version of {name}"),
        )),
    }
}
