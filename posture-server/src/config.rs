//! The server's configuration file (TOML). Every key is optional: with no file at all the
//! server listens on loopback with an embedded SQLite database in its state directory.
//! Unknown keys are errors with line and column.
//!
//! ```toml
//! listen = "127.0.0.1:8470"
//! public_url = "https://posture.example.com"   # what devices and people are told
//! database_url = "postgres://posture@db/posture" # default: sqlite in state_dir
//! policy = "/etc/posture-server/policy.toml"     # default: every check must pass
//! stale_after = "1h"                             # when the policy sets no max_evidence_age
//!
//! [tls]
//! cert = "/etc/posture-server/cert.pem"
//! key = "/etc/posture-server/key.pem"
//!
//! [enrollment]
//! ek_roots = ["/etc/posture-server/tpm-vendor-cas.pem"]
//! allow_unverified_ek = false
//! allow_software_keys = false
//! attestation_ca = "/var/lib/posture-server/attestation-ca" # AIK certificates (WebAuthn `tpm`)
//! # attestation_ca_key = "pkcs11:token=posture-ca;object=intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/posture-server/ca-pin"
//!
//! [retention]
//! history = "90d"
//!
//! [device_certificates]                       # short-lived client certificates for proxies
//! lifetime = "24h"
//! ca_cert = "/etc/posture-server/device-ca.pem"  # default: created in STATE_DIR/device-ca
//! ca_key = "/etc/posture-server/device-ca-key.pem"
//!
//! [forward_auth]                              # GET /v1/authz for nginx, Traefik, Envoy
//! proxy = "nginx"                             # nginx | traefik | envoy: the header's form
//! header = "X-Client-Cert"                    # default per proxy
//! trusted_proxies = ["127.0.0.1", "::1"]      # addresses (or CIDR) allowed to forward it
//!
//! [limits]
//! max_body_bytes = 131072
//! device_requests_per_minute = 30
//! max_connections = 1024
//! cached_devices = 100000
//!
//! [cloudflare]                  # Cloudflare Zero Trust custom device posture (docs/cloudflare.md)
//! team_domain = "example.cloudflareaccess.com"
//! audience = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2"
//! [ssf]                                          # Shared Signals / CAEP transmitter
//! issuer = "https://posture.example.com"         # default: public_url when it is https
//! retry_for = "24h"                              # push delivery gives up after this
//!
//! [tailscale]                                    # custom posture attributes
//! api_key_file = "/etc/posture-server/tailscale.key"
//! tailnet = "-"
//! device_attribute = "custom:posture_device_id"  # default: match by hostname
//! expiry = "24h"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The URL people and devices use to reach this server (default: from `listen`).
    pub public_url: Option<String>,
    /// Where the embedded database lives (default: `/var/lib/posture-server` as root,
    /// else the user's data directory).
    pub state_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://...` (default: `sqlite://STATE_DIR/posture.db`).
    pub database_url: Option<String>,
    /// The policy file (TOML or JSON, see docs/evidence.md). Default: every check that
    /// ran must pass.
    pub policy: Option<PathBuf>,
    /// A device whose latest evidence is older than this is denied as stale, unless the
    /// policy sets its own `max_evidence_age`.
    #[serde(deserialize_with = "de_duration")]
    pub stale_after: Duration,
    /// HTTPS.
    pub tls: Option<TlsConfig>,
    /// Enrollment.
    pub enrollment: EnrollmentConfig,
    /// How long history is kept.
    pub retention: RetentionConfig,
    /// Limits on clients.
    pub limits: LimitsConfig,
    /// Device certificates.
    pub device_certificates: DeviceCertConfig,
    /// `GET /v1/authz` (off without this table).
    pub forward_auth: Option<ForwardAuthConfig>,
    /// Cloudflare Zero Trust custom device posture integration (off without this table).
    pub cloudflare: Option<CloudflareConfig>,
    /// The Shared Signals (SSF 1.0 / CAEP) transmitter.
    pub ssf: SsfConfig,
    /// Tailscale custom device posture attributes (off unless this table is present).
    pub tailscale: Option<TailscaleConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            public_url: None,
            state_dir: None,
            database_url: None,
            policy: None,
            stale_after: Duration::from_secs(3600),
            tls: None,
            enrollment: EnrollmentConfig::default(),
            retention: RetentionConfig::default(),
            limits: LimitsConfig::default(),
            device_certificates: DeviceCertConfig::default(),
            forward_auth: None,
            cloudflare: None,
            ssf: SsfConfig::default(),
            tailscale: None,
        }
    }
}

