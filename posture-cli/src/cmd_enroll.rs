//! TPM enrollment: `posture enroll request|complete` on the device and
//! `posture enrollment begin|finish` on the verifier, and `posture attest`.
//!
//! ```text
//! device:   posture enroll request --out req.json
//! verifier: posture enrollment begin req.json --ek-roots ca.pem \
//!               --challenge-out challenge.json --pending-out pending.json
//! device:   posture enroll complete challenge.json --out response.json
//! verifier: posture enrollment finish --pending pending.json response.json --out device.json
//! verifier: posture verify evidence.jws --enrolled device.json --nonce N
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use posture_agent::Config;
use posture_core::attestation::pkcs11::{Pkcs11Key, Pkcs11Uri};
use posture_core::attestation::{
    aikca, begin_enrollment, finish_enrollment, parse_roots, tpm_identity, AttestationCa, CaKey,
    CertificateFetcher, EkPolicy, EkTrust, EnrolledDevice, EnrollmentChallenge, EnrollmentRequest,
    EnrollmentResponse, PendingEnrollment, MAX_MESSAGE_BYTES,
};

/// `posture enroll`: with `--server URL --token T`, the whole enrollment against a
/// posture-server; with a subcommand, one manual step.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EnrollArgs {
    /// A manual step (without posture-server).
    #[command(subcommand)]
    command: Option<EnrollCommand>,
    /// The posture-server to enrol with (e.g. `https://posture.example.com`).
    #[arg(long, value_name = "URL", requires = "token")]
    server: Option<String>,
    /// The single-use enrollment token an admin created (`posture-server token create`).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Trust this CA certificate (PEM) for the server's TLS certificate, besides the
    /// built-in roots.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Key directory.
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
}

