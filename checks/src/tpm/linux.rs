//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use std::fs::OpenOptions;
use std::io;

use posture_core::{Finding, Remediation};
use serde_json::Value;

use crate::source::{exists, list_dir, read_attr, read_text};
use crate::Context;

const CLASS_TPM: &str = "/sys/class/tpm";
const CLASS_TPMRM: &str = "/sys/class/tpmrm";
const ENABLE_URL: &str = "https://wiki.archlinux.org/title/Trusted_Platform_Module";

/// A TPM's specification family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpmVersion {
    /// TPM 1.2.
    V1_2,
    /// TPM 2.0.
    V2_0,
}

impl TpmVersion {
    /// `1.2` or `2.0`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TpmVersion::V1_2 => "1.2",
            TpmVersion::V2_0 => "2.0",
        }
    }
}

/// Parses `tpm_version_major` (`1` or `2`).
pub fn parse_version_major(text: &str) -> Option<TpmVersion> {
    match text.trim() {
        "1" => Some(TpmVersion::V1_2),
        "2" => Some(TpmVersion::V2_0),
        _ => None,
    }
}

/// Parses a TPM 1.2 `caps` file: `TCG version: 1.2` names the version.
pub fn parse_caps(text: &str) -> Option<TpmVersion> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "TCG version" && value.trim().starts_with("1.")).then_some(TpmVersion::V1_2)
    })
}

/// One TPM the kernel knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmDevice {
    /// `tpm0`.
    pub name: String,
    /// Its version, when sysfs tells.
    pub version: Option<TpmVersion>,
}

