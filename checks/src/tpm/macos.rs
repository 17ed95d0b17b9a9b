//! macOS implementation: Macs have no TPM. Their hardware key store is the Secure Enclave
//! (T2 and Apple silicon), which holds posture's device key where available; the evidence
//! says so in `key_assurance`. The Secure Enclave offers no TPM-style attestation (no EK,
//! no quotes), so this check cannot pass on a Mac, and saying `fail` would ask people to
//! fix something they cannot: it is `unknown` with that reason.

use posture_core::Finding;

use super::ID;
use crate::Context;

pub(super) fn check(_ctx: &Context) -> Finding {
    Finding::unknown(
        ID,
        "not supported on this OS: Macs have no TPM; the device key is held by the Secure \
         Enclave where the Mac has one (see the evidence's key_assurance)",
    )
    .observe("tpm_present", false)
    .source("macOS (no TPM on Apple hardware)")
}
