//! macOS pending updates: `softwareupdate --list --include-config-data` output, the
//! Software Update preferences' last-check state, and the versions of the background
//! security data (XProtect, XProtect Remediator, the Gatekeeper and MRT data).
//!
//! Since macOS 10.15 each pending update is two lines:
//! `* Label: macOS Sonoma 14.2.1-23C71` then, indented with a tab,
//! `Title: macOS Sonoma 14.2.1, Version: 14.2.1, Size: 1234KiB, Recommended: YES, Action: restart,`.
//! Before 10.15 the second line was `Title (Version), SizeK [recommended] [restart]`; both are
//! read. With nothing pending, `No new software available.` (on stderr). Background
//! security data updates (`XProtectPlistConfigData`, `XProtectPayloads`,
//! `MRTConfigData`, `Gatekeeper Compatibility Data`) are listed only with
//! `--include-config-data`.

use serde_json::Value;

/// What one pending update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    /// A macOS update or upgrade (`macOS ...`, `Security Update ...`).
    Os,
    /// A Rapid Security Response / Background Security Improvement (`... (a)`).
    SecurityResponse,
    /// Background security data (XProtect, MRT, Gatekeeper data).
    SecurityData,
    /// Anything else (Safari, Command Line Tools, firmware...).
    Other,
}

/// One pending update.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingUpdate {
    /// The label `softwareupdate --install` takes.
    pub label: String,
    /// Its title.
    pub title: String,
    /// Its version, where listed.
    pub version: Option<String>,
    /// `Recommended: YES` (or `[recommended]`).
    pub recommended: bool,
    /// Needs a restart (`Action: restart` or `[restart]`).
    pub restart: bool,
    /// What it is.
    pub kind: UpdateKind,
}

/// The parsed `softwareupdate --list` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateList {
    /// The pending updates.
    pub updates: Vec<PendingUpdate>,
    /// The tool said `No new software available.`
    pub none_available: bool,
}

/// Why a listing cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The tool could not reach the catalogue (offline, or a broken catalogue URL).
    #[error("softwareupdate could not reach the update catalogue: {0}")]
    NoCatalogue(String),
    /// Neither updates nor "No new software available." in the output.
    #[error("softwareupdate output not understood")]
    NotUnderstood,
}

/// Parses the combined stdout and stderr of `softwareupdate --list`.
pub fn parse_list(text: &str) -> Result<UpdateList, ListError> {
    let mut list = UpdateList::default();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.starts_with("No new software available") {
            list.none_available = true;
            continue;
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.contains("can't connect to the apple software update server")
            || lower.contains("could not connect")
            || lower.contains("the network connection was lost")
            || lower.contains("no network connection")
        {
            return Err(ListError::NoCatalogue(trimmed.to_owned()));
        }
        // New form: "* Label: X"; old form: "* X" (recommended) or "- X" (not).
        let (label, old_recommended) = if let Some(rest) = trimmed.strip_prefix("* Label:") {
            (rest.trim().to_owned(), None)
        } else if let Some(rest) = trimmed.strip_prefix("- Label:") {
            (rest.trim().to_owned(), None)
        } else if let Some(rest) = trimmed.strip_prefix("* ") {
            (rest.trim().to_owned(), Some(true))
        } else if trimmed.starts_with("- ") && line.starts_with(|c: char| c.is_whitespace()) {
            (trimmed[2..].trim().to_owned(), Some(false))
        } else {
            continue;
        };
        if label.is_empty() {
            continue;
        }
        let detail = match lines.peek() {
            Some(next)
                if !next.trim().starts_with('*')
                    && !next.trim().starts_with("- ")
                    && !next.trim().is_empty() =>
            {
                lines.next().unwrap_or_default().trim().to_owned()
            }
            _ => String::new(),
        };
        list.updates
            .push(parse_detail(label, &detail, old_recommended));
    }
    if list.updates.is_empty() && !list.none_available {
        return Err(ListError::NotUnderstood);
    }
    Ok(list)
}

fn parse_detail(label: String, detail: &str, old_recommended: Option<bool>) -> PendingUpdate {
    let mut title = String::new();
    let mut version = None;
    let mut recommended = old_recommended.unwrap_or(false);
    let mut restart = false;
    if detail.starts_with("Title:") {
        for field in detail.split(", ") {
            let Some((key, value)) = field.split_once(':') else {
                continue;
            };
            let value = value.trim().trim_end_matches(',').trim();
            match key.trim() {
                "Title" => title = value.to_owned(),
                "Version" => version = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "Recommended" => recommended = value.eq_ignore_ascii_case("YES"),
                "Action" => restart = value.eq_ignore_ascii_case("restart"),
                _ => {}
            }
        }
    } else if !detail.is_empty() {
        // Old form: "Title, Version, SizeK [recommended] [restart]" or "Title (Version), ...".
        let parts: Vec<&str> = detail.split(", ").collect();
        title = parts
            .first()
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        version = parts
            .get(1)
            .map(|v| v.trim().to_owned())
            .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()));
        recommended = recommended || detail.contains("[recommended]");
        restart = detail.contains("[restart]");
    }
    if title.is_empty() {
        title = label.clone();
    }
    let kind = classify(&label, &title);
    PendingUpdate {
        label,
        title,
        version,
        recommended,
        restart,
        kind,
    }
}

/// What an update is, from its label and title.
pub fn classify(label: &str, title: &str) -> UpdateKind {
    let both = format!("{label} {title}");
    let lower = both.to_ascii_lowercase();
    if lower.contains("xprotect")
        || lower.contains("mrtconfigdata")
        || lower.contains("gatekeeper")
        || lower.contains("configdata")
    {
        UpdateKind::SecurityData
    } else if (lower.starts_with("macos") || lower.contains(" macos"))
        && (title.contains("(a)")
            || title.contains("(b)")
            || title.contains("(c)")
            || lower.contains("rapid security response")
            || lower.contains("background security"))
    {
        UpdateKind::SecurityResponse
    } else if lower.starts_with("macos")
        || lower.starts_with("security update")
        || lower.contains("os x")
    {
        UpdateKind::Os
    } else {
        UpdateKind::Other
    }
}

