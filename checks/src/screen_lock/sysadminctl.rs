//! macOS screen lock: `sysadminctl -screenLock status` (macOS 13 and later; it logs to
//! stderr with a timestamp prefix), the screen saver's idle time (`defaults -currentHost
//! read com.apple.screensaver idleTime`, seconds, 0 = never) and a configuration profile's
//! `/Library/Managed Preferences/com.apple.screensaver.plist` (`askForPassword`,
//! `askForPasswordDelay`, `idleTime`), which overrides the user's settings.

use serde_json::Value;

use crate::plist::{as_bool, as_i64};

/// The password delay after the screen saver starts or the display sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "lock", content = "seconds", rename_all = "snake_case")]
pub enum LockDelay {
    /// A password is asked for at once.
    Immediate,
    /// After this many seconds.
    After(u32),
    /// No password is asked for.
    Off,
}

impl LockDelay {
    /// The delay in seconds, `None` when off.
    pub fn seconds(&self) -> Option<u32> {
        match self {
            LockDelay::Immediate => Some(0),
            LockDelay::After(s) => Some(*s),
            LockDelay::Off => None,
        }
    }
}

/// Parses `sysadminctl -screenLock status` (stdout and stderr together):
/// `screenLock delay is immediate`, `screenLock delay is 300 seconds`, `screenLock is off`.
pub fn parse_status(text: &str) -> Option<LockDelay> {
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        let Some(at) = lower.find("screenlock ") else {
            continue;
        };
        let rest = &lower[at + "screenlock ".len()..];
        if rest.starts_with("is off") {
            return Some(LockDelay::Off);
        }
        if let Some(delay) = rest.strip_prefix("delay is ") {
            let delay = delay.trim();
            if delay.starts_with("immediate") {
                return Some(LockDelay::Immediate);
            }
            let number = delay.split_whitespace().next().unwrap_or("");
            // Some releases print the "off" delay as "-1.000000 seconds".
            if let Ok(value) = number.parse::<f64>() {
                if value < 0.0 {
                    return Some(LockDelay::Off);
                }
                if value < f64::from(u32::MAX) {
                    return Some(LockDelay::After(value as u32));
                }
            }
        }
    }
    None
}

/// Parses `defaults read ... idleTime`: seconds, 0 meaning never.
pub fn parse_idle_time(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok()
}

/// The screen saver settings a configuration profile enforces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Managed {
    /// `askForPassword`.
    pub ask_for_password: Option<bool>,
    /// `askForPasswordDelay`, seconds.
    pub ask_for_password_delay: Option<u32>,
    /// `idleTime`, seconds (0 = never).
    pub idle_time: Option<u32>,
}

impl Managed {
    /// The lock delay the profile enforces, if it says.
    pub fn delay(&self) -> Option<LockDelay> {
        match (self.ask_for_password, self.ask_for_password_delay) {
            (Some(false), _) => Some(LockDelay::Off),
            (Some(true), Some(0)) | (Some(true), None) => Some(LockDelay::Immediate),
            (_, Some(s)) => Some(LockDelay::After(s)),
            (None, None) => None,
        }
    }
}

/// Reads a parsed `com.apple.screensaver` managed preferences plist.
pub fn managed(plist: &Value) -> Managed {
    let seconds = |key: &str| {
        plist
            .get(key)
            .and_then(as_i64)
            .and_then(|v| u32::try_from(v).ok())
    };
    Managed {
        ask_for_password: plist.get("askForPassword").and_then(as_bool),
        ask_for_password_delay: seconds("askForPasswordDelay"),
        idle_time: seconds("idleTime"),
    }
}

/// The `screen_lock` finding on macOS (pure). `delay` is the password delay after the
/// screen saver or display sleep, `idle` the screen saver's idle time in seconds (0 =
/// never); each with the source it came from.
pub fn decide(
    delay: Result<(LockDelay, String), String>,
    idle: Result<(u32, String), String>,
    max_idle_minutes: u32,
) -> posture_core::Finding {
    use posture_core::{Finding, Remediation};
    let max_seconds = u64::from(max_idle_minutes) * 60;
    let mut problems = Vec::new();
    let mut unknowns = Vec::new();
    let mut sources = Vec::new();
    // A password asked for within 5 s counts as a lock: the CIS benchmark's limit.
    match &delay {
        Ok((d, source)) => {
            sources.push(source.clone());
            match d.seconds() {
                None => problems
                    .push("no password is asked for after the screen saver or sleep".to_owned()),
                Some(s) if s > 5 => problems.push(format!(
                    "the password is asked for only {s} s after the screen saver starts"
                )),
                Some(_) => {}
            }
        }
        Err(why) => unknowns.push(format!("lock delay: {why}")),
    }
    match &idle {
        Ok((seconds, source)) => {
            sources.push(source.clone());
            if *seconds == 0 {
                problems.push("the screen saver never starts when idle".to_owned());
            } else if u64::from(*seconds) > max_seconds {
                problems.push(format!(
                    "the screen saver starts after {} min of inactivity, more than {max_idle_minutes} min",
                    seconds / 60
                ));
            }
        }
        Err(why) => unknowns.push(format!("idle time: {why}")),
    }
    let mut finding = if !problems.is_empty() {
        Finding::fail(
            super::ID,
            problems.join("; "),
            Remediation::new(format!(
                "Open System Settings > Lock Screen: set \"Start Screen Saver when inactive\" \
                 (or \"Turn display off when inactive\") to {max_idle_minutes} minutes or less, \
                 and \"Require password after screen saver begins or display is turned off\" to \
                 Immediately. If a setting is greyed out, a configuration profile sets it: ask \
                 your administrator."
            ))
            .with_url("https://support.apple.com/guide/mac-help/mh11784/mac"),
        )
    } else if !unknowns.is_empty() {
        Finding::unknown(super::ID, unknowns.join("; "))
    } else {
        Finding::pass(super::ID, "the screen locks with a password when idle")
    };
    finding = finding
        .observe(
            "lock_delay_seconds",
            delay.as_ref().ok().and_then(|(d, _)| d.seconds()),
        )
        .observe(
            "lock_on",
            delay.as_ref().ok().map(|(d, _)| *d != LockDelay::Off),
        )
        .observe("idle_seconds", idle.as_ref().ok().map(|(s, _)| *s))
        .observe("max_idle_minutes", max_idle_minutes);
    for s in sources {
        finding = finding.source(s);
    }
    finding
}
