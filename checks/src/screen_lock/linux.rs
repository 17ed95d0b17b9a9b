//! Linux implementation (its sources are described in the parent module).

#[allow(unused_imports)]
use super::*;
use posture_core::{Finding, Remediation, Status};
use serde_json::{json, Value};

use crate::source::{list_dir, read_text};
use crate::Context;
use sessions::{Desktop, PasswdEntry, Session};

const SESSIONS_DIR: &str = "/run/systemd/sessions";

fn remediation_text(desktop: Desktop, max: u32) -> String {
    match desktop {
        Desktop::Gnome => format!(
            "GNOME: open Settings > Privacy & Security > Screen Lock, turn on Automatic Screen \
             Lock, and set Blank Screen Delay and Automatic Screen Lock Delay so the screen \
             locks within {max} minutes (or run: gsettings set org.gnome.desktop.screensaver \
             lock-enabled true; gsettings set org.gnome.desktop.session idle-delay 300). If a \
             setting is locked, ask your administrator."
        ),
        Desktop::Kde => format!(
            "KDE Plasma: open System Settings > Screen Locking, turn on \"Lock screen \
             automatically\" after {max} minutes or less and \"Lock after waking from sleep\"."
        ),
        Desktop::Xfce => format!(
            "XFCE: open Settings > Screensaver, enable the screensaver to activate after a few \
             minutes, and on the Lock Screen tab enable locking with the screensaver so the \
             screen locks within {max} minutes."
        ),
        Desktop::Cinnamon => format!(
            "Cinnamon: open System Settings > Screensaver, set \"Delay before starting the \
             screensaver\" and turn on \"Lock the computer when put to sleep\" and \"Lock the \
             computer after the screensaver starts\" so it locks within {max} minutes."
        ),
        Desktop::Mate => format!(
            "MATE: open Control Center > Screensaver, turn on \"Activate screensaver when \
             computer is idle\" after {max} minutes or less and \"Lock screen when screensaver \
             is active\"."
        ),
        Desktop::Sway => format!(
            "sway: start swayidle with a locker, e.g. in ~/.config/sway/config: `exec swayidle -w \
             timeout {} 'swaylock -f' before-sleep 'swaylock -f'`.",
            max * 60
        ),
        Desktop::Hyprland => format!(
            "Hyprland: run hypridle (`exec-once = hypridle` in hyprland.conf) with a listener \
             that locks within {max} minutes (`timeout = {}`, `on-timeout = loginctl \
             lock-session`, `lock_cmd = pidof hyprlock || hyprlock`, `before_sleep_cmd = \
             loginctl lock-session`) in ~/.config/hypr/hypridle.conf.",
            max * 60
        ),
        Desktop::I3 | Desktop::OtherX11 => format!(
            "X11 window manager: lock on idle and before sleep, e.g. in ~/.config/i3/config: \
             `exec --no-startup-id xss-lock --transfer-sleep-lock -- i3lock --nofork` and \
             `exec --no-startup-id xset s {}`; or run xscreensaver with `lock: True`.",
            max * 60
        ),
    }
}

/// The outcome for one session.
#[derive(Debug)]
enum Outcome {
    Pass,
    Fail(Desktop, Vec<String>),
    Unknown(String),
}

fn evaluate_session(
    ctx: &Context,
    session: &Session,
    passwd: &[PasswdEntry],
    sources: &mut Vec<String>,
) -> (Outcome, Value) {
    let mut facts = json!({
        "session": session.id,
        "user": session.user,
        "uid": session.uid,
        "type": session.kind,
        "active": session.active,
        "desktop": session.desktop,
    });
    let desktop = Desktop::from_session(&session.desktop)
        .or_else(|| (session.kind == "x11").then_some(Desktop::OtherX11));
    let Some(desktop) = desktop else {
        let reason = if session.desktop.is_empty() {
            format!("session {} does not name its desktop", session.id)
        } else {
            format!(
                "desktop `{}` is not supported (GNOME, KDE, XFCE, Cinnamon, MATE, sway, Hyprland, i3 and X11 lockers are)",
                session.desktop
            )
        };
        return (Outcome::Unknown(reason), facts);
    };
    let Some(user) = sessions::user_of(session, passwd) else {
        return (
            Outcome::Unknown(format!(
                "the user of session {} is not in /etc/passwd",
                session.id
            )),
            facts,
        );
    };
    let settings = match desktop {
        Desktop::Gnome => gnome::read(ctx, &user.home, sources),
        Desktop::Kde => kde::read(ctx, &user.home, sources),
        Desktop::Xfce => xfce::read(ctx, &user.home, sources),
        Desktop::Cinnamon => lockers::read_cinnamon(ctx, &user.home, sources),
        Desktop::Mate => lockers::read_mate(ctx, &user.home, sources),
        Desktop::Sway => lockers::read_sway(ctx, &user.home, sources),
        Desktop::Hyprland => lockers::read_hyprland(ctx, &user.home, sources),
        Desktop::I3 => lockers::read_x11(ctx, &user.home, "i3", sources),
        Desktop::OtherX11 => lockers::read_x11(ctx, &user.home, "x11", sources),
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(reason) => return (Outcome::Unknown(reason), facts),
    };
    let max = ctx.config.screen_lock.max_idle_minutes;
    let problems = problems(&settings, max);
    if let Value::Object(map) = &mut facts {
        map.insert("user".into(), json!(user.name));
        map.insert("lock_enabled".into(), json!(settings.lock_enabled));
        map.insert(
            "lock_after_seconds".into(),
            json!(settings.lock_after_seconds),
        );
        map.insert("settings".into(), settings.settings.clone());
        map.insert("problems".into(), json!(problems));
    }
    if problems.is_empty() {
        (Outcome::Pass, facts)
    } else {
        (Outcome::Fail(desktop, problems), facts)
    }
}

