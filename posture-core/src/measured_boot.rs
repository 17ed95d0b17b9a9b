//! Measured boot on the verifier side: the device's TCG event log replay (the
//! `secure_boot` finding's `measured_boot.replayed_pcrs`, SHA-256 bank) compared with the
//! PCR values of a verified quote. Only when they agree are the log's boot facts
//! (`measured_boot.facts`: Secure Boot state as measured, boot applications, `db`
//! authorities, kernel and command line) believable, and policy can then be written on
//! events rather than raw PCR values.
//!
//! Self-contained: it reads a [`Finding`] and a [`VerifiedQuote`] and changes neither.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::attestation::VerifiedQuote;
use crate::Finding;

/// Why a log replay cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The finding carries no replay (no event log was read, or it did not parse).
    #[error("the evidence has no event log replay: {0}")]
    Missing(String),
    /// The replay is of another bank than the quote's SHA-256.
    #[error("the event log was replayed in bank {0}, the quote covers sha256 only")]
    WrongBank(String),
    /// A replayed value is not 32 bytes of hex.
    #[error("replayed PCR {0} is not a SHA-256 value")]
    Malformed(String),
    /// A PCR the policy needs is not in the replay or not in the quote.
    #[error("PCR {0} is required but not both replayed from the log and quoted")]
    NotCovered(u32),
    /// The log does not replay to the quoted value: the log is not the one measured.
    #[error("PCR {0}: the event log replays to a value other than the quoted one")]
    Mismatch(u32),
}

/// The measured boot part of a `secure_boot` finding.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredBoot {
    /// Replayed SHA-256 PCR values.
    pub replayed: BTreeMap<u32, [u8; 32]>,
    /// The boot facts the device read from the log (unverified until
    /// [`MeasuredBoot::check_against_quote`] succeeds).
    pub facts: Value,
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl MeasuredBoot {
    /// Reads `observed.measured_boot` of a `secure_boot` finding.
    pub fn from_finding(finding: &Finding) -> Result<Self, ReplayError> {
        let measured = finding
            .observed
            .get("measured_boot")
            .filter(|v| !v.is_null())
            .ok_or_else(|| ReplayError::Missing("no measured_boot".to_owned()))?;
        if let Some(error) = measured.get("error").and_then(Value::as_str) {
            return Err(ReplayError::Missing(error.to_owned()));
        }
        let bank = measured
            .get("replay_bank")
            .and_then(Value::as_str)
            .unwrap_or("");
        if bank != "0x000b" {
            return Err(ReplayError::WrongBank(bank.to_owned()));
        }
        let mut replayed = BTreeMap::new();
        let pcrs = measured
            .get("replayed_pcrs")
            .and_then(Value::as_object)
            .ok_or_else(|| ReplayError::Missing("no replayed_pcrs".to_owned()))?;
        for (pcr, value) in pcrs {
            let index: u32 = pcr
                .parse()
                .map_err(|_| ReplayError::Malformed(pcr.clone()))?;
            let value = value
                .as_str()
                .and_then(from_hex)
                .ok_or_else(|| ReplayError::Malformed(pcr.clone()))?;
            replayed.insert(index, value);
        }
        Ok(MeasuredBoot {
            replayed,
            facts: measured.get("facts").cloned().unwrap_or(Value::Null),
        })
    }

    /// Compares the replay with a verified quote: every PCR both carry must be equal, and
    /// every PCR in `required` must be in both. Returns the PCRs that matched.
    pub fn check_against_quote(
        &self,
        quote: &VerifiedQuote,
        required: &[u32],
    ) -> Result<Vec<u32>, ReplayError> {
        if let Some(missing) = required
            .iter()
            .find(|p| !self.replayed.contains_key(p) || !quote.pcrs.contains_key(p))
        {
            return Err(ReplayError::NotCovered(*missing));
        }
        let mut matched = Vec::new();
        for (pcr, replayed) in &self.replayed {
            if let Some(quoted) = quote.pcrs.get(pcr) {
                if quoted != replayed {
                    return Err(ReplayError::Mismatch(*pcr));
                }
                matched.push(*pcr);
            }
        }
        Ok(matched)
    }

    /// Whether the log says Secure Boot was enabled (the `SecureBoot` variable measured
    /// into PCR 7). Meaningful only after [`MeasuredBoot::check_against_quote`] covered
    /// PCR 7.
    pub fn secure_boot_enabled(&self) -> Option<bool> {
        self.facts.get("secure_boot").and_then(Value::as_bool)
    }

    /// The subjects of the `db` certificates that authorised what was booted.
    pub fn authorities(&self) -> Vec<String> {
        self.facts
            .get("authorities")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(measured: Value) -> Finding {
        serde_json::from_value(serde_json::json!({
            "id": "secure_boot",
            "status": "pass",
            "summary": "Secure Boot is enabled",
            "observed": { "measured_boot": measured },
            "collected_at": "2026-12-01T00:00:00Z",
            "privilege": "root",
        }))
        .unwrap()
    }

    fn quote(pcrs: &[(u32, [u8; 32])]) -> VerifiedQuote {
        VerifiedQuote {
            pcrs: pcrs.iter().copied().collect(),
            clock: 0,
            safe: true,
            reset_count: 0,
            restart_count: 0,
            firmware_version: 0,
        }
    }

    fn measured() -> Value {
        serde_json::json!({
            "replay_bank": "0x000b",
            "replayed_pcrs": { "0": "11".repeat(32), "7": "77".repeat(32) },
            "facts": { "secure_boot": true, "authorities": ["CN=Microsoft Windows Production PCA 2011"] },
        })
    }

    #[test]
    fn replay_matching_the_quote_makes_the_facts_usable() {
        let boot = MeasuredBoot::from_finding(&finding(measured())).unwrap();
        let q = quote(&[(0, [0x11; 32]), (7, [0x77; 32]), (14, [0; 32])]);
        assert_eq!(boot.check_against_quote(&q, &[7]).unwrap(), vec![0, 7]);
        assert_eq!(boot.secure_boot_enabled(), Some(true));
        assert_eq!(boot.authorities().len(), 1);
    }

    #[test]
    fn a_replay_that_differs_from_the_quote_is_rejected() {
        let boot = MeasuredBoot::from_finding(&finding(measured())).unwrap();
        let q = quote(&[(0, [0x11; 32]), (7, [0x78; 32])]);
        assert_eq!(
            boot.check_against_quote(&q, &[7]),
            Err(ReplayError::Mismatch(7))
        );
    }

    #[test]
    fn a_required_pcr_must_be_replayed_and_quoted() {
        let boot = MeasuredBoot::from_finding(&finding(measured())).unwrap();
        let q = quote(&[(0, [0x11; 32])]);
        assert_eq!(
            boot.check_against_quote(&q, &[7]),
            Err(ReplayError::NotCovered(7))
        );
    }

    #[test]
    fn sha1_replay_or_no_log_is_refused() {
        let mut sha1 = measured();
        sha1["replay_bank"] = "0x0004".into();
        assert!(matches!(
            MeasuredBoot::from_finding(&finding(sha1)),
            Err(ReplayError::WrongBank(_))
        ));
        assert!(matches!(
            MeasuredBoot::from_finding(&finding(Value::Null)),
            Err(ReplayError::Missing(_))
        ));
    }
}
