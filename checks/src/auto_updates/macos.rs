//! macOS implementation. Sources: `/Library/Managed Preferences/com.apple.SoftwareUpdate.plist`
//! (a configuration profile's settings, which win) and
//! `/Library/Preferences/com.apple.SoftwareUpdate.plist` (the machine's); absent keys are the
//! macOS defaults (see [`super::softwareupdate_prefs`]).

use posture_core::Finding;

use super::softwareupdate_prefs as prefs;
use super::ID;
use crate::macos_source::read_optional_plist;
use crate::Context;

const MANAGED: &str = "/Library/Managed Preferences/com.apple.SoftwareUpdate.plist";
const LOCAL: &str = "/Library/Preferences/com.apple.SoftwareUpdate.plist";

pub(super) fn check(ctx: &Context) -> Finding {
    let managed = match read_optional_plist(ctx, MANAGED) {
        Ok(v) => v,
        Err(why) => return Finding::unknown(ID, why).source(MANAGED),
    };
    let local = match read_optional_plist(ctx, LOCAL) {
        Ok(v) => v,
        Err(why) => return Finding::unknown(ID, why).source(LOCAL),
    };
    let mut sources = Vec::new();
    if managed.is_some() {
        sources.push(MANAGED.to_owned());
    }
    if local.is_some() {
        sources.push(LOCAL.to_owned());
    }
    if sources.is_empty() {
        sources.push(format!("{LOCAL} (absent: macOS defaults)"));
    }
    let effective = prefs::effective(managed.as_ref(), local.as_ref());
    prefs::decide(&effective, &sources)
}
