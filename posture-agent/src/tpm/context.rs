//! The one TSS context of the process.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use tss_esapi::constants::{CapabilityType, PropertyTag};
use tss_esapi::structures::CapabilityData;
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::Context;

use super::{protocol_err, tss_err};
use posture_core::keys::{KeyError, TpmError, TpmFailure};

/// The TCTI used when `TCTI` is not set: the kernel's TPM resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// A TPM connection. Commands are serialised by an internal mutex.
pub struct Tpm {
    context: Mutex<Context>,
    tcti: String,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm").field("tcti", &self.tcti).finish()
    }
}

/// The process-wide connection (see [`Tpm::shared`]).
static SHARED: Mutex<Option<Arc<Tpm>>> = Mutex::new(None);

impl Tpm {
    /// The TCTI from the `TCTI` environment variable, else [`DEFAULT_TCTI`].
    pub fn tcti_from_env() -> String {
        std::env::var("TCTI")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TCTI.to_owned())
    }

    /// The process-wide TPM connection, opened on first use from [`Tpm::tcti_from_env`].
    pub fn shared() -> Result<Arc<Tpm>, KeyError> {
        let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tpm) = slot.as_ref() {
            return Ok(Arc::clone(tpm));
        }
        let tpm = Arc::new(Tpm::open(&Self::tcti_from_env())?);
        *slot = Some(Arc::clone(&tpm));
        Ok(tpm)
    }

    /// Opens a connection through `tcti` (e.g. `device:/dev/tpmrm0`, `swtpm:path=/tmp/s`).
    ///
    /// For a device TCTI, a missing device is [`KeyError::Unsupported`] and a permission
    /// problem is [`TpmFailure::PermissionDenied`] (the agent's key choice says how to fix it).
    pub fn open(tcti: &str) -> Result<Tpm, KeyError> {
        // The TSS libraries are loaded here, not at process start (see `lazy`).
        super::lazy::ensure_loaded().map_err(KeyError::Unsupported)?;
        if let Some(device) = tcti.strip_prefix("device:") {
            check_device(Path::new(if device.is_empty() {
                "/dev/tpm0"
            } else {
                device
            }))?;
        }
        // tss-esapi 7 understands only host/port for these and would silently ignore a
        // unix socket path, connecting to localhost:2321 instead.
        if (tcti.starts_with("swtpm:") || tcti.starts_with("mssim:")) && tcti.contains("path=") {
            return Err(KeyError::Unsupported(format!(
                "TCTI \"{tcti}\": unix socket simulators are not supported; \
                 use swtpm:host=127.0.0.1,port=N (swtpm socket --server type=tcp,port=N \
                 --ctrl type=tcp,port=N+1)"
            )));
        }
        let conf = TctiNameConf::from_str(tcti).map_err(|e| {
            KeyError::Tpm(TpmError::new(
                format!("loading TCTI \"{tcti}\""),
                super::failure_of(e),
            ))
        })?;
        let context = Context::new(conf).map_err(tss_err("connecting to the TPM"))?;
        Ok(Tpm {
            context: Mutex::new(context),
            tcti: tcti.to_owned(),
        })
    }

    /// The TCTI this connection uses.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// Runs `f` with exclusive use of the TSS context (for TPM work this module does not
    /// wrap). Flush whatever transient objects `f` creates.
    pub fn with_context<T>(
        &self,
        f: impl FnOnce(&mut Context) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let mut ctx = self.context.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut ctx)
    }

    /// `TPM_PT_MANUFACTURER` as the TPM reports it (e.g. `0x49424D00`, "IBM"), the value
    /// of the TCG vendor id registry. One TPM command.
    pub fn manufacturer_id(&self) -> Result<u32, KeyError> {
        self.with_context(|ctx| {
            let (data, _) = ctx
                .execute_without_session(|ctx| {
                    ctx.get_capability(
                        CapabilityType::TpmProperties,
                        PropertyTag::Manufacturer.into(),
                        1,
                    )
                })
                .map_err(tss_err("reading TPM_PT_MANUFACTURER"))?;
            match data {
                CapabilityData::TpmProperties(list) => list
                    .find(PropertyTag::Manufacturer)
                    .map(|p| p.value())
                    .ok_or_else(|| protocol_err("reading TPM_PT_MANUFACTURER", "not reported")),
                _ => Err(protocol_err(
                    "reading TPM_PT_MANUFACTURER",
                    "the TPM answered with another capability",
                )),
            }
        })
    }

    /// Manufacturer and vendor strings, and whether this is a software TPM. One TPM
    /// command: the fixed properties from `TPM_PT_MANUFACTURER` to
    /// `TPM_PT_FIRMWARE_VERSION_2` are consecutive, so one GetCapability returns them all.
    pub fn info(&self) -> Result<TpmInfo, KeyError> {
        let properties = self.with_context(|ctx| {
            let (data, _) = ctx
                .execute_without_session(|ctx| {
                    ctx.get_capability(
                        CapabilityType::TpmProperties,
                        PropertyTag::Manufacturer.into(),
                        8,
                    )
                })
                .map_err(tss_err("reading TPM properties"))?;
            match data {
                CapabilityData::TpmProperties(list) => Ok(list),
                _ => Err(protocol_err(
                    "reading TPM properties",
                    "the TPM answered with another capability",
                )),
            }
        })?;
        let prop = |tag| properties.find(tag).map(|p| p.value()).unwrap_or_default();
        let manufacturer = ascii(&[prop(PropertyTag::Manufacturer)]);
        let vendor = ascii(&[
            prop(PropertyTag::VendorString1),
            prop(PropertyTag::VendorString2),
            prop(PropertyTag::VendorString3),
            prop(PropertyTag::VendorString4),
        ]);
        let firmware = (u64::from(prop(PropertyTag::FirmwareVersion1)) << 32)
            | u64::from(prop(PropertyTag::FirmwareVersion2));
        let software = is_software_tpm(&manufacturer, &vendor);
        Ok(TpmInfo {
            manufacturer,
            vendor,
            firmware_version: firmware,
            software,
        })
    }
}

