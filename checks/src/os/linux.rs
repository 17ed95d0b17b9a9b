//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use std::collections::BTreeMap;
use std::time::SystemTime;

use posture_core::{Finding, OsFacts, Remediation, Timestamp};

use crate::source::{read_attr, read_text};
use crate::Context;

/// The fields of os-release(5) that posture uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, e.g. `debian`.
    pub id: String,
    /// `ID_LIKE`, split.
    pub id_like: Vec<String>,
    /// `NAME`.
    pub name: String,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// `VERSION_ID`.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`.
    pub version_codename: Option<String>,
}

/// Parses os-release(5): `KEY=value` lines, values optionally quoted with shell escapes.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            fields.insert(key.trim().to_owned(), unquote(value.trim()));
        }
    }
    let get = |key: &str| fields.get(key).filter(|v| !v.is_empty()).cloned();
    OsRelease {
        // os-release(5): ID defaults to "linux", NAME to "Linux".
        id: get("ID").unwrap_or_else(|| "linux".to_owned()),
        id_like: get("ID_LIKE")
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        name: get("NAME").unwrap_or_else(|| "Linux".to_owned()),
        pretty_name: get("PRETTY_NAME"),
        version_id: get("VERSION_ID"),
        version_codename: get("VERSION_CODENAME"),
    }
}