/// The last-check state Software Update keeps in
/// `/Library/Preferences/com.apple.SoftwareUpdate.plist`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct LastCheck {
    /// `LastSuccessfulDate`: the last successful catalogue check (ISO 8601).
    pub last_successful: Option<String>,
    /// `LastRecommendedUpdatesAvailable`.
    pub recommended_available: Option<i64>,
    /// `LastUpdatesAvailable`.
    pub updates_available: Option<i64>,
    /// Display names in `RecommendedUpdates`.
    pub recommended: Vec<String>,
}

/// Reads the last-check state from the parsed preferences plist.
pub fn last_check(plist: &Value) -> LastCheck {
    let recommended = plist
        .get("RecommendedUpdates")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    item.get("Display Name")
                        .or_else(|| item.get("Identifier"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    LastCheck {
        last_successful: plist
            .get("LastSuccessfulDate")
            .and_then(Value::as_str)
            .map(str::to_owned),
        recommended_available: plist
            .get("LastRecommendedUpdatesAvailable")
            .and_then(crate::plist::as_i64),
        updates_available: plist
            .get("LastUpdatesAvailable")
            .and_then(crate::plist::as_i64),
        recommended,
    }
}

/// Where macOS keeps the background security data, and the plist key holding each
/// one's version (`Info.plist`'s `CFBundleShortVersionString`, falling back to
/// `CFBundleVersion`).
pub const SECURITY_DATA: &[(&str, &str)] = &[
    (
        "xprotect",
        "/Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Info.plist",
    ),
    (
        "xprotect_remediator",
        "/Library/Apple/System/Library/CoreServices/XProtect.app/Contents/Info.plist",
    ),
    (
        "mrt",
        "/Library/Apple/System/Library/CoreServices/MRT.app/Contents/Info.plist",
    ),
    (
        "gatekeeper_data",
        "/private/var/db/gke.bundle/Contents/Info.plist",
    ),
];

/// The version in a bundle's parsed `Info.plist`.
pub fn bundle_version(plist: &Value) -> Option<String> {
    ["CFBundleShortVersionString", "CFBundleVersion"]
        .iter()
        .find_map(|key| plist.get(*key).and_then(Value::as_str))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Whether a pending update must be installed for the device to count as patched: macOS
/// updates within the running major release, Security Responses, background security data
/// and Safari (its updates carry WebKit's security fixes). A new major release (an upgrade)
/// and other software are reported, not required.
pub fn required(update: &PendingUpdate, current_major: Option<u32>) -> bool {
    match update.kind {
        UpdateKind::SecurityResponse | UpdateKind::SecurityData => true,
        UpdateKind::Os => {
            let major = update
                .version
                .as_deref()
                .and_then(|v| v.split(['.', ' ']).next())
                .and_then(|m| m.parse::<u32>().ok());
            match (major, current_major) {
                (Some(major), Some(current)) => major <= current,
                // Without both versions an OS update counts (fail closed).
                _ => true,
            }
        }
        UpdateKind::Other => update.title.starts_with("Safari"),
    }
}

/// The `patch_level` finding on macOS (pure). `list` is the parsed `softwareupdate --list
/// --include-config-data`; `last` the preferences' last-check state; `security_data` the
/// background security data versions found (`("xprotect", "5283")`).
pub fn decide(
    list: Result<&UpdateList, &ListError>,
    current_major: Option<u32>,
    last: Option<&LastCheck>,
    security_data: &[(String, String)],
    sources: &[String],
) -> posture_core::Finding {
    use posture_core::{Finding, Remediation};
    let data: serde_json::Map<String, Value> = security_data
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let with_common = |mut f: Finding| {
        f = f
            .observe("security_data", Value::Object(data.clone()))
            .observe(
                "last_successful_check",
                last.and_then(|l| l.last_successful.clone()),
            );
        for s in sources {
            f = f.source(s.clone());
        }
        f
    };
    let list = match list {
        Ok(list) => list,
        Err(e) => {
            return with_common(Finding::unknown(super::ID, e.to_string()).observe(
                "last_recommended_updates",
                last.map(|l| serde_json::json!(l.recommended)),
            ))
        }
    };
    let (needed, optional): (Vec<&PendingUpdate>, Vec<&PendingUpdate>) = list
        .updates
        .iter()
        .partition(|u| required(u, current_major));
    let base = |f: Finding| {
        with_common(f)
            .observe("pending", serde_json::json!(needed))
            .observe("optional", serde_json::json!(optional))
    };
    if needed.is_empty() {
        return base(Finding::pass(
            super::ID,
            if optional.is_empty() {
                "no pending macOS updates".to_owned()
            } else {
                format!(
                    "no pending security updates ({} optional update(s) available)",
                    optional.len()
                )
            },
        ));
    }
    let titles: Vec<&str> = needed.iter().map(|u| u.title.as_str()).collect();
    let restart = needed.iter().any(|u| u.restart);
    base(Finding::fail(
        super::ID,
        format!("{} pending update(s): {}", needed.len(), titles.join(", ")),
        Remediation::new(format!(
            "Install the pending updates: open System Settings > General > Software Update \
             and click Update Now (or run `sudo softwareupdate --install --all \
             --include-config-data`){}.",
            if restart { ", then restart" } else { "" }
        ))
        .with_url("https://support.apple.com/en-us/108382"),
    ))
}
