//! macOS implementation: not written yet.

use posture_core::{Finding, OsFacts};

use super::ID;
use crate::Context;

pub(super) fn check(_ctx: &Context) -> Finding {
    Finding::unknown(ID, "this check is not implemented on macOS yet")
}

pub(super) fn os_facts(_ctx: &Context) -> OsFacts {
    OsFacts {
        family: std::env::consts::OS.to_owned(),
        id: "macos".to_owned(),
        name: "macOS".to_owned(),
        version_id: None,
        kernel: String::new(),
        arch: std::env::consts::ARCH.to_owned(),
    }
}
