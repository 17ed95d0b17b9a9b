//! TPM presence and version on Windows, decoded (pure; every OS).
//!
//! Two sources: TBS, the TPM Base Services (`Tbsi_GetDeviceInfo` in `tbs.dll`: a
//! `TPM_DEVICE_INFO` whose `tpmVersion` is 1 for TPM 1.2, 2 for TPM 2.0; result
//! `TBS_E_TPM_NOT_FOUND` 0x8028400F when there is none; Microsoft Learn, "Tbsi_GetDeviceInfo
//! function (tbs.h)"), readable by any user; and WMI `Win32_Tpm`
//! (`root\cimv2\Security\MicrosoftTpm`; administrators only), whose `SpecVersion` reads
//! like `2.0, 0, 1.38` (Microsoft Learn, "Win32_Tpm class").

use serde_json::Value;

use crate::ps_json::{boolean, list, text};

/// `TBS_SUCCESS`.
pub const TBS_SUCCESS: u32 = 0;
/// `TBS_E_TPM_NOT_FOUND`.
pub const TBS_E_TPM_NOT_FOUND: u32 = 0x8028_400F;

/// What a source says about the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmAnswer {
    /// A TPM of this major version (`1.2` or `2.0`).
    Present(&'static str),
    /// No TPM.
    Absent,
    /// The source could not tell (why).
    Unknown(String),
}

/// Decodes `Tbsi_GetDeviceInfo`'s result and `tpmVersion`.
pub fn from_tbs(result: u32, tpm_version: u32) -> TpmAnswer {
    match (result, tpm_version) {
        (TBS_SUCCESS, 1) => TpmAnswer::Present("1.2"),
        (TBS_SUCCESS, 2) => TpmAnswer::Present("2.0"),
        (TBS_SUCCESS, other) => TpmAnswer::Unknown(format!("TBS reports TPM version {other}")),
        (TBS_E_TPM_NOT_FOUND, _) => TpmAnswer::Absent,
        (code, _) => TpmAnswer::Unknown(format!("Tbsi_GetDeviceInfo failed: 0x{code:08X}")),
    }
}

/// Decodes `Win32_Tpm` instances (none: no TPM).
pub fn from_win32_tpm(value: &Value) -> (TpmAnswer, Option<bool>) {
    let items = list(value);
    let Some(tpm) = items.first() else {
        return (TpmAnswer::Absent, None);
    };
    let enabled = boolean(tpm, "IsEnabled_InitialValue");
    let spec = text(tpm, "SpecVersion").unwrap_or_default();
    let answer = match spec.split(',').next().map(str::trim) {
        Some("2.0") => TpmAnswer::Present("2.0"),
        Some("1.2") => TpmAnswer::Present("1.2"),
        _ => TpmAnswer::Unknown(format!("Win32_Tpm SpecVersion `{spec}` not understood")),
    };
    (answer, enabled)
}
