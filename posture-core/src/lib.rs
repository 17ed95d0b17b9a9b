//! # posture-core
//!
//! The device-posture model and everything that happens to a posture report after it
//! has been collected: evidence, verification, policy and exports. Nothing in this
//! crate probes the operating system; that is the job of `posture-checks`.
//!
//! Data flows one way: a [`Report`] (a list of tri-state [`Finding`]s) is collected by
//! `posture-checks`, then signed into evidence, verified by a consumer and decided on
//! by a policy.
//!
//! - [`keys`]: the device key seam ([`keys::Signer`]) and the software key file.
//! - [`evidence`]: a report signed as a compact ES256 JWS with EAT claims.
//! - [`verify`]: the consumer's [`verify::Verifier`] (pinned keys and algorithm, size and
//!   nesting caps, freshness, nonce, audience).
//! - [`policy`]: declarative rules turning verified posture into allow/deny with reasons.
//! - [`exports`]: CAEP Security Event Tokens, Intune custom compliance, OPA input.
//!
//! The evidence format is documented in `docs/evidence.md`.
//!
//! ## Threading
//! All types are plain data (`Send + Sync`) with no interior mutability.
//!
//! ## Example
//! ```
//! use posture_core::{Finding, Remediation, Status};
//!
//! let finding = Finding::fail(
//!     "firewall",
//!     "no firewall is active",
//!     Remediation::new("Enable a firewall: sudo ufw enable"),
//! );
//! assert_eq!(finding.status, Status::Fail);
//! assert!(finding.check_invariants().is_ok());
//! ```

pub mod attestation;
pub mod evidence;
pub mod exports;
pub mod files;
pub mod hex;
pub mod jose;
pub mod keys;
mod model;
pub mod policy;
pub mod process;
mod time;
pub mod verify;

pub use model::{
    Agent, Device, Finding, InvariantError, OsFacts, Privilege, Remediation, Report, Status,
    Summary, REPORT_VERSION,
};
pub use time::Timestamp;

/// The JSON Schema of [`Report`], generated from the Rust types.
///
/// The committed copy lives in `schemas/report.schema.json`; a test fails when they drift.
pub fn report_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).unwrap_or(serde_json::Value::Null)
}