/// `[ssf]`: the Shared Signals transmitter (`docs/ssf.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsfConfig {
    /// The issuer receivers know this transmitter by: an https URL, the `iss` of every
    /// event. Default: `public_url` when it is https; without one the transmitter is off.
    pub issuer: Option<String>,
    /// A pushed event not accepted by its receiver within this time is dropped (logged).
    #[serde(deserialize_with = "de_duration")]
    pub retry_for: Duration,
}

impl Default for SsfConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            retry_for: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[device_certificates]`: the device CA and the certificates it issues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceCertConfig {
    /// How long an issued client certificate is valid (the daemon renews it at 2/3).
    #[serde(deserialize_with = "de_duration")]
    pub lifetime: Duration,
    /// The CA certificate (PEM). With `ca_key`; default: `STATE_DIR/device-ca/`, created
    /// on first start. Replicas sharing a PostgreSQL database must share these files.
    pub ca_cert: Option<PathBuf>,
    /// The CA key (PKCS#8 P-256 PEM, mode 0600).
    pub ca_key: Option<PathBuf>,
}

impl Default for DeviceCertConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(24 * 3600),
            ca_cert: None,
            ca_key: None,
        }
    }
}

/// `[tailscale]`: sets `custom:posture_compliant` and `custom:posture_assurance` on the
/// tailnet's devices through Tailscale's device posture attributes API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailscaleConfig {
    /// The API (default `https://api.tailscale.com`).
    #[serde(default = "default_tailscale_api")]
    pub api_url: String,
    /// The tailnet (default `-`: the one the key belongs to).
    #[serde(default = "default_tailnet")]
    pub tailnet: String,
    /// A file holding an API access token (`tskey-api-...`), owner-only. Or an OAuth
    /// client: `oauth_client_id` and `oauth_client_secret_file`.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// An OAuth client's id (scopes `devices:core:read` and `devices:posture_attributes`).
    #[serde(default)]
    pub oauth_client_id: Option<String>,
    /// A file holding that OAuth client's secret (`tskey-client-...`), owner-only.
    #[serde(default)]
    pub oauth_client_secret_file: Option<PathBuf>,
    /// Match Tailscale devices whose custom attribute of this name holds the posture
    /// device id; default: match by host name.
    #[serde(default)]
    pub device_attribute: Option<String>,
    /// How long an attribute holds unless refreshed (a server that stops talking to
    /// Tailscale stops vouching for devices).
    #[serde(default = "default_expiry", deserialize_with = "de_duration")]
    pub expiry: Duration,
}

fn default_tailscale_api() -> String {
    "https://api.tailscale.com".into()
}

fn default_tailnet() -> String {
    "-".into()
}

fn default_expiry() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// `[forward_auth]`: who may forward a client certificate to `GET /v1/authz`, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// The form of the forwarded certificate: `nginx`, `traefik` or `envoy`.
    pub proxy: posture_core::devcert::ForwardedFormat,
    /// The header carrying it (default: `X-Client-Cert`, `X-Forwarded-Tls-Client-Cert`,
    /// `X-Forwarded-Client-Cert` for the three proxies).
    #[serde(default)]
    pub header: Option<String>,
    /// Peer addresses (`10.0.0.5`, `10.0.0.0/24`, `::1`) whose forwarded header is
    /// believed. Default: loopback only.
    #[serde(default = "loopback")]
    pub trusted_proxies: Vec<IpNet>,
    /// Believe the header from any peer: only when nothing but the proxy can reach this
    /// server (e.g. a unix socket or a private network the proxy alone is on).
    #[serde(default)]
    pub trust_any_peer: bool,
}

