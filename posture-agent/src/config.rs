//! posture's configuration file (TOML), shared by every front end.
//!
//! Looked up at `--config FILE`, else `/etc/posture/config.toml` when run as root, else
//! the user's config directory (`~/.config/posture/config.toml` on Linux). A missing
//! default file means defaults; a missing `--config` file is an error. Unknown keys are
//! errors with line and column, so a typo never silently turns a requirement off.

use std::path::{Path, PathBuf};

use posture_checks::ChecksConfig;
use serde::Deserialize;

use crate::daemon_config::DaemonConfig;
use crate::key::KeyConfig;
use crate::paths::{NoHome, Overrides, Paths};

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[checks]`: thresholds, required EDR products, disabled checks.
    pub checks: ChecksConfig,
    /// `[compliance]`: the policy that decides whether this device is compliant.
    pub compliance: ComplianceConfig,
    /// `[daemon]`: schedule, local API, delivery (see `posture daemon`).
    pub daemon: DaemonConfig,
    /// `[key]`: which device key signs evidence (TPM, software, fallback), quoted PCRs.
    pub key: KeyConfig,
    /// The text this config was parsed from (empty for defaults), so that a process can
    /// hand a child exactly the configuration it runs with (`--config -`).
    #[serde(skip)]
    text: String,
}

/// The `[compliance]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceConfig {
    /// Policy file (TOML, or JSON; see docs/evidence.md) deciding compliance for `posture
    /// check`, `posture status`, the daemon's events, the exports and the C agent.
    /// Without it, compliant means every check that ran passed.
    pub policy: Option<PathBuf>,
}

/// The config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid (the message has line and column).
    #[error("invalid config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Parses config text; errors name the file, line and column.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut config: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config.text = text.to_owned();
        config
            .checks
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        config
            .daemon
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        config.key.validate().map_err(|e| invalid(e.to_string()))?;
        if config.daemon.policy.is_some() && config.compliance.policy.is_some() {
            return Err(invalid(
                "[daemon] policy and [compliance] policy are both set; keep [compliance] policy"
                    .into(),
            ));
        }
        Ok(config)
    }

    /// Loads `explicit` (`-`: standard input), or the default location if it exists, or
    /// defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        if explicit == Some(Path::new("-")) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).map_err(
                |source| ConfigError::Read {
                    path: PathBuf::from("<stdin>"),
                    source,
                },
            )?;
            return Self::parse(&text, Path::new("<stdin>"));
        }
        let path = match explicit {
            Some(path) => path.to_owned(),
            None => match crate::paths::default_config_file() {
                Some(path) if path.exists() => path,
                _ => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// The text this config was parsed from; empty for defaults (no file).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The policy file that decides compliance (`[compliance] policy`, or the older
    /// `[daemon] policy`).
    pub fn policy_file(&self) -> Option<&Path> {
        self.compliance
            .policy
            .as_deref()
            .or(self.daemon.policy.as_deref())
    }

    /// This process's paths under this config, with `key_dir` if one was given.
    pub fn paths(&self, key_dir: Option<&Path>) -> Result<Paths, NoHome> {
        Paths::resolve(&Overrides {
            state_dir: self.daemon.state_dir.clone(),
            key_dir: key_dir.map(Path::to_owned),
            socket: self.daemon.socket.clone(),
        })
    }
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

    #[test]
    fn the_policy_is_read_from_either_table_but_not_both() {
        let new = Config::parse("[compliance]\npolicy = \"/p.toml\"\n", Path::new("c")).unwrap();
        assert_eq!(new.policy_file(), Some(Path::new("/p.toml")));
        let old = Config::parse("[daemon]\npolicy = \"/o.toml\"\n", Path::new("c")).unwrap();
        assert_eq!(old.policy_file(), Some(Path::new("/o.toml")));
        let both = "[compliance]\npolicy = \"/p\"\n[daemon]\npolicy = \"/o\"\n";
        assert!(Config::parse(both, Path::new("c")).is_err());
        assert!(Config::parse("[compliance]\npolcy = \"/p\"\n", Path::new("c")).is_err());
    }
}
