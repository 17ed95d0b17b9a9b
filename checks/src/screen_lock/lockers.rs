//! Lock settings of the desktops and stand-alone lockers beyond GNOME, KDE and XFCE:
//! - Cinnamon and MATE: their dconf keys (read with GNOME's dconf resolution);
//! - sway: swayidle (`~/.config/swayidle/config`, or `exec swayidle ...` in the sway config)
//!   with swaylock / gtklock / waylock;
//! - Hyprland: hypridle (`~/.config/hypr/hypridle.conf`, started from `hyprland.conf`);
//! - i3 and other X11 window managers: xss-lock + i3lock (the i3 config, with the X
//!   screensaver timeout from `xset s`), xscreensaver (`~/.xscreensaver`), light-locker
//!   (its dconf keys).
//!
//! Parsers are pure functions over the files' text; `read_*` functions read the user's
//! files with [`read_user_file`] (no links followed, regular files only, size-capped).

use serde_json::{json, Map, Value};

use super::gnome::{self, bool_key, uint_key};
use super::LockSettings;
use crate::source::{read_text, read_user_file};
use crate::Context;

/// The X server's default screen saver timeout (Xserver(1): `-s minutes`, default 10).
pub const X_DEFAULT_SCREENSAVER_SECONDS: u64 = 600;

/// Programs that lock a Wayland or X11 session.
const LOCKERS: &[&str] = &[
    "swaylock",
    "gtklock",
    "waylock",
    "hyprlock",
    "i3lock",
    "slock",
    "xsecurelock",
    "xlock",
    "physlock",
    "betterlockscreen",
    "light-locker-command",
    "xscreensaver-command",
    "loginctl lock-session",
    "lock-session",
];

fn is_locker(command: &str) -> bool {
    LOCKERS.iter().any(|l| command.contains(l))
}

fn text_of(ctx: &Context, home: &str, relative: &str, sources: &mut Vec<String>) -> Option<String> {
    let bytes = read_user_file(ctx, home, relative).ok()?;
    sources.push(format!("{}/{relative}", home.trim_end_matches('/')));
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

// ---- Cinnamon and MATE ------------------------------------------------------------------

/// Cinnamon: `org.cinnamon.desktop.screensaver lock-enabled` (default true) and
/// `lock-delay` (seconds after the screensaver starts, default 0), and
/// `org.cinnamon.desktop.session idle-delay` (seconds, 0 = never, default 900).
pub fn read_cinnamon(
    ctx: &Context,
    home: &str,
    sources: &mut Vec<String>,
) -> Result<LockSettings, String> {
    let dbs = gnome::load(ctx, home, sources)?;
    let mut origins = Map::new();
    let lock_enabled = bool_key(
        &dbs,
        "/org/cinnamon/desktop/screensaver/lock-enabled",
        true,
        &mut origins,
    );
    let lock_delay = uint_key(
        &dbs,
        "/org/cinnamon/desktop/screensaver/lock-delay",
        0,
        &mut origins,
    );
    let idle_delay = uint_key(
        &dbs,
        "/org/cinnamon/desktop/session/idle-delay",
        900,
        &mut origins,
    );
    Ok(LockSettings {
        desktop: "cinnamon",
        lock_enabled,
        lock_after_seconds: (idle_delay > 0).then(|| idle_delay.saturating_add(lock_delay)),
        lock_on_resume: None,
        settings: json!({
            "lock_enabled": lock_enabled,
            "lock_delay_seconds": lock_delay,
            "idle_delay_seconds": idle_delay,
            "origin": origins,
        }),
    })
}

/// MATE: `org.mate.screensaver lock-enabled` and `idle-activation-enabled` (default
/// true), `lock-delay` (minutes, default 0), `org.mate.session idle-delay` (minutes,
/// default 5).
pub fn read_mate(
    ctx: &Context,
    home: &str,
    sources: &mut Vec<String>,
) -> Result<LockSettings, String> {
    let dbs = gnome::load(ctx, home, sources)?;
    let mut origins = Map::new();
    let lock_enabled = bool_key(
        &dbs,
        "/org/mate/screensaver/lock-enabled",
        true,
        &mut origins,
    );
    let activation = bool_key(
        &dbs,
        "/org/mate/screensaver/idle-activation-enabled",
        true,
        &mut origins,
    );
    let lock_delay = uint_key(&dbs, "/org/mate/screensaver/lock-delay", 0, &mut origins);
    let idle_delay = uint_key(&dbs, "/org/mate/session/idle-delay", 5, &mut origins);
    Ok(LockSettings {
        desktop: "mate",
        lock_enabled,
        lock_after_seconds: (activation && idle_delay > 0)
            .then(|| idle_delay.saturating_add(lock_delay).saturating_mul(60)),
        lock_on_resume: None,
        settings: json!({
            "lock_enabled": lock_enabled,
            "idle_activation_enabled": activation,
            "lock_delay_minutes": lock_delay,
            "idle_delay_minutes": idle_delay,
            "origin": origins,
        }),
    })
}

// ---- sway / swayidle --------------------------------------------------------------------

/// Splits shell-like words: whitespace-separated, with '…' and "…" quoting.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(current);
    }
    out
}

