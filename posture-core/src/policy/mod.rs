//! Policy: a declarative file that turns verified posture into `allow` or `deny`, with
//! every failed rule, the finding behind it and what the person should do.
//!
//! ```toml
//! required_checks = ["disk_encryption", "firewall", "screen_lock"]
//! max_patch_age_days = 14
//! required_edr = ["crowdstrike", "sentinelone"]   # any of
//! required_key_assurance = "tpm"                  # "software" or "tpm"
//! require_secure_boot = true
//! max_evidence_age = "10m"
//!
//! [min_os_version]   # by os-release ID (debian, ubuntu, fedora), else by family
//! debian = "12"
//! ubuntu = "22.04"
//! macos = "14.5"
//!
//! [expected_pcrs]    # sha256 bank; needs an enrolled TPM device and a nonce
//! 7 = "65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068"
//! ```
//!
//! The same document is accepted as JSON. Unknown rules are errors, and every error
//! names its line and column.

mod eval;
mod version;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use eval::{Decision, Outcome, Reason};
pub use version::{OsVersion, VersionError};

use crate::jose::{self, MAX_JSON_DEPTH};
use crate::keys::KeyAssurance;

/// Largest policy file accepted (they are a few lines; this bounds fuzzed input).
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// A posture policy. Every rule is optional; an empty policy allows any valid evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Checks that must have run and passed, by id (`disk_encryption`, `firewall`, ...).
    #[serde(default)]
    pub required_checks: Vec<String>,
    /// Minimum OS version, keyed by os-release `ID` (`debian`, `ubuntu`) or OS family
    /// (`linux`, `macos`, `windows`). An OS not listed is not constrained.
    #[serde(default)]
    pub min_os_version: BTreeMap<String, OsVersion>,
    /// Security updates may be pending for at most this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_patch_age_days: Option<u32>,
    /// At least one of these EDR products must be running (product ids of the `edr` check).
    #[serde(default)]
    pub required_edr: Vec<String>,
    /// The device key must be at least this well protected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_key_assurance: Option<KeyAssurance>,
    /// Secure Boot must be enabled.
    #[serde(default)]
    pub require_secure_boot: bool,
    /// Evidence must be at most this old, e.g. `"10m"` (humantime syntax).
    #[serde(
        default,
        deserialize_with = "de_duration",
        serialize_with = "ser_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_evidence_age: Option<Duration>,
    /// sha256 PCR values (index 0-23 to 64 hex digits) that a TPM quote in the evidence,
    /// verified with the device's enrolled attestation key, must show. Evidence without
    /// such a quote is denied.
    #[serde(
        default,
        deserialize_with = "de_pcrs",
        serialize_with = "ser_pcrs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub expected_pcrs: BTreeMap<u32, [u8; 32]>,
}

/// A policy file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A TOML syntax error, unknown rule or bad value; the message has line and column.
    #[error("{0}")]
    Toml(String),
    /// A JSON syntax error, duplicate key, unknown rule or bad value.
    #[error("{message} at line {line} column {column}")]
    Json {
        /// What is wrong.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Larger than [`MAX_POLICY_BYTES`].
    #[error("the policy is {0} bytes, more than {MAX_POLICY_BYTES}")]
    TooLarge(usize),
}

impl Policy {
    /// The policy used when none is configured: every check that ran in `report` must
    /// pass (`unknown` included, as everywhere in posture).
    pub fn every_check_of(report: &crate::Report) -> Self {
        Self {
            required_checks: report.findings.iter().map(|f| f.id.clone()).collect(),
            ..Self::default()
        }
    }

    /// Parses a TOML policy.
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(text.len()));
        }
        toml::from_str(text).map_err(|e| PolicyError::Toml(e.to_string().trim_end().to_owned()))
    }

    /// Parses a JSON policy (duplicate keys are errors).
    pub fn from_json_str(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(text.len()));
        }
        let json_error = |e: serde_json::Error| PolicyError::Json {
            message: strip_position(&e.to_string()),
            line: e.line(),
            column: e.column(),
        };
        // Syntax errors, duplicate keys and excessive nesting; serde_json's messages end
        // in " at line L column C", which we keep as fields.
        jose::check_json(text.as_bytes(), MAX_JSON_DEPTH).map_err(|e| {
            let (line, column) = parse_position(&e.message).unwrap_or((0, 0));
            PolicyError::Json {
                message: strip_position(&e.message),
                line,
                column,
            }
        })?;
        let mut de = serde_json::Deserializer::from_str(text);
        let policy = Policy::deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(json_error)?;
        Ok(policy)
    }

    /// Parses TOML or JSON, chosen by the first non-blank character (`{` means JSON).
    pub fn from_str_auto(text: &str) -> Result<Self, PolicyError> {
        if text.trim_start().starts_with('{') {
            Self::from_json_str(text)
        } else {
            Self::from_toml_str(text)
        }
    }
}