/// Whether a name is a TPM character device class entry (`tpm0`, not `tpmrm0`).
fn is_tpm_name(name: &str) -> bool {
    name.strip_prefix("tpm")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read_device(ctx: &Context, name: &str) -> TpmDevice {
    let dir = format!("{CLASS_TPM}/{name}");
    let version = read_attr(ctx, format!("{dir}/tpm_version_major"))
        .ok()
        .and_then(|t| parse_version_major(&t))
        .or_else(|| {
            [format!("{dir}/caps"), format!("{dir}/device/caps")]
                .iter()
                .find_map(|p| read_text(ctx, p).ok().and_then(|t| parse_caps(&t)))
        })
        .or_else(|| {
            // Only TPM 2.0 devices get a kernel resource manager.
            let number = name.trim_start_matches("tpm");
            exists(ctx, format!("{CLASS_TPMRM}/tpmrm{number}")).then_some(TpmVersion::V2_0)
        });
    TpmDevice {
        name: name.to_owned(),
        version,
    }
}

/// Whether the TPM resource manager device can be opened for reading and writing.
#[derive(Debug)]
enum Access {
    Yes,
    Denied,
    Missing,
    Error(io::Error),
}

fn open_rw(ctx: &Context, device: &str) -> Access {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .open(ctx.path(device))
    {
        Ok(_file) => Access::Yes,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Access::Denied,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Access::Missing,
        Err(e) => Access::Error(e),
    }
}

fn access_remediation(device: &str) -> Remediation {
    Remediation::new(format!(
        "This user cannot open {device}, so posture cannot keep its device key in the TPM. \
         Add the user to the `tss` group (sudo usermod -aG tss $USER), then log out and in again."
    ))
}

/// Runs the check.
pub(super) fn check(ctx: &Context) -> Finding {
    let names = match list_dir(ctx, CLASS_TPM) {
        Ok(names) => names,
        // /sys/class exists but has no tpm class: no TPM driver found a device.
        Err(e) if e.is_not_found() && exists(ctx, "/sys/class") => Vec::new(),
        Err(e) => return Finding::unknown(ID, e.to_string()).source(CLASS_TPM),
    };
    let devices: Vec<TpmDevice> = names
        .iter()
        .filter(|n| is_tpm_name(n))
        .map(|n| read_device(ctx, n))
        .collect();
    let base = |finding: Finding| finding.source(CLASS_TPM);

    let Some(first) = devices.first() else {
        return base(Finding::fail(
            ID,
            "no TPM found",
            Remediation::new(
                "No TPM is visible to the operating system. Turn on the TPM in the firmware setup \
                 (it may be called TPM, fTPM on AMD, PTT on Intel, or Security Chip), then boot \
                 again.",
            )
            .with_url(ENABLE_URL),
        ))
        .observe("present", false)
        .observe("version", Value::Null)
        .observe("accessible", Value::Null)
        .observe("device", Value::Null);
    };

    let tpm2 = devices.iter().find(|d| d.version == Some(TpmVersion::V2_0));
    let Some(tpm2) = tpm2 else {
        let version = first.version.map(|v| v.as_str());
        let finding = match first.version {
            Some(TpmVersion::V1_2) => Finding::fail(
                ID,
                "only a TPM 1.2 is present; TPM 2.0 is required",
                Remediation::new(
                    "This machine's TPM is version 1.2. Many firmware TPMs can be switched to \
                     TPM 2.0 in the firmware setup (look for \"TPM device selection\" or a TPM \
                     firmware update from the vendor); otherwise the machine needs replacing.",
                )
                .with_url(ENABLE_URL),
            ),
            _ => Finding::unknown(
                ID,
                format!(
                    "{} is present but sysfs does not tell its version",
                    first.name
                ),
            ),
        };
        return base(finding)
            .observe("present", true)
            .observe("version", version)
            .observe("accessible", Value::Null)
            .observe("device", format!("/dev/{}", first.name));
    };

    let number = tpm2.name.trim_start_matches("tpm");
    let device = format!("/dev/tpmrm{number}");
    let facts = |finding: Finding, accessible: Value| {
        base(finding)
            .observe("present", true)
            .observe("version", TpmVersion::V2_0.as_str())
            .observe("accessible", accessible)
            .observe("device", device.clone())
            .source(format!("{CLASS_TPM}/{}", tpm2.name))
            .source(device.clone())
    };
    match open_rw(ctx, &device) {
        Access::Yes => facts(
            Finding::pass(ID, format!("TPM 2.0 present and usable at {device}")),
            Value::Bool(true),
        ),
        Access::Denied => facts(
            Finding::pass(
                ID,
                format!("TPM 2.0 present, but this user cannot open {device}"),
            ),
            Value::Bool(false),
        )
        .remediation(access_remediation(&device)),
        Access::Missing => facts(
            Finding::pass(ID, format!("TPM 2.0 present, but {device} does not exist")),
            Value::Bool(false),
        )
        .remediation(Remediation::new(format!(
            "The TPM is present but {device} is missing; the kernel resource manager or udev \
             may not be running. Reboot, and check that udev creates {device}."
        ))),
        Access::Error(e) => facts(
            Finding::pass(
                ID,
                format!("TPM 2.0 present, but opening {device} failed: {e}"),
            ),
            Value::Bool(false),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version_major("2\n"), Some(TpmVersion::V2_0));
        assert_eq!(parse_version_major("1"), Some(TpmVersion::V1_2));
        assert_eq!(parse_version_major("3"), None);
        assert_eq!(parse_version_major(""), None);
    }

    #[test]
    fn caps_of_a_tpm_1_2() {
        // Layout of drivers/char/tpm/tpm-sysfs.c caps_show().
        let caps = "Manufacturer: 0x49465800\nTCG version: 1.2\nFirmware version: 6.40\n";
        assert_eq!(parse_caps(caps), Some(TpmVersion::V1_2));
        assert_eq!(parse_caps("Manufacturer: 0x1\n"), None);
    }

    #[test]
    fn tpm_names() {
        assert!(is_tpm_name("tpm0"));
        assert!(is_tpm_name("tpm12"));
        assert!(!is_tpm_name("tpmrm0"));
        assert!(!is_tpm_name("tpm"));
    }
}