/// The swayidle commands in a text: a swayidle config file (one command a line) or the
/// `exec swayidle ...` of a sway config (lines joined at a trailing `\`). Returns the
/// lock timeout (the shortest `timeout N <locker>`) and whether `before-sleep` locks.
pub fn parse_swayidle(text: &str, whole_file_is_swayidle: bool) -> (Option<u64>, bool, bool) {
    let joined = text.replace("\\\n", " ");
    let mut timeout = None;
    let mut before_sleep = false;
    let mut found = false;
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let tokens = words(line);
        let start = if whole_file_is_swayidle {
            0
        } else {
            match tokens.iter().position(|t| t.ends_with("swayidle")) {
                Some(i)
                    if tokens[..i]
                        .iter()
                        .any(|t| t == "exec" || t == "exec_always") =>
                {
                    i + 1
                }
                _ => continue,
            }
        };
        found = true;
        let mut i = start;
        while i < tokens.len() {
            match tokens[i].as_str() {
                "timeout" => {
                    if let (Some(n), Some(cmd)) = (tokens.get(i + 1), tokens.get(i + 2)) {
                        if let Ok(n) = n.parse::<u64>() {
                            if is_locker(cmd) {
                                timeout = Some(timeout.map_or(n, |t: u64| t.min(n)));
                            }
                        }
                    }
                    i += 3;
                }
                "before-sleep" | "lock" => {
                    if tokens.get(i + 1).is_some_and(|c| is_locker(c))
                        && tokens[i] == "before-sleep"
                    {
                        before_sleep = true;
                    }
                    i += 2;
                }
                _ => i += 1,
            }
        }
    }
    (timeout, before_sleep, found)
}

fn idle_settings(
    desktop: &'static str,
    timeout: Option<u64>,
    on_sleep: bool,
    tool: &str,
    settings: Value,
) -> LockSettings {
    LockSettings {
        desktop,
        lock_enabled: timeout.is_some(),
        lock_after_seconds: timeout,
        lock_on_resume: Some(on_sleep),
        settings: {
            let mut settings = settings;
            if let Value::Object(map) = &mut settings {
                map.insert("tool".into(), json!(tool));
            }
            settings
        },
    }
}

/// sway: swayidle's own config, else `exec swayidle` in the sway config (user's, else
/// `/etc/sway/config`).
pub fn read_sway(
    ctx: &Context,
    home: &str,
    sources: &mut Vec<String>,
) -> Result<LockSettings, String> {
    if let Some(text) = text_of(ctx, home, ".config/swayidle/config", sources) {
        let (timeout, sleep, _) = parse_swayidle(&text, true);
        return Ok(idle_settings(
            "sway",
            timeout,
            sleep,
            "swayidle",
            json!({ "config": "~/.config/swayidle/config" }),
        ));
    }
    let config = text_of(ctx, home, ".config/sway/config", sources).or_else(|| {
        let text = read_text(ctx, "/etc/sway/config").ok()?;
        sources.push("/etc/sway/config".to_owned());
        Some(text)
    });
    let Some(config) = config else {
        return Err("no sway config found (~/.config/sway/config, /etc/sway/config)".to_owned());
    };
    let (timeout, sleep, found) = parse_swayidle(&config, false);
    Ok(idle_settings(
        "sway",
        timeout,
        sleep,
        if found { "swayidle" } else { "none" },
        json!({ "swayidle_started": found }),
    ))
}

