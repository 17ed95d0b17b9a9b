//! macOS implementation. Sources: `/System/Library/CoreServices/SystemVersion.plist` (XML,
//! readable by every user; read below the context root), falling back to `sw_vers`; the
//! kernel release from `sysctl -n kern.osrelease`.

use posture_core::{Finding, OsFacts};

use super::sw_vers::{self, MacVersion};
use super::ID;
use crate::macos_source::{read_plist, run_text, QUICK};
use crate::Context;

const PLIST: &str = "/System/Library/CoreServices/SystemVersion.plist";

fn read_version(ctx: &Context) -> Result<(MacVersion, &'static str), String> {
    let from_plist = read_plist(ctx, PLIST)
        .ok()
        .and_then(|p| sw_vers::from_system_version_plist(&p));
    if let Some(v) = from_plist {
        // The plist has no ProductVersionExtra: ask sw_vers for the RSR letter when it runs.
        let extra = run_text(ctx, "/usr/bin/sw_vers", &[], QUICK)
            .ok()
            .and_then(|t| sw_vers::parse_sw_vers(&t))
            .filter(|s| s.version == v.version)
            .and_then(|s| s.extra);
        return Ok((MacVersion { extra, ..v }, PLIST));
    }
    let text = run_text(ctx, "/usr/bin/sw_vers", &[], QUICK).map_err(|e| e.to_string())?;
    sw_vers::parse_sw_vers(&text)
        .map(|v| (v, "sw_vers"))
        .ok_or_else(|| "sw_vers printed no ProductVersion".to_owned())
}

pub(super) fn check(ctx: &Context) -> Finding {
    match read_version(ctx) {
        Ok((version, source)) => {
            sw_vers::decide(Some(&version), source).observe("kernel", kernel(ctx))
        }
        Err(why) => Finding::unknown(ID, format!("cannot read the macOS version: {why}"))
            .source(PLIST)
            .source("sw_vers"),
    }
}

fn kernel(ctx: &Context) -> String {
    run_text(ctx, "/usr/sbin/sysctl", &["-n", "kern.osrelease"], QUICK)
        .map(|t| t.trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn os_facts(ctx: &Context) -> OsFacts {
    let version = read_version(ctx).ok().map(|(v, _)| v);
    OsFacts {
        family: std::env::consts::OS.to_owned(),
        id: "macos".to_owned(),
        name: version
            .as_ref()
            .map_or_else(|| "macOS".to_owned(), MacVersion::display),
        version_id: version.map(|v| v.version),
        kernel: kernel(ctx),
        arch: std::env::consts::ARCH.to_owned(),
    }
}