/// Identity of a TPM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmInfo {
    /// `TPM_PT_MANUFACTURER` as text, e.g. `IFX`, `NTC`, `INTC`, `IBM`.
    pub manufacturer: String,
    /// `TPM_PT_VENDOR_STRING_1..4`.
    pub vendor: String,
    /// `TPM_PT_FIRMWARE_VERSION_1/2`.
    pub firmware_version: u64,
    /// A software TPM (swtpm/libtpms, the IBM or Microsoft simulators): it protects
    /// nothing against the machine's owner, and evidence must say so.
    pub software: bool,
}

/// libtpms (swtpm) reports manufacturer "IBM" and vendor "SW   TPM"; the IBM reference
/// simulator the same; the Microsoft reference simulator "MSFT"/"xCG fTPM". Hyper-V's
/// vTPM also reports MSFT but is a virtual TPM, not a simulator, so only the vendor
/// string decides for MSFT.
fn is_software_tpm(manufacturer: &str, vendor: &str) -> bool {
    let vendor = vendor.replace(' ', "");
    vendor.starts_with("SW") || (manufacturer == "IBM" && vendor.contains("TPM"))
}

fn ascii(words: &[u32]) -> String {
    words
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .filter(|b| b.is_ascii_graphic() || *b == b' ')
        .map(char::from)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn check_device(path: &Path) -> Result<(), KeyError> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyError::Unsupported(format!(
            "no TPM: {} does not exist",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(KeyError::Tpm(TpmError::new(
                "opening the TPM",
                TpmFailure::PermissionDenied(path.to_owned()),
            )))
        }
        Err(e) => Err(KeyError::Tpm(TpmError::new(
            format!("opening {}", path.display()),
            TpmFailure::Connection(e.to_string()),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_unsupported_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tpm::open(&format!("device:{}/tpmrm0", dir.path().display())).unwrap_err();
        assert!(matches!(err, KeyError::Unsupported(_)), "{err}");
    }

    #[test]
    fn software_tpm_vendor_strings() {
        assert!(is_software_tpm("IBM", "SW   TPM"));
        assert!(!is_software_tpm("IFX", "SLB9670"));
        assert!(!is_software_tpm("MSFT", ""));
        assert_eq!(ascii(&[0x4942_4d00]), "IBM");
    }
}