// ---- Hyprland / hypridle ----------------------------------------------------------------

/// hypridle's config: `general { lock_cmd, before_sleep_cmd }` and `listener { timeout,
/// on-timeout }` blocks. A listener locks when its `on-timeout` runs a locker, or
/// `loginctl lock-session` with a locker as `lock_cmd`.
pub fn parse_hypridle(text: &str) -> (Option<u64>, bool) {
    let mut lock_cmd = String::new();
    let mut before_sleep = String::new();
    let mut listeners: Vec<(Option<u64>, String)> = Vec::new();
    let mut block = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(name) = line.strip_suffix('{') {
            block = name.trim().to_owned();
            if block == "listener" {
                listeners.push((None, String::new()));
            }
            continue;
        }
        if line == "}" {
            block.clear();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().to_owned());
        match (block.as_str(), key) {
            ("general", "lock_cmd") => lock_cmd = value,
            ("general", "before_sleep_cmd") => before_sleep = value,
            ("listener", "timeout") => {
                if let Some(last) = listeners.last_mut() {
                    last.0 = value.parse().ok();
                }
            }
            ("listener", "on-timeout") => {
                if let Some(last) = listeners.last_mut() {
                    last.1 = value;
                }
            }
            _ => {}
        }
    }
    let locks = |cmd: &str| {
        if cmd.contains("lock-session") {
            is_locker(&lock_cmd)
        } else {
            is_locker(cmd)
        }
    };
    let timeout = listeners
        .iter()
        .filter(|(_, cmd)| locks(cmd))
        .filter_map(|(t, _)| *t)
        .min();
    (timeout, locks(&before_sleep) && !before_sleep.is_empty())
}

/// Hyprland: hypridle's config, and whether Hyprland starts hypridle.
pub fn read_hyprland(
    ctx: &Context,
    home: &str,
    sources: &mut Vec<String>,
) -> Result<LockSettings, String> {
    let started = text_of(ctx, home, ".config/hypr/hyprland.conf", sources).is_some_and(|t| {
        t.lines().any(|l| {
            !l.trim_start().starts_with('#') && l.contains("exec") && l.contains("hypridle")
        })
    }) || read_user_file(
        ctx,
        home,
        ".config/systemd/user/graphical-session.target.wants/hypridle.service",
    )
    .is_ok();
    let Some(text) = text_of(ctx, home, ".config/hypr/hypridle.conf", sources) else {
        return Ok(idle_settings(
            "hyprland",
            None,
            false,
            "none",
            json!({ "hypridle_config": false }),
        ));
    };
    let (timeout, sleep) = parse_hypridle(&text);
    let timeout = timeout.filter(|_| started);
    Ok(idle_settings(
        "hyprland",
        timeout,
        sleep && started,
        "hypridle",
        json!({ "hypridle_started": started }),
    ))
}

// ---- X11: xss-lock, xscreensaver, light-locker ------------------------------------------

/// An i3 config: `exec xss-lock ... -- <locker>` and the X screensaver timeout set with
/// `xset s N` (`xset s off`: never). Returns (xss-lock runs a locker, timeout).
pub fn parse_i3_xss_lock(text: &str) -> (bool, Option<Option<u64>>) {
    let mut xss = false;
    let mut xset: Option<Option<u64>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || !line.contains("exec") {
            continue;
        }
        let tokens = words(line);
        if let Some(i) = tokens.iter().position(|t| t == "xss-lock") {
            xss |= tokens[i..].iter().any(|t| is_locker(t));
        }
        if let Some(i) = tokens.iter().position(|t| t == "xset") {
            if tokens.get(i + 1).map(String::as_str) == Some("s") {
                match tokens.get(i + 2).map(String::as_str) {
                    Some("off") => xset = Some(None),
                    Some(n) => {
                        if let Ok(n) = n.parse() {
                            xset = Some(Some(n));
                        }
                    }
                    None => {}
                }
            }
        }
    }
    (xss, xset)
}

