//! `secure_boot`: placeholder until the check lands; it never passes.

use posture_core::Finding;

use crate::Context;

/// Check id.
pub const ID: &str = "secure_boot";

/// Runs the check.
pub fn check(_ctx: &Context) -> Finding {
    Finding::unknown(ID, "not implemented yet")
}
