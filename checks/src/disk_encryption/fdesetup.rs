//! macOS FileVault: `fdesetup status` output, and the boot volume group's encryption state
//! from `diskutil apfs list` (the fallback when `fdesetup` is missing or says nothing we
//! understand).
//!
//! `fdesetup status` (fdesetup(8)) prints `FileVault is On.` or `FileVault is Off.`, then,
//! while the volume converts, `Encryption in progress: Percent completed = 37.5` (or
//! `Encryption in progress: Pending` on battery) or `Decryption in progress: ...`, and with a
//! deferred enablement `FileVault is Off, but will be enabled after the next restart.` /
//! `Deferred enablement appears to be active for user 'x'.`

/// FileVault's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileVault {
    /// On, and the volume fully encrypted.
    On,
    /// Off.
    Off,
    /// Turning on: the data is not yet all encrypted.
    Encrypting {
        /// Percent done, when given.
        percent: Option<f64>,
    },
    /// Turning off.
    Decrypting {
        /// Percent done, when given.
        percent: Option<f64>,
    },
    /// Off, to be enabled at the next login or restart.
    Deferred,
}

impl FileVault {
    /// Whether the data is fully protected now.
    pub fn protected(&self) -> bool {
        matches!(self, FileVault::On)
    }
}

/// Parses `fdesetup status`. `None` when the output says none of the known things.
pub fn parse_status(text: &str) -> Option<FileVault> {
    let mut on = None;
    let mut deferred = false;
    for line in text.lines() {
        let line = line.trim();
        let lower = line.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("encryption in progress") {
            return Some(FileVault::Encrypting {
                percent: percent(rest),
            });
        }
        if let Some(rest) = lower.strip_prefix("decryption in progress") {
            return Some(FileVault::Decrypting {
                percent: percent(rest),
            });
        }
        if lower.starts_with("filevault is on") {
            on = Some(true);
        } else if lower.starts_with("filevault is off") {
            on = Some(false);
            if lower.contains("will be enabled") {
                deferred = true;
            }
        } else if lower.starts_with("deferred enablement appears to be active") {
            deferred = true;
        }
    }
    match on {
        Some(true) => Some(FileVault::On),
        Some(false) if deferred => Some(FileVault::Deferred),
        Some(false) => Some(FileVault::Off),
        None => None,
    }
}

fn percent(rest: &str) -> Option<f64> {
    let (_, value) = rest.split_once('=')?;
    value.trim().trim_end_matches('%').trim().parse().ok()
}

/// One APFS volume from `diskutil apfs list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApfsVolume {
    /// `disk3s5`.
    pub device: String,
    /// The role in parentheses after the device (`Data`, `System`, `Preboot`...).
    pub role: Option<String>,
    /// `Name:` without the case-sensitivity suffix.
    pub name: Option<String>,
    /// `Mount Point:` (never a `Snapshot Mount Point:`).
    pub mount_point: Option<String>,
    /// `FileVault:` as printed: `Yes (Unlocked)`, `No`, `No (Encrypted at rest)`,
    /// `Yes (Locked)`...
    pub filevault: Option<String>,
    /// `Encryption Progress:` while converting (e.g. `12.3% (Unlocked)`).
    pub encryption_progress: Option<String>,
}

