//! Untrusted device-certificate input: CSRs devices send to `POST /v1/device-certificate`
//! and the client-certificate headers proxies forward to `GET /v1/authz` (nginx URL-encoded
//! PEM, Traefik base64 DER, Envoy XFCC), and what the server does next with a certificate
//! that parses (verify it against a device CA).
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use posture_core::devcert::{
    check_csr, forwarded_certificate, validity_of, xfcc_elements, DeviceCa, ForwardedFormat,
};

fn ca() -> Option<&'static DeviceCa> {
    static CA: OnceLock<Option<DeviceCa>> = OnceLock::new();
    CA.get_or_init(|| {
        // Made in a private temp dir, kept in memory, the files removed at once.
        let dir = std::env::temp_dir().join(format!("posture-fuzz-ca-{}", std::process::id()));
        let ca = DeviceCa::load_or_create(&dir).ok();
        let _ = std::fs::remove_dir_all(&dir);
        ca
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let _ = check_csr(data);
    let _ = validity_of(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = xfcc_elements(text);
        for format in [ForwardedFormat::Nginx, ForwardedFormat::Traefik, ForwardedFormat::Envoy] {
            if let Ok(der) = forwarded_certificate(format, text) {
                if let Some(ca) = ca() {
                    let _ = ca.verify(&der, SystemTime::now());
                }
            }
        }
    }
});
