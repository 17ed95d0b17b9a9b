//! `posture cert --out DIR`: the device's short-lived client certificate from
//! posture-server, for TLS clients (curl, git, ssh through a proxy; see docs/proxies.md).
//!
//! The certificate is asked for with a CSR signed by the device key, bound to a fresh
//! nonce ([`posture_core::devcert::build_csr`]); the server issues one only while the
//! device is compliant. The daemon keeps a current one in its state directory
//! ([`renew_if_due`]); `posture cert` uses that one while it has more than a third of
//! its lifetime left, else asks the server itself.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};
use posture_core::devcert;
use posture_core::keys::{key_id, KeyAssurance, Signer};

use crate::server_client::{self, ServerError};

/// The certificate in the state directory.
pub const CERT_FILE: &str = "device-cert.pem";
/// The device CA's certificate in the state directory.
pub const CA_FILE: &str = "device-ca.pem";

/// `posture cert` arguments.
#[derive(Debug, clap::Args)]
pub struct CertArgs {
    /// Write `cert.pem`, `ca.pem` and `key.pem` into this directory (created 0700):
    /// the software key, or the TPM key's wrapped blob for the tpm2 OpenSSL provider
    /// (then with `key.txt` saying how to use it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The posture-server (default: from `[daemon] server_url`).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Trust this CA certificate (PEM) for the server's TLS certificate.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Ask the server for a new certificate even if the stored one is still fresh.
    #[arg(long)]
    renew: bool,
    /// Key directory (default: the state directory's keys/).
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
}

/// The server's base URL from a `server_url` that ends in `/v1/evidence` (or a base URL).
pub fn base_url(server_url: &str) -> String {
    let url = server_url.trim_end_matches('/');
    url.strip_suffix("/v1/evidence")
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_owned()
}

/// Asks `base` for a certificate for `signer`'s key: a challenge, a CSR bound to it,
/// `POST /v1/device-certificate`. Returns `(certificate PEM, CA PEM)`.
pub async fn request(
    client: &reqwest::Client,
    base: &str,
    signer: &dyn Signer,
) -> Result<(String, String), ServerError> {
    let challenge = server_client::challenge(client, &format!("{base}/v1/challenge")).await?;
    let csr = devcert::build_csr(signer, &challenge.nonce)
        .and_then(|der| devcert::csr_pem(&der))
        .map_err(|e| ServerError::Protocol(format!("cannot make the CSR: {e}")))?;
    let answer = server_client::post_json(
        client,
        &format!("{base}/v1/device-certificate"),
        &serde_json::json!({ "device_id": key_id(&signer.public_key()), "csr": csr }),
    )
    .await?;
    let field = |name: &str| {
        answer
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ServerError::Protocol(format!("no {name} in the answer")))
    };
    Ok((field("certificate")?, field("ca")?))
}

/// Stores a certificate and the CA in `state_dir` (0600 each).
pub fn store(state_dir: &Path, cert: &str, ca: &str) -> std::io::Result<()> {
    posture_core::files::write_private(&state_dir.join(CA_FILE), ca.as_bytes())?;
    posture_core::files::write_private(&state_dir.join(CERT_FILE), cert.as_bytes())
}

/// Whether the stored certificate is missing, unreadable, or past 2/3 of its lifetime.
pub fn due(state_dir: &Path, now: SystemTime) -> bool {
    let Ok(pem) = std::fs::read(state_dir.join(CERT_FILE)) else {
        return true;
    };
    let Ok((not_before, not_after)) = devcert::validity_of(&pem) else {
        return true;
    };
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    now >= not_before + lifetime * 2 / 3
}

/// The daemon's renewal: when the stored certificate is due, asks for a new one. A
/// refusal (the device is not compliant) is logged; the old certificate runs out.
pub async fn renew_if_due(
    client: &reqwest::Client,
    base: &str,
    signer: &dyn Signer,
    state_dir: &Path,
) {
    if !due(state_dir, SystemTime::now()) {
        return;
    }
    match request(client, base, signer).await {
        Ok((cert, ca)) => match store(state_dir, &cert, &ca) {
            Ok(()) => tracing::info!("device certificate renewed"),
            Err(e) => tracing::error!(error = %e, "cannot store the device certificate"),
        },
        Err(e) => tracing::warn!(error = %e, "no device certificate"),
    }
}

/// A TPM key: `key.pem` as `TSS2 PRIVATE KEY` (what the tpm2 OpenSSL provider loads)
/// and `key.txt` saying how to use it.
#[cfg(all(feature = "tpm", target_os = "linux"))]
fn write_tpm_key(blob: &Path, write: &dyn Fn(&str, &[u8]) -> Result<()>) -> Result<()> {
    let pem = posture_agent::tpm::tss2_private_key_pem(blob)
        .with_context(|| format!("cannot read the TPM key blob {}", blob.display()))?;
    write("key.pem", pem.as_bytes())?;
    write("key.txt", TPM_KEY_TXT.as_bytes())
}

/// A Windows Platform Crypto Provider key: no file to give, only its provider and name
/// (`key_path`'s last component, see `posture_agent::pcp`).
#[cfg(windows)]
fn write_tpm_key(key_path: &Path, write: &dyn Fn(&str, &[u8]) -> Result<()>) -> Result<()> {
    let name = key_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = format!(
        "The private key of cert.pem is in this device's TPM and never leaves it: it is the\n\
         key {name:?} of the Microsoft Platform Crypto Provider (CNG), in the key store of\n\
         the user posture ran as. There is no key file; programs that use CNG keys can use it\n\
         by that provider and key name.\n"
    );
    write("key.txt", text.as_bytes())
}

