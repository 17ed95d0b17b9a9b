//! fwupd's Host Security ID (HSI) over D-Bus: the `HostSecurityId` property of
//! `org.freedesktop.fwupd` on the system bus (fwupd's documented D-Bus interface), e.g.
//! `HSI:2! (v1.9.16)`: the level (0–5) fwupd's platform security tests reached, and `!`
//! when runtime issues (e.g. a tainted kernel, unencrypted swap) lower it.
//!
//! Live only, and only answers where the fwupd daemon runs (it is D-Bus activated).

use std::time::Duration;

use serde::Serialize;

/// A parsed Host Security ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hsi {
    /// The raw string.
    pub id: String,
    /// The level, 0 to 5.
    pub level: u8,
    /// Whether fwupd flagged runtime issues (`!`).
    pub runtime_issues: bool,
}

/// Parses `HSI:N[!] [(vX.Y.Z)]`.
pub fn parse_hsi(text: &str) -> Option<Hsi> {
    let rest = text.trim().strip_prefix("HSI:")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let level: u8 = digits.parse().ok().filter(|l| *l <= 5)?;
    let runtime_issues = rest[digits.len()..].starts_with('!');
    Some(Hsi {
        id: text.trim().to_owned(),
        level,
        runtime_issues,
    })
}

/// Reads `HostSecurityId` from fwupd over the system bus.
pub fn read_hsi() -> Result<Hsi, String> {
    use zbus::blocking::{connection, Proxy};

    let connection = connection::Builder::system()
        .and_then(|b| b.method_timeout(Duration::from_secs(2)).build())
        .map_err(|e| format!("no D-Bus system bus: {e}"))?;
    let proxy = Proxy::new(
        &connection,
        "org.freedesktop.fwupd",
        "/",
        "org.freedesktop.fwupd",
    )
    .map_err(|e| format!("fwupd: {e}"))?;
    let id: String = proxy
        .get_property("HostSecurityId")
        .map_err(|e| format!("fwupd is not answering on the system bus: {e}"))?;
    parse_hsi(&id).ok_or_else(|| format!("fwupd's HostSecurityId `{id}` is not understood"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsi_strings() {
        assert_eq!(
            parse_hsi("HSI:2! (v1.9.16)"),
            Some(Hsi {
                id: "HSI:2! (v1.9.16)".into(),
                level: 2,
                runtime_issues: true
            })
        );
        assert_eq!(
            parse_hsi("HSI:3 (v2.0.1)").map(|h| (h.level, h.runtime_issues)),
            Some((3, false))
        );
        assert_eq!(parse_hsi("HSI:0").map(|h| h.level), Some(0));
        assert_eq!(parse_hsi("HSI:9"), None);
        assert_eq!(parse_hsi("INVALID:"), None);
    }
}
