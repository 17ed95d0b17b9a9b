//! What a verifier-only consumer links: posture-core and libposture built without the
//! agent have no TPM stack (tss) in their dependency graph, so an IdP or proxy linking the
//! verifier needs no tpm2-tss and runs no device code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use posture_integration_tests::workspace_root;

/// `cargo tree` of one package's normal dependencies, offline from Cargo.lock.
fn tree(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn crates(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[test]
fn posture_core_has_no_tss() {
    let core = tree(&["-p", "posture-core"]);
    assert!(crates(&core).contains(&"p256"), "{core}");
    assert!(
        !crates(&core).iter().any(|c| c.starts_with("tss-esapi")),
        "{core}"
    );
    assert!(!crates(&core).contains(&"posture-checks"), "{core}");
}

#[test]
fn verifier_only_libposture_has_no_tss_and_no_agent() {
    let verifier = tree(&["-p", "posture-ffi", "--no-default-features"]);
    assert!(crates(&verifier).contains(&"posture-core"), "{verifier}");
    for absent in ["tss-esapi", "posture-agent", "posture-checks"] {
        assert!(
            !crates(&verifier).contains(&absent),
            "{absent} in:\n{verifier}"
        );
    }
    // The default build is the agent too, with the TPM.
    let full = tree(&["-p", "posture-ffi"]);
    assert!(crates(&full).contains(&"tss-esapi"), "{full}");
}

/// webauthn-rs (and through it OpenSSL) is a dev-dependency of the WebAuthn tests only:
/// nothing shipped links OpenSSL.
#[test]
fn shipped_crates_do_not_link_openssl() {
    for package in [
        "posture-cli",
        "posture-server",
        "posture-ffi",
        "posture-core",
    ] {
        let tree = tree(&["-p", package]);
        for absent in ["openssl", "openssl-sys", "webauthn-rs-core"] {
            assert!(
                !crates(&tree).contains(&absent),
                "{absent} in {package}:\n{tree}"
            );
        }
    }
}
