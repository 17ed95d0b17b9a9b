//! Screen lock on Windows (pure; every OS): the machine inactivity limit and the screen
//! saver's lock, as the script writes them:
//! `{"Machine": {"InactivityTimeoutSecs"}, "User": {...}, "UserPolicy": {...}}`.
//!
//! - `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\InactivityTimeoutSecs`:
//!   "Interactive logon: Machine inactivity limit" (Microsoft Learn, security policy
//!   settings): Windows locks the session after that many seconds of inactivity; 0 or
//!   absent = no limit.
//! - The screen saver (`HKCU\Control Panel\Desktop`, overridden by Group Policy in
//!   `HKCU\Software\Policies\Microsoft\Windows\Control Panel\Desktop`): `ScreenSaveActive`
//!   `"1"`, `ScreenSaverIsSecure` `"1"` (password on resume) and `ScreenSaveTimeOut`
//!   (seconds) lock the session when the screen saver starts.
//!
//! The screen locks after the shorter of the two that is in force.

use serde_json::{json, Value};

use super::LockSettings;
use crate::ps_json::{boolean, uint};

fn user_value<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    // Group Policy wins over the user's own setting.
    [value.get("UserPolicy"), value.get("User")]
        .into_iter()
        .flatten()
        .find(|hive| hive.get(key).is_some_and(|v| !v.is_null()))
}

/// The lock settings in force.
pub fn parse(value: &Value) -> LockSettings {
    let machine = value
        .get("Machine")
        .and_then(|m| uint(m, "InactivityTimeoutSecs"))
        .filter(|s| *s > 0);
    let active = user_value(value, "ScreenSaveActive").and_then(|h| boolean(h, "ScreenSaveActive"));
    let secure =
        user_value(value, "ScreenSaverIsSecure").and_then(|h| boolean(h, "ScreenSaverIsSecure"));
    let timeout = user_value(value, "ScreenSaveTimeOut")
        .and_then(|h| uint(h, "ScreenSaveTimeOut"))
        .filter(|s| *s > 0);
    let saver_locks = active == Some(true) && secure == Some(true);
    let saver = timeout.filter(|_| saver_locks);
    let after = match (machine, saver) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    LockSettings {
        desktop: "windows",
        lock_enabled: after.is_some(),
        lock_after_seconds: after,
        lock_on_resume: None,
        settings: json!({
            "machine_inactivity_limit_seconds": machine,
            "screen_saver_active": active,
            "screen_saver_secure": secure,
            "screen_saver_timeout_seconds": timeout,
        }),
    }
}
