//! Windows implementation: the build and UBR (registry, as the `os` check reads them)
//! against the dated table of current cumulative updates ([`super::cumulative_updates`]),
//! and Windows Update's pending updates from its last scan ([`super::windows_update`]).
//!
//! Fail: the build is below the newest cumulative update in the table, or Windows Update
//! lists a pending security update. Pass: neither, and Windows Update searched
//! successfully within [`SEARCH_MAX_AGE_DAYS`] (or the table itself is recent). Anything
//! else is `unknown` with the reason.

use std::time::Duration;

use posture_core::{Finding, Remediation, Timestamp};

use super::cumulative_updates::{assess, LcuState, TABLE_AS_OF, TABLE_MAX_AGE_DAYS};
use super::windows_update::parse;
use super::ID;
use crate::powershell::query;
use crate::Context;

/// How recent Windows Update's last successful search must be for "nothing pending" to
/// mean the device is current.
const SEARCH_MAX_AGE_DAYS: u64 = 8;

const VERSION_SOURCE: &str = r"registry HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
const WU_SOURCE: &str = "Windows Update Agent (Microsoft.Update.Session, offline search)";

const WU_SCRIPT: &str = r#"$s = New-Object -ComObject Microsoft.Update.Session
$q = $s.CreateUpdateSearcher(); $q.Online = $false
$r = $q.Search('IsInstalled=0 and IsHidden=0 and Type=''Software''')
$p = @($r.Updates | ForEach-Object { [pscustomobject]@{ Title = $_.Title; KB = ($_.KBArticleIDs -join ','); Severity = [string]$_.MsrcSeverity; Security = [bool]($_.Categories | Where-Object { $_.CategoryID -eq '0fa1201d-4330-4fa8-8ae9-b877473b6441' }) } })
$au = (New-Object -ComObject Microsoft.Update.AutoUpdate).Results
$fmt = { param($d) if ($d) { ([datetime]$d).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', [Globalization.CultureInfo]::InvariantCulture) } else { $null } }
[pscustomobject]@{ Pending = $p; RebootRequired = (New-Object -ComObject Microsoft.Update.SystemInfo).RebootRequired; LastSearchSuccess = (& $fmt $au.LastSearchSuccessDate); LastInstallSuccess = (& $fmt $au.LastInstallationSuccessDate) } | ConvertTo-Json -Compress -Depth 4"#;

fn days_since(ctx: &Context, iso: &str) -> Option<u64> {
    let then = Timestamp::parse(iso).ok()?.system_time();
    let age = ctx.now.duration_since(then).unwrap_or(Duration::ZERO);
    Some(age.as_secs() / 86_400)
}

fn remediation() -> Remediation {
    Remediation::new(
        "Open Settings > Windows Update, select \"Check for updates\", install every update \
         (including the latest cumulative update) and restart when asked.",
    )
    .with_url(
        "https://support.microsoft.com/windows/update-windows-3c5ae7fc-9fb6-9af1-1984-b5e0412c556a",
    )
}

pub(super) fn check(ctx: &Context) -> Finding {
    let version = match crate::os::read_windows_version(ctx) {
        Ok(v) => v,
        Err(reason) => return Finding::unknown(ID, reason).source(VERSION_SOURCE),
    };
    let lcu = assess(version.build, version.ubr);
    let updates = query(ctx, WU_SCRIPT).and_then(|v| parse(&v));
    let table_age = days_since(ctx, &format!("{TABLE_AS_OF}T00:00:00Z"));

    let mut finding = match (&lcu, &updates) {
        (LcuState::Behind { latest_ubr, kb, released }, _) => Finding::fail(
            ID,
            format!(
                "build {}.{} is older than the cumulative update {kb} of {released} ({}.{latest_ubr})",
                version.build, version.ubr, version.build
            ),
            remediation(),
        ),
        (_, Ok(state)) if state.security_pending() > 0 => Finding::fail(
            ID,
            format!(
                "{} security update(s) found by Windows Update are not installed",
                state.security_pending()
            ),
            remediation(),
        ),
        (_, Ok(state)) => {
            let search_age = state
                .last_search_success
                .as_deref()
                .and_then(|d| days_since(ctx, d));
            let table_fresh = table_age.is_some_and(|d| d <= TABLE_MAX_AGE_DAYS)
                && matches!(lcu, LcuState::AtLeastTable { .. });
            match search_age {
                Some(days) if days <= SEARCH_MAX_AGE_DAYS => Finding::pass(
                    ID,
                    format!(
                        "build {}.{}; Windows Update searched {days} day(s) ago and has no security update pending",
                        version.build, version.ubr
                    ),
                ),
                _ if table_fresh => Finding::pass(
                    ID,
                    format!(
                        "build {}.{} has the newest cumulative update posture knows of",
                        version.build, version.ubr
                    ),
                ),
                Some(days) => Finding::unknown(
                    ID,
                    format!(
                        "Windows Update last searched successfully {days} days ago, and \
                         posture's cumulative-update table (as of {TABLE_AS_OF}) is too old \
                         to tell whether a newer update is missing"
                    ),
                ),
                None => Finding::unknown(
                    ID,
                    format!(
                        "Windows Update has no successful search on record, and posture's \
                         cumulative-update table (as of {TABLE_AS_OF}) cannot tell whether a \
                         newer update is missing"
                    ),
                ),
            }
        }
        (_, Err(reason)) => Finding::unknown(
            ID,
            format!("cannot read Windows Update's pending updates: {reason}"),
        ),
    };
    finding = finding
        .observe("package_manager", "windows_update")
        .observe("build", version.build)
        .observe("ubr", version.ubr)
        .observe("lcu_table_as_of", TABLE_AS_OF)
        .observe(
            "lcu_state",
            match lcu {
                LcuState::Behind { .. } => "behind",
                LcuState::AtLeastTable { .. } => "at_least_table",
                LcuState::UnknownBuild => "build_not_in_table",
            },
        )
        .source(VERSION_SOURCE)
        .source("cumulative-update table (Windows release health, 2025-07-08)");
    if let Ok(state) = &updates {
        finding = finding
            .observe("pending_updates", state.pending.len())
            .observe("pending_security_updates", state.security_pending())
            .observe("reboot_pending", state.reboot_required)
            .observe("last_search_success", state.last_search_success.clone())
            .observe("last_install_success", state.last_install_success.clone())
            .observe(
                "security_updates",
                state
                    .pending
                    .iter()
                    .filter(|u| u.security)
                    .take(50)
                    .map(|u| format!("{} ({})", u.title, u.kb))
                    .collect::<Vec<_>>(),
            )
            .source(WU_SOURCE);
    }
    finding
}
