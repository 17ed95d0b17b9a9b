//! `screen_lock`: whether the logged-in users' desktops lock the screen when idle, soon
//! enough.
//!
//! Sources: systemd-logind's session files find the graphical user sessions, their
//! users and desktops ([`sessions`]); `/etc/passwd` gives the home directories; then
//! each desktop's own settings: GNOME's dconf databases ([`gnome`], read with the
//! [`gvdb`] reader), KDE's `kscreenlockerrc` ([`kde`]), xfce4-screensaver's xfconf
//! channel ([`xfce`]), and Cinnamon, MATE, swayidle, hypridle, xss-lock, xscreensaver and
//! light-locker ([`lockers`]). On the live system the sessions come from logind over D-Bus
//! (`logind`), with its idle and locked hints.
//!
//! Pass: every graphical session locks on idle within
//! [`ScreenLockConfig::max_idle_minutes`](crate::ScreenLockConfig) (and, on KDE, locks on
//! resume). No graphical session, an unsupported desktop or unreadable settings are
//! `unknown` with the reason.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod gnome;
pub mod gvdb;
pub mod kde;
pub mod lockers;
#[cfg(target_os = "linux")]
pub mod logind;
pub mod sessions;
pub mod sysadminctl;
pub mod windows_policy;
pub mod xfce;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "windows")]
mod windows;

use posture_core::Finding;
use serde_json::Value;

use crate::Context;

/// Check id.
pub const ID: &str = "screen_lock";

/// Runs the check for the OS this was built for.
pub fn check(ctx: &Context) -> Finding {
    #[cfg(target_os = "linux")]
    return linux::check(ctx);
    #[cfg(target_os = "macos")]
    return macos::check(ctx);
    #[cfg(target_os = "windows")]
    return windows::check(ctx);
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    return crate::unsupported_os(ID, ctx);
}

/// One desktop's lock settings, reduced to what the check decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct LockSettings {
    /// `gnome`, `kde`, `xfce`, `cinnamon`, `mate`, `sway`, `hyprland`, `i3`, `x11`.
    pub desktop: &'static str,
    /// Whether the desktop locks at all when it goes idle.
    pub lock_enabled: bool,
    /// Seconds of inactivity until the screen is locked; `None` when idleness never
    /// triggers it.
    pub lock_after_seconds: Option<u64>,
    /// Whether the screen locks on resume from suspend, where the desktop has the setting.
    pub lock_on_resume: Option<bool>,
    /// The raw settings, for the finding's evidence.
    pub settings: Value,
}

/// What is wrong with a desktop's settings, in plain words; empty when they pass.
pub fn problems(settings: &LockSettings, max_idle_minutes: u32) -> Vec<String> {
    let mut out = Vec::new();
    let max_seconds = u64::from(max_idle_minutes) * 60;
    if !settings.lock_enabled {
        out.push("the screen does not lock automatically".to_owned());
    } else {
        match settings.lock_after_seconds {
            None => out.push("the screen never locks when idle".to_owned()),
            Some(after) if after > max_seconds => out.push(format!(
                "the screen locks after {} of inactivity, more than {max_idle_minutes} min",
                minutes_text(after)
            )),
            Some(_) => {}
        }
    }
    if settings.lock_on_resume == Some(false) {
        out.push("the screen does not lock when waking from sleep".to_owned());
    }
    out
}

fn minutes_text(seconds: u64) -> String {
    if seconds % 60 == 0 {
        format!("{} min", seconds / 60)
    } else {
        format!("{} min {} s", seconds / 60, seconds % 60)
    }
}