impl ForwardAuthConfig {
    /// The header name, lower case.
    pub fn header_name(&self) -> String {
        self.header
            .clone()
            .unwrap_or_else(|| self.proxy.default_header().to_owned())
            .to_ascii_lowercase()
    }

    /// Checks the header name (called at start: a bad name is a config error, not a
    /// silent "no certificate" on every request).
    pub fn validate(&self) -> Result<(), String> {
        axum::http::HeaderName::from_bytes(self.header_name().as_bytes())
            .map(|_| ())
            .map_err(|_| {
                format!(
                    "[forward_auth] header {:?} is not a header name",
                    self.header_name()
                )
            })
    }

    /// Whether `peer` may forward a client certificate.
    pub fn trusts(&self, peer: Option<std::net::IpAddr>) -> bool {
        if self.trust_any_peer {
            return true;
        }
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|net| net.contains(ip)))
    }
}

fn loopback() -> Vec<IpNet> {
    vec![
        IpNet {
            addr: std::net::IpAddr::from([127, 0, 0, 1]),
            prefix: 32,
        },
        IpNet {
            addr: std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
    ]
}

/// An address or a CIDR network (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr.trim().parse().map_err(|e| format!("{text:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 peer counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> (u128, u8) {
            match a {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (addr, addr_width)) = (bits(self.addr), bits(ip));
        if width != addr_width {
            return false;
        }
        let shift = u32::from(width - self.prefix);
        let mask = if shift >= 128 { 0 } else { (!0u128) << shift };
        (net & mask) == (addr & mask)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IpNet::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `[tls]`: certificate chain and private key, PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[enrollment]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollmentConfig {
    /// CA certificates (PEM files) a TPM's EK certificate must chain to.
    pub ek_roots: Vec<PathBuf>,
    /// Enrol TPMs whose EK is not checked (marked `tpm-unverified`). Only without `ek_roots`.
    pub allow_unverified_ek: bool,
    /// Enrol devices without a TPM, with a software key (marked `software`).
    pub allow_software_keys: bool,
    /// An attestation CA directory (`posture enrollment ca-init`): TPM enrollments whose
    /// EK chained to `ek_roots` get an AIK certificate for WebAuthn `tpm` attestation, and
    /// `/v1/attestation-ca/{root,intermediate}.pem` serve its certificates.
    pub attestation_ca: Option<PathBuf>,
    /// The attestation CA's intermediate key in a PKCS#11 token (an RFC 7512 URI, checked
    /// when the file is read; the PIN from `pin-source`, never in the URI) instead of
    /// `intermediate-key.pem` in `attestation_ca`.
    #[serde(deserialize_with = "de_pkcs11_uri")]
    pub attestation_ca_key: Option<posture_core::attestation::pkcs11::Pkcs11Uri>,
    /// Default lifetime of enrollment tokens.
    #[serde(deserialize_with = "de_duration")]
    pub token_ttl: Duration,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        Self {
            ek_roots: Vec::new(),
            allow_unverified_ek: false,
            allow_software_keys: false,
            attestation_ca: None,
            attestation_ca_key: None,
            token_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Evidence history older than this is deleted (the latest state of each device is
    /// always kept).
    #[serde(deserialize_with = "de_duration")]
    pub history: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            history: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted (413 beyond). Evidence itself is capped at 64 KiB.
    pub max_body_bytes: usize,
    /// Requests per minute one device may make (evidence, by device key) and one client
    /// address may make to the unauthenticated endpoints (challenge, enrollment).
    pub device_requests_per_minute: u32,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Device verifiers this replica keeps parsed in memory (0: none).
    pub cached_devices: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 128 * 1024,
            device_requests_per_minute: 30,
            max_connections: 1024,
            cached_devices: 100_000,
        }
    }
}

/// `[cloudflare]`: the Access application that protects
/// `POST /v1/integrations/cloudflare/posture` (see docs/cloudflare.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareConfig {
    /// The Zero Trust team domain, e.g. `example.cloudflareaccess.com`: the tokens'
    /// issuer is `https://` and this.
    pub team_domain: String,
    /// The Access application's Application Audience (AUD) tag: tokens must name it in
    /// `aud`.
    pub audience: String,
    /// Where the team's signing keys are fetched (default:
    /// `https://TEAM_DOMAIN/cdn-cgi/access/certs`). `https` only, except to a loopback
    /// address (tests).
    pub certs_url: Option<String>,
}

