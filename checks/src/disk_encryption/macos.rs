//! macOS implementation. Sources: `fdesetup status` (any user may run it), falling back to
//! the data volume's `FileVault:` line in `diskutil apfs list` when `fdesetup` is missing or
//! says nothing this parser understands.

use posture_core::Finding;

use super::fdesetup;
use super::ID;
use crate::macos_source::{run_text, QUICK};
use crate::Context;

pub(super) fn check(ctx: &Context) -> Finding {
    let first = match run_text(ctx, "/usr/bin/fdesetup", &["status"], QUICK) {
        Ok(text) => match fdesetup::parse_status(&text) {
            Some(state) => return fdesetup::decide(Some(&state), "fdesetup status"),
            None => "fdesetup status: output not understood".to_owned(),
        },
        Err(e) => e.to_string(),
    };
    match run_text(ctx, "/usr/sbin/diskutil", &["apfs", "list"], QUICK) {
        Ok(text) => {
            let volumes = fdesetup::parse_apfs_list(&text);
            match fdesetup::data_volume(&volumes) {
                Some(volume) => {
                    let state = fdesetup::volume_state(volume);
                    fdesetup::decide(state.as_ref(), "diskutil apfs list")
                        .observe("volume", volume.device.clone())
                        .observe("fdesetup", first)
                }
                None => Finding::unknown(
                    ID,
                    format!("{first}; diskutil apfs list shows no data volume"),
                )
                .source("fdesetup status")
                .source("diskutil apfs list"),
            }
        }
        Err(e) => Finding::unknown(ID, format!("{first}; diskutil: {e}"))
            .source("fdesetup status")
            .source("diskutil apfs list"),
    }
}
