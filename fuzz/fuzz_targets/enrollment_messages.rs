//! Untrusted enrollment and attestation JSON: every message parser, and what a verifier
//! does next with a message that parses (begin an enrollment from a request, read the
//! keys of an enrolled device, finish against a fixed pending enrollment). Seeds are
//! messages from a real enrollment against swtpm.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use posture_core::attestation::{
    begin_enrollment, finish_enrollment, EkTrust, EnrolledDevice, EnrollmentChallenge,
    EnrollmentRequest, EnrollmentResponse, PendingEnrollment, Quote,
};

/// The pending enrollment of the seed corpus (a real swtpm enrollment).
const PENDING: &[u8] = include_bytes!("../seeds/enrollment_messages/swtpm-pending.json");

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = EnrollmentRequest::from_json(data) {
        let _ = begin_enrollment(&request, EkTrust::Unverified, SystemTime::now());
    }
    let _ = EnrollmentChallenge::from_json(data);
    if let Ok(response) = EnrollmentResponse::from_json(data) {
        if let Ok(pending) = PendingEnrollment::from_json(PENDING) {
            let _ = finish_enrollment(&pending, &response);
        }
    }
    let _ = PendingEnrollment::from_json(data);
    if let Ok(device) = EnrolledDevice::from_json(data) {
        let _ = device.device_key();
        let _ = device.ak();
    }
    let _ = Quote::from_json(data);
});
