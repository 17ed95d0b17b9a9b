//! Reading raw facts: files below the context root and, where no file source exists,
//! commands with a timeout. Nothing here interprets what it reads.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Context;

/// Files larger than this are not read whole: every source we read is far smaller.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Why a source could not be read. Its `Display` is a reason fit for an `unknown` finding.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path does not exist.
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    /// Permission denied: usually "needs root".
    #[error("needs root: permission denied reading {0}")]
    PermissionDenied(PathBuf),
    /// Another I/O error.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{0} is too large to read")]
    TooLarge(PathBuf),
    /// A command is not installed.
    #[error("command `{0}` is not installed")]
    CommandNotFound(String),
    /// A command ran past its timeout and was killed.
    #[error("timeout: command `{0}` did not finish in time")]
    CommandTimeout(String),
    /// A command exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Exit status.
        status: String,
        /// The first line of its stderr.
        stderr: String,
    },
    /// Commands are not run against fixture trees.
    #[error("commands are not run against a fixture root")]
    NotLive,
    /// A file in a directory a user controls was not read: a symbolic link, not a
    /// regular file (a FIFO, a device, a socket) or too large.
    #[error("refused to read {path}: {why}")]
    Refused {
        /// The path.
        path: PathBuf,
        /// Why, in plain words.
        why: String,
    },
}

impl SourceError {
    fn from_io(path: &Path, err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound => SourceError::NotFound(path.to_owned()),
            io::ErrorKind::PermissionDenied => SourceError::PermissionDenied(path.to_owned()),
            _ => SourceError::Io {
                path: path.to_owned(),
                source: err,
            },
        }
    }

    /// Whether the source simply is not there (as opposed to unreadable).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            SourceError::NotFound(_) | SourceError::CommandNotFound(_)
        )
    }
}

/// Reads a whole text file below the context root (`absolute` is the system path, e.g.
/// `/etc/os-release`). Invalid UTF-8 is replaced, never an error.
pub fn read_text(ctx: &Context, absolute: impl AsRef<Path>) -> Result<String, SourceError> {
    // Valid UTF-8 (nearly always) becomes the string without a copy; only invalid input
    // pays for the replacement.
    read_bytes(ctx, absolute).map(|b| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    })
}

/// dpkg's status file (`/var/lib/dpkg/status`), read once per collection however many
/// checks ask (see [`Context`]'s shared reads). `Err` is the read's reason, as
/// [`read_text`] words it.
pub fn read_dpkg_status(ctx: &Context) -> Result<std::sync::Arc<String>, String> {
    ctx.shared.dpkg_status(|| {
        read_text(ctx, "/var/lib/dpkg/status")
            .map(std::sync::Arc::new)
            .map_err(|e| e.to_string())
    })
}

/// Reads a whole file below the context root.
pub fn read_bytes(ctx: &Context, absolute: impl AsRef<Path>) -> Result<Vec<u8>, SourceError> {
    let path = ctx.path(absolute);
    let file = std::fs::File::open(&path).map_err(|e| SourceError::from_io(&path, e))?;
    // `take` hides the file's size from `read_to_end`: size the buffer here, so a large
    // file (dpkg's status, ~1 MB) is read into one allocation instead of a doubling
    // series of copies. procfs and sysfs files report size 0 and grow as before.
    let size_hint = file.metadata().map_or(0, |m| m.len()).min(MAX_FILE_BYTES);
    let mut bytes = Vec::with_capacity(usize::try_from(size_hint).unwrap_or(0).saturating_add(1));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::from_io(&path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(SourceError::TooLarge(path));
    }
    Ok(bytes)
}

/// Reads at most `len` bytes from the start of a file or block device below the context
/// root (e.g. the LUKS header at the start of `/dev/nvme0n1p3`). Fewer bytes come back
/// when the file is shorter.
pub fn read_prefix(
    ctx: &Context,
    absolute: impl AsRef<Path>,
    len: u64,
) -> Result<Vec<u8>, SourceError> {
    let path = ctx.path(absolute);
    let file = std::fs::File::open(&path).map_err(|e| SourceError::from_io(&path, e))?;
    let mut bytes = Vec::new();
    file.take(len.min(MAX_FILE_BYTES))
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::from_io(&path, e))?;
    Ok(bytes)
}

