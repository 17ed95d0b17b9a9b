//! Windows implementation: TBS (`Tbsi_GetDeviceInfo`, any user), falling back to WMI
//! `Win32_Tpm` (administrators), decoded by [`super::tbs`].
//!
//! `tbs.dll` is loaded at run time, not linked: a Windows without it (Wine has none) must
//! still start posture, and then answers from WMI or `unknown`.

use std::ffi::c_void;

use posture_core::{Finding, Remediation};

use super::tbs::{from_tbs, from_win32_tpm, TpmAnswer};
use super::ID;
use crate::powershell::query;
use crate::Context;

const TBS_SOURCE: &str = "TBS Tbsi_GetDeviceInfo (tbs.dll)";
const WMI_SOURCE: &str = r"WMI root\cimv2\Security\MicrosoftTpm Win32_Tpm";

const SCRIPT: &str = "$t = @(Get-CimInstance -Namespace root/cimv2/Security/MicrosoftTpm -ClassName Win32_Tpm | Select-Object SpecVersion, IsEnabled_InitialValue, IsActivated_InitialValue, ManufacturerIdTxt)
ConvertTo-Json -InputObject $t -Compress";

/// `TPM_DEVICE_INFO` (tbs.h).
#[repr(C)]
#[derive(Debug, Default)]
struct TpmDeviceInfo {
    struct_version: u32,
    tpm_version: u32,
    tpm_interface_type: u32,
    tpm_imp_revision: u32,
}

type GetDeviceInfo = unsafe extern "system" fn(u32, *mut c_void) -> u32;

#[link(name = "kernel32")]
extern "system" {
    fn LoadLibraryW(name: *const u16) -> *mut c_void;
    fn GetProcAddress(module: *mut c_void, name: *const u8) -> *mut c_void;
}

/// Whether this runs under Wine: its `ntdll.dll` exports `wine_get_version` (the way Wine's
/// own documentation says to detect it). Wine's `tbs.dll` is a stub that reports no TPM
/// whatever the machine has, so its answer says nothing about the device.
fn under_wine() -> bool {
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call; ntdll is
    // loaded in every Windows process, so this only takes a reference.
    let module = unsafe { LoadLibraryW(name.as_ptr()) };
    if module.is_null() {
        return false;
    }
    // SAFETY: `module` is a loaded module; the name is a NUL-terminated ASCII string.
    !unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_null()
}

/// Asks TBS; `Err` when `tbs.dll` or its function is not there.
fn ask_tbs() -> Result<TpmAnswer, String> {
    if under_wine() {
        return Err(
            "running under Wine, whose tbs.dll is a stub that always reports no TPM".into(),
        );
    }
    let name: Vec<u16> = "tbs.dll\0".encode_utf16().collect();
    // SAFETY: `name` is a NUL-terminated UTF-16 string that outlives the call.
    let module = unsafe { LoadLibraryW(name.as_ptr()) };
    if module.is_null() {
        return Err("tbs.dll is not available".to_owned());
    }
    // SAFETY: `module` is a loaded module; the name is a NUL-terminated ASCII string.
    let proc = unsafe { GetProcAddress(module, c"Tbsi_GetDeviceInfo".as_ptr().cast()) };
    if proc.is_null() {
        return Err("tbs.dll has no Tbsi_GetDeviceInfo".to_owned());
    }
    // SAFETY: Tbsi_GetDeviceInfo has this signature (tbs.h: TBS_RESULT WINAPI
    // Tbsi_GetDeviceInfo(UINT32 Size, PVOID Info)).
    let get: GetDeviceInfo = unsafe { std::mem::transmute::<*mut c_void, GetDeviceInfo>(proc) };
    let mut info = TpmDeviceInfo {
        struct_version: 1,
        ..TpmDeviceInfo::default()
    };
    let size = std::mem::size_of::<TpmDeviceInfo>() as u32;
    // SAFETY: `info` is a valid, writable TPM_DEVICE_INFO of `size` bytes.
    let result = unsafe { get(size, std::ptr::from_mut(&mut info).cast()) };
    Ok(from_tbs(result, info.tpm_version))
}

pub(super) fn check(ctx: &Context) -> Finding {
    let (answer, source, enabled, why_not_tbs) = match ask_tbs() {
        Ok(answer) => (answer, TBS_SOURCE, None, None),
        Err(tbs_error) => match query(ctx, SCRIPT) {
            Ok(v) => {
                let (answer, enabled) = from_win32_tpm(&v);
                (answer, WMI_SOURCE, enabled, Some(tbs_error))
            }
            Err(e) => (
                TpmAnswer::Unknown(format!("{tbs_error}; Win32_Tpm: {e}")),
                WMI_SOURCE,
                None,
                Some(tbs_error),
            ),
        },
    };
    let remediation = || {
        Remediation::new(
            "Turn on the TPM (often called PTT, fTPM or Security Chip) in the firmware setup; \
             if the device has no TPM 2.0, replace it.",
        )
        .with_url("https://support.microsoft.com/windows/enable-tpm-2-0-on-your-pc-1fd5a332-360d-4f46-a1e7-ae6b0c90645c")
    };
    let finding = match answer {
        TpmAnswer::Present("2.0") if enabled == Some(false) => {
            Finding::fail(ID, "a TPM 2.0 is present but disabled", remediation())
        }
        TpmAnswer::Present("2.0") => Finding::pass(ID, "TPM 2.0 present"),
        TpmAnswer::Present(v) => {
            Finding::fail(ID, format!("only a TPM {v} is present"), remediation())
        }
        TpmAnswer::Absent => Finding::fail(ID, "no TPM found", remediation()),
        TpmAnswer::Unknown(reason) => Finding::unknown(ID, reason),
    };
    let finding = finding.observe("enabled", enabled).source(source);
    match why_not_tbs {
        Some(e) => finding.observe("tbs_unavailable", e),
        None => finding,
    }
}
