//! `posture enroll --server URL --token T`: the whole enrollment against a posture-server,
//! then the first evidence, so the device shows up at once.
//!
//! With a TPM device key: the enrollment request (EK, EK certificate, AK) →
//! `POST /v1/enroll/tpm/begin` → `TPM2_ActivateCredential` and `TPM2_Certify` →
//! `POST /v1/enroll/tpm/finish`. With a software key (where the server allows it): a
//! challenge, evidence bound to it as proof of possession → `POST /v1/enroll/software`.

use std::path::Path;

use anyhow::{Context as _, Result};
use posture_agent::sign::sign_evidence;
use posture_agent::{Agent, Config};
use posture_core::evidence::EvidenceOptions;
use posture_core::jose::Jwk;
use posture_core::keys::KeyAssurance;

use crate::server_client::{self, Challenge};

/// Runs the enrollment; exit 0 when enrolled (whatever the first decision says).
pub fn run(
    config: Config,
    server: &str,
    token: &str,
    ca_pem: Option<&[u8]>,
    key_dir: Option<&Path>,
) -> Result<u8> {
    let base = server.trim_end_matches('/').to_owned();
    let agent = Agent::new(config, key_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    let client = server_client::client(ca_pem)?;
    let tpm = {
        let key = agent.open_key(false)?;
        if let Some(reason) = &key.fallback_reason {
            eprintln!("posture: the TPM is not usable ({reason}); enrolling the software key");
        }
        key.assurance() != KeyAssurance::Software
    };
    let enrolled = if tpm {
        let request =
            crate::cmd_enroll::device::request(&agent.paths.key_dir, agent.config.key.ek)?;
        let begun = runtime.block_on(server_client::post_json(
            &client,
            &format!("{base}/v1/enroll/tpm/begin"),
            &serde_json::json!({ "token": token, "request": request }),
        ))?;
        let enrollment_id = begun
            .get("enrollment_id")
            .and_then(|v| v.as_str())
            .context("the server sent no enrollment_id")?
            .to_owned();
        let challenge = serde_json::from_value(
            begun
                .get("challenge")
                .cloned()
                .context("the server sent no challenge")?,
        )
        .context("invalid enrollment challenge")?;
        let response = crate::cmd_enroll::device::complete(&agent.paths.key_dir, &challenge)?;
        runtime.block_on(server_client::post_json(
            &client,
            &format!("{base}/v1/enroll/tpm/finish"),
            &serde_json::json!({ "enrollment_id": enrollment_id, "response": response }),
        ))?
    } else {
        let key = agent.open_key(false)?;
        let challenge = runtime.block_on(server_client::challenge(
            &client,
            &format!("{base}/v1/challenge"),
        ))?;
        let proof = evidence(&agent, &key, &challenge)?;
        let jwk = Jwk::from_public_key(&key.signer.public_key());
        runtime.block_on(server_client::post_json(
            &client,
            &format!("{base}/v1/enroll/software"),
            &serde_json::json!({ "token": token, "jwk": jwk, "proof": proof }),
        ))?
    };
    let field = |name: &str| {
        enrolled
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    eprintln!(
        "enrolled with {base} as device {} (owner {}, key assurance {}, EK trust {})",
        field("device_id"),
        field("owner"),
        field("key_assurance"),
        field("ek_trust")
    );
    // The first evidence, so the server knows this device's state right away.
    let key = agent.open_key(tpm)?;
    let accepted = runtime.block_on(async {
        let challenge = server_client::challenge(&client, &format!("{base}/v1/challenge")).await?;
        let token = evidence(&agent, &key, &challenge).map_err(|e| {
            server_client::ServerError::Protocol(format!("cannot sign evidence: {e:#}"))
        })?;
        server_client::post_evidence(&client, &format!("{base}/v1/evidence"), &token).await
    })?;
    let status = accepted
        .get("status")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    eprintln!("first evidence accepted: {status}");
    eprintln!(
        "to keep it fresh, run `posture daemon` with\n  [daemon]\n  server_url = \"{base}/v1/evidence\""
    );
    println!("{}", field("device_id"));
    Ok(crate::EXIT_OK)
}

/// Collects and signs evidence bound to `challenge`.
fn evidence(
    agent: &Agent,
    key: &posture_agent::key::DeviceKey,
    challenge: &Challenge,
) -> Result<String> {
    let report = agent.collect(&[])?;
    let options = EvidenceOptions {
        nonce: Some(challenge.nonce.clone()),
        audience: Some(challenge.audience.clone()),
        ..EvidenceOptions::default()
    };
    let signed = sign_evidence(key, &report, &options, &agent.config.key.quote_pcrs, None)?;
    Ok(signed.token)
}
