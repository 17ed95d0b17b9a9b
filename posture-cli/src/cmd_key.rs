//! `posture key`: the device key's public half, id and assurance; and where keys live.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::ValueEnum;
use posture_agent::{Agent, Config, DeviceKey};
use posture_core::keys::{key_id, Jwk};

/// Output format of a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyFormat {
    /// A JWK (RFC 7517) with `kid`.
    Jwk,
    /// A PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`).
    Pem,
}

/// `posture key` arguments.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// Public key format.
    #[arg(long, value_enum, default_value = "jwk")]
    format: KeyFormat,
    /// Print kid, assurance, JWK and PEM as one JSON object.
    #[arg(long)]
    json: bool,
    /// Key directory (default: the state directory's keys/: /var/lib/posture/keys as root,
    /// else ~/.local/share/posture/keys).
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
}

/// Opens the device key as `[key]` says; a software key standing in for an unusable TPM
/// is announced on stderr with what to do about it.
pub fn open_key(agent: &Agent, with_ak: bool) -> Result<DeviceKey> {
    let key = agent.open_key(with_ak)?;
    if let (Some(reason), Some(fix)) = (&key.fallback_reason, &key.fallback_fix) {
        eprintln!("posture: warning: signing with a software key, the TPM is not usable: {reason}");
        eprintln!("posture: fix: {fix}");
    }
    Ok(key)
}

/// Runs `posture key`: the key `[key]` selects (the TPM key when usable).
pub fn run(config: Config, args: KeyArgs) -> Result<u8> {
    let agent = Agent::new(config, args.key_dir.as_deref())?;
    let key = open_key(&agent, false)?;
    let (format, json) = (args.format, args.json);
    let public = key.signer.public_key();
    let kid = key_id(&public);
    let jwk = Jwk::from_public_key(&public);
    let tpm = key.tpm_claims();
    let mut out = std::io::stdout().lock();
    if json {
        let pem = public_pem(&public)?;
        let mut value = serde_json::json!({
            "kid": kid,
            "assurance": key.assurance(),
            "jwk": jwk,
            "pem": pem,
            "path": key.path,
        });
        if let Some(tpm) = &tpm {
            value["tpm"] = serde_json::json!({
                "manufacturer": tpm.manufacturer,
                "software_tpm": tpm.software_tpm,
            });
        }
        if let Some(reason) = &key.fallback_reason {
            value["key_fallback_reason"] = reason.as_str().into();
        }
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(crate::EXIT_OK);
    }
    match format {
        KeyFormat::Jwk => {
            serde_json::to_writer(&mut out, &jwk)?;
            writeln!(out)?;
        }
        KeyFormat::Pem => write!(out, "{}", public_pem(&public)?)?,
    }
    out.flush()?;
    // Id and assurance go to stderr so that stdout is exactly the key (pipe it to a file).
    eprintln!("kid: {kid}");
    eprintln!("assurance: {}", key.assurance().as_str());
    if let Some(tpm) = &tpm {
        let kind = if tpm.software_tpm {
            "a software TPM (simulator): it does not protect the key from this machine's owner"
        } else {
            "a TPM chip or firmware TPM"
        };
        eprintln!("tpm: {} ({kind})", tpm.manufacturer);
    }
    Ok(crate::EXIT_OK)
}

fn public_pem(public: &p256::PublicKey) -> Result<String> {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    public
        .to_public_key_pem(LineEnding::LF)
        .context("cannot encode the public key as PEM")
}
