//! `firewall`: a host firewall is active and its input policy is not accept-all.
//!
//! The decision comes from the ruleset loaded in the kernel, never from config files alone:
//! - nftables (and iptables-nft, whose tables are nftables tables) is read over netlink
//!   (`netlink`): the table, chain and rule dumps `nft list ruleset` asks for, decoded by
//!   `netlink-packet-netfilter`. No process is spawned, so the check works on minimal
//!   installs with neither `nft` nor `iptables-save`.
//! - iptables-legacy's tables, which nftables cannot see, live in the old xtables modules.
//!   Only when the kernel lists a legacy `filter` table in `/proc/net/ip_tables_names` (or
//!   `ip6_`) is `iptables-legacy-save` run and its rules added; on a kernel without
//!   nf_tables at all, `iptables-save` / `ip6tables-save` are the fallback.
//!
//! Reading the loaded ruleset needs root (CAP_NET_ADMIN); without it the check answers
//! `unknown` and reports what the ufw / firewalld configuration files say.
//!
//! Parsing (`netlink::parse_dump`, [`ruleset`]) and deciding ([`assess()`]) are pure and
//! tested on real netlink dumps and `nft -j` outputs captured in throwaway network
//! namespaces.
//!
//! # Per-OS implementations
//! The sources above are Linux's (`linux.rs`); `windows.rs` and `macos.rs` read their own
//! OS (documented there). Any other OS answers `unknown` ("not supported on this OS").

pub mod assess;
pub mod frontends;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod ruleset;
pub mod socketfilterfw;
pub mod windows_profiles;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "windows")]
mod windows;

pub use assess::{assess, DockerChains, InputAssessment, InputChain};
pub use frontends::FrontendConfig;
#[cfg(target_os = "linux")]
pub use linux::*;
pub use ruleset::{parse_iptables_save, parse_nft_json, Ruleset};

use posture_core::Finding;

use crate::Context;

/// Check id.
pub const ID: &str = "firewall";

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
