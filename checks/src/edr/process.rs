//! Running processes as the `edr` check trusts them: read from `/proc/PID` through one
//! directory handle per process (so every fact is about the same process even if the pid
//! is reused meanwhile), and judged by [`verify`]: who runs it, which file it runs, and in
//! which service unit.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::catalogue::OsEntry;
use crate::Context;

/// Identity of a file: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// A running process, as the matcher and [`verify`] see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// The process name (Linux: `comm`, at most 15 bytes; the process sets it itself).
    pub name: String,
    /// Where `/proc/PID/exe` points (Linux appends ` (deleted)` to a deleted file).
    pub exe: Option<String>,
    /// Real and effective uid.
    pub uids: Option<(u32, u32)>,
    /// The file the process runs (`stat` of `/proc/PID/exe`): the running image itself,
    /// whatever its path says.
    pub exe_file: Option<FileId>,
    /// `/proc/PID/cgroup`: on a systemd machine, the unit the process runs in.
    pub cgroup: Option<String>,
}

impl ProcessInfo {
    /// A process known only by name and executable path (nothing that would let it
    /// count as a running product).
    pub fn named(name: &str, exe: Option<&str>) -> Self {
        Self {
            pid: 0,
            name: name.to_owned(),
            exe: exe.map(str::to_owned),
            uids: None,
            exe_file: None,
            cgroup: None,
        }
    }
}

/// Reads one process from `/proc`; `None` when it is gone or unreadable.
pub fn read_process(pid: u32) -> Option<ProcessInfo> {
    use rustix::fs::{openat, readlinkat, statat, AtFlags, Mode, OFlags, CWD};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    // Everything below is read through this handle: once the process is gone, reads fail
    // (ESRCH) instead of describing a new process that got the same pid.
    let dir = openat(CWD, format!("/proc/{pid}"), flags, Mode::empty()).ok()?;
    let read = |name: &str| -> Option<String> {
        use std::io::Read;
        let fd = openat(&dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(256 * 1024)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    };
    let status = read("status")?;
    let name = status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(|n| n.trim().to_owned())?;
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| {
            let mut ids = rest
                .split_whitespace()
                .filter_map(|v| v.parse::<u32>().ok());
            Some((ids.next()?, ids.next()?))
        });
    let exe = readlinkat(&dir, "exe", Vec::new())
        .ok()
        .map(|target| target.to_string_lossy().into_owned());
    let exe_file = statat(&dir, "exe", AtFlags::empty()).ok().map(|st| FileId {
        dev: st.st_dev,
        ino: st.st_ino,
    });
    let cgroup = read("cgroup");
    // The process may have exited between the reads: then the last read failed, or its
    // status no longer exists. Read it once more to be sure the facts are of one process.
    read("status")?;
    Some(ProcessInfo {
        pid,
        name,
        exe,
        uids,
        exe_file,
        cgroup,
    })
}

/// A process's name (`comm`) and executable path only: a short read and a `readlink`,
/// without `status`, which the kernel generates with the process's memory statistics.
fn read_name_and_exe(pid: u32) -> Option<ProcessInfo> {
    use rustix::fs::{openat, readlinkat, Mode, OFlags, CWD};
    use std::io::Read;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = openat(CWD, format!("/proc/{pid}"), flags, Mode::empty()).ok()?;
    let fd = openat(
        &dir,
        "comm",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut comm = String::new();
    std::fs::File::from(fd)
        .take(64)
        .read_to_string(&mut comm)
        .ok()?;
    let exe = readlinkat(&dir, "exe", Vec::new())
        .ok()
        .map(|target| target.to_string_lossy().into_owned())?;
    let mut info = ProcessInfo::named(comm.trim_end_matches('\n'), Some(&exe));
    info.pid = pid;
    Some(info)
}

/// The processes in `/proc` that `wanted` accepts by name and executable path, each then
/// read in full by [`read_process`] (and judged again on what that read says). The
/// others cost one short read and a `readlink`: a machine runs hundreds of processes and
/// the check cares about a handful of names. Kernel threads have no executable and are
/// skipped.
pub fn live_processes_where(wanted: impl Fn(&ProcessInfo) -> bool) -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| read_name_and_exe(*pid).is_some_and(|p| wanted(&p)))
        .filter_map(read_process)
        .filter(|p| p.exe.is_some())
        .collect()
}

/// Every process in `/proc` (kernel threads have no executable and are skipped).
pub fn live_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_process)
        .filter(|p| p.exe.is_some())
        .collect()
}

/// The system service a process runs in, from `/proc/PID/cgroup` (pure): the unit right
/// below `/system.slice/` on the unified hierarchy (`0::/system.slice/x.service`), else
/// on the v1 `name=systemd` one. A user's own units (below `user.slice`, which a user can
/// name as they like) are never a system service.
pub fn unit_of_cgroup(text: &str) -> Option<&str> {
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| p.starts_with("/system.slice/"))
        .or_else(|| {
            text.lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
        })?;
    let unit = path.strip_prefix("/system.slice/")?.split('/').next()?;
    unit.ends_with(".service").then_some(unit)
}

