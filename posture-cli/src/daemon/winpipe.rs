//! The Windows side of the local API: the named pipe and who is on its other end.
//!
//! - The daemon creates its first instance with `FILE_FLAG_FIRST_PIPE_INSTANCE` (a
//!   process that already owns the name makes the daemon refuse to start, instead of
//!   both answering), `PIPE_REJECT_REMOTE_CLIENTS`, and a protected DACL from
//!   [`super::peer::pipe_sddl`] (SYSTEM, Administrators and the daemon's user; allowed
//!   SIDs may read and write but not create instances).
//! - A client is identified by its process: `GetNamedPipeClientProcessId`, a handle to
//!   that process (which pins the pid), its primary token's user and enabled groups, and
//!   its image path (`QueryFullProcessImageNameW`). The pipe is then checked to be still
//!   connected: had the client exited before its process was opened (and its pid been
//!   reused), its end of the pipe would have closed with it. (A client that handed its
//!   pipe handle to another process is answered as itself, as on Unix with a passed fd.)
//! - `posture status` opens the pipe with `SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION`
//!   (the daemon can tell who it is but cannot act as it) and trusts the answer only from
//!   a server process running as SYSTEM or as its own user ([`server_sid`]).

use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, RawHandle};
use std::path::{Path, PathBuf};

use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, TokenGroups, TokenUser, PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES,
    SID_AND_ATTRIBUTES, TOKEN_GROUPS, TOKEN_INFORMATION_CLASS, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Pipes::{
    GetNamedPipeClientProcessId, GetNamedPipeServerProcessId, PeekNamedPipe, WaitNamedPipeW,
};
use windows_sys::Win32::System::SystemServices::{SE_GROUP_ENABLED, SE_GROUP_USE_FOR_DENY_ONLY};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, QueryFullProcessImageNameW,
    PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::peer::Identity;

/// A handle this module opened, closed on drop.
struct Owned(HANDLE);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by this module and is closed only here.
        unsafe { CloseHandle(self.0) };
    }
}

/// Memory the system allocated with `LocalAlloc`, freed on drop.
struct Local(*mut core::ffi::c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by a Win32 function documented to use LocalAlloc; freed once.
            unsafe { LocalFree(self.0) };
        }
    }
}

fn wide(text: &std::ffi::OsStr) -> Vec<u16> {
    text.encode_wide().chain(std::iter::once(0)).collect()
}

/// The identified client of a connected pipe instance.
#[derive(Debug)]
pub struct Client {
    /// Its token's user and groups.
    pub identity: Identity,
    /// Its process id.
    pub pid: u32,
    /// Its executable, when it could be read.
    pub exe: Option<PathBuf>,
}

/// Creates an instance of the pipe `pipe` with the security descriptor `sddl`; `first`
/// for the daemon's first instance (fails with access denied when the name is taken).
pub fn create(pipe: &Path, first: bool, sddl: &str) -> std::io::Result<NamedPipeServer> {
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    let text = wide(std::ffi::OsStr::new(sddl));
    // SAFETY: a NUL-terminated SDDL string; `descriptor` is a live out-pointer.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            text.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let descriptor = Local(descriptor);
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor.0,
        bInheritHandle: 0,
    };
    // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES whose descriptor lives until
    // after the call (`descriptor` is dropped at the end of this function).
    unsafe {
        ServerOptions::new()
            .first_pipe_instance(first)
            .reject_remote_clients(true)
            .max_instances(254)
            .create_with_security_attributes_raw(pipe, std::ptr::addr_of_mut!(attributes).cast())
    }
}

/// Whether any process serves a pipe of this name (without connecting to it:
/// `WaitNamedPipeW` fails with "file not found" only when there is none). The daemon asks
/// before creating its first instance: `FILE_FLAG_FIRST_PIPE_INSTANCE` is the guard on
/// Windows, but Wine 8 does not honour it (a second instance of a taken name is created),
/// and this gives the same refusal there. Racy on its own, hence the flag as well.
pub fn exists(pipe: &Path) -> bool {
    const ERROR_FILE_NOT_FOUND: i32 = 2;
    let name = wide(pipe.as_os_str());
    // SAFETY: a NUL-terminated pipe path; waits at most 1 ms.
    if unsafe { WaitNamedPipeW(name.as_ptr(), 1) } != 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(ERROR_FILE_NOT_FOUND)
}

