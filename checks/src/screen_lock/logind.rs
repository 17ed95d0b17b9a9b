//! Sessions from systemd-logind over D-Bus (`org.freedesktop.login1`), the interface logind
//! documents for this (org.freedesktop.login1(5)): `Manager.ListSessions`, then each
//! session object's properties, including the idle and locked hints that the session's
//! screen locker sets.
//!
//! Live only: a fixture root carries logind's state as its session files instead
//! ([`super::sessions::parse_session`]).

use std::time::Duration;

use serde::Serialize;
use zbus::blocking::{connection, Proxy};
use zbus::zvariant::OwnedObjectPath;

use super::sessions::Session;

const DESTINATION: &str = "org.freedesktop.login1";
const MANAGER_PATH: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";
const SESSION: &str = "org.freedesktop.login1.Session";
/// The longest a single call may take; logind answers in microseconds.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What logind says about a session beyond the session file's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hints {
    /// `IdleHint`: the session is idle.
    pub idle: bool,
    /// `IdleSinceHint`, microseconds since the epoch (0 when not idle).
    pub idle_since_usec: u64,
    /// `LockedHint`: the session's screen locker says the screen is locked.
    pub locked: bool,
    /// `Remote`: a remote session (SSH X forwarding, RDP).
    pub remote: bool,
}

/// Where the sessions were read from, for the finding's `source`.
pub const SOURCE: &str = "D-Bus org.freedesktop.login1 (Manager.ListSessions, Session properties)";

/// Lists logind's sessions over the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else the
/// standard socket).
pub fn sessions() -> Result<Vec<(Session, Hints)>, String> {
    let connection = connection::Builder::system()
        .and_then(|b| b.method_timeout(CALL_TIMEOUT).build())
        .map_err(|e| format!("no D-Bus system bus: {e}"))?;
    let manager = Proxy::new(&connection, DESTINATION, MANAGER_PATH, MANAGER)
        .map_err(|e| format!("logind: {e}"))?;
    let listed: Vec<(String, u32, String, String, OwnedObjectPath)> = manager
        .call("ListSessions", &())
        .map_err(|e| format!("logind is not answering on the system bus: {e}"))?;
    let mut out = Vec::new();
    for (id, uid, user, _seat, path) in listed {
        let session = Proxy::new(&connection, DESTINATION, path.as_str(), SESSION)
            .map_err(|e| format!("logind session {id}: {e}"))?;
        let text = |name: &str| session.get_property::<String>(name).unwrap_or_default();
        let flag = |name: &str| session.get_property::<bool>(name).unwrap_or(false);
        out.push((
            Session {
                uid: Some(uid),
                user: (!user.is_empty()).then_some(user),
                active: flag("Active"),
                kind: text("Type"),
                class: text("Class"),
                state: text("State"),
                desktop: text("Desktop"),
                id,
            },
            Hints {
                idle: flag("IdleHint"),
                idle_since_usec: session.get_property::<u64>("IdleSinceHint").unwrap_or(0),
                locked: flag("LockedHint"),
                remote: flag("Remote"),
            },
        ));
    }
    Ok(out)
}
