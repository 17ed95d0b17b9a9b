//! BitLocker per volume from `manage-bde -status` (English output; pure; every OS).
//!
//! The text form is what people publish when they show a BitLocker state, and it is the
//! one place Windows prints the restarts left before suspended protection resumes
//! ("Protection Off (1 reboots left)", Microsoft Learn, "manage-bde status" and
//! "Suspend-BitLocker"). Its labels are translated on other display languages; a label
//! this parser does not know leaves the field unset, so such a volume's state is
//! `unknown`, never a guess.
//!
//! Each volume becomes a [`Volume`] with the `Win32_EncryptableVolume` codes (see
//! [`super::bitlocker`]), so one decision serves both sources.

use super::bitlocker::Volume;

fn volume(letter: &str) -> Volume {
    Volume {
        drive_letter: letter.to_owned(),
        device_id: String::new(),
        volume_type: None,
        protection_status: None,
        conversion_status: None,
        encryption_method: None,
        suspend_count: None,
    }
}

/// Parses every `Volume X: [label]` block. Fields before any such line (a capture
/// pasted without its header) make one volume without a drive letter.
pub fn parse(text: &str) -> Vec<Volume> {
    let mut volumes = Vec::new();
    let mut current: Option<Volume> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Volume ") {
            if let Some(v) = current.take() {
                volumes.push(v);
            }
            current = Some(volume(rest.split_whitespace().next().unwrap_or_default()));
            continue;
        }
        let Some((label, value)) = line.split_once(':') else {
            if let Some(v) = current.as_mut() {
                match line {
                    "[OS Volume]" => v.volume_type = Some(0),
                    "[Data Volume]" => v.volume_type = Some(1),
                    _ => {}
                }
            }
            continue;
        };
        let value = value.trim();
        let known = matches!(
            label.trim(),
            "Conversion Status" | "Encryption Method" | "Protection Status" | "Lock Status"
        );
        if !known {
            continue;
        }
        let v = current.get_or_insert_with(|| volume(""));
        match label.trim() {
            "Conversion Status" => v.conversion_status = conversion(value),
            "Encryption Method" => v.encryption_method = method(value),
            "Protection Status" => {
                let (status, reboots) = protection(value);
                v.protection_status = status;
                v.suspend_count = reboots;
            }
            // A locked volume's conversion and protection are not readable.
            "Lock Status" if value.eq_ignore_ascii_case("locked") => {
                v.protection_status = Some(2);
                v.conversion_status = None;
            }
            _ => {}
        }
    }
    volumes.extend(current);
    volumes
}

/// `Win32_EncryptableVolume.ConversionStatus` of a `Conversion Status` value.
fn conversion(value: &str) -> Option<u64> {
    Some(match value.to_ascii_lowercase().as_str() {
        "fully decrypted" => 0,
        // "Used Space Only Encrypted": every used block is encrypted; what is free was
        // never written in the clear since, the state BitLocker reports as complete.
        "fully encrypted" | "used space only encrypted" => 1,
        "encryption in progress" => 2,
        "decryption in progress" => 3,
        "encryption paused" => 4,
        "decryption paused" => 5,
        _ => return None,
    })
}

/// `EncryptionMethod` of an `Encryption Method` value.
fn method(value: &str) -> Option<u64> {
    Some(match value.to_ascii_lowercase().as_str() {
        "none" => 0,
        "aes 128 with diffuser" => 1,
        "aes 256 with diffuser" => 2,
        "aes 128" | "aes-cbc 128" => 3,
        "aes 256" | "aes-cbc 256" => 4,
        "hardware encryption" => 5,
        "xts-aes 128" => 6,
        "xts-aes 256" => 7,
        _ => return None,
    })
}

/// `ProtectionStatus` and the restarts left of a `Protection Status` value:
/// `Protection On`, `Protection Off`, `Protection Off (1 reboots left)`.
fn protection(value: &str) -> (Option<u64>, Option<u64>) {
    let lower = value.to_ascii_lowercase();
    if lower == "protection on" {
        return (Some(1), None);
    }
    let Some(rest) = lower.strip_prefix("protection off") else {
        return (None, None);
    };
    let reboots = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    (Some(0), reboots)
}
