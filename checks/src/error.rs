use std::path::PathBuf;

/// Errors of the checks crate. Individual checks never return errors: they answer
/// `unknown` with a reason. These are for configuration and the runner.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read config {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration is not valid TOML or has an unknown key; the message has line and column.
    #[error("invalid config {path}: {message}")]
    ConfigParse {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A setting with a value that is not allowed (the message names the setting).
    #[error("{0}")]
    InvalidSetting(String),
    /// A check id that does not exist.
    #[error("unknown check `{0}` (known: {known})", known = crate::CHECKS.iter().map(|c| c.id).collect::<Vec<_>>().join(", "))]
    UnknownCheck(String),
    /// The operating system is not supported.
    #[error("unsupported on this OS: {0}")]
    Unsupported(String),
    /// A thread could not be started.
    #[error("cannot start a check thread: {0}")]
    Thread(std::io::Error),
}