/// serde_json appends " at line L column C"; we keep the position in fields instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn parse_position(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.rfind(" at line ")? + " at line ".len()..];
    let (line, column) = rest.split_once(" column ")?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

fn ser_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&humantime::format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// The highest PCR index of a PC-client TPM.
const MAX_PCR: u32 = 23;

fn de_pcrs<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, [u8; 32]>, D::Error> {
    use serde::de::Error;
    // TOML table keys are strings, so both forms are read as string -> string.
    let raw = BTreeMap::<String, String>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (index, hex) in raw {
        let pcr = index
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= MAX_PCR)
            .ok_or_else(|| D::Error::custom(format!("PCR {index:?} is not 0 to {MAX_PCR}")))?;
        let value: [u8; 32] = crate::attestation::from_hex(&hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "PCR {pcr}: {hex:?} is not a sha256 value (64 hex digits)"
                ))
            })?;
        out.insert(pcr, value);
    }
    Ok(out)
}

fn ser_pcrs<S: serde::Serializer>(pcrs: &BTreeMap<u32, [u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(pcrs.len()))?;
    for (pcr, value) in pcrs {
        map.serialize_entry(&pcr.to_string(), &crate::attestation::to_hex(value))?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
required_checks = ["disk_encryption", "firewall"]
max_patch_age_days = 14
required_edr = ["crowdstrike", "sentinelone"]
required_key_assurance = "tpm"
require_secure_boot = true
max_evidence_age = "10m"

[min_os_version]
debian = "12"
ubuntu = "22.04"

[expected_pcrs]
7 = "65CAF8DD1E0EA7A6347B635D2B379C93B9A1351EDC2AFC3ECDA700E534EB3068"
0 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    #[test]
    fn full_toml_policy_parses() {
        let p = Policy::from_toml_str(FULL).unwrap();
        assert_eq!(p.required_checks, ["disk_encryption", "firewall"]);
        assert_eq!(p.max_patch_age_days, Some(14));
        assert_eq!(p.required_key_assurance, Some(KeyAssurance::Tpm));
        assert!(p.require_secure_boot);
        assert_eq!(p.max_evidence_age, Some(Duration::from_secs(600)));
        assert_eq!(p.min_os_version["ubuntu"].to_string(), "22.04");
        assert_eq!(p.expected_pcrs.len(), 2);
        assert_eq!(p.expected_pcrs[&7][..2], [0x65, 0xca]);
    }

    #[test]
    fn bad_pcr_rules_are_errors() {
        for bad in [
            "[expected_pcrs]\n24 = \"00\"\n",
            "[expected_pcrs]\nseven = \"00\"\n",
            "[expected_pcrs]\n7 = \"abcd\"\n",
        ] {
            let err = Policy::from_toml_str(bad).unwrap_err().to_string();
            assert!(err.contains("line "), "{err}");
        }
    }

    #[test]
    fn json_is_the_same_document() {
        let toml_policy = Policy::from_toml_str(FULL).unwrap();
        let json = serde_json::to_string_pretty(&toml_policy).unwrap();
        assert_eq!(Policy::from_json_str(&json).unwrap(), toml_policy);
        assert_eq!(Policy::from_str_auto(&json).unwrap(), toml_policy);
    }

    #[test]
    fn unknown_rule_is_an_error_with_position() {
        let err = Policy::from_toml_str("required_checks = []\nrequire_firewal = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2, column 1"), "{err}");
        assert!(err.contains("require_firewal"), "{err}");

        let err = Policy::from_json_str("{\n  \"max_patch_age\": 3\n}").unwrap_err();
        assert!(matches!(err, PolicyError::Json { line: 2, .. }), "{err:?}");
        assert!(err.to_string().contains("max_patch_age"), "{err}");
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let err = Policy::from_toml_str("max_evidence_age = \"ten minutes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1, column 20"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");

        let err = Policy::from_toml_str("[min_os_version]\ndebian = \"twelve\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");

        let err = Policy::from_toml_str("required_key_assurance = \"hsm\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("hsm"), "{err}");
    }

    #[test]
    fn json_duplicate_rule_is_an_error_with_position() {
        let err = Policy::from_json_str(
            "{\n  \"require_secure_boot\": false,\n  \"require_secure_boot\": true\n}",
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
        assert!(matches!(err, PolicyError::Json { line: 3, .. }), "{err:?}");
    }

    #[test]
    fn toml_syntax_error_has_position() {
        let err = Policy::from_toml_str("required_checks = [\"a\",\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line "), "{err}");
    }
}
