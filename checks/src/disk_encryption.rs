//! `disk_encryption`: placeholder until the check lands; it never passes.

use posture_core::Finding;

use crate::Context;

/// Check id.
pub const ID: &str = "disk_encryption";

/// Runs the check.
pub fn check(_ctx: &Context) -> Finding {
    Finding::unknown(ID, "not implemented yet")
}
