//! Windows implementation: catalogue products from the service and process lists with
//! path checks ([`super::windows_products`]), and the antivirus products registered with
//! Security Center ([`super::security_center`]), all from one PowerShell/CIM query.
//!
//! Pass: a required product (config `[checks.edr] required`; empty = any catalogue
//! product) runs from its install directories; with no product required, an antivirus
//! that Security Center reports on with current signatures (Microsoft Defender Antivirus
//! or a third party) also passes. Fail: nothing of that, with what was found. `unknown`
//! when the lists could not be read, or when a same-named process could not be verified
//! (no administrator) and nothing else passed.

use posture_core::{Finding, Remediation};
use serde_json::{json, Value};

use super::catalogue::{self, Os};
use super::security_center::{self, AvProduct};
use super::windows_products::{assess, parse, ProductState};
use super::ID;
use crate::powershell::query;
use crate::Context;

const SOURCES: &[&str] = &[
    "WMI Win32_Service",
    "WMI Win32_Process",
    r"WMI root\SecurityCenter2 AntiVirusProduct",
];

/// A PowerShell single-quoted list literal of `names`.
fn ps_list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let quoted: Vec<String> = names
        .map(|n| format!("'{}'", n.replace('\'', "''")))
        .collect();
    format!("@({})", quoted.join(","))
}

fn remediation() -> Remediation {
    Remediation::new(
        "Install or start your organisation's EDR / antivirus (or turn on Microsoft Defender \
         Antivirus in Windows Security > Virus & threat protection, and update its \
         definitions). If it is installed, restart the device; if that does not help, contact IT.",
    )
}

pub(super) fn check(ctx: &Context) -> Finding {
    let catalogue = match catalogue::builtin() {
        Ok(c) => c,
        Err(e) => return Finding::unknown(ID, e.to_string()),
    };
    let required = &ctx.config.edr.required;
    if let Some(unknown) = super::unknown_required_ids(catalogue, required) {
        return unknown;
    }
    let products: Vec<_> = catalogue
        .products
        .iter()
        .filter(|p| required.is_empty() || required.contains(&p.id))
        .filter_map(|p| p.entry(Os::Windows).map(|e| (p, e)))
        .collect();
    let services = ps_list(products.iter().flat_map(|(_, e)| &e.services));
    let processes = ps_list(products.iter().flat_map(|(_, e)| &e.processes));
    let script = format!(
        "$s = {services}; $p = {processes}
$svc = @(Get-CimInstance Win32_Service | Where-Object {{ $s -contains $_.Name }} | Select-Object Name, State, PathName)
$proc = @(Get-CimInstance Win32_Process | Where-Object {{ $p -contains $_.Name }} | Select-Object Name, ProcessId, ExecutablePath)
$av = $null; $avErr = $null
try {{ $av = @(Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct | Select-Object displayName, productState, pathToSignedProductExe) }} catch {{ $avErr = $_.Exception.Message }}
[pscustomobject]@{{ Services = $svc; Processes = $proc; AntiVirus = $av; AntiVirusError = $avErr }} | ConvertTo-Json -Compress -Depth 4"
    );
    let answer = match query(ctx, &script) {
        Ok(v) => v,
        Err(reason) => return Finding::unknown(ID, reason).source(SOURCES[0]),
    };
    let (services, processes) = parse(&answer);
    let states: Vec<ProductState> = products
        .iter()
        .map(|(p, e)| assess(&p.id, &p.name, e, &services, &processes))
        .collect();
    let av = security_center::parse(answer.get("AntiVirus").unwrap_or(&Value::Null));
    let av_error = answer
        .get("AntiVirusError")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let finding = decide(&states, &av, av_error.as_deref(), required.is_empty())
        .observe(
            "products",
            serde_json::to_value(&states).unwrap_or(Value::Null),
        )
        .observe(
            "running",
            states
                .iter()
                .filter(|s| s.running)
                .map(|s| s.id.clone())
                .collect::<Vec<_>>(),
        )
        .observe("antivirus", json!(av));
    SOURCES.iter().fold(finding, |f, s| f.source(*s))
}

fn decide(
    states: &[ProductState],
    av: &[AvProduct],
    av_error: Option<&str>,
    any_product: bool,
) -> Finding {
    let running: Vec<&str> = states
        .iter()
        .filter(|s| s.running)
        .map(|s| s.name.as_str())
        .collect();
    if !running.is_empty() {
        return Finding::pass(ID, format!("running: {}", running.join(", ")));
    }
    let protecting: Vec<&str> = av
        .iter()
        .filter(|a| a.protecting())
        .map(|a| a.name.as_str())
        .collect();
    if any_product && !protecting.is_empty() {
        return Finding::pass(
            ID,
            format!(
                "antivirus on with current signatures (Security Center): {}",
                protecting.join(", ")
            ),
        );
    }
    let unverified = states.iter().any(|s| {
        s.rejected
            .iter()
            .any(|r| r.contains("needs an administrator"))
    });
    if unverified {
        return Finding::unknown(
            ID,
            "a process with a catalogued product's name runs, but its executable path is not \
             visible without administrator rights",
        );
    }
    let mut problems = Vec::new();
    let installed: Vec<&str> = states
        .iter()
        .filter(|s| s.installed)
        .map(|s| s.name.as_str())
        .collect();
    if !installed.is_empty() {
        problems.push(format!(
            "{} is installed but not running",
            installed.join(", ")
        ));
    }
    for a in av.iter().filter(|a| !a.protecting()) {
        problems.push(format!(
            "{} is registered with Security Center but {}",
            a.name,
            if a.state == security_center::EngineState::On {
                "its signatures are out of date".to_owned()
            } else {
                format!("its state is {:?}", a.state).to_lowercase()
            }
        ));
    }
    if problems.is_empty() {
        if let Some(e) = av_error {
            return Finding::unknown(
                ID,
                format!("no catalogued product runs, and Security Center could not be read: {e}"),
            );
        }
        problems.push("no EDR or antivirus product is running".to_owned());
    }
    Finding::fail(ID, problems.join("; "), remediation())
}
