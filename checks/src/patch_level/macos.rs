//! macOS implementation. Sources: `softwareupdate --list --no-scan --include-config-data`
//! (the result of Software Update's last catalogue scan, without contacting Apple: the
//! background scan runs daily by itself; needs no network and takes a second, where a full
//! scan can take minutes), the last-check state in
//! `/Library/Preferences/com.apple.SoftwareUpdate.plist`, and the versions of the
//! background security data (`XProtect.bundle`, XProtect Remediator, MRT, Gatekeeper data).

use std::time::Duration;

use posture_core::Finding;

use super::softwareupdate::{self as su, ListError};
use super::ID;
use crate::macos_source::{read_optional_plist, read_plist, run_text, QUICK};
use crate::os::sw_vers;
use crate::Context;

const PREFS: &str = "/Library/Preferences/com.apple.SoftwareUpdate.plist";
const LIST_ARGS: &[&str] = &["--list", "--no-scan", "--include-config-data"];

pub(super) fn check(ctx: &Context) -> Finding {
    let mut sources = vec![format!("softwareupdate {}", LIST_ARGS.join(" "))];
    let list = run_text(
        ctx,
        "/usr/sbin/softwareupdate",
        LIST_ARGS,
        Duration::from_secs(60),
    );
    let list = match list {
        Ok(text) => su::parse_list(&text),
        Err(e) => {
            return Finding::unknown(ID, format!("cannot list pending updates: {e}"))
                .source(sources.remove(0))
        }
    };
    let last = match read_optional_plist(ctx, PREFS) {
        Ok(Some(plist)) => {
            sources.push(PREFS.to_owned());
            Some(su::last_check(&plist))
        }
        _ => None,
    };
    let mut data = Vec::new();
    for (name, path) in su::SECURITY_DATA {
        if let Ok(plist) = read_plist(ctx, path) {
            if let Some(version) = su::bundle_version(&plist) {
                data.push(((*name).to_owned(), version));
                sources.push((*path).to_owned());
            }
        }
    }
    let current_major = run_text(ctx, "/usr/bin/sw_vers", &["-productVersion"], QUICK)
        .ok()
        .and_then(|t| t.trim().split('.').next().and_then(|m| m.parse().ok()))
        .or_else(|| {
            read_plist(ctx, "/System/Library/CoreServices/SystemVersion.plist")
                .ok()
                .and_then(|p| sw_vers::from_system_version_plist(&p))
                .and_then(|v| v.major())
        });
    let list_ref: Result<&su::UpdateList, &ListError> = list.as_ref();
    su::decide(list_ref, current_major, last.as_ref(), &data, &sources)
}
