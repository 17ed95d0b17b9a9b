//! Windows implementation: not written yet.

use posture_core::Finding;

use super::ID;
use crate::Context;

pub(super) fn check(_ctx: &Context) -> Finding {
    Finding::unknown(ID, "this check is not implemented on Windows yet")
}