/// Who is on the other end of the connected instance `server`.
pub fn client(server: &NamedPipeServer) -> std::io::Result<Client> {
    let handle = server.as_raw_handle();
    let mut pid = 0u32;
    // SAFETY: `handle` is the live pipe handle; `pid` is a live out-pointer.
    if unsafe { GetNamedPipeClientProcessId(handle as HANDLE, &mut pid) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let process = open_process(pid)?;
    let (sid, groups) = token_of(&process)?;
    let exe = image_path(&process);
    still_connected(handle)?;
    Ok(Client {
        identity: Identity::Windows { sid, groups },
        pid,
        exe,
    })
}

/// The user SID of the process serving the pipe `client` opened.
pub fn server_sid(client: &std::fs::File) -> std::io::Result<String> {
    let mut pid = 0u32;
    // SAFETY: the live pipe handle of `client`; `pid` is a live out-pointer.
    if unsafe { GetNamedPipeServerProcessId(client.as_raw_handle() as HANDLE, &mut pid) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let process = open_process(pid)?;
    Ok(token_of(&process)?.0)
}

/// This process's user SID.
pub fn own_sid() -> std::io::Result<String> {
    // SAFETY: the pseudo handle of this process needs no closing and is always valid.
    let process = unsafe { GetCurrentProcess() };
    let token = open_token(process)?;
    user_sid(&token)
}

fn open_process(pid: u32) -> std::io::Result<Owned> {
    // SAFETY: OpenProcess has no memory preconditions; a null handle is failure.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Owned(process))
}

fn open_token(process: HANDLE) -> std::io::Result<Owned> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a live process handle; `token` is a live out-pointer.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Owned(token))
}

/// The user SID and enabled (not deny-only) group SIDs of a process's primary token.
fn token_of(process: &Owned) -> std::io::Result<(String, Vec<String>)> {
    let token = open_token(process.0)?;
    let sid = user_sid(&token)?;
    let buffer = token_information(&token, TokenGroups)?;
    // SAFETY: on success the buffer starts with a TOKEN_GROUPS whose `Groups` array of
    // `GroupCount` entries (and the SIDs they point to) lie inside the buffer.
    let groups = unsafe {
        let header = &*buffer.as_ptr().cast::<TOKEN_GROUPS>();
        std::slice::from_raw_parts(
            header.Groups.as_ptr().cast::<SID_AND_ATTRIBUTES>(),
            header.GroupCount as usize,
        )
    };
    let enabled = SE_GROUP_ENABLED as u32;
    let deny_only = SE_GROUP_USE_FOR_DENY_ONLY as u32;
    let groups = groups
        .iter()
        .filter(|g| g.Attributes & enabled != 0 && g.Attributes & deny_only == 0)
        .filter_map(|g| sid_string(g.Sid).ok())
        .collect();
    Ok((sid, groups))
}

fn user_sid(token: &Owned) -> std::io::Result<String> {
    let buffer = token_information(token, TokenUser)?;
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID lies inside it.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    sid_string(sid)
}

/// `GetTokenInformation` into an 8-aligned buffer of the size it asks for.
fn token_information(token: &Owned, class: TOKEN_INFORMATION_CLASS) -> std::io::Result<Vec<u64>> {
    let mut buffer = vec![0u64; 256];
    for _ in 0..3 {
        let mut needed = 0u32;
        let bytes = u32::try_from(buffer.len() * 8).unwrap_or(u32::MAX);
        // SAFETY: `buffer` is writable for `bytes` bytes; `needed` is a live out-pointer.
        let ok = unsafe {
            GetTokenInformation(
                token.0,
                class,
                buffer.as_mut_ptr().cast(),
                bytes,
                &mut needed,
            )
        };
        if ok != 0 {
            return Ok(buffer);
        }
        let error = std::io::Error::last_os_error();
        if needed as usize <= buffer.len() * 8 {
            return Err(error);
        }
        buffer.resize((needed as usize).div_ceil(8), 0);
    }
    Err(std::io::Error::other("token information keeps growing"))
}

fn sid_string(sid: PSID) -> std::io::Result<String> {
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` points to a valid SID (inside a live token buffer); `text` is a live
    // out-pointer.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _free = Local(text.cast());
    let mut len = 0;
    // SAFETY: ConvertSidToStringSidW returned a NUL-terminated string.
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the NUL were just read.
    Ok(String::from_utf16_lossy(unsafe {
        std::slice::from_raw_parts(text, len)
    }))
}

fn image_path(process: &Owned) -> Option<PathBuf> {
    let mut buffer = vec![0u16; 32 * 1024];
    let mut len = u32::try_from(buffer.len()).ok()?;
    // SAFETY: `buffer` is writable for `len` UTF-16 units; `len` is a live in/out value.
    let ok = unsafe {
        QueryFullProcessImageNameW(process.0, PROCESS_NAME_WIN32, buffer.as_mut_ptr(), &mut len)
    };
    if ok == 0 {
        return None;
    }
    buffer.truncate(len as usize);
    Some(PathBuf::from(String::from_utf16_lossy(&buffer)))
}

/// Fails when the client's end of the pipe is already closed.
fn still_connected(handle: RawHandle) -> std::io::Result<()> {
    let mut available = 0u32;
    // SAFETY: the live pipe handle; no buffer is read (null, size 0); `available` is a
    // live out-pointer, the other out-pointers may be null.
    let ok = unsafe {
        PeekNamedPipe(
            handle as HANDLE,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            &mut available,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
