//! Untrusted policy files, TOML and JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_core::policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::from_toml_str(text);
        let _ = Policy::from_json_str(text);
    }
});