/// `posture enroll ...` manual steps (on the device).
#[derive(Debug, Subcommand)]
pub enum EnrollCommand {
    /// Print the enrollment request: the TPM's EK (and EK certificate) and the
    /// attestation key. Creates the TPM keys on first use.
    Request {
        /// Write the request here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Key directory (default: /var/lib/posture/keys as root, else the user's data dir).
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
    /// Answer the verifier's challenge: TPM2_ActivateCredential, and TPM2_Certify of the
    /// device key by the attestation key.
    Complete {
        /// The challenge file, or - for stdin.
        #[arg(value_name = "CHALLENGE_FILE")]
        challenge: PathBuf,
        /// Write the response here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Key directory.
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
    },
}

/// `posture enrollment ...` (on the verifier).
#[derive(Debug, Subcommand)]
pub enum EnrollmentCommand {
    /// Check a device's request and make its challenge (MakeCredential to its EK).
    Begin {
        /// The device's enrollment request, or - for stdin.
        #[arg(value_name = "REQUEST_FILE")]
        request: PathBuf,
        /// CA certificates (PEM) the EK certificate must chain to: TPM vendor roots.
        #[arg(
            long,
            value_name = "PEM",
            required_unless_present = "allow_unverified_ek"
        )]
        ek_roots: Option<PathBuf>,
        /// Accept any EK without checking its certificate (trust on first use).
        #[arg(long, conflicts_with = "ek_roots")]
        allow_unverified_ek: bool,
        /// Fetch missing issuer certificates from the AIA caIssuers URLs of the EK
        /// certificate and its intermediates (HTTP, cached for this run). They are trusted
        /// only if they chain to --ek-roots.
        #[arg(long, requires = "ek_roots")]
        fetch_issuers: bool,
        /// When the device sent no EK certificate (Intel PTT, AMD fTPM), fetch it from
        /// this EK certificate service; {intel} or {amd} is replaced by the EK's id, e.g.
        /// `https://ekop.intel.com/ekcertservice/{intel}` or
        /// `https://ftpm.amd.com/pki/aia/{amd}`. Repeatable; tried in order.
        #[arg(long, value_name = "URL_TEMPLATE", requires = "ek_roots")]
        ek_cert_service: Vec<String>,
        /// Timeout of each fetch, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        fetch_timeout: u64,
        /// Where to write the challenge for the device.
        #[arg(long, value_name = "FILE")]
        challenge_out: PathBuf,
        /// Where to keep the secret until the response arrives (written 0600).
        #[arg(long, value_name = "FILE")]
        pending_out: PathBuf,
    },
    /// Check the device's response and write the enrolled device record.
    Finish {
        /// The pending file written by `begin` (deleted on success).
        #[arg(long, value_name = "FILE")]
        pending: PathBuf,
        /// The device's response, or - for stdin.
        #[arg(value_name = "RESPONSE_FILE")]
        response: PathBuf,
        /// Where to write the enrolled device (use it with `posture verify --enrolled`).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also issue the AIK certificate from this attestation CA (see `ca-init`), for
        /// WebAuthn `tpm` attestation. Only for an EK verified against --ek-roots at
        /// `begin`; otherwise nothing is written and the pending file is kept.
        #[arg(long, value_name = "CA_DIR", requires = "aik_cert_out")]
        ca: Option<PathBuf>,
        /// Where to write the AIK certificate and its intermediate (PEM) for the device
        /// (`posture webauthn register --aik-chain`).
        #[arg(long, value_name = "FILE", requires = "ca")]
        aik_cert_out: Option<PathBuf>,
        /// The CA's intermediate key is in this PKCS#11 token (the URI given to `ca-init
        /// --pkcs11`) rather than in `CA_DIR/intermediate-key.pem`.
        #[arg(long, value_name = "URI", requires = "ca")]
        pkcs11: Option<String>,
    },
    /// Create an attestation CA (a P-256 root and intermediate) in a new owner-only
    /// directory. Relying parties trust its root.pem; move root-key.pem offline.
    CaInit {
        /// The CA directory (created 0700; must not hold a CA yet).
        #[arg(value_name = "CA_DIR")]
        ca: PathBuf,
        /// The organization named in the CA certificates.
        #[arg(long, value_name = "NAME")]
        organization: String,
        /// Keep the intermediate key in a PKCS#11 token, named by an RFC 7512 URI, e.g.
        /// `pkcs11:token=posture-ca;object=intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/posture/ca-pin`
        /// (the PIN from `pin-source=file:PATH` or `env:NAME`, never in the URI). The key
        /// is generated in the token unless it holds one with that label already.
        #[arg(long, value_name = "URI")]
        pkcs11: Option<String>,
    },
}

/// Reads a message file (or stdin for `-`), refusing more than [`MAX_MESSAGE_BYTES`].
fn read_message(path: &Path) -> Result<Vec<u8>> {
    crate::input::read_capped(path, MAX_MESSAGE_BYTES, "message")
}

/// Writes `text` to `path` (mode 0600, created or replaced), or stdout when `None`.
fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        Some(path) => write_private(path, text),
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}")?;
            out.flush()?;
            Ok(())
        }
    }
}

