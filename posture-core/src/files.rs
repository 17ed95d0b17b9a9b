//! Writing files that hold keys, enrollment records and state: owner-only, atomic, and
//! never through a symlink.
//!
//! One policy for every such file in posture: the bytes go to a new temporary file in the
//! same directory (created with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600, so an attacker's
//! symlink or file at that name is never written through), are flushed with `fsync`, and
//! the file is renamed over the destination (rename replaces a symlink rather than
//! following it); then the directory is synced so the rename survives a crash. After a
//! crash the destination holds either the old or the new content, never a mix.
//!
//! Permissions are set when the file is created, on its descriptor, never with a `chmod`
//! through a path.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};

/// Writes `bytes` to `path` atomically, readable and writable by the owner only.
///
/// The directory must exist. A symlink at `path` is replaced, never followed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temp_path(path);
    let result = write_new(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: a temp file left behind is harmless but untidy.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(&dir)
}

/// Creates a new file at `path` (never one that exists, never through a symlink), mode
/// 0600, writes `bytes` and syncs it. Fails with `AlreadyExists` when anything is there.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = open_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `dir` (and missing parents) with mode 0700 where it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    #[cfg(not(windows))]
    {
        builder.create(dir)
    }
    #[cfg(windows)]
    {
        // Parents are ordinary directories; the last one is created owner-only (an
        // existing one is left as it is, as the mode above applies only to what is created).
        if let Some(parent) = dir.parent() {
            builder.create(parent)?;
        }
        crate::files_windows::create_private_dir(dir)
    }
}

/// What a private file or directory must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivateKind {
    /// A regular file, mode 0600 or stricter.
    File,
    /// A directory, mode 0700 or stricter.
    Dir,
}

/// Why `path` is not private to this process's user, or `None` when it is: it must be
/// the `kind` asked for (a symlink is neither: it could point anywhere), give no access to
/// group or others, and belong to the effective uid. Where this cannot be told (not
/// Unix), the answer is a problem, never a pass.
pub fn private_problem(path: &Path, kind: PrivateKind) -> std::io::Result<Option<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(path)?;
        match kind {
            PrivateKind::File if !meta.file_type().is_file() => {
                return Ok(Some("not a regular file".into()))
            }
            PrivateKind::Dir if !meta.file_type().is_dir() => {
                return Ok(Some("not a directory".into()))
            }
            _ => {}
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            let expected = match kind {
                PrivateKind::Dir => "0700",
                PrivateKind::File => "0600",
            };
            return Ok(Some(format!(
                "mode {mode:04o} gives access to group or others, expected {expected} \
                 (fix: chmod {expected} {})",
                path.display()
            )));
        }
        let euid = crate::process::effective_uid();
        if meta.uid() != euid {
            return Ok(Some(format!(
                "owned by uid {}, but this process runs as uid {euid}",
                meta.uid()
            )));
        }
        Ok(None)
    }
    #[cfg(windows)]
    {
        let meta = fs::symlink_metadata(path)?;
        match kind {
            PrivateKind::File if !meta.file_type().is_file() => {
                return Ok(Some("not a regular file".into()))
            }
            PrivateKind::Dir if !meta.file_type().is_dir() => {
                return Ok(Some("not a directory".into()))
            }
            _ => {}
        }
        crate::files_windows::private_problem(path)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (path, kind);
        Ok(Some(
            "permission checks are only implemented for Unix and Windows".into(),
        ))
    }
}

/// Syncs a directory, so that a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened for syncing on Windows; NTFS journals renames.
        let _ = dir;
        Ok(())
    }
}

#[cfg(unix)]
fn open_new(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(O_NOFOLLOW)
        .open(path)
}

/// Windows: owner-only from creation (a descriptor given to `CreateFileW`), as the mode is
/// given to `open(2)` on Unix.
#[cfg(windows)]
fn open_new(path: &Path) -> std::io::Result<fs::File> {
    crate::files_windows::create_new_private_file(path)
}

#[cfg(not(any(unix, windows)))]
fn open_new(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// `O_NOFOLLOW` (redundant with `O_EXCL` on Linux, which already refuses a symlink at the
/// name, but it states the intent and holds on systems where it differs).
#[cfg(target_os = "linux")]
const O_NOFOLLOW: i32 = 0o400_000;
#[cfg(all(unix, not(target_os = "linux")))]
const O_NOFOLLOW: i32 = 0x0100;

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.{}.tmp", crate::hex::encode(&suffix)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_owner_only_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("pending.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_private(&path, b"secret").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        let victim_mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(victim_mode, 0o644, "the symlink's target was not chmodded");
        assert!(!fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&path).unwrap(), b"secret");
    }

    #[test]
    fn write_new_refuses_an_existing_name_and_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_new(&link, b"x").is_err());
        assert!(!target.exists(), "nothing was created through the symlink");
        write_new(&target, b"x").unwrap();
        assert_eq!(
            write_new(&target, b"y").unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
    }
}
