//! Whether a systemd timer is enabled, read from the unit directories (no D-Bus, no
//! `systemctl`): enabled means a `timers.target.wants/` link in `/etc` (the admin's
//! `systemctl enable`) or in the vendor directories (presets shipped enabled); masked means
//! the unit name links to `/dev/null` in `/etc/systemd/system` or `/run/systemd/system`.

use std::path::Path;

use crate::Context;

const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// A timer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    /// Linked into `timers.target.wants`.
    Enabled,
    /// Installed but not enabled.
    Disabled,
    /// Masked (linked to `/dev/null`).
    Masked,
    /// No unit file.
    NotFound,
}

impl UnitState {
    /// The name in `observed`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Enabled => "enabled",
            UnitState::Disabled => "disabled",
            UnitState::Masked => "masked",
            UnitState::NotFound => "not-found",
        }
    }
}

fn is_masked(ctx: &Context, dir: &str, unit: &str) -> bool {
    std::fs::read_link(ctx.path(Path::new(dir).join(unit)))
        .is_ok_and(|target| target == Path::new("/dev/null"))
}

/// The state of a timer unit.
pub fn timer_state(ctx: &Context, unit: &str) -> UnitState {
    if ["/etc/systemd/system", "/run/systemd/system"]
        .iter()
        .any(|dir| is_masked(ctx, dir, unit))
    {
        return UnitState::Masked;
    }
    if !UNIT_DIRS
        .iter()
        .any(|dir| std::fs::symlink_metadata(ctx.path(Path::new(dir).join(unit))).is_ok())
    {
        return UnitState::NotFound;
    }
    // The wants entry is a symlink whose absolute target is resolved from the real root,
    // not from `ctx.root`: look at the link itself, never follow it.
    let enabled = UNIT_DIRS.iter().any(|dir| {
        std::fs::symlink_metadata(ctx.path(Path::new(dir).join("timers.target.wants").join(unit)))
            .is_ok()
    });
    if enabled {
        UnitState::Enabled
    } else {
        UnitState::Disabled
    }
}