/// Graphical sessions (with logind's hints when they came over D-Bus) and their source.
type Found = (Vec<(Session, Option<logind::Hints>)>, &'static str);

/// The graphical user sessions and where they came from: logind over D-Bus on the live
/// system; logind's session files below a fixture root. `Err` is a finished finding.
fn graphical_sessions(ctx: &Context, max: u32) -> Result<Found, Box<Finding>> {
    if ctx.live {
        return match logind::sessions() {
            Ok(all) => Ok((
                all.into_iter()
                    .filter(|(s, _)| s.is_graphical_user())
                    .map(|(s, h)| (s, Some(h)))
                    .collect(),
                logind::SOURCE,
            )),
            Err(reason) => Err(Box::new(
                Finding::unknown(ID, reason)
                    .observe("sessions", json!([]))
                    .observe("max_idle_minutes", max)
                    .source(logind::SOURCE),
            )),
        };
    }
    let names = match list_dir(ctx, SESSIONS_DIR) {
        Ok(names) => names,
        Err(e) if e.is_not_found() => {
            return Err(Box::new(
                Finding::unknown(
                    ID,
                    "no graphical user session (systemd-logind keeps no sessions here)",
                )
                .observe("sessions", json!([]))
                .observe("max_idle_minutes", max)
                .source(SESSIONS_DIR),
            ))
        }
        Err(e) => {
            return Err(Box::new(
                Finding::unknown(ID, e.to_string()).source(SESSIONS_DIR),
            ))
        }
    };
    let mut graphical = Vec::new();
    for name in names.iter().filter(|n| !n.ends_with(".ref")) {
        if let Ok(text) = read_text(ctx, format!("{SESSIONS_DIR}/{name}")) {
            let session = sessions::parse_session(name, &text);
            if session.is_graphical_user() {
                graphical.push((session, None));
            }
        }
    }
    Ok((graphical, SESSIONS_DIR))
}

/// Runs the check.
pub(super) fn check(ctx: &Context) -> Finding {
    let max = ctx.config.screen_lock.max_idle_minutes;
    let (graphical, sessions_source) = match graphical_sessions(ctx, max) {
        Ok(found) => found,
        Err(finding) => return *finding,
    };
    if graphical.is_empty() {
        return Finding::unknown(ID, "no graphical user session")
            .observe("sessions", json!([]))
            .observe("max_idle_minutes", max)
            .source(sessions_source);
    }
    let passwd = match read_text(ctx, "/etc/passwd") {
        Ok(text) => sessions::parse_passwd(&text),
        Err(e) => return Finding::unknown(ID, e.to_string()).source("/etc/passwd"),
    };

    let mut sources = vec![sessions_source.to_owned(), "/etc/passwd".to_owned()];
    let mut facts = Vec::new();
    let mut failed: Vec<(Desktop, Vec<String>, String)> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for (session, hints) in &graphical {
        let (outcome, fact) = evaluate_session(ctx, session, &passwd, &mut sources);
        let who = session.user.clone().unwrap_or_else(|| session.id.clone());
        let status = match outcome {
            Outcome::Pass => Status::Pass,
            Outcome::Fail(desktop, problems) => {
                failed.push((desktop, problems, who));
                Status::Fail
            }
            Outcome::Unknown(reason) => {
                unknown.push(reason);
                Status::Unknown
            }
        };
        let mut fact = fact;
        if let Value::Object(map) = &mut fact {
            map.insert("status".into(), json!(status.as_str()));
            if let Some(hints) = hints {
                map.insert("logind".into(), json!(hints));
            }
        }
        facts.push(fact);
    }

    let finding = if !failed.is_empty() {
        let summary = failed
            .iter()
            .map(|(_, problems, who)| format!("{who}: {}", problems.join("; ")))
            .collect::<Vec<_>>()
            .join(" | ");
        let mut desktops: Vec<Desktop> = failed.iter().map(|(d, _, _)| *d).collect();
        desktops.sort();
        desktops.dedup();
        let text = desktops
            .into_iter()
            .map(|d| remediation_text(d, max))
            .collect::<Vec<_>>()
            .join(" ");
        Finding::fail(ID, summary, Remediation::new(text))
    } else if let Some(reason) = unknown.first() {
        Finding::unknown(ID, reason.clone())
    } else {
        let users = graphical
            .iter()
            .filter_map(|(s, _)| s.user.clone())
            .collect::<Vec<_>>()
            .join(", ");
        Finding::pass(
            ID,
            format!("the screen locks within {max} min of inactivity ({users})"),
        )
    };
    let mut finding = finding
        .observe("sessions", Value::Array(facts))
        .observe("max_idle_minutes", max);
    for source in sources {
        finding = finding.source(source);
    }
    finding
}
