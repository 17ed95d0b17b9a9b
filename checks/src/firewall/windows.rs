//! Windows implementation: Windows Defender Firewall's Domain, Private and Public
//! profiles (`Get-NetFirewallProfile`, parsed by [`super::windows_profiles`]).
//!
//! Pass: every profile on, none allowing unsolicited inbound connections by default.
//! (Third-party firewalls register with Security Center's `FirewallProduct`; they turn
//! Windows' own off, which then fails here: a policy can name them once posture reads them.)

use posture_core::{Finding, Remediation};
use serde_json::json;

use super::windows_profiles::parse;
use super::ID;
use crate::powershell::query;
use crate::Context;

const SOURCE: &str = "Get-NetFirewallProfile (MSFT_NetFirewallProfile)";

const SCRIPT: &str = "$p = @(Get-NetFirewallProfile | Select-Object Name, @{n='Enabled';e={[string]$_.Enabled}}, @{n='DefaultInboundAction';e={[string]$_.DefaultInboundAction}})
ConvertTo-Json -InputObject $p -Compress";

pub(super) fn check(ctx: &Context) -> Finding {
    let profiles = match query(ctx, SCRIPT) {
        Ok(v) => parse(&v),
        Err(reason) => return Finding::unknown(ID, reason).source(SOURCE),
    };
    let problems: Vec<String> = profiles.iter().filter_map(|p| p.problem()).collect();
    let finding = if profiles.is_empty() {
        Finding::unknown(ID, "no firewall profile was reported")
    } else if problems.is_empty() {
        Finding::pass(
            ID,
            "Windows Defender Firewall is on for the Domain, Private and Public profiles",
        )
    } else {
        Finding::fail(
            ID,
            problems.join("; "),
            Remediation::new(
                "Turn on Windows Defender Firewall for every network profile: Windows Security > \
                 Firewall & network protection (or `Set-NetFirewallProfile -All -Enabled True \
                 -DefaultInboundAction Block` as an administrator).",
            ),
        )
    };
    finding
        .observe("backend", "windows_firewall")
        .observe("profiles", json!(profiles))
        .observe("active", problems.is_empty() && !profiles.is_empty())
        .source(SOURCE)
}
