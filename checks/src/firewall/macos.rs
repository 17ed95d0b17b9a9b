//! macOS implementation. Sources: `/usr/libexec/ApplicationFirewall/socketfilterfw
//! --getglobalstate --getstealthmode --getblockall` (any user may ask), falling back to
//! `/Library/Preferences/com.apple.alf.plist` (kept up to date only before macOS 15). The
//! packet filter (`pf`) is not read: macOS ships it off, and the application firewall is
//! what System Settings and configuration profiles control.

use posture_core::Finding;

use super::socketfilterfw;
use super::ID;
use crate::macos_source::{read_plist, run_text, QUICK};
use crate::Context;

const TOOL: &str = "/usr/libexec/ApplicationFirewall/socketfilterfw";
const ALF: &str = "/Library/Preferences/com.apple.alf.plist";

pub(super) fn check(ctx: &Context) -> Finding {
    let args = ["--getglobalstate", "--getstealthmode", "--getblockall"];
    let tool_error = match run_text(ctx, TOOL, &args, QUICK) {
        Ok(text) => {
            let fw = socketfilterfw::parse(&text);
            if fw.enabled().is_some() {
                return socketfilterfw::decide(
                    &fw,
                    "socketfilterfw --getglobalstate --getstealthmode",
                );
            }
            "socketfilterfw: output not understood".to_owned()
        }
        Err(e) => e.to_string(),
    };
    match read_plist(ctx, ALF) {
        Ok(plist) => socketfilterfw::decide(&socketfilterfw::from_alf_plist(&plist), ALF)
            .observe("socketfilterfw", tool_error),
        Err(why) => Finding::unknown(ID, format!("{tool_error}; {why}"))
            .source(TOOL)
            .source(ALF),
    }
}
