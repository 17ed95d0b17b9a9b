//! Where posture keeps its files, resolved once for every front end (the CLI commands, the
//! daemon and the C agent), so that they all use the same key and the same state.
//!
//! | what | as root | as a user |
//! | --- | --- | --- |
//! | config | `/etc/posture/config.toml` | `~/.config/posture/config.toml` |
//! | state (check memory, caches, outbox) | `/var/lib/posture` | `~/.local/share/posture` |
//! | device key | `<state>/keys` | `<state>/keys` |
//! | daemon socket | `/run/posture/posture.sock` | `$XDG_RUNTIME_DIR/posture/posture.sock` |
//!
//! On Windows the daemon's local API is the named pipe `\\.\pipe\posture` (for every
//! user: the pipe namespace is per machine) and the Windows service keeps its config and
//! state under `%ProgramData%\posture` (set in its config by
//! `packaging/windows/install.ps1`).
//!
//! On macOS the system paths are `/var/db/posture` (state) and
//! `/var/run/posture/posture.sock` (socket); see `packaging/macos/README.md`.
//!
//! Overrides, strongest first: an explicit path (`--key-dir`, `[daemon] state_dir`,
//! `[daemon] socket`), `POSTURE_STATE_DIR`, and under systemd `$STATE_DIRECTORY` and
//! `$RUNTIME_DIRECTORY`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The resolved locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Caches and what checks remember between runs; the daemon's outbox. Never secrets
    /// other than in `key_dir`.
    pub state_dir: PathBuf,
    /// The device key (software key file or TPM-wrapped blobs), owner-only.
    pub key_dir: PathBuf,
    /// The daemon's local API socket, when one can be named (a user without
    /// `XDG_RUNTIME_DIR` has none).
    pub socket: Option<PathBuf>,
}

/// Explicit choices that win over the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The state directory (`[daemon] state_dir`).
    pub state_dir: Option<PathBuf>,
    /// The key directory (`--key-dir`).
    pub key_dir: Option<PathBuf>,
    /// The socket (`[daemon] socket`).
    pub socket: Option<PathBuf>,
}

/// Paths cannot be named.
#[derive(Debug, thiserror::Error)]
#[error("cannot find this user's home directory (is HOME set?); set [daemon] state_dir or POSTURE_STATE_DIR")]
pub struct NoHome;

/// The system daemon's socket, where `posture status` also looks.
#[cfg(not(any(target_os = "macos", windows)))]
pub const SYSTEM_SOCKET: &str = "/run/posture/posture.sock";
/// The daemon's named pipe on Windows (one per machine: the pipe namespace is global; see
/// `packaging/windows/README.md`).
#[cfg(windows)]
pub const SYSTEM_SOCKET: &str = r"\\.\pipe\posture";
/// The system state directory.
#[cfg(not(target_os = "macos"))]
pub const SYSTEM_STATE_DIR: &str = "/var/lib/posture";
/// The system daemon's socket, where `posture status` also looks (macOS has no `/run`;
/// `/var/run` is its runtime directory).
#[cfg(target_os = "macos")]
pub const SYSTEM_SOCKET: &str = "/var/run/posture/posture.sock";
/// The system state directory (`/var/db` is where macOS daemons keep state).
#[cfg(target_os = "macos")]
pub const SYSTEM_STATE_DIR: &str = "/var/db/posture";
/// The system config file.
pub const SYSTEM_CONFIG: &str = "/etc/posture/config.toml";

impl Paths {
    /// Resolves every path for this process (its uid and environment).
    pub fn resolve(overrides: &Overrides) -> Result<Paths, NoHome> {
        Self::resolve_with(overrides, &Environment::current())
    }

    fn resolve_with(overrides: &Overrides, env: &Environment) -> Result<Paths, NoHome> {
        let state_dir = match &overrides.state_dir {
            Some(dir) => dir.clone(),
            None => default_state_dir(env)?,
        };
        let key_dir = overrides
            .key_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("keys"));
        let socket = overrides.socket.clone().or_else(|| default_socket(env));
        Ok(Paths {
            state_dir,
            key_dir,
            socket,
        })
    }

    /// Where a client looks for the daemon: this user's socket, then the system daemon's,
    /// so `posture status` finds either.
    pub fn client_sockets(&self) -> Vec<PathBuf> {
        let mut candidates: Vec<PathBuf> = self.socket.iter().cloned().collect();
        let system = PathBuf::from(SYSTEM_SOCKET);
        if !candidates.contains(&system) {
            candidates.push(system);
        }
        candidates
    }
}

/// The default config file of this process (which may not exist).
pub fn default_config_file() -> Option<PathBuf> {
    let env = Environment::current();
    if env.root {
        return Some(PathBuf::from(SYSTEM_CONFIG));
    }
    env.home_config
        .map(|dir| dir.join("posture").join("config.toml"))
}

/// What the defaults depend on.
#[derive(Debug, Clone, Default)]
struct Environment {
    root: bool,
    posture_state_dir: Option<PathBuf>,
    systemd_state_directory: Option<PathBuf>,
    systemd_runtime_directory: Option<PathBuf>,
    xdg_runtime_dir: Option<PathBuf>,
    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    home_data: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    home_config: Option<PathBuf>,
}

