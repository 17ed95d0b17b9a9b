//! Files in users' home directories that `screen_lock` reads, often as root: the dconf
//! user database (GVDB, binary), xfconf XML and KDE's kscreenlockerrc. Any user can write
//! their own, so they are untrusted input to a privileged reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_checks::screen_lock::{gvdb, kde, xfce};

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = gvdb::parse(data) {
        // Touch what the check reads: values and the nested `.locks` table.
        let _ = table.values.len() + table.tables.len();
    }
    let _ = gvdb::parse_variant(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(props) = xfce::parse_channel(text) {
            let _ = xfce::settings(&props);
        }
        let entries = kde::parse_daemon_group(text);
        let _ = kde::settings(&entries);
    }
});
