//! `edr`: placeholder.
use crate::Context;
use posture_core::Finding;
/// Check id.
pub const ID: &str = "edr";
/// Runs the check.
pub fn check(_ctx: &Context) -> Finding {
    Finding::unknown(ID, "not implemented yet")
}
