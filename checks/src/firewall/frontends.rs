//! What the firewall frontends' configuration files say: ufw and firewalld, and whether the
//! nftables service is enabled. A config that says "enabled" is not proof that rules are
//! loaded; the check only uses this to describe the setup and to word the remediation.

use serde::Serialize;

use crate::source::{exists, read_text};
use crate::Context;

/// ufw's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UfwConfig {
    /// `/etc/ufw/ufw.conf` exists.
    pub installed: bool,
    /// `ENABLED=yes` in `/etc/ufw/ufw.conf`.
    pub enabled: Option<bool>,
    /// `DEFAULT_INPUT_POLICY` in `/etc/default/ufw` (`DROP`, `REJECT` or `ACCEPT`).
    pub default_input_policy: Option<String>,
}

/// firewalld's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewalldConfig {
    /// `/etc/firewalld/firewalld.conf` exists.
    pub installed: bool,
    /// `firewalld.service` is enabled (wanted by `multi-user.target`).
    pub service_enabled: bool,
    /// `DefaultZone` in `firewalld.conf`.
    pub default_zone: Option<String>,
    /// The default zone's `target` (`default` when the zone file does not set one).
    pub zone_target: Option<String>,
}

/// Everything the config files say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FrontendConfig {
    /// ufw.
    pub ufw: UfwConfig,
    /// firewalld.
    pub firewalld: FirewalldConfig,
    /// `nftables.service` is enabled (it loads `/etc/nftables.conf` at boot).
    pub nftables_service_enabled: bool,
}

impl FrontendConfig {
    /// The frontend whose configuration says it is on and restricts input, if any.
    pub fn configured_frontend(&self) -> Option<&'static str> {
        let ufw_restricts = self.ufw.enabled == Some(true)
            && self
                .ufw
                .default_input_policy
                .as_deref()
                .is_some_and(|p| p != "ACCEPT");
        let firewalld_restricts = self.firewalld.service_enabled
            && self
                .firewalld
                .zone_target
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("ACCEPT"));
        if ufw_restricts {
            Some("ufw")
        } else if firewalld_restricts {
            Some("firewalld")
        } else if self.nftables_service_enabled {
            Some("nftables")
        } else {
            None
        }
    }
}

/// Files this module reads, for the finding's `source`.
pub const SOURCES: &[&str] = &[
    "/etc/ufw/ufw.conf",
    "/etc/default/ufw",
    "/etc/firewalld/firewalld.conf",
];

const FIREWALLD_WANTS: &str = "/etc/systemd/system/multi-user.target.wants/firewalld.service";
const NFTABLES_WANTS: &str = "/etc/systemd/system/sysinit.target.wants/nftables.service";

/// Reads the frontends' config files below the context root.
pub fn read(ctx: &Context) -> FrontendConfig {
    let ufw_conf = read_text(ctx, "/etc/ufw/ufw.conf").ok();
    let ufw = UfwConfig {
        installed: ufw_conf.is_some(),
        enabled: ufw_conf
            .as_deref()
            .and_then(|t| shell_value(t, "ENABLED"))
            .map(|v| v.eq_ignore_ascii_case("yes")),
        default_input_policy: read_text(ctx, "/etc/default/ufw")
            .ok()
            .and_then(|t| shell_value(&t, "DEFAULT_INPUT_POLICY"))
            .map(|v| v.to_uppercase()),
    };

    let firewalld_conf = read_text(ctx, "/etc/firewalld/firewalld.conf").ok();
    let default_zone = firewalld_conf
        .as_deref()
        .and_then(|t| shell_value(t, "DefaultZone"));
    let zone_target = default_zone.as_deref().and_then(|zone| {
        // A zone in /etc overrides the one firewalld ships in /usr/lib.
        ["/etc/firewalld/zones", "/usr/lib/firewalld/zones"]
            .iter()
            .find_map(|dir| read_text(ctx, format!("{dir}/{zone}.xml")).ok())
            .map(|xml| parse_zone_target(&xml))
    });
    let firewalld = FirewalldConfig {
        installed: firewalld_conf.is_some(),
        service_enabled: exists(ctx, FIREWALLD_WANTS),
        default_zone,
        zone_target,
    };

    FrontendConfig {
        ufw,
        firewalld,
        nftables_service_enabled: exists(ctx, NFTABLES_WANTS),
    }
}

/// The value of `KEY=value` in a shell-style config file (ufw.conf, /etc/default/ufw,
/// firewalld.conf); quotes are removed; the last assignment wins.
pub fn shell_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .next_back()
}

/// The `target` attribute of a firewalld zone file's `<zone>` element; firewalld's
/// documented default (reject what no rule allows) is `default`.
pub fn parse_zone_target(xml: &str) -> String {
    let Some(start) = xml.find("<zone") else {
        return "default".to_owned();
    };
    let tag = &xml[start..];
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    for quote in ['"', '\''] {
        if let Some(rest) = tag.split_once(&format!("target={quote}")).map(|(_, r)| r) {
            if let Some((value, _)) = rest.split_once(quote) {
                return value.to_owned();
            }
        }
    }
    "default".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_values() {
        let text = "# ENABLED=yes\nENABLED=no\nDEFAULT_INPUT_POLICY=\"DROP\"\n";
        assert_eq!(shell_value(text, "ENABLED").as_deref(), Some("no"));
        assert_eq!(
            shell_value(text, "DEFAULT_INPUT_POLICY").as_deref(),
            Some("DROP")
        );
        assert_eq!(shell_value(text, "MISSING"), None);
    }

    #[test]
    fn zone_targets() {
        assert_eq!(
            parse_zone_target("<?xml version=\"1.0\"?>\n<zone>\n<short>Public</short></zone>"),
            "default"
        );
        assert_eq!(
            parse_zone_target("<zone target=\"ACCEPT\">\n<short>Trusted</short></zone>"),
            "ACCEPT"
        );
        assert_eq!(parse_zone_target("<zone target='DROP'></zone>"), "DROP");
    }
}