/// Parses `diskutil apfs list` into its volumes.
pub fn parse_apfs_list(text: &str) -> Vec<ApfsVolume> {
    let mut volumes = Vec::new();
    let mut current: Option<ApfsVolume> = None;
    for line in text.lines() {
        let body = line.trim_start_matches(|c: char| c == '|' || c.is_whitespace());
        if let Some(rest) = body.strip_prefix("+-> Volume ") {
            volumes.extend(current.take());
            let device = rest.split_whitespace().next().unwrap_or("").to_owned();
            current = Some(ApfsVolume {
                device,
                ..ApfsVolume::default()
            });
            continue;
        }
        if body.starts_with("+-- Container") || body.starts_with("+-< Physical Store") {
            volumes.extend(current.take());
            continue;
        }
        let Some(volume) = current.as_mut() else {
            continue;
        };
        let Some((key, value)) = body.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "APFS Volume Disk (Role)" => {
                volume.role = value
                    .split_once('(')
                    .map(|(_, r)| r.trim_end_matches(')').trim().to_owned())
                    .filter(|r| !r.is_empty() && r != "No specific role");
            }
            "Name" => {
                let name = match value.rfind(" (Case-") {
                    Some(at) => value[..at].to_owned(),
                    None => value,
                };
                volume.name = Some(name);
            }
            "Mount Point" => volume.mount_point = Some(value),
            "FileVault" => volume.filevault = Some(value),
            "Encryption Progress" => volume.encryption_progress = Some(value),
            _ => {}
        }
    }
    volumes.extend(current);
    volumes
}

/// The volume that holds the user's data: the one with the `Data` role mounted at
/// `/System/Volumes/Data` (macOS 10.15 and later), else the one mounted at `/`.
pub fn data_volume(volumes: &[ApfsVolume]) -> Option<&ApfsVolume> {
    volumes
        .iter()
        .find(|v| {
            v.role.as_deref() == Some("Data")
                && v.mount_point.as_deref() == Some("/System/Volumes/Data")
        })
        .or_else(|| {
            volumes
                .iter()
                .find(|v| v.mount_point.as_deref() == Some("/"))
        })
}

/// FileVault's state from a volume's `FileVault:` and `Encryption Progress:` lines.
pub fn volume_state(volume: &ApfsVolume) -> Option<FileVault> {
    if let Some(progress) = &volume.encryption_progress {
        let percent = progress
            .split('%')
            .next()
            .and_then(|p| p.trim().parse().ok());
        return Some(FileVault::Encrypting { percent });
    }
    let fv = volume.filevault.as_deref()?.trim();
    if fv.starts_with("Yes") {
        Some(FileVault::On)
    } else if fv.starts_with("No") {
        Some(FileVault::Off)
    } else {
        None
    }
}

/// The `disk_encryption` finding on macOS (pure). `state` is FileVault's state read from
/// `source`.
pub fn decide(state: Option<&FileVault>, source: &str) -> posture_core::Finding {
    use posture_core::{Finding, Remediation};
    let remediation = || {
        Remediation::new(
            "Turn on FileVault: open System Settings > Privacy & Security > FileVault and \
             click Turn On (keep the recovery key somewhere safe, or let your organisation \
             escrow it).",
        )
        .with_url("https://support.apple.com/guide/mac-help/mh11785/mac")
    };
    let finding = match state {
        None => Finding::unknown(
            super::ID,
            format!("FileVault state not understood from {source}"),
        ),
        Some(FileVault::On) => Finding::pass(super::ID, "FileVault is on"),
        Some(FileVault::Encrypting { percent }) => Finding::fail(
            super::ID,
            match percent {
                Some(p) => format!("FileVault is encrypting the disk ({p}% done)"),
                None => "FileVault is turning on (encryption pending)".to_owned(),
            },
            Remediation::new(
                "FileVault is still encrypting the disk: keep the Mac on power until \
                 `fdesetup status` says `FileVault is On.` with no encryption in progress.",
            ),
        ),
        Some(FileVault::Decrypting { percent }) => Finding::fail(
            super::ID,
            match percent {
                Some(p) => format!("FileVault is being turned off (decryption {p}% done)"),
                None => "FileVault is being turned off".to_owned(),
            },
            remediation(),
        ),
        Some(FileVault::Deferred) => Finding::fail(
            super::ID,
            "FileVault is off (enablement deferred to the next login)",
            Remediation::new(
                "FileVault will be turned on at the next login or restart: log out and back \
                 in (or restart) to start encryption.",
            ),
        ),
        Some(FileVault::Off) => Finding::fail(super::ID, "FileVault is off", remediation()),
    };
    finding
        .observe(
            "filevault",
            serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
        )
        .source(source)
}
