//! `posture key`: the device key's public half, id and assurance; and where keys live.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::ValueEnum;
use posture_core::keys::{key_id, Jwk};

use crate::config::Config;

/// Output format of a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyFormat {
    /// A JWK (RFC 7517) with `kid`.
    Jwk,
    /// A PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`).
    Pem,
}

/// The key directory: `--key-dir`, else `/var/lib/posture/keys` as root, else the user's
/// data directory (`~/.local/share/posture/keys` on Linux).
pub fn key_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    if crate::paths::is_root() {
        return Ok(PathBuf::from("/var/lib/posture/keys"));
    }
    directories::ProjectDirs::from("", "", "posture")
        .map(|d| d.data_dir().join("keys"))
        .context("cannot find this user's data directory (is HOME set?)")
}

/// Runs `posture key`: the key `[key]` selects (the TPM key when usable).
pub fn run(config: &Config, key_dir: Option<&Path>, format: KeyFormat, json: bool) -> Result<u8> {
    let dir = self::key_dir(key_dir)?;
    let key = crate::device_key::open(&config.key, &dir, false)?;
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
