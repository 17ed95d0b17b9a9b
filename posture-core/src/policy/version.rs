//! Dotted numeric OS versions (`12`, `22.04`, `14.5.1`, `10.0.19045`), compared
//! component by component with missing components counting as zero (`12` == `12.0`).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An OS version of dotted numbers.
#[derive(Clone, Debug)]
pub struct OsVersion {
    parts: Vec<u64>,
    text: String,
}

/// A version that is not dotted numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {0:?}: expected dotted numbers such as \"12\" or \"22.04\"")]
pub struct VersionError(pub String);

impl FromStr for OsVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, VersionError> {
        let parts: Option<Vec<u64>> = text
            .split('.')
            .map(|p| {
                if p.is_empty() || p.len() > 19 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    p.parse().ok()
                }
            })
            .collect();
        match parts {
            Some(parts) if !parts.is_empty() && parts.len() <= 8 => Ok(Self {
                parts,
                text: text.to_owned(),
            }),
            _ => Err(VersionError(text.to_owned())),
        }
    }
}

impl PartialEq for OsVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OsVersion {}

impl PartialOrd for OsVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OsVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.parts.len().max(other.parts.len());
        (0..len)
            .map(|i| {
                let a = self.parts.get(i).copied().unwrap_or(0);
                let b = other.parts.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for OsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for OsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> OsVersion {
        s.parse().unwrap()
    }

    #[test]
    fn compares_numerically_by_component() {
        assert!(v("22.04") > v("20.10"));
        assert!(v("12") < v("12.1"));
        assert_eq!(v("12"), v("12.0"));
        assert!(v("10.0.19045") > v("10.0.9999"));
        assert!(v("14.10") > v("14.9"));
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in [
            "",
            "twelve",
            "12.",
            ".1",
            "1..2",
            "12-beta",
            "+1",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<OsVersion>().is_err(), "{bad}");
        }
    }
}