impl CloudflareConfig {
    /// The issuer tokens must carry.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.team_domain)
    }

    /// Where the signing keys are fetched.
    pub fn certs_url(&self) -> String {
        self.certs_url
            .clone()
            .unwrap_or_else(|| format!("https://{}/cdn-cgi/access/certs", self.team_domain))
    }

    /// Refuses values that cannot work: a team domain with a scheme or path, an empty
    /// audience, a certs URL that is neither https nor loopback http.
    pub fn validate(&self) -> Result<(), String> {
        let domain = &self.team_domain;
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!(
                "[cloudflare] team_domain {domain:?} must be a host name such as \
                 example.cloudflareaccess.com (no scheme, no path)"
            ));
        }
        if self.audience.trim().is_empty() {
            return Err("[cloudflare] audience (the Access application's AUD tag) is empty".into());
        }
        let url = self.certs_url();
        let loopback = ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"]
            .iter()
            .any(|p| url.starts_with(p));
        if !url.starts_with("https://") && !loopback {
            return Err(format!(
                "[cloudflare] certs_url {url:?} must be https (or http to a loopback address)"
            ));
        }
        Ok(())
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid (syntax, unknown key, bad value), with line and column.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Parses `text` (from `path`, for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((0, 0));
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The SSF issuer: `[ssf] issuer`, else `public_url` when it is https.
    pub fn ssf_issuer(&self) -> Option<String> {
        let issuer = match &self.ssf.issuer {
            Some(issuer) => issuer.trim_end_matches('/').to_owned(),
            None => self.public_url(),
        };
        issuer.starts_with("https://").then_some(issuer)
    }

    /// The URL devices and people are given.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{}", self.listen)
            }
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn de_pkcs11_uri<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<posture_core::attestation::pkcs11::Pkcs11Uri>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The default state directory.
pub fn default_state_dir() -> Option<PathBuf> {
    // /proc/self belongs to the effective uid: root without unsafe code or libc.
    #[cfg(unix)]
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    // Elsewhere the per-user data directory (the server is packaged for Linux only).
    #[cfg(not(unix))]
    let root = false;
    if root {
        return Some(PathBuf::from("/var/lib/posture-server"));
    }
    directories::ProjectDirs::from("", "", "posture-server").map(|d| d.data_dir().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        let config = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8470");
        assert_eq!(config.public_url(), "http://127.0.0.1:8470");
        assert!(!config.enrollment.allow_software_keys);
    }

    #[test]
    fn unknown_keys_are_errors_with_line_and_column() {
        let text = "listen = \"127.0.0.1:1\"\n[enrollment]\nallow_sofware_keys = true\n";
        let err = Config::parse(text, Path::new("c.toml")).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("c.toml:3:1:"), "{message}");
        assert!(message.contains("allow_sofware_keys"), "{message}");
    }

    #[test]
    fn the_attestation_ca_key_is_a_pkcs11_uri_checked_when_read() {
        let uri = "pkcs11:token=posture-ca;object=intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/posture-server/ca-pin";
        let text =
            format!("[enrollment]\nattestation_ca = \"/ca\"\nattestation_ca_key = {uri:?}\n");
        let config = Config::parse(&text, Path::new("c.toml")).unwrap();
        let key = config.enrollment.attestation_ca_key.unwrap();
        assert_eq!(key.token, "posture-ca");
        assert_eq!(key.object.as_deref(), Some("intermediate"));
        // A PIN in the file is refused, at its line, and not repeated.
        let text = "[enrollment]\nattestation_ca = \"/ca\"\nattestation_ca_key = \"pkcs11:token=t;object=k?module-path=/m.so&pin-value=98765\"\n";
        let message = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("c.toml:3:"), "{message}");
        assert!(message.contains("pin-value is refused"), "{message}");
        assert!(!message.contains("98765"), "{message}");
    }

    #[test]
    fn forward_auth_trusts_only_the_listed_proxies() {
        let text =
            "[forward_auth]\nproxy = \"envoy\"\ntrusted_proxies = [\"10.1.0.0/16\", \"::1\"]\n";
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        let fa = config.forward_auth.unwrap();
        assert_eq!(fa.header_name(), "x-forwarded-client-cert");
        let ip = |s: &str| Some(s.parse().unwrap());
        assert!(fa.trusts(ip("10.1.200.3")));
        assert!(fa.trusts(ip("::ffff:10.1.0.1")));
        assert!(fa.trusts(ip("::1")));
        assert!(!fa.trusts(ip("10.2.0.1")));
        assert!(!fa.trusts(ip("127.0.0.1")));
        assert!(!fa.trusts(None));
        let default = Config::parse("[forward_auth]\nproxy = \"nginx\"\n", Path::new("c"))
            .unwrap()
            .forward_auth
            .unwrap();
        assert!(default.trusts(ip("127.0.0.1")) && !default.trusts(ip("192.168.1.1")));
        assert_eq!(default.header_name(), "x-client-cert");
        let err = Config::parse(
            "[forward_auth]\nproxy = \"nginx\"\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            Path::new("c"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("prefix"), "{err}");
        assert!(Config::parse("[forward_auth]\nproxy = \"haproxy\"\n", Path::new("c")).is_err());
        let bad = Config::parse(
            "[forward_auth]\nproxy = \"nginx\"\nheader = \"X Client Cert\"\n",
            Path::new("c"),
        )
        .unwrap();
        assert!(bad.forward_auth.unwrap().validate().is_err());
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn durations_and_tables_parse() {
        let text =
            "stale_after = \"30m\"\n[retention]\nhistory = \"7d\"\n[limits]\nmax_connections = 8\n";
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(config.stale_after, Duration::from_secs(1800));
        assert_eq!(config.retention.history, Duration::from_secs(7 * 86400));
        assert_eq!(config.limits.max_connections, 8);
    }

    #[test]
    fn cloudflare_table_is_strict_and_validated() {
        let text =
            "[cloudflare]\nteam_domain = \"acme.cloudflareaccess.com\"\naudience = \"aud1\"\n";
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        let cf = config.cloudflare.unwrap();
        assert_eq!(cf.issuer(), "https://acme.cloudflareaccess.com");
        assert_eq!(
            cf.certs_url(),
            "https://acme.cloudflareaccess.com/cdn-cgi/access/certs"
        );
        cf.validate().unwrap();

        let err = Config::parse(&format!("{text}aud = \"x\"\n"), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:4:1:"), "{err}");

        let bad = |team: &str, certs: &str| CloudflareConfig {
            team_domain: team.into(),
            audience: "aud1".into(),
            certs_url: Some(certs.into()),
        };
        assert!(bad("https://acme.cloudflareaccess.com", "https://x/")
            .validate()
            .is_err());
        assert!(bad("acme.cloudflareaccess.com", "http://certs.example/")
            .validate()
            .is_err());
        assert!(bad("acme.cloudflareaccess.com", "http://127.0.0.1:9/certs")
            .validate()
            .is_ok());
    }

    #[test]
    fn ssf_issuer_must_be_https_and_tailscale_keys_are_checked() {
        let config = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(config.ssf_issuer(), None);
        let config = Config::parse(
            "public_url = \"https://p.example/\"\n[tailscale]\napi_key_file = \"/k\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.ssf_issuer().as_deref(), Some("https://p.example"));
        let tailscale = config.tailscale.unwrap();
        assert_eq!(tailscale.tailnet, "-");
        assert_eq!(tailscale.api_key_file.as_deref(), Some(Path::new("/k")));
        assert_eq!(tailscale.expiry, Duration::from_secs(86400));
        let err = Config::parse(
            "[tailscale]\napi_key_file = \"/k\"\ntoken = \"x\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        let err = Config::parse("[ssf]\nissuer = \"http://p\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(err.ssf_issuer(), None);
    }
}
