//! What issue 17's checks parse from sources an attacker can shape: a LUKS header (the
//! first bytes of a disk), the TCG event log and UEFI signature lists (firmware data), and
//! lock configs in users' home directories (swayidle, hypridle, i3, xscreensaver).
//!
//! Not here: the nftables netlink dump. It comes from the kernel, and its decoder
//! (netlink-packet-netfilter) panics on some malformed nested attributes; the check
//! catches that panic (`firewall::netlink`), but libFuzzer aborts on any panic, so that
//! path is covered by a regression test on the input this target once found instead.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_checks::disk_encryption;
use posture_checks::screen_lock::lockers;
use posture_checks::secure_boot::{eventlog, siglist};

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = disk_encryption::parse_header(data) {
        let _ = params.weakness();
    }
    if let Ok(log) = eventlog::parse(data) {
        let _ = eventlog::replay(&log, eventlog::ALG_SHA256);
        let _ = eventlog::replay(&log, eventlog::ALG_SHA1);
        let _ = eventlog::facts(&log);
    }
    if let Ok(db) = siglist::parse_signature_lists(data) {
        let _ = siglist::assess_dbx(&db);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = disk_encryption::parse_luks2_json(text);
        let _ = lockers::parse_swayidle(text, true);
        let _ = lockers::parse_swayidle(text, false);
        let _ = lockers::parse_hypridle(text);
        let _ = lockers::parse_i3_xss_lock(text);
        let _ = lockers::parse_xscreensaver(text);
    }
});
