//! Who is logged in graphically: systemd-logind's session files
//! (`/run/systemd/sessions/<id>`, `KEY=value` lines) and the users' home directories
//! from `/etc/passwd`.
//!
//! logind marks these files private, but they are plain text, stable in practice, and
//! readable without D-Bus; a file we cannot understand only loses that session.

use std::collections::BTreeMap;

/// A desktop whose lock settings posture knows how to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Desktop {
    /// GNOME (and GNOME-based sessions such as Ubuntu's).
    Gnome,
    /// KDE Plasma.
    Kde,
    /// XFCE.
    Xfce,
    /// Cinnamon.
    Cinnamon,
    /// MATE.
    Mate,
    /// sway (swayidle + swaylock).
    Sway,
    /// Hyprland (hypridle + hyprlock).
    Hyprland,
    /// i3 (xss-lock + i3lock, xscreensaver or light-locker).
    I3,
    /// Another X11 session: xscreensaver or light-locker.
    OtherX11,
}

impl Desktop {
    /// Maps logind's `DESKTOP` (the session's `XDG_SESSION_DESKTOP`) to a desktop.
    /// (An X11 session whose desktop is not known is [`Desktop::OtherX11`], decided by the
    /// caller from the session type.)
    pub fn from_session(desktop: &str) -> Option<Desktop> {
        let lower = desktop.to_ascii_lowercase();
        let words: Vec<&str> = lower.split([':', '-', ' ']).collect();
        let has = |w: &str| words.contains(&w);
        if has("gnome") || has("ubuntu") || has("pop") || has("zorin") {
            Some(Desktop::Gnome)
        } else if has("kde") || has("plasma") || has("plasmawayland") || has("plasmax11") {
            Some(Desktop::Kde)
        } else if has("xfce") || has("xfce4") {
            Some(Desktop::Xfce)
        } else if has("cinnamon") {
            Some(Desktop::Cinnamon)
        } else if has("mate") {
            Some(Desktop::Mate)
        } else if has("sway") {
            Some(Desktop::Sway)
        } else if has("hyprland") {
            Some(Desktop::Hyprland)
        } else if has("i3") {
            Some(Desktop::I3)
        } else {
            None
        }
    }

    /// `gnome`, `kde` or `xfce`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Desktop::Gnome => "gnome",
            Desktop::Kde => "kde",
            Desktop::Xfce => "xfce",
            Desktop::Cinnamon => "cinnamon",
            Desktop::Mate => "mate",
            Desktop::Sway => "sway",
            Desktop::Hyprland => "hyprland",
            Desktop::I3 => "i3",
            Desktop::OtherX11 => "x11",
        }
    }
}

/// One logind session, as far as this check cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id (the file name).
    pub id: String,
    /// `UID`.
    pub uid: Option<u32>,
    /// `USER`.
    pub user: Option<String>,
    /// `ACTIVE=1`.
    pub active: bool,
    /// `TYPE`: `x11`, `wayland`, `mir`, `tty`, `unspecified`.
    pub kind: String,
    /// `CLASS`: `user`, `greeter`, `lock-screen`, `background`, ...
    pub class: String,
    /// `STATE`: `online`, `active`, `closing`.
    pub state: String,
    /// `DESKTOP`, possibly empty.
    pub desktop: String,
}

impl Session {
    /// A graphical session of a person (not the login greeter), not being torn down.
    pub fn is_graphical_user(&self) -> bool {
        matches!(self.kind.as_str(), "x11" | "wayland" | "mir")
            && self.class == "user"
            && self.state != "closing"
    }
}

/// Parses one logind session file.
pub fn parse_session(id: &str, text: &str) -> Session {
    let fields: BTreeMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |k: &str| fields.get(k).copied().unwrap_or("").to_owned();
    Session {
        id: id.to_owned(),
        uid: fields.get("UID").and_then(|u| u.parse().ok()),
        user: fields
            .get("USER")
            .filter(|u| !u.is_empty())
            .map(|u| (*u).to_owned()),
        active: get("ACTIVE") == "1",
        kind: get("TYPE"),
        class: get("CLASS"),
        state: get("STATE"),
        desktop: get("DESKTOP"),
    }
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Home directory.
    pub home: String,
}

/// Parses `/etc/passwd` (`name:x:uid:gid:gecos:home:shell`), skipping malformed lines.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, _, _, home, ..] = fields.as_slice() else {
                return None;
            };
            Some(PasswdEntry {
                name: (*name).to_owned(),
                uid: uid.parse().ok()?,
                home: (*home).to_owned(),
            })
        })
        .filter(|e| e.home.starts_with('/') && !e.home.contains(".."))
        .collect()
}

/// The passwd entry of a session's user: by uid, else by name.
pub fn user_of<'a>(session: &Session, passwd: &'a [PasswdEntry]) -> Option<&'a PasswdEntry> {
    passwd
        .iter()
        .find(|e| Some(e.uid) == session.uid)
        .or_else(|| {
            passwd
                .iter()
                .find(|e| Some(e.name.as_str()) == session.user.as_deref())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktops() {
        assert_eq!(Desktop::from_session("GNOME"), Some(Desktop::Gnome));
        assert_eq!(Desktop::from_session("ubuntu"), Some(Desktop::Gnome));
        assert_eq!(Desktop::from_session("ubuntu:GNOME"), Some(Desktop::Gnome));
        assert_eq!(Desktop::from_session("KDE"), Some(Desktop::Kde));
        assert_eq!(Desktop::from_session("plasma"), Some(Desktop::Kde));
        assert_eq!(Desktop::from_session("xfce"), Some(Desktop::Xfce));
        assert_eq!(Desktop::from_session("i3"), Some(Desktop::I3));
        assert_eq!(Desktop::from_session("X-Cinnamon"), Some(Desktop::Cinnamon));
        assert_eq!(Desktop::from_session("Hyprland"), Some(Desktop::Hyprland));
        assert_eq!(Desktop::from_session("labwc"), None);
        assert_eq!(Desktop::from_session(""), None);
    }

    #[test]
    fn passwd_lines() {
        let entries = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbroken\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\nbad:x:nan:1::/x:/bin/sh\n",
        );
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].home, "/home/alice");
    }
}
