//! `edr`: an EDR / antivirus product from the catalogue is running (and healthy where the
//! product can tell us cheaply).
//!
//! The products are data, not code: `checks/catalogue/edr.toml` ([`catalogue`]) lists each
//! product's process names, service units and install paths per OS, and its own health
//! source where one exists. For each product the check reports:
//! - `installed`: a service unit (Linux systemd, macOS launchd) or an install path exists
//!   below the context root;
//! - `running`: one of its processes runs (the live process list from `/proc`; matching by
//!   name is the pure `match_processes`) *and* is verified to be the product
//!   (`process::verify`): it runs as root or the catalogue's service user, its
//!   executable is the root-owned file in the product's install directories (not deleted,
//!   no directory above it writable by other users), and it runs in the product's service
//!   unit where the catalogue names one. A process that only has the right name — a copy
//!   of `sleep` called `s1-agent` started by any user — is listed in `rejected` with the
//!   reason and does not count;
//! - `healthy`: `true`/`false` from its own status source ([`health`]), `null` when it has
//!   none or it could not tell.
//!
//! It passes when a required product (config `[checks.edr] required`; empty = any product
//! in the catalogue) is running and does not report itself unhealthy.
//!
//! `observed` carries `products: [{id, name, installed, running, healthy, sources, ...}]` and
//! `running: [ids]`; the policy engine relies on both.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod apple;
pub mod catalogue;
mod decide;
pub mod health;
pub mod launchctl;
#[cfg(target_os = "linux")]
pub mod process;
pub mod security_center;
pub mod systemextensionsctl;
pub mod windows_products;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "windows")]
mod windows;

pub use decide::{decide, ProductState};
#[cfg(target_os = "linux")]
pub use linux::*;
#[cfg(target_os = "linux")]
pub use process::{live_processes, ProcessInfo};

use posture_core::Finding;

use crate::Context;

/// Check id.
pub const ID: &str = "edr";

/// `unknown`, naming the catalogue's ids, when the config requires a product the
/// catalogue does not know: a typo in `[checks.edr] required` must not read as "that
/// product is not running".
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    allow(dead_code)
)]
fn unknown_required_ids(catalogue: &catalogue::Catalogue, required: &[String]) -> Option<Finding> {
    let unknown_ids: Vec<&str> = required
        .iter()
        .filter(|id| !catalogue.products.iter().any(|p| &p.id == *id))
        .map(String::as_str)
        .collect();
    if unknown_ids.is_empty() {
        return None;
    }
    let known: Vec<&str> = catalogue.products.iter().map(|p| p.id.as_str()).collect();
    Some(Finding::unknown(
        ID,
        format!(
            "config names EDR product(s) not in the catalogue: {} (known: {})",
            unknown_ids.join(", "),
            known.join(", ")
        ),
    ))
}

/// Runs the check for the OS this was built for.
pub fn check(ctx: &Context) -> Finding {
    #[cfg(target_os = "linux")]
    return linux::check(ctx);
    #[cfg(target_os = "macos")]
    return macos::check(ctx);
    #[cfg(target_os = "windows")]
    return windows::check(ctx);
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    return crate::unsupported_os(ID, ctx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_id_the_catalogue_lacks_is_unknown_with_the_known_ids() {
        let catalogue = catalogue::builtin().expect("the built-in catalogue parses");
        let known = catalogue.products[0].id.clone();
        assert!(unknown_required_ids(catalogue, &[]).is_none());
        assert!(unknown_required_ids(catalogue, std::slice::from_ref(&known)).is_none());
        let finding = unknown_required_ids(catalogue, &[known.clone(), "crowdstrik".to_owned()])
            .expect("a typo is not a verdict");
        assert_eq!(finding.status, posture_core::Status::Unknown);
        let reason = serde_json::to_string(&finding).expect("serializes");
        assert!(
            reason.contains("crowdstrik") && reason.contains(&known),
            "{reason}"
        );
    }
}
