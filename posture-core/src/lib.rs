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
//! - [`webauthn`]: WebAuthn `tpm` attestation statements and assertions from TPM keys.
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
pub mod devcert;
pub mod evidence;
pub mod exports;
pub mod files;
#[cfg(windows)]
mod files_windows;
pub mod hex;
pub mod jose;
pub mod keys;
pub mod measured_boot;
mod model;
pub mod policy;
pub mod process;
pub mod sddl;
mod time;
pub mod verify;
pub mod webauthn;

pub use model::{
    Agent, Device, Finding, InvariantError, OsFacts, Privilege, Remediation, Report, Status,
    Summary, REPORT_VERSION,
};
pub use time::Timestamp;

/// The JSON Schema of [`Report`], generated from the Rust types.
///
/// The committed copy lives in `schemas/report.schema.json`; a test fails when they drift.
pub fn report_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Report)).unwrap_or(serde_json::Value::Null);
    standard_keywords(&mut schema);
    schema
}

/// Rewrites schemars' non-standard integer formats (`uint`, `uint32`, `int64`, ...) as the
/// standard `minimum`/`maximum` keywords, so that strict validators (Ajv 8 in its default
/// strict mode) compile the schema; only formats JSON Schema defines (`date-time`) stay.
pub(crate) fn standard_keywords(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let bounds: Option<(i128, i128)> = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((0, u8::MAX.into())),
                Some("uint16") => Some((0, u16::MAX.into())),
                Some("uint32") => Some((0, u32::MAX.into())),
                Some("uint64" | "uint") => Some((0, u64::MAX.into())),
                Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
                Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("int64" | "int") => Some((i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((min, max)) = bounds {
                map.remove("format");
                let number = |n: i128| {
                    u64::try_from(n)
                        .map(Value::from)
                        .or_else(|_| i64::try_from(n).map(Value::from))
                        .unwrap_or(Value::Null)
                };
                // Keep a tighter bound schemars already wrote (`minimum: 0`).
                map.entry("minimum").or_insert_with(|| number(min));
                map.entry("maximum").or_insert_with(|| number(max));
            }
            map.values_mut().for_each(standard_keywords);
        }
        Value::Array(items) => items.iter_mut().for_each(standard_keywords),
        _ => {}
    }
}