/// Writes `text` owner-only, atomically, never through a symlink (these files hold
/// enrollment secrets and records that a root verifier trusts).
fn write_private(path: &Path, text: &str) -> Result<()> {
    posture_core::files::write_private(path, format!("{text}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The key directory for `key_dir` under `config`.
fn key_dir(config: &Config, key_dir: Option<&Path>) -> Result<PathBuf> {
    Ok(config.paths(key_dir)?.key_dir)
}

/// Runs `posture enroll ...`.
pub fn run_enroll(config: Config, args: EnrollArgs) -> Result<u8> {
    let command = match (args.command, args.server, args.token) {
        (Some(command), _, _) => command,
        (None, Some(server), Some(token)) => {
            let ca = match &args.ca_cert {
                Some(path) => Some(
                    std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                ),
                None => None,
            };
            return crate::cmd_enroll_server::run(
                config,
                &server,
                &token,
                ca.as_deref(),
                args.key_dir.as_deref(),
            );
        }
        _ => bail!("give --server URL --token TOKEN, or a step: posture enroll request|complete"),
    };
    match command {
        EnrollCommand::Request { out, key_dir } => {
            let dir = self::key_dir(&config, key_dir.as_deref())?;
            let request = device::request(&dir, config.key.ek)?;
            write_output(out.as_deref(), &request.to_json()?)?;
        }
        EnrollCommand::Complete {
            challenge,
            out,
            key_dir,
        } => {
            let dir = self::key_dir(&config, key_dir.as_deref())?;
            let challenge = EnrollmentChallenge::from_json(&read_message(&challenge)?)
                .context("invalid enrollment challenge")?;
            let response = device::complete(&dir, &challenge)?;
            write_output(out.as_deref(), &response.to_json()?)?;
        }
    }
    Ok(crate::EXIT_OK)
}

/// Runs `posture enrollment ...`.
pub fn run_enrollment(command: EnrollmentCommand) -> Result<u8> {
    match command {
        EnrollmentCommand::Begin {
            request,
            ek_roots,
            allow_unverified_ek,
            fetch_issuers,
            ek_cert_service,
            fetch_timeout,
            challenge_out,
            pending_out,
        } => {
            let request = EnrollmentRequest::from_json(&read_message(&request)?)
                .context("invalid enrollment request")?;
            let roots = match (&ek_roots, allow_unverified_ek) {
                (Some(path), _) => parse_roots(
                    &std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )
                .with_context(|| format!("invalid EK roots {}", path.display()))?,
                (None, true) => Vec::new(),
                (None, false) => bail!("give --ek-roots PEM, or --allow-unverified-ek"),
            };
            let fetcher = if fetch_issuers || !ek_cert_service.is_empty() {
                Some(crate::fetch::HttpFetcher::new(
                    std::time::Duration::from_secs(fetch_timeout.max(1)),
                )?)
            } else {
                None
            };
            let trust = if ek_roots.is_some() {
                EkTrust::Policy(EkPolicy {
                    roots: &roots,
                    fetcher: fetcher.as_ref().map(|f| f as &dyn CertificateFetcher),
                    fetch_issuers,
                    ek_cert_services: &ek_cert_service,
                })
            } else {
                EkTrust::Unverified
            };
            let (challenge, pending) = begin_enrollment(&request, trust, SystemTime::now())
                .context("enrollment request rejected")?;
            write_private(&pending_out, &pending.to_json()?)?;
            write_private(&challenge_out, &challenge.to_json()?)?;
            eprintln!(
                "challenge written to {}; send it to the device (posture enroll complete)",
                challenge_out.display()
            );
        }
        EnrollmentCommand::Finish {
            pending: pending_path,
            response,
            out,
            ca,
            aik_cert_out,
            pkcs11,
        } => {
            let pending = PendingEnrollment::from_json(&read_message(&pending_path)?)
                .context("invalid pending enrollment")?;
            let response = EnrollmentResponse::from_json(&read_message(&response)?)
                .context("invalid enrollment response")?;
            let device: EnrolledDevice =
                finish_enrollment(&pending, &response).context("enrollment rejected")?;
            // The AIK certificate before anything is written: when it cannot be issued,
            // nothing is, and the enrollment can be finished again without --ca.
            let aik_chain = match (&ca, &aik_cert_out) {
                (Some(ca), Some(_)) => Some(issue_aik_chain(
                    ca,
                    pkcs11.as_deref(),
                    &pending,
                    &response,
                    &device,
                )?),
                _ => None,
            };
            write_private(&out, &device.to_json()?)?;
            if let (Some(chain), Some(path)) = (aik_chain, &aik_cert_out) {
                posture_core::files::write_private(path, chain.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("AIK certificate written to {}", path.display());
            }
            // The pending file holds the secret; it has served its purpose.
            std::fs::remove_file(&pending_path)
                .with_context(|| format!("cannot remove {}", pending_path.display()))?;
            let kid = posture_core::keys::key_id(&device.device_key()?);
            eprintln!(
                "enrolled device key {kid} (EK trust: {}); written to {}",
                device.ek_trust,
                out.display()
            );
        }
        EnrollmentCommand::CaInit {
            ca,
            organization,
            pkcs11,
        } => {
            let cannot = || format!("cannot create the attestation CA in {}", ca.display());
            let created = match &pkcs11 {
                None => AttestationCa::init(&ca, &organization).with_context(cannot)?,
                Some(uri) => {
                    // A CA is never overwritten: refuse before touching the token.
                    for file in [aikca::ROOT_CERT, aikca::ROOT_KEY] {
                        if ca.join(file).exists() {
                            bail!("{}: {} exists already", cannot(), ca.join(file).display());
                        }
                    }
                    let uri: Pkcs11Uri = uri.parse().with_context(cannot)?;
                    let key = Pkcs11Key::open_or_generate(&uri, true).with_context(cannot)?;
                    eprintln!(
                        "{} the intermediate key {}",
                        if key.generated() {
                            "generated"
                        } else {
                            "using"
                        },
                        key.name()
                    );
                    AttestationCa::init_with_key(&ca, &organization, CaKey::Pkcs11(key))
                        .with_context(cannot)?
                }
            };
            eprintln!(
                "attestation CA created in {}; relying parties trust {}; move {} offline{}",
                ca.display(),
                ca.join(aikca::ROOT_CERT).display(),
                ca.join(aikca::ROOT_KEY).display(),
                if pkcs11.is_some() {
                    "; the intermediate key is in the PKCS#11 token"
                } else {
                    ""
                }
            );
            print!("{}", created.root_pem()?);
        }
    }
    Ok(crate::EXIT_OK)
}

/// Issues the AIK certificate for a finished enrollment; returns the AIK certificate and
/// the intermediate as PEM (the device's `x5c`).
fn issue_aik_chain(
    ca_dir: &Path,
    pkcs11: Option<&str>,
    pending: &PendingEnrollment,
    response: &EnrollmentResponse,
    device: &EnrolledDevice,
) -> Result<String> {
    let ca = load_ca(ca_dir, pkcs11)
        .with_context(|| format!("cannot load the attestation CA {}", ca_dir.display()))?;
    let tpm = tpm_identity(&pending.request, &response.certify.attest)
        .context("no AIK certificate issued")?;
    let aik = ca
        .issue_aik_certificate(device, &tpm, SystemTime::now())
        .context("no AIK certificate issued")?;
    let mut pem = String::new();
    for der in ca.x5c(&aik) {
        pem.push_str(&pem_certificate(&der)?);
    }
    Ok(pem)
}

/// The CA in `dir`, with its intermediate key from the PKCS#11 token `pkcs11` names, or
/// from `intermediate-key.pem`.
pub fn load_ca(dir: &Path, pkcs11: Option<&str>) -> Result<AttestationCa> {
    Ok(match pkcs11 {
        None => AttestationCa::load(dir)?,
        Some(uri) => {
            let uri: Pkcs11Uri = uri.parse()?;
            AttestationCa::load_with_key(dir, CaKey::Pkcs11(Pkcs11Key::open(&uri)?))?
        }
    })
}

fn pem_certificate(der: &[u8]) -> Result<String> {
    use der::{Decode as _, EncodePem as _};
    Ok(x509_cert::Certificate::from_der(der)?.to_pem(der::pem::LineEnding::LF)?)
}

/// Loads an enrolled device record.
pub fn load_enrolled(path: &Path) -> Result<EnrolledDevice> {
    EnrolledDevice::from_json(&read_message(path)?)
        .with_context(|| format!("invalid enrolled device {}", path.display()))
}

/// `posture attest` arguments.
#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// The verifier's nonce as hex (8 to 64 bytes): the quote's qualifying data.
    #[arg(long, value_name = "HEX")]
    nonce: String,
    /// Directory for quote.msg, quote.sig, ak.pub.pem, qualifying-data.hex, pcrs.bin
    /// and quote.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// sha256 PCRs to quote (default: quote_pcrs of the config's key table, else 0-7).
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    pcrs: Vec<u32>,
    /// Key directory.
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
}

/// Runs `posture attest --nonce HEX --out DIR`: a quote whose qualifying data is the
/// nonce itself, as files for `tpm2_checkquote`, plus `quote.json`.
pub fn run_attest(config: Config, args: AttestArgs) -> Result<u8> {
    let nonce = posture_core::attestation::from_hex(&args.nonce)
        .ok()
        .filter(|n| posture_core::evidence::NONCE_LEN.contains(&n.len()))
        .context("--nonce must be 8 to 64 bytes as hex")?;
    let pcrs = if args.pcrs.is_empty() {
        config.key.quote_pcrs.clone()
    } else {
        args.pcrs
    };
    let out = args.out.as_path();
    let dir = key_dir(&config, args.key_dir.as_deref())?;
    let (quote, ak_public) = device::quote(&dir, &nonce, &pcrs)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    posture_core::attestation::write_tpm2_tools_files(out, &quote, &ak_public, &nonce)
        .with_context(|| format!("cannot write the quote files to {}", out.display()))?;
    std::fs::write(out.join("quote.json"), quote.to_json()? + "\n")
        .with_context(|| format!("cannot write {}", out.join("quote.json").display()))?;
    eprintln!(
        "check with: tpm2_checkquote -u ak.pub.pem -m quote.msg -s quote.sig -f pcrs.bin \
         -g sha256 -q $(cat qualifying-data.hex)   (in {})",
        out.display()
    );
    Ok(crate::EXIT_OK)
}

#[cfg(all(feature = "tpm", target_os = "linux"))]
pub(crate) mod device {
    use std::path::Path;

    use anyhow::{Context as _, Result};
    use posture_core::attestation::{
        EnrollmentChallenge, EnrollmentRequest, EnrollmentResponse, Quote,
    };

    use posture_agent::key::{open_tpm_for_attestation, EkPreference};

    pub fn request(dir: &Path, ek: EkPreference) -> Result<EnrollmentRequest> {
        let (_, ak) = open_tpm_for_attestation(dir, false)?;
        ak.enrollment_request_with(ek)
            .context("cannot build the enrollment request")
    }

    pub fn complete(dir: &Path, challenge: &EnrollmentChallenge) -> Result<EnrollmentResponse> {
        let (signer, ak) = open_tpm_for_attestation(dir, true)?;
        let signer = signer.context("the device key was not loaded")?;
        ak.enrollment_response(challenge, &signer)
            .context("cannot answer the enrollment challenge")
    }

    pub fn quote(dir: &Path, nonce: &[u8], pcrs: &[u32]) -> Result<(Quote, Vec<u8>)> {
        let (_, ak) = open_tpm_for_attestation(dir, false)?;
        let quote = ak.quote(nonce, pcrs).context("cannot quote the PCRs")?;
        Ok((quote, ak.public().to_vec()))
    }
}

#[cfg(not(all(feature = "tpm", target_os = "linux")))]
pub(crate) mod device {
    use std::path::Path;

    use anyhow::{bail, Result};
    use posture_core::attestation::{
        EnrollmentChallenge, EnrollmentRequest, EnrollmentResponse, Quote,
    };

    use posture_agent::key::EkPreference;

    const UNSUPPORTED: &str = "this build of posture has no TPM support (Linux, feature `tpm`)";

    pub fn request(_dir: &Path, _ek: EkPreference) -> Result<EnrollmentRequest> {
        bail!(UNSUPPORTED)
    }

    pub fn complete(_dir: &Path, _challenge: &EnrollmentChallenge) -> Result<EnrollmentResponse> {
        bail!(UNSUPPORTED)
    }

    pub fn quote(_dir: &Path, _nonce: &[u8], _pcrs: &[u32]) -> Result<(Quote, Vec<u8>)> {
        bail!(UNSUPPORTED)
    }
}