/// `~/.xscreensaver` (X resources, `name: value`): `mode` (`off` never blanks), `timeout`
/// and `lockTimeout` (`H:MM:SS`), `lock` (`True`/`False`). xscreensaver's own defaults
/// where a line is missing: timeout 10 min, lockTimeout 0; `lock` missing counts as off.
pub fn parse_xscreensaver(text: &str) -> (bool, Option<u64>, Value) {
    let mut get = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            get.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    let duration = |v: Option<&String>, default: u64| -> u64 {
        v.and_then(|v| {
            let parts: Vec<u64> = v.split(':').filter_map(|p| p.trim().parse().ok()).collect();
            match parts.as_slice() {
                [h, m, s] => Some(h * 3600 + m * 60 + s),
                [m, s] => Some(m * 60 + s),
                [m] => Some(m * 60),
                _ => None,
            }
        })
        .unwrap_or(default)
    };
    let mode = get
        .get("mode")
        .cloned()
        .unwrap_or_else(|| "random".to_owned());
    let lock = get
        .get("lock")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let timeout = duration(get.get("timeout"), 600);
    let lock_timeout = duration(get.get("lockTimeout"), 0);
    let after = (mode != "off").then(|| timeout + lock_timeout);
    (
        lock,
        after,
        json!({ "mode": mode, "lock": lock, "timeout_seconds": timeout, "lock_timeout_seconds": lock_timeout }),
    )
}

/// i3 and other X11 window managers: xss-lock in the i3 config, else xscreensaver, else
/// light-locker (autostarted, with its dconf keys).
pub fn read_x11(
    ctx: &Context,
    home: &str,
    desktop: &'static str,
    sources: &mut Vec<String>,
) -> Result<LockSettings, String> {
    let i3 = text_of(ctx, home, ".config/i3/config", sources)
        .or_else(|| text_of(ctx, home, ".i3/config", sources));
    if let Some(text) = &i3 {
        let (xss, xset) = parse_i3_xss_lock(text);
        if xss {
            // xss-lock locks when the X screensaver activates and before logind suspends.
            let timeout = xset.unwrap_or(Some(X_DEFAULT_SCREENSAVER_SECONDS));
            return Ok(idle_settings(
                desktop,
                timeout,
                true,
                "xss-lock",
                json!({ "xset_s": xset.map_or(json!("X server default (600 s)"), |t| json!(t)) }),
            ));
        }
    }
    if let Some(text) = text_of(ctx, home, ".xscreensaver", sources) {
        let (lock, after, settings) = parse_xscreensaver(&text);
        return Ok(LockSettings {
            desktop,
            lock_enabled: lock,
            lock_after_seconds: after,
            lock_on_resume: None,
            settings: {
                let mut s = settings;
                if let Value::Object(m) = &mut s {
                    m.insert("tool".into(), json!("xscreensaver"));
                }
                s
            },
        });
    }
    let autostart = read_text(ctx, "/etc/xdg/autostart/light-locker.desktop").is_ok()
        || read_user_file(ctx, home, ".config/autostart/light-locker.desktop").is_ok();
    if autostart {
        let dbs = gnome::load(ctx, home, sources)?;
        let mut origins = Map::new();
        let after = uint_key(
            &dbs,
            "/apps/light-locker/lock-after-screensaver",
            5,
            &mut origins,
        );
        let on_suspend = bool_key(
            &dbs,
            "/apps/light-locker/lock-on-suspend",
            true,
            &mut origins,
        );
        let late = bool_key(&dbs, "/apps/light-locker/late-locking", false, &mut origins);
        // light-locker locks when the X screensaver blanks (plus its delay); the blanking
        // time is the X server's, not in a file: its default applies.
        return Ok(LockSettings {
            desktop,
            lock_enabled: true,
            lock_after_seconds: Some(X_DEFAULT_SCREENSAVER_SECONDS + if late { after } else { 0 }),
            lock_on_resume: Some(on_suspend),
            settings: json!({
                "tool": "light-locker",
                "lock_after_screensaver_seconds": after,
                "late_locking": late,
                "lock_on_suspend": on_suspend,
                "origin": origins,
            }),
        });
    }
    if i3.is_some() {
        return Ok(idle_settings(
            desktop,
            None,
            false,
            "none",
            json!({ "i3_config": true }),
        ));
    }
    Err(format!(
        "no screen locker found for {desktop} (looked for xss-lock in the i3 config, ~/.xscreensaver, light-locker)"
    ))
}