fn unquote(value: &str) -> String {
    let inner = match value.as_bytes() {
        [b'"', .., b'"'] | [b'\'', .., b'\''] if value.len() >= 2 => &value[1..value.len() - 1],
        _ => value,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// End of (all, including LTS) security support for releases we know, as
/// (id, version_id, last day "YYYY-MM-DD"). Rolling releases never reach end of life.
const END_OF_LIFE: &[(&str, &str, &str)] = &[
    ("debian", "10", "2024-06-30"),
    ("debian", "11", "2026-08-31"),
    ("debian", "12", "2028-06-30"),
    ("debian", "13", "2030-06-30"),
    ("ubuntu", "20.04", "2025-05-31"),
    ("ubuntu", "22.04", "2027-06-30"),
    ("ubuntu", "24.04", "2029-05-31"),
    ("ubuntu", "24.10", "2025-07-10"),
    ("ubuntu", "25.04", "2026-01-15"),
    ("ubuntu", "25.10", "2026-07-09"),
    ("ubuntu", "26.04", "2031-05-31"),
    ("fedora", "39", "2024-11-26"),
    ("fedora", "40", "2025-05-13"),
    ("fedora", "41", "2025-12-15"),
    ("fedora", "42", "2026-05-13"),
    ("fedora", "43", "2026-12-09"),
    ("rhel", "8", "2029-05-31"),
    ("rhel", "9", "2032-05-31"),
    ("opensuse-leap", "15.5", "2024-12-31"),
    ("opensuse-leap", "15.6", "2026-04-30"),
];

const ROLLING: &[&str] = &[
    "arch",
    "opensuse-tumbleweed",
    "gentoo",
    "void",
    "manjaro",
    "endeavouros",
];

/// What we know about a release's support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// A rolling release: supported while it is kept updated.
    Rolling,
    /// Supported until this day (inclusive).
    Until(String),
    /// Support ended on this day.
    Ended(String),
    /// Not in our table.
    NotKnown,
}

/// Looks up support for a release at `now`.
pub fn support(release: &OsRelease, now: SystemTime) -> Support {
    if ROLLING.contains(&release.id.as_str()) {
        return Support::Rolling;
    }
    let Some(version) = release.version_id.as_deref() else {
        return Support::NotKnown;
    };
    // RHEL minor versions share the major's lifetime.
    let major = version.split('.').next().unwrap_or(version);
    let entry = END_OF_LIFE.iter().find(|(id, v, _)| {
        *id == release.id && (*v == version || (release.id == "rhel" && *v == major))
    });
    match entry {
        None => Support::NotKnown,
        Some((_, _, last_day)) => {
            let today = Timestamp::from_system_time(now).to_string();
            // ISO dates compare correctly as strings.
            if today.get(..10).unwrap_or("") > *last_day {
                Support::Ended((*last_day).to_owned())
            } else {
                Support::Until((*last_day).to_owned())
            }
        }
    }
}

fn read_os_release(ctx: &Context) -> Result<(OsRelease, &'static str), String> {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        match read_text(ctx, path) {
            Ok(text) => return Ok((parse_os_release(&text), path)),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("neither /etc/os-release nor /usr/lib/os-release exists".to_owned())
}

/// The OS facts for the report.
pub fn os_facts(ctx: &Context) -> OsFacts {
    let release = read_os_release(ctx).map(|(r, _)| r).unwrap_or_default();
    OsFacts {
        family: std::env::consts::OS.to_owned(),
        name: release.pretty_name.clone().unwrap_or(release.name.clone()),
        id: release.id,
        version_id: release.version_id,
        kernel: read_attr(ctx, "/proc/sys/kernel/osrelease").unwrap_or_default(),
        arch: std::env::consts::ARCH.to_owned(),
    }
}

/// Runs the check.
pub(super) fn check(ctx: &Context) -> Finding {
    let (release, path) = match read_os_release(ctx) {
        Ok(found) => found,
        Err(reason) => return Finding::unknown(ID, reason).source("/etc/os-release"),
    };
    let kernel = read_attr(ctx, "/proc/sys/kernel/osrelease").unwrap_or_default();
    let name = release
        .pretty_name
        .clone()
        .unwrap_or_else(|| release.name.clone());
    let base = |finding: Finding| {
        finding
            .observe("id", release.id.clone())
            .observe("name", name.clone())
            .observe("version_id", release.version_id.clone())
            .observe("codename", release.version_codename.clone())
            .observe("kernel", kernel.clone())
            .observe("arch", std::env::consts::ARCH)
            .source(path)
            .source("/proc/sys/kernel/osrelease")
    };
    match support(&release, ctx.now) {
        Support::Rolling => base(Finding::pass(
            ID,
            format!("{name}, kernel {kernel} (rolling release)"),
        ))
        .observe("support", "rolling"),
        Support::Until(day) => base(Finding::pass(
            ID,
            format!("{name}, kernel {kernel}, supported until {day}"),
        ))
        .observe("support", "supported")
        .observe("end_of_life", day),
        Support::Ended(day) => base(Finding::fail(
            ID,
            format!("{name} reached end of life on {day}"),
            Remediation::new(format!(
                "{name} no longer receives security updates. Upgrade to a supported release of {}.",
                release.name
            )),
        ))
        .observe("support", "ended")
        .observe("end_of_life", day),
        Support::NotKnown => base(Finding::unknown(
            ID,
            format!("end of life of {name} is not known to posture"),
        ))
        .observe("support", "not known"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_values_and_defaults() {
        let r = parse_os_release("NAME=\"Foo \\\"Linux\\\"\"\n# comment\nVERSION_ID='1.2'\n");
        assert_eq!(r.name, "Foo \"Linux\"");
        assert_eq!(r.version_id.as_deref(), Some("1.2"));
        assert_eq!(r.id, "linux");
    }

    #[test]
    fn support_ends_after_last_day() {
        let release = OsRelease {
            id: "debian".into(),
            version_id: Some("11".into()),
            ..OsRelease::default()
        };
        let before = Timestamp::parse("2026-08-31T23:00:00Z")
            .unwrap()
            .system_time();
        let after = Timestamp::parse("2026-09-01T00:00:00Z")
            .unwrap()
            .system_time();
        assert_eq!(
            support(&release, before),
            Support::Until("2026-08-31".into())
        );
        assert_eq!(
            support(&release, after),
            Support::Ended("2026-08-31".into())
        );
    }
}
