//! Configuration of the checks: thresholds, required products, disabled checks.
//!
//! It is the `[checks]` table of posture's TOML config. Unknown keys are errors (with
//! line and column), so a typo never silently turns a requirement off.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;

/// Configuration of all checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// Check ids that do not run.
    pub disabled: Vec<String>,
    /// How long one check may take before it is `unknown` with reason `timeout`.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Thresholds of the `patch_level` check.
    pub patch_level: PatchLevelConfig,
    /// Requirements of the `edr` check.
    pub edr: EdrConfig,
    /// Thresholds of the `screen_lock` check.
    pub screen_lock: ScreenLockConfig,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        Self {
            disabled: Vec::new(),
            timeout: Duration::from_secs(5),
            patch_level: PatchLevelConfig::default(),
            edr: EdrConfig::default(),
            screen_lock: ScreenLockConfig::default(),
        }
    }
}

/// Thresholds of the `patch_level` check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchLevelConfig {
    /// Fail when a security update has been pending longer than this many days.
    pub max_security_pending_days: u32,
    /// Fail when there has been no successful upgrade for this many days.
    pub max_days_since_upgrade: u32,
    /// Fail when a newer kernel is installed than the one running (reboot pending).
    pub fail_on_pending_reboot: bool,
}

impl Default for PatchLevelConfig {
    fn default() -> Self {
        Self {
            max_security_pending_days: 14,
            max_days_since_upgrade: 30,
            fail_on_pending_reboot: false,
        }
    }
}

/// Requirements of the `edr` check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdrConfig {
    /// Product ids from the catalogue; the check passes when any one of them is running.
    /// Empty means any product in the catalogue.
    pub required: Vec<String>,
}

/// Thresholds of the `screen_lock` check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenLockConfig {
    /// Fail when the screen locks later than this many minutes of inactivity.
    pub max_idle_minutes: u32,
}

impl Default for ScreenLockConfig {
    fn default() -> Self {
        Self {
            max_idle_minutes: 15,
        }
    }
}

impl ChecksConfig {
    /// Parses the `[checks]` table from TOML text (the table's contents, not the whole file).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::ConfigParse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Whether a check is enabled.
    pub fn is_enabled(&self, id: &str) -> bool {
        !self.disabled.iter().any(|d| d == id)
    }

    /// Checks that every id named in the config exists.
    pub fn validate(&self) -> Result<(), Error> {
        for id in &self.disabled {
            if crate::check_by_id(id).is_none() {
                return Err(Error::UnknownCheck(id.clone()));
            }
        }
        // A typo in a required product would otherwise make the check unknown on every
        // device; catch it where the config is loaded.
        if let Ok(catalogue) = crate::edr::catalogue::builtin() {
            for id in &self.edr.required {
                if !catalogue.products.iter().any(|p| &p.id == id) {
                    let known: Vec<&str> =
                        catalogue.products.iter().map(|p| p.id.as_str()).collect();
                    return Err(Error::InvalidSetting(format!(
                        "checks.edr.required: unknown product `{id}` (known: {})",
                        known.join(", ")
                    )));
                }
            }
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidSetting(
                "checks.timeout must be more than zero".into(),
            ));
        }
        Ok(())
    }
}

/// Deserializes a human duration such as `5s`, `500ms` or `2m`.
pub fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_is_an_error_with_line_and_column() {
        let err = ChecksConfig::from_toml(
            "timeout = \"2s\"\n[patch_level]\nmax_security_pendng_days = 3\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("column 1"), "{err}");
        assert!(err.contains("max_security_pendng_days"), "{err}");
    }

    #[test]
    fn parses_thresholds_and_durations() {
        let config = ChecksConfig::from_toml(
            "timeout = \"750ms\"\ndisabled = [\"screen_lock\"]\n[edr]\nrequired = [\"crowdstrike\"]\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(750));
        assert!(!config.is_enabled("screen_lock"));
        assert_eq!(config.edr.required, vec!["crowdstrike"]);
        assert_eq!(config.patch_level.max_security_pending_days, 14);
        config.validate().unwrap();
    }

    #[test]
    fn screen_lock_limit_defaults_to_15_and_is_configurable() {
        assert_eq!(ChecksConfig::default().screen_lock.max_idle_minutes, 15);
        let config =
            ChecksConfig::from_toml("[screen_lock]\nmax_idle_minutes = 5\n", Path::new("c.toml"))
                .unwrap();
        assert_eq!(config.screen_lock.max_idle_minutes, 5);
        assert!(
            ChecksConfig::from_toml("[screen_lock]\nmax_idle = 5\n", Path::new("c.toml")).is_err()
        );
    }

    #[test]
    fn unknown_edr_product_is_an_error() {
        let config =
            ChecksConfig::from_toml("[edr]\nrequired = [\"crowdstrik\"]", Path::new("c.toml"))
                .unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("unknown product `crowdstrik`"), "{err}");
    }

    #[test]
    fn unknown_check_id_is_an_error() {
        let config =
            ChecksConfig::from_toml("disabled = [\"firewal\"]", Path::new("c.toml")).unwrap();
        assert!(matches!(config.validate(), Err(Error::UnknownCheck(id)) if id == "firewal"));
    }
}
