//! Choosing the device key: the TPM when there is a usable one, else a software key file
//! (when allowed), as configured in the `[key]` table.
//!
//! ```toml
//! [key]
//! backend = "auto"                # "auto" | "tpm" | "software"
//! allow_software_fallback = true  # auto only: use a software key when the TPM is unusable
//! quote_pcrs = [0, 1, 2, 3, 4, 5, 6, 7]   # sha256 PCRs quoted by `report --nonce`
//! ek = "auto"                     # "auto" | "rsa" | "ecc": the EK `enroll request` presents
//! ```
//!
//! The TPM is reached through the `TCTI` environment variable (e.g.
//! `swtpm:host=127.0.0.1,port=2321`), else `device:/dev/tpmrm0`.

use std::path::{Path, PathBuf};

use posture_core::evidence::TpmClaims;
use posture_core::keys::software::SoftwareKey;
#[cfg(not(any(windows, target_os = "macos")))]
use posture_core::keys::TpmFailure;
use posture_core::keys::{KeyAssurance, KeyError, Signer};
use serde::Deserialize;

/// The sha256 PCRs quoted by default: firmware, boot loader, Secure Boot policy.
pub const DEFAULT_QUOTE_PCRS: [u32; 8] = posture_core::attestation::DEFAULT_PCRS;

/// Which key signs evidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The TPM when it is usable; otherwise a software key if `allow_software_fallback`.
    #[default]
    Auto,
    /// Always the TPM; an unusable TPM is an error.
    Tpm,
    /// Always the software key file.
    Software,
}

/// Which endorsement key `posture enroll request` presents (the `ek` setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EkPreference {
    /// The RSA 2048 EK when its certificate is in NV (what most verifiers expect), else
    /// the ECC EK whose certificate is (P-256, then P-384), else the RSA 2048 EK.
    #[default]
    Auto,
    /// Always the RSA 2048 EK.
    Rsa,
    /// The ECC EK: NIST P-256 unless only a P-384 EK certificate is in NV.
    Ecc,
}

/// The `[key]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// Which key signs evidence.
    pub backend: Backend,
    /// With `backend = "auto"`: sign with a software key (and say why in the evidence)
    /// when the TPM cannot be used. When false, an unusable TPM is an error.
    pub allow_software_fallback: bool,
    /// The sha256 PCRs that `posture report --nonce` quotes.
    pub quote_pcrs: Vec<u32>,
    /// The EK that `posture enroll request` presents.
    pub ek: EkPreference,
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            allow_software_fallback: true,
            quote_pcrs: DEFAULT_QUOTE_PCRS.to_vec(),
            ek: EkPreference::Auto,
        }
    }
}

impl KeyConfig {
    /// Rejects an empty PCR selection (a quote of nothing attests nothing) and PCRs
    /// beyond 23.
    pub fn validate(&self) -> Result<(), String> {
        if self.quote_pcrs.is_empty() {
            return Err("[key] quote_pcrs must name at least one PCR".into());
        }
        if let Some(bad) = self.quote_pcrs.iter().find(|p| **p > 23) {
            return Err(format!(
                "[key] quote_pcrs: PCR {bad} does not exist (0 to 23)"
            ));
        }
        Ok(())
    }
}

/// The device key in use, and what the evidence must say about it.
#[derive(Debug)]
pub struct DeviceKey {
    /// The key that signs.
    pub signer: Box<dyn Signer>,
    /// Where the key (or its TPM-wrapped blob) is stored. For a Windows Platform Crypto
    /// Provider key (no file): the key directory joined with the provider's key name.
    pub path: PathBuf,
    /// Why a software key is used although the TPM was wanted.
    pub fallback_reason: Option<String>,
    /// What the person should do about that.
    pub fallback_fix: Option<String>,
    /// The TPM parts, when the key is in a TPM.
    #[cfg(all(feature = "tpm", target_os = "linux"))]
    pub tpm: Option<TpmParts>,
}

/// The TPM behind a TPM device key.
#[cfg(all(feature = "tpm", target_os = "linux"))]
#[derive(Debug)]
pub struct TpmParts {
    /// Manufacturer, vendor, software or not.
    pub info: crate::tpm::TpmInfo,
    /// The attestation key, when it was asked for.
    pub ak: Option<crate::tpm::AttestationKey>,
}

impl DeviceKey {
    /// Where the key lives.
    pub fn assurance(&self) -> KeyAssurance {
        self.signer.assurance()
    }