impl Environment {
    fn current() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let dirs = directories::BaseDirs::new();
        Environment {
            root: posture_core::process::is_root(),
            posture_state_dir: var("POSTURE_STATE_DIR").map(PathBuf::from),
            systemd_state_directory: first_of_list(var("STATE_DIRECTORY").as_deref()),
            systemd_runtime_directory: first_of_list(var("RUNTIME_DIRECTORY").as_deref()),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute()),
            home_data: dirs.as_ref().map(|d| d.data_local_dir().to_owned()),
            home_config: dirs.as_ref().map(|d| d.config_dir().to_owned()),
        }
    }
}

fn default_state_dir(env: &Environment) -> Result<PathBuf, NoHome> {
    if let Some(dir) = &env.posture_state_dir {
        return Ok(dir.clone());
    }
    if let Some(dir) = &env.systemd_state_directory {
        return Ok(dir.clone());
    }
    if env.root {
        return Ok(PathBuf::from(SYSTEM_STATE_DIR));
    }
    env.home_data
        .as_ref()
        .map(|dir| dir.join("posture"))
        .ok_or(NoHome)
}

fn default_socket(env: &Environment) -> Option<PathBuf> {
    if cfg!(windows) {
        return Some(PathBuf::from(SYSTEM_SOCKET));
    }
    if let Some(dir) = &env.systemd_runtime_directory {
        return Some(dir.join("posture.sock"));
    }
    if env.root {
        return Some(PathBuf::from(SYSTEM_SOCKET));
    }
    env.xdg_runtime_dir
        .as_ref()
        .map(|dir| dir.join("posture").join("posture.sock"))
}

/// systemd passes `StateDirectory=`/`RuntimeDirectory=` as colon-separated lists.
fn first_of_list(value: Option<&OsStr>) -> Option<PathBuf> {
    let value = value?.to_str()?;
    value
        .split(':')
        .find(|s| !s.is_empty())
        .map(Path::new)
        .map(Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Environment {
        Environment {
            home_data: Some("/home/a/.local/share".into()),
            home_config: Some("/home/a/.config".into()),
            xdg_runtime_dir: Some("/run/user/1000".into()),
            ..Environment::default()
        }
    }

    // The socket defaults are Unix paths; Windows has its pipe (below).
    #[cfg(not(windows))]
    #[test]
    fn a_user_keeps_state_and_key_under_one_data_directory() {
        let paths = Paths::resolve_with(&Overrides::default(), &user()).unwrap();
        assert_eq!(paths.state_dir, Path::new("/home/a/.local/share/posture"));
        assert_eq!(
            paths.key_dir,
            Path::new("/home/a/.local/share/posture/keys")
        );
        assert_eq!(
            paths.socket.as_deref(),
            Some(Path::new("/run/user/1000/posture/posture.sock"))
        );
        assert_eq!(
            paths.client_sockets(),
            vec![
                PathBuf::from("/run/user/1000/posture/posture.sock"),
                PathBuf::from(SYSTEM_SOCKET)
            ]
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn root_and_systemd_directories() {
        let root = Environment {
            root: true,
            ..Environment::default()
        };
        let paths = Paths::resolve_with(&Overrides::default(), &root).unwrap();
        assert_eq!(paths.state_dir, Path::new("/var/lib/posture"));
        assert_eq!(paths.key_dir, Path::new("/var/lib/posture/keys"));
        assert_eq!(paths.socket.as_deref(), Some(Path::new(SYSTEM_SOCKET)));
        let service = Environment {
            root: true,
            systemd_state_directory: first_of_list(Some(OsStr::new("/var/lib/posture:/x"))),
            systemd_runtime_directory: first_of_list(Some(OsStr::new("/run/posture"))),
            ..Environment::default()
        };
        let paths = Paths::resolve_with(&Overrides::default(), &service).unwrap();
        assert_eq!(paths.state_dir, Path::new("/var/lib/posture"));
        assert_eq!(
            paths.socket.as_deref(),
            Some(Path::new("/run/posture/posture.sock"))
        );
    }

    #[test]
    fn overrides_win_and_the_key_follows_the_state_directory() {
        let mut env = user();
        env.posture_state_dir = Some("/tmp/state".into());
        let paths = Paths::resolve_with(&Overrides::default(), &env).unwrap();
        assert_eq!(paths.key_dir, Path::new("/tmp/state/keys"));
        let overrides = Overrides {
            state_dir: Some("/srv/posture".into()),
            key_dir: None,
            socket: Some("/tmp/s.sock".into()),
        };
        let paths = Paths::resolve_with(&overrides, &env).unwrap();
        assert_eq!(paths.key_dir, Path::new("/srv/posture/keys"));
        assert_eq!(paths.socket.as_deref(), Some(Path::new("/tmp/s.sock")));
    }

    #[cfg(windows)]
    #[test]
    fn windows_uses_the_machine_wide_pipe() {
        let paths = Paths::resolve_with(&Overrides::default(), &user()).unwrap();
        assert_eq!(
            paths.socket.as_deref(),
            Some(Path::new(r"\\.\pipe\posture"))
        );
        assert_eq!(
            paths.client_sockets(),
            vec![PathBuf::from(r"\\.\pipe\posture")]
        );
    }

    #[test]
    fn no_home_is_an_error_not_a_guess() {
        assert!(Paths::resolve_with(&Overrides::default(), &Environment::default()).is_err());
    }
}
