//! macOS boot and platform security: System Integrity Protection (`csrutil status`),
//! Gatekeeper (`spctl --status`), the Apple silicon boot policy (`bputil -d`) and the T2
//! Secure Boot policy (`nvram 94b73556-2197-4702-82a8-3e1337dafbfb:AppleSecureBootPolicy`).
//!
//! On macOS the `secure_boot` check covers the whole boot chain's integrity: boot policy,
//! SIP (which also guards the signed system volume and kernel extension signing) and
//! Gatekeeper (which enforces code signing and notarization of what runs), the way
//! `secure_boot` on Linux also reads the kernel lockdown mode.

/// System Integrity Protection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sip {
    /// `enabled`, `disabled` or `unknown` as printed (`unknown` in a custom configuration
    /// on Apple silicon).
    pub status: String,
    /// The configuration lines of a custom configuration, e.g. `Kext Signing: disabled`.
    pub disabled_protections: Vec<String>,
    /// The status line said "Custom Configuration".
    pub custom: bool,
}

impl Sip {
    /// Fully enabled: `enabled` and no protection turned off.
    pub fn fully_enabled(&self) -> bool {
        self.status == "enabled" && !self.custom && self.disabled_protections.is_empty()
    }
}

/// Parses `csrutil status`. `None` when there is no status line.
pub fn parse_csrutil(text: &str) -> Option<Sip> {
    let mut sip: Option<Sip> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("System Integrity Protection status:") {
            let rest = rest.trim();
            let status = rest
                .split(['.', ' ', '('])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            sip = Some(Sip {
                status,
                disabled_protections: Vec::new(),
                custom: rest.contains("Custom Configuration"),
            });
        } else if let Some(sip) = sip.as_mut() {
            if let Some((name, value)) = line.split_once(':') {
                // "Apple Internal: disabled" is the normal state (the Apple-internal
                // allowance is off); every other line names a protection.
                if name.trim() != "Apple Internal"
                    && value
                        .trim()
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case("disabled")
                {
                    sip.disabled_protections.push(name.trim().to_owned());
                }
            }
        }
    }
    sip
}

/// Parses `spctl --status`: `assessments enabled` / `assessments disabled`
/// (`Some(true)`/`Some(false)`); anything else `None`.
pub fn parse_spctl(text: &str) -> Option<bool> {
    for line in text.lines() {
        match line.trim().to_ascii_lowercase().as_str() {
            "assessments enabled" => return Some(true),
            "assessments disabled" => return Some(false),
            _ => {}
        }
    }
    None
}

/// The security level of an Apple silicon local policy or a T2 Secure Boot policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootSecurity {
    /// Full Security: only the current, Apple-signed macOS boots.
    Full,
    /// Reduced (Apple silicon) / Medium (T2): older signed macOS versions, or kernel
    /// extensions, may load.
    Reduced,
    /// Permissive (Apple silicon) / No Security (T2).
    Permissive,
}

/// What `bputil -d` says about the policy of the running OS's volume group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalPolicy {
    /// `Security Mode:` (Full, Reduced, Permissive).
    pub security: Option<BootSecurity>,
    /// The `Mode` column of the other lines that differ from Full Security's
    /// (`3rd Party Kexts Status: Enabled`, `SIP Status: Disabled`...).
    pub lowered: Vec<String>,
}

/// Parses `bputil -d` (Apple silicon; needs root). Only the first local policy (the
/// running OS's) is read. `None` when there is no `Security Mode:` line.
pub fn parse_bputil(text: &str) -> Option<LocalPolicy> {
    let mut security = None;
    let mut lowered = Vec::new();
    let mut policies = 0;
    for line in text.lines() {
        let line = line.trim();
        // Each policy starts with "Local policy for volume group X:" (or, on older
        // releases, "Current local policy:"); its body has a plain "Local policy:" line.
        if line.starts_with("Local policy for volume group")
            || line.starts_with("Current local policy")
        {
            policies += 1;
            if policies > 1 {
                break;
            }
            continue;
        }
        // Three-column lines: "Security Mode:               Full       (smb0): absent".
        let mut cols = line.splitn(3, ": ");
        let (Some(name), Some(middle)) = (cols.next(), cols.next()) else {
            continue;
        };
        let Some(mode) = middle.split('(').next().map(str::trim) else {
            continue;
        };
        if !middle.contains('(') || cols.next().is_none() {
            continue;
        }
        match name.trim() {
            "Security Mode" => {
                security = match mode {
                    "Full" => Some(BootSecurity::Full),
                    "Reduced" => Some(BootSecurity::Reduced),
                    "Permissive" => Some(BootSecurity::Permissive),
                    _ => None,
                };
            }
            "3rd Party Kexts Status" | "User-allowed MDM Control" if mode == "Enabled" => {
                lowered.push(format!("{}: {mode}", name.trim()));
            }
            "SIP Status"
            | "Signed System Volume Status"
            | "Kernel CTRR Status"
            | "Boot Args Filtering Status"
                if mode == "Disabled" =>
            {
                lowered.push(format!("{}: {mode}", name.trim()));
            }
            _ => {}
        }
    }
    security.map(|security| LocalPolicy {
        security: Some(security),
        lowered,
    })
}