/// Largest file read from a directory that a user controls (a home directory). The
/// settings files the checks read there are a few KiB.
pub const MAX_USER_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads `relative` below the user-controlled directory `home` (a system path, e.g.
/// `/home/alice`, taken from root-owned `/etc/passwd`), the way a root process must read
/// what a user can write:
/// - every component below `home` is opened relative to its parent with `O_NOFOLLOW`, so
///   a symbolic link anywhere (`~/.config -> /root/.config`, `kscreenlockerrc ->
///   /etc/shadow`) is refused, never followed;
/// - only a regular file is opened (`fstatat` before, `fstat` after the open, which is
///   `O_NONBLOCK`): a FIFO cannot block the reader and a device node is never read;
/// - at most [`MAX_USER_FILE_BYTES`] are read (checked on the size and again on read).
///
/// A refusal is [`SourceError::Refused`] with the reason; a missing file or directory is
/// [`SourceError::NotFound`] as for [`read_bytes`].
pub fn read_user_file(ctx: &Context, home: &str, relative: &str) -> Result<Vec<u8>, SourceError> {
    read_user_file_capped(ctx, home, relative, MAX_USER_FILE_BYTES)
}

#[cfg(not(unix))]
fn read_user_file_capped(
    ctx: &Context,
    home: &str,
    relative: &str,
    _cap: u64,
) -> Result<Vec<u8>, SourceError> {
    Err(SourceError::Refused {
        path: ctx.path(home).join(relative),
        why: "reading a user's file without following links is implemented on Unix only".to_owned(),
    })
}

#[cfg(unix)]
fn read_user_file_capped(
    ctx: &Context,
    home: &str,
    relative: &str,
    cap: u64,
) -> Result<Vec<u8>, SourceError> {
    use rustix::fs::{fstat, openat, statat, AtFlags, FileType, Mode, OFlags, CWD};

    let home_path = ctx.path(home);
    let components: Vec<&str> = relative.split('/').filter(|c| !c.is_empty()).collect();
    let full = components
        .iter()
        .fold(home_path.clone(), |path, c| path.join(c));
    let refused = |path: &Path, why: String| SourceError::Refused {
        path: path.to_owned(),
        why,
    };
    if components.is_empty() || components.iter().any(|c| *c == ".." || *c == ".") {
        return Err(refused(&full, "not a plain relative path".to_owned()));
    }
    let io = |path: &Path, e: rustix::io::Errno| SourceError::from_io(path, io::Error::from(e));
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    // The home directory itself lives in a root-owned directory (/home): opened normally.
    let mut dir =
        openat(CWD, &home_path, dir_flags, Mode::empty()).map_err(|e| io(&home_path, e))?;
    let mut path = home_path;
    for (i, name) in components.iter().enumerate() {
        path = path.join(name);
        let last = i + 1 == components.len();
        let stat = statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io(&path, e))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind == FileType::Symlink {
            return Err(refused(
                &path,
                "it is a symbolic link, and posture does not follow links in a user's directory"
                    .to_owned(),
            ));
        }
        if !last {
            if kind != FileType::Directory {
                return Err(refused(
                    &path,
                    format!("it is {}, not a directory", kind_name(kind)),
                ));
            }
            dir = openat(&dir, *name, dir_flags | OFlags::NOFOLLOW, Mode::empty())
                .map_err(|e| io(&path, e))?;
            continue;
        }
        let check = |kind: FileType, size: i64| -> Result<(), SourceError> {
            if kind != FileType::RegularFile {
                return Err(refused(
                    &path,
                    format!("it is {}, not a regular file", kind_name(kind)),
                ));
            }
            if u64::try_from(size).map_or(true, |size| size > cap) {
                return Err(refused(
                    &path,
                    format!(
                        "it is {size} bytes, more than the {cap} posture reads from a user's file"
                    ),
                ));
            }
            Ok(())
        };
        check(kind, stat.st_size)?;
        // O_NONBLOCK: should a FIFO be swapped in after the fstatat, the open does not
        // block; the fstat below then refuses it.
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = openat(&dir, *name, flags, Mode::empty()).map_err(|e| io(&path, e))?;
        let stat = fstat(&fd).map_err(|e| io(&path, e))?;
        check(FileType::from_raw_mode(stat.st_mode), stat.st_size)?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| SourceError::from_io(&path, e))?;
        if bytes.len() as u64 > cap {
            return Err(refused(
                &path,
                format!("it grew beyond {cap} bytes while read"),
            ));
        }
        return Ok(bytes);
    }
    Err(refused(&full, "not a plain relative path".to_owned()))
}

