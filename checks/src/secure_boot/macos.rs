//! macOS implementation: the boot chain's integrity. Sources: the boot policy (Apple
//! silicon: `bputil -d`, root only; Intel with a T2 chip: `nvram
//! 94b73556-2197-4702-82a8-3e1337dafbfb:AppleSecureBootPolicy`; Intel without T2 has no
//! Secure Boot), System Integrity Protection (`csrutil status`) and Gatekeeper (`spctl
//! --status`). See [`super::apple`] for the decision.

use posture_core::Finding;

use super::apple::{self, BootPolicy};
use crate::macos_source::{apple_silicon, is_root, run_text, QUICK};
use crate::Context;

const T2_POLICY: &str = "94b73556-2197-4702-82a8-3e1337dafbfb:AppleSecureBootPolicy";

pub(super) fn check(ctx: &Context) -> Finding {
    let mut sources = Vec::new();
    let boot: BootPolicy = if apple_silicon(ctx) {
        sources.push("bputil -d".to_owned());
        if !is_root() {
            Err("needs root: `bputil -d` reads the local boot policy only as root".to_owned())
        } else {
            run_text(ctx, "/usr/bin/bputil", &["-d"], QUICK)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    apple::parse_bputil(&text)
                        .and_then(|p| p.security.map(|s| (s, p.lowered)))
                        .ok_or_else(|| "bputil -d: no Security Mode line".to_owned())
                })
        }
    } else {
        sources.push(format!("nvram {T2_POLICY}"));
        match run_text(ctx, "/usr/sbin/nvram", &[T2_POLICY], QUICK) {
            Ok(text) => apple::parse_t2_policy(&text)
                .map(|s| (s, Vec::new()))
                .ok_or_else(|| "the T2 Secure Boot policy value is not understood".to_owned()),
            Err(_) => Err(
                "no T2 Secure Boot policy: an Intel Mac without a T2 chip has no Secure Boot"
                    .to_owned(),
            ),
        }
    };
    sources.push("csrutil status".to_owned());
    let sip = run_text(ctx, "/usr/bin/csrutil", &["status"], QUICK)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            apple::parse_csrutil(&t).ok_or_else(|| "csrutil status: no status line".to_owned())
        });
    sources.push("spctl --status".to_owned());
    let gatekeeper = run_text(ctx, "/usr/sbin/spctl", &["--status"], QUICK)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            apple::parse_spctl(&t).ok_or_else(|| "spctl --status: output not understood".to_owned())
        });
    apple::decide(&boot, &sip, &gatekeeper, &sources)
}
