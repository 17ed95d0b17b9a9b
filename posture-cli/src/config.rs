//! posture's configuration file (TOML).
//!
//! Looked up at `--config FILE`, else `/etc/posture/config.toml` when run as root, else
//! the user's config directory (`~/.config/posture/config.toml` on Linux). A missing
//! default file means defaults; a missing `--config` file is an error. Unknown keys are
//! errors with line and column.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use posture_checks::ChecksConfig;
use serde::Deserialize;

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[checks]`: thresholds, required EDR products, disabled checks.
    pub checks: ChecksConfig,
    /// `[daemon]`: schedule, local API, delivery (see `posture daemon`).
    pub daemon: crate::daemon::settings::DaemonConfig,
    /// `[key]`: which device key signs evidence (TPM, software, fallback), quoted PCRs.
    pub key: crate::device_key::KeyConfig,
}

impl Config {
    /// Parses config text; errors name the file, line and column.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: Config = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))?;
        config
            .checks
            .validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        config
            .daemon
            .validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        config
            .key
            .validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(config)
    }

    /// Loads `explicit`, or the default location if it exists, or defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(path) => path.to_owned(),
            None => match default_path() {
                Some(path) if path.exists() => path,
                _ => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text, &path)
    }
}

/// The default config path for this user.
pub fn default_path() -> Option<PathBuf> {
    if crate::paths::is_root() {
        return Some(PathBuf::from("/etc/posture/config.toml"));
    }
    directories::ProjectDirs::from("", "", "posture").map(|d| d.config_dir().join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_in_section_name_is_rejected_with_position() {
        let err = Config::parse("[chekcs]\ntimeout = \"1s\"\n", Path::new("/x/config.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x/config.toml"), "{err}");
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("chekcs"), "{err}");
    }

    #[test]
    fn nested_threshold_is_read() {
        let config = Config::parse(
            "[checks.patch_level]\nmax_days_since_upgrade = 7\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.checks.patch_level.max_days_since_upgrade, 7);
    }
}