#[cfg(unix)]
fn kind_name(kind: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType;
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

/// Reads a one-line sysfs/procfs attribute, trimmed.
pub fn read_attr(ctx: &Context, absolute: impl AsRef<Path>) -> Result<String, SourceError> {
    read_text(ctx, absolute).map(|s| s.trim().to_owned())
}

/// Lists the entry names of a directory below the root, sorted.
pub fn list_dir(ctx: &Context, absolute: impl AsRef<Path>) -> Result<Vec<String>, SourceError> {
    let path = ctx.path(absolute);
    let entries = std::fs::read_dir(&path).map_err(|e| SourceError::from_io(&path, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SourceError::from_io(&path, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Whether a path exists below the root.
pub fn exists(ctx: &Context, absolute: impl AsRef<Path>) -> bool {
    ctx.path(absolute).exists()
}

/// Finds an executable on the standard system paths below the root.
#[cfg(windows)]
pub fn find_program(_ctx: &Context, name: &str) -> Option<PathBuf> {
    // Windows: the system directories only (never the current directory or PATH, which a
    // user can change).
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    let system32 = PathBuf::from(root).join("System32");
    [
        system32.clone(),
        system32.join("WindowsPowerShell").join("v1.0"),
    ]
    .iter()
    .map(|dir| dir.join(name))
    .find(|p| p.is_file())
}

/// Finds an executable on the standard system paths below the root.
#[cfg(not(windows))]
pub fn find_program(ctx: &Context, name: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|dir| ctx.path(Path::new(dir).join(name)))
    .find(|p| p.is_file())
}

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
}

/// Runs a command (only in a live context) with a timeout; a command still running then
/// is killed. Stdin is closed; the environment's locale is forced to C so output is
/// parseable. Non-zero exit is returned as output, not an error: callers decide.
pub fn run_command(
    ctx: &Context,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, SourceError> {
    if !ctx.live {
        return Err(SourceError::NotLive);
    }
    let command_line = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let path = find_program(ctx, program)
        .ok_or_else(|| SourceError::CommandNotFound(program.to_owned()))?;
    let mut child = Command::new(&path)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SourceError::from_io(&path, e))?;

    // Drain both pipes on their own threads so a chatty command cannot block on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline || ctx.cancelled() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SourceError::CommandTimeout(command_line));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(SourceError::from_io(&path, e)),
        }
    };
    let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(CommandOutput {
        stdout,
        stderr,
        code: status.code(),
    })
}

impl CommandOutput {
    /// The output, or an error naming the command when it exited non-zero.
    pub fn success(self, command: &str) -> Result<CommandOutput, SourceError> {
        if self.code == Some(0) {
            Ok(self)
        } else {
            Err(SourceError::CommandFailed {
                command: command.to_owned(),
                status: self
                    .code
                    .map_or("killed by signal".to_owned(), |c| format!("exit {c}")),
                stderr: self.stderr.lines().next().unwrap_or("").to_owned(),
            })
        }
    }
}

fn drain<R: Read + Send + 'static>(mut reader: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChecksConfig;

    #[test]
    fn command_that_hangs_is_killed_at_timeout() {
        let ctx = Context::system(ChecksConfig::default());
        let started = Instant::now();
        // A command that runs ~30 s: sleep; on Windows ping (one echo a second), which
        // Wine has too.
        #[cfg(unix)]
        let (program, args) = ("sleep", &["30"][..]);
        #[cfg(windows)]
        let (program, args) = ("ping.exe", &["-n", "30", "127.0.0.1"][..]);
        let err = run_command(&ctx, program, args, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, SourceError::CommandTimeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_command_is_not_found() {
        let ctx = Context::system(ChecksConfig::default());
        let err =
            run_command(&ctx, "posture-no-such-tool", &[], Duration::from_secs(1)).unwrap_err();
        assert!(err.is_not_found());
    }

    #[test]
    fn fixture_context_runs_no_commands() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::fixture(
            dir.path(),
            ChecksConfig::default(),
            std::time::SystemTime::now(),
        );
        assert!(matches!(
            run_command(&ctx, "true", &[], Duration::from_secs(1)),
            Err(SourceError::NotLive)
        ));
    }

    #[test]
    fn reads_below_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "laptop\n").unwrap();
        let ctx = Context::fixture(
            dir.path(),
            ChecksConfig::default(),
            std::time::SystemTime::now(),
        );
        assert_eq!(read_attr(&ctx, "/etc/hostname").unwrap(), "laptop");
        assert!(read_text(&ctx, "/etc/missing").unwrap_err().is_not_found());
    }
}
