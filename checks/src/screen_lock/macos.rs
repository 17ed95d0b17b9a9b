//! macOS implementation. Sources: a configuration profile's
//! `/Library/Managed Preferences/com.apple.screensaver.plist` when it sets the values (it
//! wins over the user); otherwise the console user's own settings: `sysadminctl
//! -screenLock status` (macOS 13 and later) and `defaults -currentHost read
//! com.apple.screensaver idleTime`, run as that user (`sudo -u`) when posture runs as root.
//! Nobody logged in at the console: `unknown`.

use posture_core::Finding;

use super::sysadminctl::{self, LockDelay};
use crate::macos_source::{read_optional_plist, run_as_console_user};
use crate::Context;

const MANAGED: &str = "/Library/Managed Preferences/com.apple.screensaver.plist";

pub(super) fn check(ctx: &Context) -> Finding {
    let managed = read_optional_plist(ctx, MANAGED)
        .ok()
        .flatten()
        .map(|p| sysadminctl::managed(&p))
        .unwrap_or_default();
    let delay: Result<(LockDelay, String), String> = match managed.delay() {
        Some(d) => Ok((d, MANAGED.to_owned())),
        None => run_as_console_user(ctx, "/usr/sbin/sysadminctl", &["-screenLock", "status"])
            .and_then(|(text, source)| {
                sysadminctl::parse_status(&text)
                    .map(|d| (d, source))
                    .ok_or_else(|| "sysadminctl -screenLock status: not understood".to_owned())
            }),
    };
    let idle: Result<(u32, String), String> = match managed.idle_time {
        Some(s) => Ok((s, MANAGED.to_owned())),
        None => run_as_console_user(
            ctx,
            "/usr/bin/defaults",
            &["-currentHost", "read", "com.apple.screensaver", "idleTime"],
        )
        .and_then(|(text, source)| {
            sysadminctl::parse_idle_time(&text)
                .map(|s| (s, source))
                .ok_or_else(|| "the screen saver idle time is not set".to_owned())
        }),
    };
    sysadminctl::decide(delay, idle, ctx.config.screen_lock.max_idle_minutes)
}
