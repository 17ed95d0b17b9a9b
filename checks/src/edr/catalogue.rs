//! The EDR / antivirus catalogue: data (`checks/catalogue/edr.toml`), embedded at build time
//! and parsed once.

use std::sync::OnceLock;

use serde::Deserialize;

/// The catalogue's text, as shipped.
pub const CATALOGUE_TOML: &str = include_str!("../../catalogue/edr.toml");

/// The catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Every product.
    #[serde(rename = "product")]
    pub products: Vec<Product>,
}

/// One product.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Stable id, used in config (`[checks.edr] required`) and policy.
    pub id: String,
    /// Name for people.
    pub name: String,
    /// Linux entry, where the vendor ships one.
    #[serde(default)]
    pub linux: Option<OsEntry>,
    /// macOS entry.
    #[serde(default)]
    pub macos: Option<OsEntry>,
    /// Windows entry.
    #[serde(default)]
    pub windows: Option<OsEntry>,
}

impl Product {
    /// The entry for an OS (`linux`, `macos`, `windows`).
    pub fn entry(&self, os: Os) -> Option<&OsEntry> {
        match os {
            Os::Linux => self.linux.as_ref(),
            Os::Macos => self.macos.as_ref(),
            Os::Windows => self.windows.as_ref(),
        }
    }
}

/// An operating system the catalogue describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// Linux.
    Linux,
    /// macOS.
    Macos,
    /// Windows.
    Windows,
}

impl Os {
    /// The OS this build runs on, if the catalogue describes it.
    pub fn current() -> Option<Os> {
        match std::env::consts::OS {
            "linux" => Some(Os::Linux),
            "macos" => Some(Os::Macos),
            "windows" => Some(Os::Windows),
            _ => None,
        }
    }
}

/// How a product shows itself on one OS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsEntry {
    /// Executable names of its long-running processes.
    #[serde(default)]
    pub processes: Vec<String>,
    /// systemd units (Linux), launchd labels (macOS) or service names (Windows).
    #[serde(default)]
    pub services: Vec<String>,
    /// Files or directories its installer creates.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Directories its executables are installed in (Linux). A process counts as the
    /// product only when it runs an executable below one of them, root-owned and not
    /// writable by other users.
    #[serde(default)]
    pub exe_dirs: Vec<String>,
    /// Service users its processes may run as besides root (Linux).
    #[serde(default)]
    pub users: Vec<String>,
    /// Its own cheap health source, if any.
    #[serde(default)]
    pub health: Option<Health>,
    /// macOS: the code-signing team ID of its system extensions (Apple issues one per
    /// developer; nobody else can sign as it).
    #[serde(default)]
    pub team_id: Option<String>,
    /// macOS: bundle IDs of its system extensions (endpoint security, network), matched
    /// only together with [`OsEntry::team_id`].
    #[serde(default)]
    pub system_extensions: Vec<String>,
}

/// A product's own cheap health source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Health {
    /// A status command, read by a named pure parser.
    Command {
        /// Program (absolute path) and arguments.
        command: Vec<String>,
        /// How to read its output.
        reader: Reader,
    },
    /// The age of the newest signature database file.
    SignatureAge {
        /// Directories holding the signature files.
        dirs: Vec<String>,
        /// File extensions that are signature databases.
        extensions: Vec<String>,
        /// Older than this is unhealthy.
        max_age_days: u64,
    },
}

/// Parsers of status-command output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reader {
    /// `falconctl -g --rfm-state`.
    FalconctlRfmState,
    /// `mdatp health --field healthy`.
    MdatpHealthy,
    /// `wazuh-control status`.
    WazuhControlStatus,
    /// `sentinelctl control status` (SentinelOne).
    SentinelctlControlStatus,
    /// `cytool runtime query` (Cortex XDR).
    CytoolRuntimeQuery,
    /// `bduitool get ps` (Bitdefender GravityZone).
    BduitoolProtectionStatus,
    /// ESET's `lic --status`.
    EsetLicenseStatus,
}

/// Why the catalogue did not parse (a build defect; a test keeps it from shipping).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the built-in EDR catalogue is invalid: {0}")]
pub struct CatalogueError(String);

/// Parses catalogue text and checks that ids are unique.
pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
    let catalogue: Catalogue = toml::from_str(text).map_err(|e| CatalogueError(e.to_string()))?;
    for (i, product) in catalogue.products.iter().enumerate() {
        if catalogue.products[..i].iter().any(|p| p.id == product.id) {
            return Err(CatalogueError(format!("duplicate id `{}`", product.id)));
        }
    }
    Ok(catalogue)
}

/// Checks what the shipped catalogue must hold: every Linux entry lists processes,
/// service units, install paths and executable directories (the running check verifies a
/// process by its executable's directory and its unit). Catalogues built for tests may
/// leave fields out; the built-in one may not.
pub fn validate(catalogue: &Catalogue) -> Result<(), CatalogueError> {
    for product in &catalogue.products {
        if let Some(linux) = &product.linux {
            for (field, empty) in [
                ("processes", linux.processes.is_empty()),
                ("services", linux.services.is_empty()),
                ("paths", linux.paths.is_empty()),
                ("exe_dirs", linux.exe_dirs.is_empty()),
            ] {
                if empty {
                    return Err(CatalogueError(format!(
                        "`{}`: the Linux entry needs `{field}`",
                        product.id
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The built-in catalogue, parsed once.
pub fn builtin() -> Result<&'static Catalogue, CatalogueError> {
    static CATALOGUE: OnceLock<Result<Catalogue, CatalogueError>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| parse(CATALOGUE_TOML).and_then(|c| validate(&c).map(|()| c)))
        .as_ref()
        .map_err(Clone::clone)
}
