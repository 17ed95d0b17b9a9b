//! The Windows device key as `posture` opens it: the TPM through the Microsoft Platform
//! Crypto Provider, else the software key with the reason. Runs on Windows (and under Wine
//! in `scripts/cross.sh`, where the provider is missing and the fallback is what must be
//! seen: a software key, said so, never a TPM claim).
#![cfg(windows)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::VerifyingKey;
use posture_agent::key::{open, Backend, DeviceKeyError, KeyConfig};
use posture_core::keys::KeyAssurance;

/// Wine's ntdll exports `wine_get_version`; Windows' does not.
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: NUL-terminated literals; ntdll is loaded in every Windows process.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

#[test]
fn the_device_key_is_in_the_tpm_or_a_software_key_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let key = open(&KeyConfig::default(), &keys, false).unwrap();
    let wine = under_wine();
    if wine {
        // Wine has no Platform Crypto Provider (or a software stand-in, which is refused).
        assert!(key.fallback_reason.is_some(), "Wine gave a TPM key?");
    }
    match &key.fallback_reason {
        Some(reason) => {
            assert!(
                reason.contains("Microsoft Platform Crypto Provider"),
                "{reason}"
            );
            assert!(key.fallback_fix.as_deref().unwrap().contains("tpm.msc"));
            assert_eq!(key.assurance(), KeyAssurance::Software);
            assert!(key.tpm_claims().is_none());
            eprintln!("fallback (wine: {wine}): {reason}");
        }
        None => {
            assert_eq!(key.assurance(), KeyAssurance::Tpm);
            // The same key next time: it is persisted by the provider.
            let again = open(&KeyConfig::default(), &keys, false).unwrap();
            assert_eq!(again.signer.public_key(), key.signer.public_key());
        }
    }
    // Whichever key it is, it signs ES256 verifiably with its public key.
    let message = b"header.payload";
    let signature = key.signer.sign(message).unwrap();
    let verifying = VerifyingKey::from(key.signer.public_key());
    verifying.verify(message, &signature).unwrap();
}

#[test]
fn a_required_tpm_without_the_provider_is_an_error_not_a_software_key() {
    if !under_wine() {
        eprintln!("skipped: only Wine is known to lack the provider");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = KeyConfig {
        backend: Backend::Tpm,
        ..KeyConfig::default()
    };
    match open(&config, &dir.path().join("keys"), false) {
        Err(DeviceKeyError::TpmRequired { source, fix, .. }) => {
            assert!(
                source
                    .to_string()
                    .contains("Microsoft Platform Crypto Provider"),
                "{source}"
            );
            assert!(fix.contains("backend = \"software\""));
        }
        other => panic!("expected TpmRequired, got {other:?}"),
    }
}
