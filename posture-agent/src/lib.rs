//! # posture-agent
//!
//! The device side of posture, once, for every front end: the `posture` CLI commands, the
//! daemon and the C agent (`libposture`) are thin callers of this crate, so they cannot
//! disagree about where files live, which key signs, or whether the device is compliant.
//!
//! - [`paths`]: config, state, key and socket locations (root and per user).
//! - [`config`]: the config file, with line and column for every mistake.
//! - [`key`]: the device key choice: TPM, else a software key with the reason and the fix.
//! - [`collect`](mod@collect): collection with the state directory.
//! - [`sign`]: evidence signed with the device key (and a PCR quote with a nonce).
//! - [`compliance`]: the one definition of "compliant" (the configured policy).
//! - [`caep`]: CAEP compliance-change events.
//! - `tpm` (Linux, feature `tpm`): the TPM device side (keys, activation, quotes).
//!
//! ## Threading
//! [`Agent`] is plain data (`Send + Sync`); collection blocks (one thread per check, each
//! bounded by the configured timeout), so async callers run it on a blocking thread.
//!
//! ## Example
//! ```no_run
//! use posture_agent::{config::Config, Agent};
//!
//! let agent = Agent::new(Config::load(None)?, None)?;
//! let report = agent.collect(&[])?;
//! let key = agent.open_key(false)?;
//! let verdict = agent.assess(&report, key.assurance());
//! println!("compliant: {}", verdict.compliant);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod caep;
pub mod collect;
pub mod compliance;
pub mod config;
pub mod daemon_config;
mod ecc_blob;
pub mod key;
pub mod paths;
#[cfg(windows)]
pub mod pcp;
#[cfg(target_os = "macos")]
pub mod secure_enclave;
pub mod sign;
#[cfg(all(feature = "tpm", target_os = "linux"))]
pub mod tpm;

use std::path::Path;

use posture_core::keys::KeyAssurance;
use posture_core::Report;

pub use compliance::{Assessment, Compliance};
pub use config::Config;
pub use key::DeviceKey;
pub use paths::Paths;

/// The agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No place for state and keys.
    #[error(transparent)]
    Paths(#[from] paths::NoHome),
    /// The configured policy cannot be used.
    #[error(transparent)]
    Policy(#[from] compliance::PolicyFileError),
}

/// A configured agent: its config, its paths and its compliance policy.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The configuration.
    pub config: Config,
    /// Where its files live.
    pub paths: Paths,
    compliance: Compliance,
}

impl Agent {
    /// An agent for `config`; `key_dir` overrides where the device key lives.
    pub fn new(config: Config, key_dir: Option<&Path>) -> Result<Agent, AgentError> {
        let paths = config.paths(key_dir)?;
        let compliance = Compliance::load(config.policy_file())?;
        Ok(Agent {
            config,
            paths,
            compliance,
        })
    }

    /// Collects a report (every enabled check, or `only`), with the state directory.
    pub fn collect(&self, only: &[String]) -> Result<Report, posture_checks::Error> {
        collect::collect(&self.config, &self.paths.state_dir, only)
    }

    /// Opens the device key as `[key]` says (with the attestation key for quotes when
    /// `with_ak`).
    pub fn open_key(&self, with_ak: bool) -> Result<DeviceKey, key::DeviceKeyError> {
        key::open(&self.config.key, &self.paths.key_dir, with_ak)
    }

    /// Whether `report` is compliant under this agent's policy.
    pub fn assess(&self, report: &Report, assurance: KeyAssurance) -> Assessment {
        self.compliance.assess(report, assurance)
    }

    /// Whether `report` is compliant, opening the device key only when the policy asks
    /// for a key assurance (so `posture check` creates no key unless it matters).
    pub fn assess_device(&self, report: &Report) -> Result<Assessment, key::DeviceKeyError> {
        let assurance = if self.compliance.needs_key_assurance() {
            self.open_key(false)?.assurance()
        } else {
            KeyAssurance::Software
        };
        Ok(self.assess(report, assurance))
    }

    /// The compliance policy.
    pub fn compliance(&self) -> &Compliance {
        &self.compliance
    }
}