    /// The `tpm` claim without a quote (`None` for a software key).
    pub fn tpm_claims(&self) -> Option<TpmClaims> {
        #[cfg(all(feature = "tpm", target_os = "linux"))]
        if let Some(tpm) = &self.tpm {
            return Some(TpmClaims {
                manufacturer: tpm.info.manufacturer.clone(),
                software_tpm: tpm.info.software,
                quote: None,
            });
        }
        None
    }
}

/// The device key cannot be used as configured.
#[derive(Debug, thiserror::Error)]
pub enum DeviceKeyError {
    /// The TPM is required (`backend = "tpm"`, or no fallback allowed) but not usable.
    #[error("cannot use the TPM device key ({setting}): {source}; fix: {fix}")]
    TpmRequired {
        /// The setting that forbids the fallback.
        setting: &'static str,
        /// Why the TPM is not usable.
        source: KeyError,
        /// What the person should do.
        fix: String,
    },
    /// The software key could not be loaded or created.
    #[error("cannot load the device key: {0}")]
    Software(#[source] KeyError),
}

/// Opens the device key as `config` says, from `key_dir`. With `with_ak`, the TPM's
/// attestation key is loaded too (for quotes). A software key standing in for an unusable
/// TPM carries `fallback_reason` and `fallback_fix`, for the caller to show or log.
pub fn open(
    config: &KeyConfig,
    key_dir: &Path,
    with_ak: bool,
) -> Result<DeviceKey, DeviceKeyError> {
    if config.backend == Backend::Software {
        return software(key_dir, None);
    }
    match open_tpm(key_dir, with_ak) {
        Ok(key) => Ok(key),
        Err(e) if config.backend == Backend::Auto && config.allow_software_fallback => {
            let mut key = software(key_dir, Some(e.to_string()))?;
            key.fallback_fix = Some(remediation(&e));
            Ok(key)
        }
        Err(e) => Err(DeviceKeyError::TpmRequired {
            setting: remediation_short(config),
            fix: remediation(&e),
            source: e,
        }),
    }
}

fn remediation_short(config: &KeyConfig) -> &'static str {
    match config.backend {
        Backend::Tpm => "[key] backend = \"tpm\" allows no fallback",
        _ => "[key] allow_software_fallback = false",
    }
}

/// What the person at the laptop should do about an unusable TPM (Windows: the Platform
/// Crypto Provider could not give a hardware key).
#[cfg(windows)]
pub fn remediation(e: &KeyError) -> String {
    let _ = e;
    "check that this device has a TPM 2.0 that Windows uses (tpm.msc shows \"The TPM is ready \
     for use\"; enable \"TPM 2.0\", \"PTT\" or \"fTPM\" in the firmware setup otherwise), or set \
     [key] backend = \"software\" to accept a software key"
        .into()
}

/// What the person at the laptop should do when the Secure Enclave key cannot be used.
#[cfg(target_os = "macos")]
pub fn remediation(e: &KeyError) -> String {
    let _ = e;
    "the Secure Enclave (T2 or Apple silicon Macs) keeps the device key only for a posture \
     build code-signed with a keychain access group: install the signed package, or set \
     [key] backend = \"software\" to accept a software key"
        .into()
}

/// What the person at the laptop should do about an unusable TPM, by what went wrong.
#[cfg(not(any(windows, target_os = "macos")))]
pub fn remediation(e: &KeyError) -> String {
    match e {
        KeyError::Tpm(tpm) => match &tpm.kind {
            TpmFailure::PermissionDenied(path) => format!(
                "add your user to the tss group so it may open {}: sudo usermod -aG tss $USER \
                 (then log in again), or run posture as root",
                path.display()
            ),
            TpmFailure::Connection(_) => format!(
                "check that the TPM at TCTI {:?} is reachable (is the simulator or tpm2-abrmd \
                 running?), or set [key] backend = \"software\" to accept a software key",
                tcti()
            ),
            TpmFailure::Response { .. } | TpmFailure::Protocol(_) => format!(
                "check that the TPM at TCTI {:?} is working (tpm2_getcap properties-fixed); \
                 a key blob made before a TPM clear must be deleted to create a new key; or set \
                 [key] backend = \"software\" to accept a software key",
                tcti()
            ),
        },
        _ => "this device has no TPM 2.0 the kernel exposes: enable the TPM (\"TPM 2.0\", \
              \"PTT\" or \"fTPM\") in the firmware setup, or set [key] backend = \"software\" \
              to accept a software key"
            .into(),
    }
}

