//! `posture webauthn register|assert`: WebAuthn credentials in the TPM, attested with the
//! `tpm` format (WebAuthn Level 3, §8.3) under the posture attestation CA, so a relying
//! party's own WebAuthn library verifies them.
//!
//! ```text
//! verifier: posture enrollment finish --pending p.json resp.json --out device.json \
//!               --ca CA_DIR --aik-cert-out aik-chain.pem
//! device:   posture webauthn register --rp-id example.com --challenge B64URL \
//!               --aik-chain aik-chain.pem > registration.json
//! device:   posture webauthn assert --rp-id example.com --challenge B64URL \
//!               --credential-id ID > assertion.json
//! ```

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use posture_agent::Config;

/// Default file name of the AIK certificate chain in the key directory.
pub const AIK_CHAIN_FILE: &str = "aik-chain.pem";

/// The credential key algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Alg {
    /// RSA 2048, RS256: what every relying-party library verifies as `tpm`.
    Rs256,
    /// ECC P-256, ES256.
    Es256,
}

/// `posture webauthn ...` (on the device).
#[derive(Debug, Subcommand)]
pub enum WebauthnCommand {
    /// Create a credential key in the TPM for a relying party and print the registration
    /// (`RegistrationResponseJSON`, with a `tpm` attestation object).
    Register {
        /// The relying party id (a domain, e.g. `login.example.com`).
        #[arg(long, value_name = "ID")]
        rp_id: String,
        /// The relying party's challenge, base64url without padding (it may start
        /// with `-`).
        #[arg(long, value_name = "B64URL", allow_hyphen_values = true)]
        challenge: String,
        /// The origin written into clientDataJSON (default: `https://` + the rp id).
        #[arg(long, value_name = "URL")]
        origin: Option<String>,
        /// The credential key algorithm.
        #[arg(long, value_enum, default_value_t = Alg::Rs256)]
        alg: Alg,
        /// Bind the credential key to the current values of these sha256 PCRs (a TPM
        /// policy): the TPM signs assertions only while they are unchanged. E.g.
        /// `--bind-pcrs 0,2,4,7` (firmware, option ROMs, boot loader, Secure Boot).
        #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
        bind_pcrs: Vec<u32>,
        /// The relying party's user handle (`user.id`), base64url, 1 to 64 bytes: kept with
        /// the credential and returned as `userHandle` in its assertions.
        #[arg(long, value_name = "B64URL", allow_hyphen_values = true)]
        user: Option<String>,
        /// The AIK certificate and its intermediate (PEM), as the attestation CA issued
        /// them (default: aik-chain.pem in the key directory).
        #[arg(long, value_name = "PEM")]
        aik_chain: Option<PathBuf>,
        /// Write the registration here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Key directory.
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
    /// Sign an assertion with a credential registered for the relying party and print it
    /// (`AuthenticationResponseJSON`).
    Assert {
        /// The relying party id the credential was registered for.
        #[arg(long, value_name = "ID")]
        rp_id: String,
        /// The relying party's challenge, base64url without padding (it may start
        /// with `-`).
        #[arg(long, value_name = "B64URL", allow_hyphen_values = true)]
        challenge: String,
        /// The credential id (base64url), as `register` printed it.
        #[arg(long, value_name = "B64URL", allow_hyphen_values = true)]
        credential_id: String,
        /// The origin written into clientDataJSON (default: `https://` + the rp id).
        #[arg(long, value_name = "URL")]
        origin: Option<String>,
        /// Write the assertion here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Key directory.
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
}

fn write_json(out: Option<&std::path::Path>, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match out {
        Some(path) => posture_core::files::write_private(path, format!("{text}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display())),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

/// Runs `posture webauthn ...`.
pub fn run(config: Config, command: WebauthnCommand) -> Result<u8> {
    match command {
        WebauthnCommand::Register {
            rp_id,
            challenge,
            origin,
            alg,
            bind_pcrs,
            user,
            aik_chain,
            out,
            key_dir,
        } => {
            let user = user
                .map(|text| posture_core::jose::b64url_decode(&text).ok())
                .map(|handle| handle.context("--user is not base64url"))
                .transpose()?;
            let dir = config.paths(key_dir.as_deref())?.key_dir;
            let chain_path = aik_chain.unwrap_or_else(|| dir.join(AIK_CHAIN_FILE));
            let pem = std::fs::read(&chain_path).with_context(|| {
                format!(
                    "cannot read the AIK certificate chain {} (issued by the attestation CA \
                     at enrollment)",
                    chain_path.display()
                )
            })?;
            let x5c = posture_core::attestation::parse_roots(&pem)
                .with_context(|| format!("invalid AIK certificate chain {}", chain_path.display()))?
                .iter()
                .map(der::Encode::to_der)
                .collect::<Result<Vec<_>, _>>()
                .context("cannot encode the AIK certificate chain")?;
            let origin = origin.unwrap_or_else(|| format!("https://{rp_id}"));
            let bind = (!bind_pcrs.is_empty()).then_some(bind_pcrs.as_slice());
            let response = device::register(
                &dir,
                &rp_id,
                &challenge,
                &origin,
                alg,
                bind,
                user.as_deref(),
                &x5c,
            )?;
            write_json(out.as_deref(), &response)?;
        }
        WebauthnCommand::Assert {
            rp_id,
            challenge,
            credential_id,
            origin,
            out,
            key_dir,
        } => {
            let dir = config.paths(key_dir.as_deref())?.key_dir;
            let id = posture_core::jose::b64url_decode(&credential_id)
                .ok()
                .context("--credential-id is not base64url")?;
            let origin = origin.unwrap_or_else(|| format!("https://{rp_id}"));
            let response = device::assert(&dir, &rp_id, &id, &challenge, &origin)?;
            write_json(out.as_deref(), &response)?;
        }
    }
    Ok(crate::EXIT_OK)
}

#[cfg(all(feature = "tpm", target_os = "linux"))]
mod device {
    use std::path::Path;

    use anyhow::{bail, Context as _, Result};
    use posture_agent::tpm::webauthn::{self as tw, CredentialAlgorithm};
    use posture_agent::tpm::{AttestationKey, Srk, Tpm};
    use posture_core::attestation::tpm2::TpmPublic;
    use posture_core::webauthn as wa;
    use x509_cert::der::Decode as _;

    use super::Alg;

    /// Checks that the AIK certificate certifies this device's AK.
    fn check_aik_certificate(ak: &AttestationKey, aik_der: &[u8]) -> Result<()> {
        use p256::pkcs8::DecodePublicKey as _;
        let cert = x509_cert::Certificate::from_der(aik_der)
            .context("the AIK certificate is not DER X.509")?;
        let spki = der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info)
            .context("cannot encode the AIK certificate's key")?;
        let certified = p256::PublicKey::from_public_key_der(&spki)
            .context("the AIK certificate's key is not P-256")?;
        let ak = TpmPublic::parse(ak.public())?.p256()?;
        if certified != ak {
            bail!(
                "the AIK certificate is for another attestation key than this device's: \
                 enrol again and use the certificate issued then"
            );
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn register(
        dir: &Path,
        rp_id: &str,
        challenge: &str,
        origin: &str,
        alg: Alg,
        bind_pcrs: Option<&[u32]>,
        user: Option<&[u8]>,
        x5c: &[Vec<u8>],
    ) -> Result<serde_json::Value> {
        let aik = x5c.first().context("the AIK certificate chain is empty")?;
        // libtss2 would log the TPM's refusals over our own message.
        posture_agent::key::quiet_tss_logging();
        let tpm = Tpm::shared()?;
        let srk = Srk::create(&tpm)?;
        let ak = AttestationKey::load(&srk, dir)?;
        check_aik_certificate(&ak, aik)?;
        let alg = match alg {
            Alg::Rs256 => CredentialAlgorithm::Rs256,
            Alg::Es256 => CredentialAlgorithm::Es256,
        };
        let reg = tw::register(
            &srk, &ak, dir, rp_id, challenge, origin, alg, bind_pcrs, user,
        )
        .context("cannot register the credential")?;
        let statement = wa::TpmStatement {
            signature: &reg.certify.signature,
            cert_info: &reg.certify.attest,
            pub_area: &reg.pub_area,
            x5c,
        };
        let object = wa::attestation_object(&reg.authenticator_data, &statement)?;
        eprintln!(
            "registered credential {} for {rp_id} (key saved in {})",
            posture_core::jose::b64url_encode(&reg.credential_id),
            reg.path.display()
        );
        Ok(wa::registration_response_json(
            &reg.credential_id,
            &reg.client_data_json,
            &object,
            reg.cose_alg,
            &reg.authenticator_data,
        ))
    }

    pub fn assert(
        dir: &Path,
        rp_id: &str,
        credential_id: &[u8],
        challenge: &str,
        origin: &str,
    ) -> Result<serde_json::Value> {
        // libtss2 would log the TPM's refusals over our own message.
        posture_agent::key::quiet_tss_logging();
        let tpm = Tpm::shared()?;
        let srk = Srk::create(&tpm)?;
        let a = tw::assert(&srk, dir, rp_id, credential_id, challenge, origin)
            .context("cannot sign the assertion")?;
        Ok(wa::assertion_response_json(
            credential_id,
            &a.client_data_json,
            &a.authenticator_data,
            &a.signature,
            a.user_handle.as_deref(),
        ))
    }
}

#[cfg(not(all(feature = "tpm", target_os = "linux")))]
mod device {
    use std::path::Path;

    use anyhow::{bail, Result};

    use super::Alg;

    const UNSUPPORTED: &str =
        "WebAuthn credentials need the TPM: this build of posture has no TPM support (Linux, feature `tpm`)";

    #[allow(clippy::too_many_arguments)]
    pub fn register(
        _dir: &Path,
        _rp_id: &str,
        _challenge: &str,
        _origin: &str,
        _alg: Alg,
        _bind_pcrs: Option<&[u32]>,
        _user: Option<&[u8]>,
        _x5c: &[Vec<u8>],
    ) -> Result<serde_json::Value> {
        bail!(UNSUPPORTED)
    }

    pub fn assert(
        _dir: &Path,
        _rp_id: &str,
        _credential_id: &[u8],
        _challenge: &str,
        _origin: &str,
    ) -> Result<serde_json::Value> {
        bail!(UNSUPPORTED)
    }
}
