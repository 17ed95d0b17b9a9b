//! Secure Boot on Windows (pure; every OS): the firmware type (`%firmware_type%`, set by
//! Windows 8 and later to `UEFI` or `Legacy`), the registry value
//! `HKLM\SYSTEM\CurrentControlSet\Control\SecureBoot\State\UEFISecureBootEnabled` (1 on,
//! 0 off; readable without administrator rights) and `Confirm-SecureBootUEFI` (`True`/
//! `False`; needs an administrator, throws on BIOS machines), as the script writes them:
//! `{"Firmware", "UEFISecureBootEnabled", "Confirm", "ConfirmError"}`.

use serde_json::Value;

use crate::ps_json::{boolean, text};

/// What the sources say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureBoot {
    /// Booted by legacy BIOS: Secure Boot does not apply.
    Legacy,
    /// UEFI with Secure Boot on.
    On,
    /// UEFI with Secure Boot off.
    Off,
    /// No source could tell (the reason).
    Unknown(String),
}

/// Decides from the script's JSON. `Confirm-SecureBootUEFI` wins over the registry when
/// both answered (it asks the firmware variable itself).
pub fn parse(value: &Value) -> SecureBoot {
    let firmware = text(value, "Firmware").unwrap_or_default();
    if firmware.eq_ignore_ascii_case("legacy") {
        return SecureBoot::Legacy;
    }
    let state = boolean(value, "Confirm").or_else(|| boolean(value, "UEFISecureBootEnabled"));
    match state {
        Some(true) => SecureBoot::On,
        Some(false) => SecureBoot::Off,
        None => SecureBoot::Unknown(format!(
            "neither Confirm-SecureBootUEFI ({}) nor the SecureBoot\\State registry value answered",
            text(value, "ConfirmError").unwrap_or_else(|| "no answer".to_owned())
        )),
    }
}
