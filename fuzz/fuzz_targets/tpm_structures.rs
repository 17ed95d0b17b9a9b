//! Untrusted TPM structures as a verifier receives them: `TPMT_PUBLIC` (EK, AK, device
//! key), `TPMS_ATTEST` (quote, certify) and `TPMT_SIGNATURE`, each parser on the whole
//! input, then the input split in three to drive signature checks and quote
//! verification with whatever parsed. Seeds are structures captured from swtpm.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_core::attestation::tpm2::{verify_signature, Attest, TpmPublic, TpmSignature};
use posture_core::attestation::{verify_quote, PcrValues, Quote, SignedAttest};

fuzz_target!(|data: &[u8]| {
    if let Ok(public) = TpmPublic::parse(data) {
        let _ = public.name();
        let _ = public.p256();
        let _ = public.rsa();
    }
    let _ = Attest::parse(data);
    let _ = TpmSignature::parse(data);

    // [n1][n2][public: n1 bytes][signature: n2 bytes][attest: rest]
    let [n1, n2, rest @ ..] = data else { return };
    let (n1, n2) = (usize::from(*n1), usize::from(*n2));
    if rest.len() < n1 + n2 {
        return;
    }
    let (public, rest) = rest.split_at(n1);
    let (signature, attest) = rest.split_at(n2);
    let Ok(ak) = TpmPublic::parse(public) else { return };
    if let Ok(sig) = TpmSignature::parse(signature) {
        let _ = verify_signature(&ak, attest, &sig);
    }
    let mut pcrs = PcrValues::default();
    for pcr in 0..8 {
        pcrs.sha256.insert(pcr, "00".repeat(32));
    }
    let quote = Quote {
        version: 1,
        quote: SignedAttest {
            attest: attest.to_vec(),
            signature: signature.to_vec(),
        },
        pcrs,
        event_log: None,
    };
    let _ = verify_quote(&ak, &quote, &[0; 32], &[0, 7]);
});