/// Parses the T2 `AppleSecureBootPolicy` NVRAM variable as `nvram` prints it
/// (`94b73556-...:AppleSecureBootPolicy\t%02`): `%02` Full, `%01` Medium, `%00` None.
pub fn parse_t2_policy(text: &str) -> Option<BootSecurity> {
    let value = text.split_whitespace().last()?;
    match value {
        "%02" => Some(BootSecurity::Full),
        "%01" => Some(BootSecurity::Reduced),
        "%00" => Some(BootSecurity::Permissive),
        _ => None,
    }
}

/// The boot policy as read, or why it could not be.
pub type BootPolicy = Result<(BootSecurity, Vec<String>), String>;

/// The `secure_boot` finding on macOS (pure): Full Security boot policy, SIP fully
/// enabled and Gatekeeper on; any one lowered fails, any one unreadable (the rest fine)
/// is `unknown` with its reason.
pub fn decide(
    boot: &BootPolicy,
    sip: &Result<Sip, String>,
    gatekeeper: &Result<bool, String>,
    sources: &[String],
) -> posture_core::Finding {
    use posture_core::{Finding, Remediation};
    let mut problems: Vec<String> = Vec::new();
    let mut fixes: Vec<&str> = Vec::new();
    let mut unknowns: Vec<String> = Vec::new();
    match boot {
        Ok((BootSecurity::Full, lowered)) if lowered.is_empty() => {}
        Ok((level, lowered)) => {
            let level = match level {
                BootSecurity::Full => "Full Security",
                BootSecurity::Reduced => "Reduced Security",
                BootSecurity::Permissive => "Permissive Security",
            };
            problems.push(if lowered.is_empty() {
                format!("the boot policy is {level}")
            } else {
                format!("the boot policy is {level} ({})", lowered.join(", "))
            });
            fixes.push(
                "restore Full Security: start up in macOS Recovery, open Utilities > Startup \
                 Security Utility and choose Full Security",
            );
        }
        Err(why) => unknowns.push(format!("boot policy: {why}")),
    }
    match sip {
        Ok(sip) if sip.fully_enabled() => {}
        Ok(sip) => {
            problems.push(if sip.disabled_protections.is_empty() {
                format!("System Integrity Protection is {}", sip.status)
            } else {
                format!(
                    "System Integrity Protection is partly off ({})",
                    sip.disabled_protections.join(", ")
                )
            });
            fixes.push(
                "turn System Integrity Protection back on: start up in macOS Recovery, open \
                 Utilities > Terminal, run `csrutil enable` and restart",
            );
        }
        Err(why) => unknowns.push(format!("SIP: {why}")),
    }
    match gatekeeper {
        Ok(true) => {}
        Ok(false) => {
            problems.push("Gatekeeper is off (apps are not checked before they open)".to_owned());
            fixes.push(
                "turn Gatekeeper back on: run `sudo spctl --global-enable` (macOS 15 and \
                 later: `sudo spctl --master-enable`, then confirm in System Settings > \
                 Privacy & Security)",
            );
        }
        Err(why) => unknowns.push(format!("Gatekeeper: {why}")),
    }
    let mut finding = if !problems.is_empty() {
        Finding::fail(
            super::ID,
            problems.join("; "),
            Remediation::new(format!("To fix: {}.", fixes.join("; ")))
                .with_url("https://support.apple.com/guide/security/secc7b34e5b5/web"),
        )
    } else if !unknowns.is_empty() {
        Finding::unknown(super::ID, unknowns.join("; "))
    } else {
        Finding::pass(
            super::ID,
            "Full Security boot policy, System Integrity Protection and Gatekeeper on",
        )
    };
    finding = finding
        .observe(
            "boot_policy",
            match boot {
                Ok((level, lowered)) => {
                    serde_json::json!({ "security": level, "lowered": lowered })
                }
                Err(why) => serde_json::json!({ "unknown": why }),
            },
        )
        .observe(
            "sip",
            match sip {
                Ok(sip) => serde_json::to_value(sip).unwrap_or_default(),
                Err(why) => serde_json::json!({ "unknown": why }),
            },
        )
        .observe(
            "gatekeeper",
            match gatekeeper {
                Ok(on) => serde_json::json!(on),
                Err(why) => serde_json::json!({ "unknown": why }),
            },
        );
    for s in sources {
        finding = finding.source(s.clone());
    }
    finding
}