#[cfg(not(any(all(feature = "tpm", target_os = "linux"), windows)))]
fn write_tpm_key(_blob: &Path, write: &dyn Fn(&str, &[u8]) -> Result<()>) -> Result<()> {
    write("key.txt", TPM_KEY_TXT.as_bytes())
}

#[cfg(not(windows))]
const TPM_KEY_TXT: &str =
    "The private key of cert.pem is in this device's TPM and never leaves it.\n\
key.pem is its TPM-wrapped blob (TSS2 PRIVATE KEY): OpenSSL 3 uses it through the tpm2\n\
provider (Debian/Ubuntu: apt install tpm2-openssl), e.g.\n\
  OPENSSL_CONF=tpm2-openssl.cnf curl --cert cert.pem --key key.pem https://app.example.com/\n\
with an OpenSSL config that activates the default and tpm2 providers, and\n\
TPM2OPENSSL_TCTI when the TPM is not /dev/tpmrm0. See docs/proxies.md.\n";

/// Runs `posture cert`.
pub fn run(config: posture_agent::Config, args: CertArgs) -> Result<u8> {
    let agent = posture_agent::Agent::new(config, args.key_dir.as_deref())?;
    let state_dir = agent.paths.state_dir.clone();
    let key = crate::cmd_key::open_key(&agent, false)?;
    let server = args
        .server
        .clone()
        .or_else(|| agent.config.daemon.server_url.clone());
    if args.renew || due(&state_dir, SystemTime::now()) {
        let Some(server) = server else {
            bail!("no fresh certificate stored and no server: give --server URL or set [daemon] server_url");
        };
        let ca_pem = match &args.ca_cert {
            Some(path) => Some(
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            ),
            None => None,
        };
        let client = server_client::client(ca_pem.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP runtime")?;
        let (cert, ca) =
            runtime.block_on(request(&client, &base_url(&server), key.signer.as_ref()))?;
        posture_core::files::create_private_dir(&state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        store(&state_dir, &cert, &ca)
            .with_context(|| format!("cannot store the certificate in {}", state_dir.display()))?;
    }
    let read = |name: &str| {
        let path = state_dir.join(name);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let (cert, ca) = (read(CERT_FILE)?, read(CA_FILE)?);
    let (_, not_after) = devcert::validity_of(&cert)?;
    let out = &args.out;
    posture_core::files::create_private_dir(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        posture_core::files::write_private(&path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write("cert.pem", &cert)?;
    write("ca.pem", &ca)?;
    if key.assurance() == KeyAssurance::Software {
        // The software key file is PKCS#8 PEM: what curl, git and OpenSSL read.
        let pem = zeroize::Zeroizing::new(
            std::fs::read(&key.path)
                .with_context(|| format!("cannot read the key {}", key.path.display()))?,
        );
        write("key.pem", &pem)?;
        eprintln!(
            "posture: the key is a software key: {} is a copy of it (0600)",
            out.join("key.pem").display()
        );
    } else {
        write_tpm_key(&key.path, &write)?;
        #[cfg(not(windows))]
        eprintln!(
            "posture: the key is in the TPM: {} is its TPM-wrapped blob for the tpm2 OpenSSL \
             provider (see {})",
            out.join("key.pem").display(),
            out.join("key.txt").display()
        );
        #[cfg(windows)]
        eprintln!(
            "posture: the key is in the TPM, behind the Microsoft Platform Crypto Provider; \
             there is no key file (see {})",
            out.join("key.txt").display()
        );
    }
    eprintln!(
        "posture: certificate valid until {} written to {}",
        humantime::format_rfc3339_seconds(not_after),
        out.join("cert.pem").display()
    );
    Ok(crate::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_certificate_is_due_when_missing_or_past_two_thirds_of_its_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let now = SystemTime::now();
        assert!(due(state, now), "no certificate yet");
        let ca = devcert::DeviceCa::load_or_create(&state.join("ca")).unwrap();
        let key =
            posture_core::keys::software::SoftwareKey::load_or_create(&state.join("k")).unwrap();
        // Issued now for 3 h (+5 min backdating): due after about 2 h.
        let der = ca
            .issue(
                &devcert::Subject {
                    device_id: "dev",
                    key_assurance: "software",
                    public_key: &key.public_key(),
                    lifetime: Duration::from_secs(3 * 3600),
                },
                now,
            )
            .unwrap();
        let pem = devcert::certificate_pem(&der).unwrap();
        store(state, &pem, &ca.cert_pem().unwrap()).unwrap();
        assert!(!due(state, now));
        assert!(!due(state, now + Duration::from_secs(3600)));
        assert!(due(state, now + Duration::from_secs(2 * 3600)));
        std::fs::write(state.join(CERT_FILE), "garbage").unwrap();
        assert!(due(state, now), "unreadable: ask again");
    }

    #[test]
    fn the_base_url_comes_from_server_url() {
        assert_eq!(
            base_url("https://p.example/v1/evidence"),
            "https://p.example"
        );
        assert_eq!(base_url("https://p.example/"), "https://p.example");
    }
}