#[cfg(not(any(windows, target_os = "macos")))]
fn tcti() -> String {
    #[cfg(all(feature = "tpm", target_os = "linux"))]
    return crate::tpm::Tpm::tcti_from_env();
    #[cfg(not(all(feature = "tpm", target_os = "linux")))]
    return String::new();
}

fn software(key_dir: &Path, fallback_reason: Option<String>) -> Result<DeviceKey, DeviceKeyError> {
    let key = SoftwareKey::load_or_create(key_dir).map_err(DeviceKeyError::Software)?;
    Ok(DeviceKey {
        path: key.path().to_owned(),
        signer: Box::new(key),
        fallback_reason,
        fallback_fix: None,
        #[cfg(all(feature = "tpm", target_os = "linux"))]
        tpm: None,
    })
}

#[cfg(all(feature = "tpm", target_os = "linux"))]
fn open_tpm(key_dir: &Path, with_ak: bool) -> Result<DeviceKey, KeyError> {
    use crate::tpm::{AttestationKey, Srk, Tpm, TpmSigner, DEVICE_KEY_FILE};
    quiet_tss_logging();
    let tpm = Tpm::shared()?;
    let key_existed = key_dir.join(DEVICE_KEY_FILE).exists();
    // One SRK for both keys; loaded children stay usable after it is flushed.
    let srk = Srk::create(&tpm)?;
    let signer = TpmSigner::load(&srk, key_dir)?;
    let ak = if with_ak {
        Some(AttestationKey::load(&srk, key_dir)?)
    } else {
        None
    };
    drop(srk);
    let info = tpm_info(&tpm, key_dir, key_existed)?;
    Ok(DeviceKey {
        path: key_dir.join(DEVICE_KEY_FILE),
        signer: Box::new(signer),
        fallback_reason: None,
        fallback_fix: None,
        tpm: Some(TpmParts { info, ak }),
    })
}

/// File caching the TPM's identity next to the device key blob.
#[cfg(all(feature = "tpm", target_os = "linux"))]
const TPM_INFO_FILE: &str = "tpm-info.json";

/// The TPM's identity (manufacturer, software or not), without a TPM command when it can
/// be trusted from the cache: the device key blob beside it has just loaded, and a blob
/// loads only on the TPM that created it, so a cache written together with that blob
/// describes this very TPM. A new key, or a missing or unreadable cache, asks the TPM
/// (one GetCapability) and rewrites the cache.
#[cfg(all(feature = "tpm", target_os = "linux"))]
fn tpm_info(
    tpm: &crate::tpm::Tpm,
    key_dir: &Path,
    key_existed: bool,
) -> Result<crate::tpm::TpmInfo, KeyError> {
    let path = key_dir.join(TPM_INFO_FILE);
    if key_existed {
        if let Some(info) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CachedInfo>(&bytes).ok())
        {
            return Ok(crate::tpm::TpmInfo {
                manufacturer: info.manufacturer,
                vendor: info.vendor,
                firmware_version: info.firmware_version,
                software: info.software,
            });
        }
    }
    let info = tpm.info()?;
    let cached = CachedInfo {
        manufacturer: info.manufacturer.clone(),
        vendor: info.vendor.clone(),
        firmware_version: info.firmware_version,
        software: info.software,
    };
    // A cache that cannot be written only costs a GetCapability next time.
    if let Ok(json) = serde_json::to_vec_pretty(&cached) {
        let _ = posture_core::files::write_private(&path, &json);
    }
    Ok(info)
}

#[cfg(all(feature = "tpm", target_os = "linux"))]
#[derive(Debug, serde::Serialize, Deserialize)]
struct CachedInfo {
    manufacturer: String,
    vendor: String,
    firmware_version: u64,
    software: bool,
}

/// Windows: the key in the TPM through the Microsoft Platform Crypto Provider. No
/// attestation key yet (quotes and enrollment are Linux-only), so `with_ak` is not used.
#[cfg(windows)]
fn open_tpm(key_dir: &Path, _with_ak: bool) -> Result<DeviceKey, KeyError> {
    let signer = crate::pcp::PcpSigner::load_or_create(key_dir)?;
    Ok(DeviceKey {
        path: key_dir.join(signer.name()),
        signer: Box::new(signer),
        fallback_reason: None,
        fallback_fix: None,
    })
}

/// macOS: the key in the Secure Enclave (no attestation key: it has none to offer).
#[cfg(target_os = "macos")]
fn open_tpm(key_dir: &Path, _with_ak: bool) -> Result<DeviceKey, KeyError> {
    let signer = crate::secure_enclave::SecureEnclaveSigner::load_or_create(key_dir)?;
    Ok(DeviceKey {
        path: key_dir.join(signer.label()),
        signer: Box::new(signer),
        fallback_reason: None,
        fallback_fix: None,
    })
}