/// Uids that may run a product: root and the catalogue's service users (resolved through
/// `/etc/passwd` below the root).
pub fn allowed_uids(ctx: &Context, entry: &OsEntry) -> Vec<u32> {
    let mut uids = vec![0];
    if !entry.users.is_empty() {
        if let Ok(text) = crate::source::read_text(ctx, "/etc/passwd") {
            for line in text.lines() {
                let mut fields = line.split(':');
                let (Some(name), _, Some(uid)) = (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                if entry.users.iter().any(|u| u == name) {
                    if let Ok(uid) = uid.parse() {
                        uids.push(uid);
                    }
                }
            }
        }
    }
    uids
}

/// Whether a process whose name matches a product really is that product running; the
/// error is why not, in plain words. A product's process must
/// - run as root or one of the catalogue's service users (real and effective uid),
/// - run an executable that is still on disk, in one of the catalogue's `exe_dirs`, is the
///   very file at that path (same device and inode), and is not writable — nor any
///   directory above it — by anyone but root,
/// - where the catalogue names service units, run inside one of them (its cgroup).
pub fn verify(
    ctx: &Context,
    entry: &OsEntry,
    allowed_uids: &[u32],
    process: &ProcessInfo,
) -> Result<(), String> {
    let Some((real, effective)) = process.uids else {
        return Err("its user could not be read".to_owned());
    };
    for uid in [real, effective] {
        if !allowed_uids.contains(&uid) {
            return Err(format!(
                "it runs as uid {uid}, not as root or the product's service user"
            ));
        }
    }
    let Some(exe) = process.exe.as_deref() else {
        return Err("its executable could not be read".to_owned());
    };
    if exe.ends_with(" (deleted)") {
        return Err(format!("its executable {exe} was deleted or replaced"));
    }
    // The kernel names the real path; below a fixture root it includes the root.
    let system = if ctx.root == Path::new("/") {
        PathBuf::from(exe)
    } else {
        match Path::new(exe).strip_prefix(&ctx.root) {
            Ok(relative) => Path::new("/").join(relative),
            Err(_) => return Err(format!("its executable {exe} is outside the root")),
        }
    };
    if entry.exe_dirs.is_empty() {
        return Err("the catalogue names no install directory to verify it against".to_owned());
    }
    if !entry
        .exe_dirs
        .iter()
        .any(|dir| system.starts_with(dir) && system != Path::new(dir))
    {
        return Err(format!(
            "its executable {} is not in the product's install directories ({})",
            system.display(),
            entry.exe_dirs.join(", ")
        ));
    }
    let on_disk = ctx.path(&system);
    let meta = std::fs::metadata(&on_disk)
        .map_err(|e| format!("its executable {} cannot be read: {e}", system.display()))?;
    if process.exe_file
        != Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    {
        return Err(format!(
            "it does not run the file now at {}",
            system.display()
        ));
    }
    if let Some(problem) = writable_by_others(&on_disk) {
        return Err(problem);
    }
    if !entry.services.is_empty() {
        let unit = process.cgroup.as_deref().and_then(unit_of_cgroup);
        match unit {
            Some(unit) if entry.services.iter().any(|s| s == unit) => {}
            Some(unit) => {
                return Err(format!(
                    "it runs in {unit}, not in the product's service ({})",
                    entry.services.join(", ")
                ))
            }
            None => {
                return Err(format!(
                    "it does not run in the product's service ({})",
                    entry.services.join(", ")
                ))
            }
        }
    }
    Ok(())
}

/// Why a file (or a directory above it) could be replaced by someone other than root:
/// not owned by root, or group/other-writable (a directory with the sticky bit, such as
/// /tmp, protects the root-owned entries in it).
fn writable_by_others(path: &Path) -> Option<String> {
    let mut current = Some(path);
    let mut first = true;
    while let Some(p) = current {
        let meta = match std::fs::metadata(p) {
            Ok(meta) => meta,
            Err(e) => return Some(format!("{} cannot be read: {e}", p.display())),
        };
        let mode = meta.mode();
        let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
        if meta.uid() != 0 {
            return Some(format!(
                "{} {} is owned by uid {}, not root",
                if first {
                    "its executable"
                } else {
                    "the directory"
                },
                p.display(),
                meta.uid()
            ));
        }
        let protected_by_sticky = sticky_dir && !first;
        if mode & 0o022 != 0 && !protected_by_sticky {
            return Some(format!(
                "{} {} can be written by users other than root (mode {:o})",
                if first {
                    "its executable"
                } else {
                    "the directory"
                },
                p.display(),
                mode & 0o7777
            ));
        }
        first = false;
        current = p.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_from_cgroup_v2_and_v1() {
        // As Linux 6.1 / systemd 252 write them.
        assert_eq!(
            unit_of_cgroup("0::/system.slice/sentinelone.service\n"),
            Some("sentinelone.service")
        );
        // A user may name their own unit like the product's: not a system service.
        assert_eq!(
            unit_of_cgroup(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/sentinelone.service\n"
            ),
            None
        );
        assert_eq!(
            unit_of_cgroup("12:pids:/\n1:name=systemd:/system.slice/falcon-sensor.service\n"),
            Some("falcon-sensor.service")
        );
        assert_eq!(unit_of_cgroup("0::/\n"), None);
    }
}
