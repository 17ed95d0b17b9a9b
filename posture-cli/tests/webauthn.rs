//! WebAuthn `tpm` attestation end to end, against real software TPMs (swtpm) and an
//! independent relying party: the posture attestation CA issues the AIK certificate at
//! enrollment, `posture webauthn register|assert` make the credential on the TPM, and
//! py_webauthn (tests/rp, installed by scripts/setup.sh) verifies them against the CA's
//! root as any relying party would.
#![cfg(all(feature = "tpm", target_os = "linux"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../posture-agent/tests/tpm_support/mod.rs"]
#[allow(dead_code)]
mod tpm_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use der::{Decode as _, Encode as _};
use posture_core::jose::b64url_encode;
use posture_core::webauthn::POSTURE_AAGUID;
use posture_test_support::softhsm::{SoftHsm, TOKEN_PIN};
use serde_json::{json, Value};
use tpm_support::Swtpm;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::Certificate;

const RP: &str = "login.example.com";
const ORIGIN: &str = "https://login.example.com";

struct Device {
    swtpm: Swtpm,
    dir: tempfile::TempDir,
    /// More environment for every `posture` run (`SOFTHSM2_CONF`).
    env: Vec<(&'static str, PathBuf)>,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn new_challenge() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).unwrap();
    b64url_encode(&bytes)
}

impl Device {
    fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        Device {
            swtpm: Swtpm::start(),
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn posture(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_posture"))
            .args(args)
            .arg("--config")
            .arg(self.path("config.toml"))
            .env("TCTI", self.swtpm.tcti())
            .env("NO_COLOR", "1")
            .env_remove("TSS2_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.posture(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        out
    }

    fn key_dir(&self) -> String {
        s(&self.path("keys")).to_owned()
    }

    /// Request, begin (EK verified against swtpm's CA unless `unverified`), complete.
    /// Returns the pending and response files.
    fn enroll_until_finish(&self, tag: &str, unverified: bool) -> (PathBuf, PathBuf) {
        let kd = self.key_dir();
        let (req, ch, pending, resp, roots) = (
            self.path(&format!("{tag}-request.json")),
            self.path(&format!("{tag}-challenge.json")),
            self.path(&format!("{tag}-pending.json")),
            self.path(&format!("{tag}-response.json")),
            self.path("ek-roots.pem"),
        );
        std::fs::write(&roots, self.swtpm.ca_bundle()).unwrap();
        self.ok(&["enroll", "request", "--out", s(&req), "--key-dir", &kd]);
        let mut begin = vec![
            "enrollment",
            "begin",
            s(&req),
            "--challenge-out",
            s(&ch),
            "--pending-out",
            s(&pending),
        ];
        if unverified {
            begin.push("--allow-unverified-ek");
        } else {
            begin.extend(["--ek-roots", s(&roots)]);
        }
        self.ok(&begin);
        self.ok(&[
            "enroll",
            "complete",
            s(&ch),
            "--out",
            s(&resp),
            "--key-dir",
            &kd,
        ]);
        (pending, resp)
    }

    /// The whole enrollment with the attestation CA in `ca`; returns the AIK chain file.
    fn enroll_with_ca(&self, ca: &Path, tag: &str) -> PathBuf {
        self.enroll_with_ca_args(ca, tag, &[])
    }

    /// [`Self::enroll_with_ca`] with more `enrollment finish` arguments.
    fn enroll_with_ca_args(&self, ca: &Path, tag: &str, extra: &[&str]) -> PathBuf {
        let (pending, resp) = self.enroll_until_finish(tag, false);
        let chain = self.path(&format!("{tag}-aik-chain.pem"));
        let record = self.path(&format!("{tag}-device.json"));
        let mut args = vec![
            "enrollment",
            "finish",
            "--pending",
            s(&pending),
            s(&resp),
            "--out",
            s(&record),
            "--ca",
            s(ca),
            "--aik-cert-out",
            s(&chain),
        ];
        args.extend(extra);
        let out = self.ok(&args);
        assert!(stderr(&out).contains("EK trust: ca"), "{}", stderr(&out));
        chain
    }

    fn register(&self, chain: &Path, challenge: &str, extra: &[&str]) -> Value {
        let kd = self.key_dir();
        let mut args = vec![
            "webauthn",
            "register",
            "--rp-id",
            RP,
            "--challenge",
            challenge,
            "--aik-chain",
            s(chain),
            "--key-dir",
            &kd,
        ];
        args.extend(extra);
        serde_json::from_slice(&self.ok(&args).stdout).unwrap()
    }

    fn assert(&self, rp_id: &str, credential_id: &str, challenge: &str) -> Output {
        let kd = self.key_dir();
        self.posture(&[
            "webauthn",
            "assert",
            "--rp-id",
            rp_id,
            "--challenge",
            challenge,
            "--credential-id",
            credential_id,
            "--key-dir",
            &kd,
        ])
    }
}

/// A new attestation CA in `dir/name`.
fn new_ca(device: &Device, name: &str) -> PathBuf {
    let ca = device.path(name);
    device.ok(&[
        "enrollment",
        "ca-init",
        s(&ca),
        "--organization",
        "Example Corp",
    ]);
    ca
}

/// The relying party (py_webauthn), or None where it is not installed outside CI.
fn rp_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rp/.venv/bin/python");
    let found = if python.exists() {
        Ok(())
    } else {
        Err(format!(
            "{} is missing (scripts/setup.sh creates it)",
            python.display()
        ))
    };
    posture_test_support::can_run(found).then_some(python)
}

/// SimpleWebAuthn's verifier script, or None where it is not installed outside CI.
fn simplewebauthn() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rp/simplewebauthn");
    let found = if dir.join("node_modules/@simplewebauthn/server").exists() {
        Ok(())
    } else {
        Err(format!(
            "{}/node_modules is missing (scripts/setup.sh installs it)",
            dir.display()
        ))
    };
    posture_test_support::can_run(found).then(|| dir.join("verify.mjs"))
}

/// SimpleWebAuthn's verdict on a registration request (as for [`rp`]).
fn swa(script: &Path, request: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.json");
    std::fs::write(&path, request.to_string()).unwrap();
    let out = Command::new("node")
        .arg(script)
        .arg("register")
        .arg(&path)
        .output()
        .expect("node (scripts/setup.sh installs nodejs)");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            stderr(&out),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(out.status.code() == Some(0), v["ok"] == true, "{v}");
    v
}

/// `request` with its response corrupted in `part` (by the Python helper, with cbor2).
fn tampered(python: &Path, request: &Value, part: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.json");
    std::fs::write(
        &path,
        with(request, "tamper", Value::String(part.into())).to_string(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rp/py_webauthn_rp.py");
    let out = Command::new(python)
        .arg(script)
        .arg("tamper")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    with(
        request,
        "response",
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

/// Runs the relying party's `command` (register or assert) on `request`.
fn rp(python: &Path, command: &str, request: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.json");
    std::fs::write(&path, request.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rp/py_webauthn_rp.py");
    let out = Command::new(python)
        .arg(script)
        .arg(command)
        .arg(&path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            stderr(&out),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(out.status.code() == Some(0), v["ok"] == true, "{v}");
    v
}

fn registration_request(response: &Value, challenge: &str, root_pem: &str) -> Value {
    json!({
        "response": response,
        "challenge": challenge,
        "rp_id": RP,
        "origin": ORIGIN,
        "root_pem": root_pem,
    })
}

fn root_pem(ca: &Path) -> String {
    std::fs::read_to_string(ca.join("root.pem")).unwrap()
}

fn pem_chain(path: &Path) -> Vec<Certificate> {
    Certificate::load_pem_chain(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_registration_and_its_assertion_are_accepted_by_an_independent_relying_party() {
    let Some(python) = rp_python() else { return };
    let Some(simplewebauthn) = simplewebauthn() else {
        return;
    };
    let device = Device::new();
    let ca = new_ca(&device, "ca");
    let chain = device.enroll_with_ca(&ca, "first");
    let root = root_pem(&ca);

    // `--user`: the relying party's user handle, base64url ("user-1").
    for (alg, user) in [("rs256", Some("dXNlci0x")), ("es256", None)] {
        let challenge = new_challenge();
        let mut extra = vec!["--alg", alg];
        if let Some(user) = user {
            extra.extend(["--user", user]);
        }
        let reg = device.register(&chain, &challenge, &extra);
        let request = registration_request(&reg, &challenge, &root);
        let by_swa = swa(&simplewebauthn, &request);
        assert_eq!(by_swa["ok"], true, "{alg}: {by_swa}");
        assert_eq!(by_swa["fmt"], "tpm");
        assert_eq!(
            by_swa["aaguid"],
            posture_core::webauthn::POSTURE_AAGUID_TEXT
        );
        let verified = rp(&python, "register", &request);
        assert_eq!(verified["ok"], true, "{alg}: {verified}");
        assert_eq!(verified["fmt"], "tpm");
        assert_eq!(
            verified["aaguid"],
            posture_core::webauthn::POSTURE_AAGUID_TEXT
        );
        assert_eq!(verified["credential_id"], reg["id"]);
        assert_eq!(verified["user_verified"], false);

        // The assertion, with the key the relying party stored.
        let id = reg["id"].as_str().unwrap();
        let fresh = new_challenge();
        let out = device.assert(RP, id, &fresh);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let assertion: Value = serde_json::from_slice(&out.stdout).unwrap();
        // A credential registered with a user handle returns it, as a discoverable
        // credential does; one registered without returns none.
        match user {
            Some(user) => assert_eq!(assertion["response"]["userHandle"], user),
            None => assert!(assertion["response"].get("userHandle").is_none()),
        }
        let request = json!({
            "response": assertion,
            "challenge": fresh,
            "rp_id": RP,
            "origin": ORIGIN,
            "public_key": verified["public_key"],
        });
        let accepted = rp(&python, "assert", &request);
        assert_eq!(accepted["ok"], true, "{alg}: {accepted}");

        // Replayed: the relying party's next challenge is not the one signed.
        let replay = with(&request, "challenge", Value::String(new_challenge()));
        let refused = rp(&python, "assert", &replay);
        assert_eq!(refused["ok"], false);
        assert!(
            refused["error"].as_str().unwrap().contains("challenge"),
            "{refused}"
        );
    }

    // A user handle longer than WebAuthn allows is refused, and nothing is registered.
    let long = posture_core::jose::b64url_encode(&[7u8; 65]);
    let challenge = new_challenge();
    let kd = device.key_dir();
    let out = device.posture(&[
        "webauthn",
        "register",
        "--rp-id",
        RP,
        "--challenge",
        &challenge,
        "--aik-chain",
        s(&chain),
        "--key-dir",
        &kd,
        "--user",
        &long,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("user handle"), "{}", stderr(&out));
}

/// `v` with `key` set to `value`.
fn with(v: &Value, key: &str, value: Value) -> Value {
    let mut v = v.clone();
    v[key] = value;
    v
}

/// WebAuthn Level 3 §8.3.1, TPM Attestation Statement Certificate Requirements, walked in
/// the order the spec lists them, on the certificate the CA issued; then what relying
/// parties additionally need (chain, no root in x5c, no CRL distribution point).
#[test]
fn the_aik_certificate_meets_webauthn_8_3_1() {
    let device = Device::new();
    let ca = new_ca(&device, "ca");
    let chain = device.enroll_with_ca(&ca, "first");
    meets_webauthn_8_3_1(&device, &ca, "first", &chain);
}

/// The §8.3.1 walk on the chain `chain_file` the CA `ca` issued at enrollment `tag`.
fn meets_webauthn_8_3_1(device: &Device, ca: &Path, tag: &str, chain_file: &Path) {
    let chain = pem_chain(chain_file);
    assert_eq!(chain.len(), 2, "AIK certificate and intermediate, no root");
    let aik = &chain[0].tbs_certificate;
    let ext = |oid: &str| {
        aik.extensions
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .unwrap_or_else(|| panic!("no extension {oid}"))
            .clone()
    };

    // "Version MUST be set to 3."
    assert_eq!(aik.version, x509_cert::Version::V3);
    // "Subject field MUST be set to empty."
    assert!(aik.subject.0.is_empty());
    // "The Subject Alternative Name extension MUST be set as defined in
    // [TPMv2-EK-Profile] section 3.2.9": critical (empty subject), a directoryName with
    // manufacturer, model and version; relying parties read the first entry.
    let san = ext("2.5.29.17");
    assert!(san.critical);
    let san = x509_cert::ext::pkix::SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
    let GeneralName::DirectoryName(dn) = &san.0[0] else {
        panic!("first SAN entry is not a directoryName: {san:?}");
    };
    let attrs: Vec<(String, String)> =
        dn.0.iter()
            .flat_map(|rdn| rdn.0.iter())
            .map(|a| {
                (
                    a.oid.to_string(),
                    String::from_utf8(a.value.value().to_vec()).unwrap(),
                )
            })
            .collect();
    assert_eq!(
        attrs,
        [
            ("2.23.133.2.1".to_owned(), "id:49424D00".to_owned()), // swtpm: IBM
            ("2.23.133.2.2".to_owned(), "swtpm".to_owned()),
            ("2.23.133.2.3".to_owned(), "id:20191023".to_owned()),
        ]
    );
    // The second entry names the device (its enrolled device key's id), for relying
    // parties that ask the posture server about it.
    let GeneralName::UniformResourceIdentifier(uri) = &san.0[1] else {
        panic!("second SAN entry is not a URI: {san:?}");
    };
    let enrolled = posture_core::attestation::EnrolledDevice::from_json(
        &std::fs::read(device.path(&format!("{tag}-device.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        uri.as_str(),
        format!(
            "urn:posture:device:{}",
            posture_core::keys::key_id(&enrolled.device_key().unwrap())
        )
    );
    assert_eq!(san.0.len(), 2);
    // "The Extended Key Usage extension MUST contain the OID 2.23.133.8.3" (first: some
    // relying parties read only the first purpose).
    let eku = ext("2.5.29.37");
    let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap();
    assert_eq!(eku.0[0].to_string(), "2.23.133.8.3");
    // "The Basic Constraints extension MUST have the CA component set to false."
    let bc = ext("2.5.29.19");
    let bc = x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes()).unwrap();
    assert!(!bc.ca);
    // "An Authority Information Access (AIA) extension with entry id-ad-ocsp and a CRL
    // Distribution Point extension are both OPTIONAL": neither is there (SimpleWebAuthn
    // would try to fetch the CRL).
    for absent in ["1.3.6.1.5.5.7.1.1", "2.5.29.31"] {
        assert!(
            !aik.extensions
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.extn_id.to_string() == absent),
            "{absent}"
        );
    }
    // §8.3.2 step "If aik_cert contains an extension with OID 1.3.6.1.4.1.45724.1.1.4
    // (id-fido-gen-ce-aaguid) verify that the value of this extension matches the aaguid
    // in authenticatorData": an OCTET STRING of posture's AAGUID, not critical.
    let aaguid = ext("1.3.6.1.4.1.45724.1.1.4");
    assert!(!aaguid.critical);
    let inner = der::asn1::OctetString::from_der(aaguid.extn_value.as_bytes()).unwrap();
    assert_eq!(inner.as_bytes(), POSTURE_AAGUID);

    // The key is the enrolled AK.
    let device_record: Value =
        serde_json::from_slice(&std::fs::read(device.path(&format!("{tag}-device.json"))).unwrap())
            .unwrap();
    let ak =
        posture_core::attestation::EnrolledDevice::from_json(device_record.to_string().as_bytes())
            .unwrap()
            .ak()
            .unwrap()
            .p256()
            .unwrap();
    let spki = aik.subject_public_key_info.to_der().unwrap();
    use p256::pkcs8::DecodePublicKey as _;
    assert_eq!(p256::PublicKey::from_public_key_der(&spki).unwrap(), ak);

    // The chain: AIK <- intermediate <- root, each signature verified.
    let root = Certificate::load_pem_chain(root_pem(ca).as_bytes()).unwrap();
    verify_signed_by(&chain[0], &chain[1]);
    verify_signed_by(&chain[1], &root[0]);
    assert_eq!(
        chain[1].tbs_certificate.issuer,
        root[0].tbs_certificate.subject
    );
}

fn verify_signed_by(cert: &Certificate, issuer: &Certificate) {
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(
        &issuer
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap(),
    )
    .unwrap();
    let sig = p256::ecdsa::DerSignature::from_bytes(cert.signature.raw_bytes()).unwrap();
    key.verify(&cert.tbs_certificate.to_der().unwrap(), &sig)
        .unwrap();
}

#[test]
fn tampered_attestations_and_foreign_or_incomplete_aik_certificates_are_refused() {
    let Some(python) = rp_python() else { return };
    let Some(simplewebauthn) = simplewebauthn() else {
        return;
    };
    let device = Device::new();
    let ca = new_ca(&device, "ca");
    let chain = device.enroll_with_ca(&ca, "first");
    let root = root_pem(&ca);

    // Untouched, accepted by both (so every refusal below is the tampering's doing).
    let challenge = new_challenge();
    let reg = device.register(&chain, &challenge, &[]);
    let request = registration_request(&reg, &challenge, &root);
    assert_eq!(rp(&python, "register", &request)["ok"], true);
    assert_eq!(swa(&simplewebauthn, &request)["ok"], true);
    // SimpleWebAuthn refuses every tampered statement too (a bad signature is a plain
    // `verified: false`, without a message).
    for (part, why) in [
        ("certInfo", None),
        (
            "pubArea",
            Some("PubArea unique is not same as credentialPublicKey"),
        ),
        (
            "extraData",
            Some("extra data did not equal hashed attestation"),
        ),
        (
            "authData",
            Some("extra data did not equal hashed attestation"),
        ),
    ] {
        let refused = swa(&simplewebauthn, &tampered(&python, &request, part));
        assert_eq!(refused["ok"], false, "{part}: {refused}");
        match why {
            Some(why) => assert!(
                refused["error"].as_str().unwrap_or("").contains(why),
                "{part}: {refused}"
            ),
            None => assert!(refused["error"].is_null(), "{part}: {refused}"),
        }
    }

    for (part, why) in [
        ("certInfo", "signature"),
        ("pubArea", "pubArea"),
        ("extraData", "extra data"),
        ("authData", "extra data"),
    ] {
        let tampered = with(&request, "tamper", Value::String(part.to_owned()));
        let refused = rp(&python, "register", &tampered);
        assert_eq!(refused["ok"], false, "{part}");
        let error = refused["error"].as_str().unwrap().to_lowercase();
        assert!(error.contains(&why.to_lowercase()), "{part}: {error}");
    }

    // An AIK certificate from another CA: the relying party trusts only its own root.
    let other = new_ca(&device, "other-ca");
    let other_chain = device.enroll_with_ca(&other, "second");
    let challenge = new_challenge();
    let reg = device.register(&other_chain, &challenge, &[]);
    let refused = rp(
        &python,
        "register",
        &registration_request(&reg, &challenge, &root),
    );
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("Certificate chain could not be validated"),
        "{refused}"
    );
    let refused = swa(
        &simplewebauthn,
        &registration_request(&reg, &challenge, &root),
    );
    assert_eq!(refused["ok"], false, "{refused}");
    eprintln!(
        "SimpleWebAuthn, AIK certificate of another CA: {}",
        refused["error"]
    );

    // A certificate from the trusted CA's key, but without the AIK purpose.
    let no_eku = device.path("no-eku.pem");
    std::fs::write(&no_eku, aik_chain_without_eku(&ca, &pem_chain(&chain))).unwrap();
    let challenge = new_challenge();
    let reg = device.register(&no_eku, &challenge, &[]);
    let refused = rp(
        &python,
        "register",
        &registration_request(&reg, &challenge, &root),
    );
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("missing extension <ObjectIdentifier(oid=2.5.29.37"),
        "{refused}"
    );
    let refused = swa(
        &simplewebauthn,
        &registration_request(&reg, &challenge, &root),
    );
    assert_eq!(refused["ok"], false, "{refused}");
    eprintln!(
        "SimpleWebAuthn, AIK certificate without the EKU: {}",
        refused["error"]
    );
}

/// An AIK certificate like the CA's, for the same AK, signed by the same intermediate key,
/// but with no extended key usage.
fn aik_chain_without_eku(ca: &Path, chain: &[Certificate]) -> String {
    use der::EncodePem as _;
    use p256::pkcs8::DecodePrivateKey as _;
    use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(
        &std::fs::read_to_string(ca.join("intermediate-key.pem")).unwrap(),
    )
    .unwrap();
    let original = &chain[0].tbs_certificate;
    let mut builder = CertificateBuilder::new(
        Profile::Leaf {
            issuer: chain[1].tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        x509_cert::serial_number::SerialNumber::new(&[0x42; 16]).unwrap(),
        original.validity,
        x509_cert::name::Name::default(),
        original.subject_public_key_info.clone(),
        &key,
    )
    .unwrap();
    for e in original.extensions.as_ref().unwrap() {
        if ["2.5.29.17", "1.3.6.1.4.1.45724.1.1.4"].contains(&e.extn_id.to_string().as_str()) {
            builder.add_extension(&RawExtension(e.clone())).unwrap();
        }
    }
    let cert = builder.build::<p256::ecdsa::DerSignature>().unwrap();
    let mut pem = cert.to_pem(der::pem::LineEnding::LF).unwrap();
    pem.push_str(&chain[1].to_pem(der::pem::LineEnding::LF).unwrap());
    pem
}

/// Copies an extension as it is into a certificate being built.
struct RawExtension(x509_cert::ext::Extension);

impl der::oid::AssociatedOid for RawExtension {
    // Never used: `to_extension` below returns the original OID.
    const OID: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.2.3");
}

impl der::Encode for RawExtension {
    fn encoded_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.0.extn_value.as_bytes().len())
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(self.0.extn_value.as_bytes())
    }
}

impl x509_cert::ext::AsExtension for RawExtension {
    fn critical(&self, _: &x509_cert::name::Name, _: &[x509_cert::ext::Extension]) -> bool {
        self.0.critical
    }
    fn to_extension(
        &self,
        _: &x509_cert::name::Name,
        _: &[x509_cert::ext::Extension],
    ) -> Result<x509_cert::ext::Extension, der::Error> {
        Ok(self.0.clone())
    }
}

#[test]
fn no_aik_certificate_for_an_unverified_ek_or_a_response_that_did_not_activate() {
    let device = Device::new();
    let ca = new_ca(&device, "ca");

    // EK accepted without a CA (trust on first use): enrollment as `tpm-unverified`, which
    // an attestation CA must not certify. Nothing is written, the pending file is kept.
    let (pending, resp) = device.enroll_until_finish("tofu", true);
    let (out_device, chain) = (device.path("tofu-device.json"), device.path("tofu-aik.pem"));
    let out = device.posture(&[
        "enrollment",
        "finish",
        "--pending",
        s(&pending),
        s(&resp),
        "--out",
        s(&out_device),
        "--ca",
        s(&ca),
        "--aik-cert-out",
        s(&chain),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no AIK certificate issued"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("unverified"), "{}", stderr(&out));
    assert!(!chain.exists() && !out_device.exists() && pending.exists());

    // A response that does not answer this challenge (another enrollment's activation):
    // the AK was not proved to share the EK's TPM, nothing is issued.
    let (pending_a, _) = device.enroll_until_finish("a", false);
    let (_, resp_b) = device.enroll_until_finish("b", false);
    let chain = device.path("ab-aik.pem");
    let out = device.posture(&[
        "enrollment",
        "finish",
        "--pending",
        s(&pending_a),
        s(&resp_b),
        "--out",
        s(&device.path("ab-device.json")),
        "--ca",
        s(&ca),
        "--aik-cert-out",
        s(&chain),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did not recover the credential"),
        "{}",
        stderr(&out)
    );
    assert!(!chain.exists());
}

#[test]
fn an_aik_certificate_for_another_ak_an_unknown_rp_and_bad_challenges_are_clear_errors() {
    let a = Device::new();
    let b = Device::new();
    let ca = new_ca(&a, "ca");
    let chain_a = a.enroll_with_ca(&ca, "first");
    let chain_b = b.enroll_with_ca(&ca, "first");

    // B's AIK certificate does not certify A's AK: A refuses to build a statement with it.
    let kd = a.key_dir();
    let out = a.posture(&[
        "webauthn",
        "register",
        "--rp-id",
        RP,
        "--challenge",
        &new_challenge(),
        "--aik-chain",
        s(&chain_b),
        "--key-dir",
        &kd,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("another attestation key"),
        "{}",
        stderr(&out)
    );

    // A credential answers only the relying party it was registered for.
    let reg = a.register(&chain_a, &new_challenge(), &[]);
    let id = reg["id"].as_str().unwrap();
    let out = a.assert("evil.example.net", id, &new_challenge());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no credential") && stderr(&out).contains("evil.example.net"),
        "{}",
        stderr(&out)
    );

    // Base64url starts with `-` one time in 64: such ids and challenges are values, not
    // options (regression: clap took `--credential-id -i...` for an unknown option).
    let hyphen = format!("-{}", &new_challenge()[1..]);
    let reg = a.register(&chain_a, &hyphen, &[]);
    assert!(reg["id"].is_string());
    // Not `-` + id[1..]: one id in 64 already starts with `-`, and then that is the
    // registered credential (regression: this test failed in CI that way).
    let unknown_id = format!("-{}", "A".repeat(id.len() - 1));
    assert_ne!(unknown_id, id);
    let out = a.assert(RP, &unknown_id, &hyphen);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no credential"), "{}", stderr(&out));

    // Challenges and relying party ids a browser would refuse.
    for (rp, challenge, why) in [
        (RP, "c2hvcnQ", "challenge is 5 bytes"),
        (RP, "not base64!", "base64url"),
        (
            "Login.Example.com",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "lowercase DNS name",
        ),
    ] {
        let out = a.posture(&[
            "webauthn",
            "register",
            "--rp-id",
            rp,
            "--challenge",
            challenge,
            "--aik-chain",
            s(&chain_a),
            "--key-dir",
            &kd,
        ]);
        assert_eq!(out.status.code(), Some(2), "{rp} {challenge}");
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
}

#[test]
fn a_registration_for_another_rp_or_origin_is_refused_by_the_relying_party() {
    let Some(python) = rp_python() else { return };
    let device = Device::new();
    let ca = new_ca(&device, "ca");
    let chain = device.enroll_with_ca(&ca, "first");
    let challenge = new_challenge();
    let reg = device.register(
        &chain,
        &challenge,
        &["--origin", "https://phish.example.net"],
    );
    let refused = rp(
        &python,
        "register",
        &registration_request(&reg, &challenge, &root_pem(&ca)),
    );
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"].as_str().unwrap().contains("origin"),
        "{refused}"
    );

    // Made for another relying party id: the rpIdHash differs.
    let kd = device.key_dir();
    let out = device.ok(&[
        "webauthn",
        "register",
        "--rp-id",
        "other.example.org",
        "--origin",
        ORIGIN,
        "--challenge",
        &challenge,
        "--aik-chain",
        s(&chain),
        "--key-dir",
        &kd,
    ]);
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused = rp(
        &python,
        "register",
        &registration_request(&reg, &challenge, &root_pem(&ca)),
    );
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("rp id"),
        "{refused}"
    );
}

/// webauthn-rs (0.4 to 0.6, every release) refuses every `tpm` attestation whose `alg` is
/// not the insecure RS1: its `only_hash_from_type` hashes attToBeSigned for RS1 only and
/// answers `COSEKeyInvalidType` for ES256 and RS256 (kanidm/webauthn-rs#535), and RS1
/// signatures are then refused as insecure. This pins that refusal, on a registration
/// py_webauthn accepts above, so the day webauthn-rs verifies SHA-256 TPM attestations
/// this test fails and becomes the acceptance test. Everything webauthn-rs checks before
/// the hash (CBOR, authenticator data, client data, challenge, origin, pubArea against the
/// credential key) passes.
#[test]
fn webauthn_rs_refuses_every_sha256_tpm_attestation_kanidm_webauthn_rs_535() {
    use webauthn_rs_core::error::WebauthnError;
    use webauthn_rs_core::proto::{
        AttestationCaListBuilder, AttestationConveyancePreference, RegisterPublicKeyCredential,
        UserVerificationPolicy,
    };
    use webauthn_rs_core::WebauthnCore;

    let device = Device::new();
    let ca = new_ca(&device, "ca");
    let chain = device.enroll_with_ca(&ca, "first");

    let rp = WebauthnCore::new_unsafe_experts_only(
        "Example",
        RP,
        vec![url::Url::parse(ORIGIN).unwrap()],
        std::time::Duration::from_secs(60),
        None,
        None,
    );
    let mut cas = AttestationCaListBuilder::new();
    cas.insert_device_pem(
        root_pem(&ca).as_bytes(),
        uuid::Uuid::from_bytes(POSTURE_AAGUID),
        "posture (TPM)".into(),
        Default::default(),
    )
    .unwrap();
    let cas = cas.build();
    let builder = rp
        .new_challenge_register_builder(b"user-1", "alice", "Alice")
        .unwrap()
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(UserVerificationPolicy::Discouraged_DO_NOT_USE);
    let (creation, state) = rp.generate_challenge_register(builder).unwrap();
    let challenge = b64url_encode(creation.public_key.challenge.as_ref());

    let reg = device.register(&chain, &challenge, &[]);
    let reg: RegisterPublicKeyCredential = serde_json::from_value(reg).unwrap();
    let result = rp.register_credential(&reg, &state, Some(&cas));
    assert!(
        matches!(result, Err(WebauthnError::COSEKeyInvalidType)),
        "webauthn-rs changed its answer to a SHA-256 tpm attestation (see \
         kanidm/webauthn-rs#535): {result:?}"
    );

    // The statement is read up to that step: webauthn-rs parses it, checks the client
    // data, and compares pubArea with the credential key before it hashes; a registration
    // answering another challenge is refused earlier, for that.
    let (_, other_state) = rp
        .generate_challenge_register(
            rp.new_challenge_register_builder(b"user-1", "alice", "Alice")
                .unwrap()
                .attestation(AttestationConveyancePreference::Direct),
        )
        .unwrap();
    let result = rp.register_credential(&reg, &other_state, Some(&cas));
    assert!(
        matches!(result, Err(WebauthnError::MismatchedChallenge)),
        "{result:?}"
    );
}

/// `--bind-pcrs`: the credential key's TPM policy requires the PCR values of registration.
/// PCR 16 (debug) and 23 (application) can be extended by anyone, so the test changes one.
#[test]
fn a_credential_bound_to_pcrs_signs_only_while_they_are_unchanged() {
    let Some(python) = rp_python() else { return };
    let device = Device::new();
    let ca = new_ca(&device, "ca");
    let chain = device.enroll_with_ca(&ca, "first");
    let challenge = new_challenge();
    let reg = device.register(&chain, &challenge, &["--bind-pcrs", "16,23"]);
    let verified = rp(
        &python,
        "register",
        &registration_request(&reg, &challenge, &root_pem(&ca)),
    );
    assert_eq!(verified["ok"], true, "{verified}");
    let id = reg["id"].as_str().unwrap();

    let fresh = new_challenge();
    let out = device.assert(RP, id, &fresh);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let request = json!({
        "response": serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        "challenge": fresh,
        "rp_id": RP,
        "origin": ORIGIN,
        "public_key": verified["public_key"],
    });
    assert_eq!(rp(&python, "assert", &request)["ok"], true);

    let extend = Command::new("tpm2_pcrextend")
        .arg(format!("23:sha256={}", "11".repeat(32)))
        .env("TPM2TOOLS_TCTI", device.swtpm.tcti())
        .output()
        .expect("tpm2_pcrextend (scripts/setup.sh installs tpm2-tools)");
    assert!(extend.status.success(), "{}", stderr(&extend));
    let out = device.assert(RP, id, &new_challenge());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bound to the values of PCRs [16, 23]") && err.contains("register"),
        "{err}"
    );
    assert!(
        !err.contains("ERROR:esys"),
        "libtss2's log is kept quiet: {err}"
    );
    // An unbound credential on the same TPM still signs.
    let unbound = device.register(&chain, &new_challenge(), &[]);
    let out = device.assert(RP, unbound["id"].as_str().unwrap(), &new_challenge());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// The issue's "CA keys ... in a PKCS#11 token": the intermediate key generated in a
/// SoftHSM2 token signs the AIK certificate; the chain meets §8.3.1 exactly as the file
/// key's does, `openssl verify` chains it to the root, and py_webauthn accepts a
/// registration with it.
#[test]
fn a_ca_key_in_a_pkcs11_token_issues_aik_certificates_relying_parties_accept() {
    let Some(python) = rp_python() else { return };
    let Some(hsm) = SoftHsm::new() else { return };
    let mut device = Device::new();
    device.env.push(("SOFTHSM2_CONF", hsm.conf()));
    let uri = hsm.uri("intermediate", &hsm.dir.path().join("pin"));
    let ca = device.path("ca");
    let out = device.ok(&[
        "enrollment",
        "ca-init",
        s(&ca),
        "--organization",
        "Example Corp",
        "--pkcs11",
        &uri,
    ]);
    assert!(stderr(&out).contains("PKCS#11 token"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("generated the intermediate key object \"intermediate\""),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(TOKEN_PIN));
    // The intermediate key is in the token only; the root key is a file to move offline.
    assert!(!ca.join("intermediate-key.pem").exists());
    assert!(ca.join("root-key.pem").exists());
    // Without the URI, the CA says where its key must be.
    let (pending, resp) = device.enroll_until_finish("nokey", false);
    let out = device.posture(&[
        "enrollment",
        "finish",
        "--pending",
        s(&pending),
        s(&resp),
        "--out",
        s(&device.path("nokey-device.json")),
        "--ca",
        s(&ca),
        "--aik-cert-out",
        s(&device.path("nokey-chain.pem")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("PKCS#11 token"), "{}", stderr(&out));

    let chain = device.enroll_with_ca_args(&ca, "token", &["--pkcs11", &uri]);
    meets_webauthn_8_3_1(&device, &ca, "token", &chain);

    // An independent verifier: OpenSSL chains the AIK certificate to the root.
    let certs = pem_chain(&chain);
    let (aik, inter) = (device.path("aik.pem"), device.path("inter.pem"));
    use der::EncodePem as _;
    std::fs::write(&aik, certs[0].to_pem(der::pem::LineEnding::LF).unwrap()).unwrap();
    std::fs::write(&inter, certs[1].to_pem(der::pem::LineEnding::LF).unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca.join("root.pem"))
        .arg("-untrusted")
        .arg(&inter)
        .arg(&aik)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));

    // The relying party accepts a registration with the token-signed chain.
    let challenge = new_challenge();
    let reg = device.register(&chain, &challenge, &["--alg", "es256"]);
    let verified = rp(
        &python,
        "register",
        &registration_request(&reg, &challenge, &root_pem(&ca)),
    );
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["fmt"], "tpm");
}

/// Wrong PIN, a missing key, an unreadable or group-readable PIN file, a PIN in the URI:
/// clear errors, no CA created, no AIK certificate and no device record written, and the
/// pending enrollment kept (it finishes once the URI is right).
#[test]
fn pkcs11_ca_key_errors_are_clear_and_issue_nothing() {
    let Some(hsm) = SoftHsm::new() else { return };
    let mut device = Device::new();
    device.env.push(("SOFTHSM2_CONF", hsm.conf()));
    device
        .env
        .push(("POSTURE_TEST_CA_PIN", PathBuf::from(TOKEN_PIN)));
    let good_pin = hsm.dir.path().join("pin");
    let wrong_pin = hsm.pin_file("wrong-pin", "111111");
    let ca_init = |dir: &Path, uri: &str| {
        device.posture(&[
            "enrollment",
            "ca-init",
            s(dir),
            "--organization",
            "Example Corp",
            "--pkcs11",
            uri,
        ])
    };

    // ca-init: a wrong PIN creates nothing.
    let ca = device.path("ca");
    let out = ca_init(&ca, &hsm.uri("intermediate", &wrong_pin));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the PIN is incorrect"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("111111"));
    assert!(!ca.exists());
    device.ok(&[
        "enrollment",
        "ca-init",
        s(&ca),
        "--organization",
        "Example Corp",
        "--pkcs11",
        &hsm.uri("intermediate", &good_pin),
    ]);
    // A second ca-init into the same directory is refused.
    let out = ca_init(&ca, &hsm.uri("intermediate", &good_pin));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));

    let (pending, resp) = device.enroll_until_finish("bad", false);
    let (record, chain) = (device.path("bad-device.json"), device.path("bad-chain.pem"));
    let finish = |uri: &str| {
        device.posture(&[
            "enrollment",
            "finish",
            "--pending",
            s(&pending),
            s(&resp),
            "--out",
            s(&record),
            "--ca",
            s(&ca),
            "--aik-cert-out",
            s(&chain),
            "--pkcs11",
            uri,
        ])
    };
    let group_readable = hsm.pin_file("group-pin", TOKEN_PIN);
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&group_readable, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let missing_pin = hsm.dir.path().join("no-such-pin");
    let env_uri = format!(
        "pkcs11:token=posture-ca;object=intermediate?module-path={}&pin-source=env:POSTURE_TEST_CA_PIN",
        hsm.module.display()
    );
    let in_uri = format!(
        "pkcs11:token=posture-ca;object=intermediate?module-path={}&pin-value={TOKEN_PIN}",
        hsm.module.display()
    );
    for (uri, says) in [
        (hsm.uri("intermediate", &wrong_pin), "the PIN is incorrect"),
        (
            hsm.uri("no-such-key", &good_pin),
            "no EC private key object \"no-such-key\" in token \"posture-ca\"",
        ),
        (hsm.uri("intermediate", &missing_pin), "no-such-pin"),
        (hsm.uri("intermediate", &group_readable), "group-pin"),
        (in_uri, "pin-value is refused"),
        (
            env_uri.replace("POSTURE_TEST_CA_PIN", "POSTURE_TEST_NO_PIN"),
            "the PIN environment variable POSTURE_TEST_NO_PIN is not set",
        ),
    ] {
        let out = finish(&uri);
        assert_eq!(out.status.code(), Some(2), "{uri}");
        let err = stderr(&out);
        assert!(err.contains(says), "{uri}: {err}");
        assert!(!err.contains(TOKEN_PIN), "{err}");
        assert!(!record.exists() && !chain.exists(), "{uri}");
        assert!(pending.exists());
    }
    // Right URI (the PIN from the environment): the same pending enrollment finishes,
    // with its AIK certificate.
    let out = finish(&env_uri);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(pem_chain(&chain).len(), 2);
}