#[cfg(not(any(
    all(feature = "tpm", target_os = "linux"),
    windows,
    target_os = "macos"
)))]
fn open_tpm(_key_dir: &Path, _with_ak: bool) -> Result<DeviceKey, KeyError> {
    Err(KeyError::Unsupported(
        "this build of posture has no TPM support (Linux, feature `tpm`)".into(),
    ))
}

/// libtss2 logs every failed ESYS call to stderr, which would bury our own message when
/// we fall back. Keep it quiet unless the user asked for logging.
#[cfg(all(feature = "tpm", target_os = "linux"))]
pub fn quiet_tss_logging() {
    if std::env::var_os("TSS2_LOG").is_none() {
        // Edition 2021: set_var is safe; posture runs single-threaded at this point (no
        // thread has been started that could read the environment concurrently).
        std::env::set_var("TSS2_LOG", "all+NONE");
    }
}

/// The TPM device key (when `with_signer`) and attestation key.
#[cfg(all(feature = "tpm", target_os = "linux"))]
pub type AttestationKeys = (Option<crate::tpm::TpmSigner>, crate::tpm::AttestationKey);

/// Opens the TPM keys for enrollment and attestation: no fallback, the AK loaded, the
/// device key only `with_signer`.
#[cfg(all(feature = "tpm", target_os = "linux"))]
pub fn open_tpm_for_attestation(
    key_dir: &Path,
    with_signer: bool,
) -> Result<AttestationKeys, DeviceKeyError> {
    use crate::tpm::{AttestationKey, Srk, Tpm, TpmSigner};
    quiet_tss_logging();
    let attempt = || -> Result<_, KeyError> {
        let tpm = Tpm::shared()?;
        let srk = Srk::create(&tpm)?;
        let signer = if with_signer {
            Some(TpmSigner::load(&srk, key_dir)?)
        } else {
            None
        };
        let ak = AttestationKey::load(&srk, key_dir)?;
        Ok((signer, ak))
    };
    attempt().map_err(|e| DeviceKeyError::TpmRequired {
        setting: "enrollment and attestation need the TPM",
        fix: remediation(&e),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_auto_with_fallback_and_pcrs_0_to_7() {
        let c: KeyConfig = toml::from_str("").unwrap();
        assert_eq!(c.backend, Backend::Auto);
        assert!(c.allow_software_fallback);
        assert_eq!(c.quote_pcrs, DEFAULT_QUOTE_PCRS);
        assert_eq!(c.ek, EkPreference::Auto);
        let ecc: KeyConfig = toml::from_str("ek = \"ecc\"").unwrap();
        assert_eq!(ecc.ek, EkPreference::Ecc);
        assert!(toml::from_str::<KeyConfig>("ek = \"dsa\"").is_err());
    }

    #[test]
    fn unknown_backend_and_keys_are_errors() {
        assert!(toml::from_str::<KeyConfig>("backend = \"hsm\"").is_err());
        assert!(toml::from_str::<KeyConfig>("fallback = true").is_err());
        let empty: KeyConfig = toml::from_str("quote_pcrs = []").unwrap();
        assert!(empty.validate().is_err());
        let big: KeyConfig = toml::from_str("quote_pcrs = [24]").unwrap();
        assert!(big.validate().is_err());
    }

    // The TPM remediation texts are the Linux ones (macOS and Windows have their own).
    #[cfg(not(any(windows, target_os = "macos")))]
    #[test]
    fn a_missing_tpm_device_falls_back_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let e = KeyError::Unsupported("no TPM".into());
        assert!(remediation(&e).contains("firmware setup"));
        let e = KeyError::Tpm(posture_core::keys::TpmError::new(
            "opening the TPM",
            TpmFailure::PermissionDenied("/dev/tpmrm0".into()),
        ));
        assert!(remediation(&e).contains("sudo usermod -aG tss $USER"));
        assert!(remediation(&e).contains("/dev/tpmrm0"));
        let e = KeyError::Tpm(posture_core::keys::TpmError::new(
            "connecting",
            TpmFailure::Connection("connection refused".into()),
        ));
        assert!(remediation(&e).contains("reachable"));
        let software_only = KeyConfig {
            backend: Backend::Software,
            ..KeyConfig::default()
        };
        let key = open(&software_only, &dir.path().join("keys"), false).unwrap();
        assert_eq!(key.assurance(), KeyAssurance::Software);
        assert!(key.fallback_reason.is_none());
    }
}
