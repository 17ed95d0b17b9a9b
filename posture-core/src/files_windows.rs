//! Owner-only files on Windows: a private directory is created with a protected DACL (no
//! inherited entries) granting full control to this user, SYSTEM and Administrators,
//! inherited by the files created in it; a private file or directory is checked by reading its owner
//! and DACL as SDDL and judging that with [`crate::sddl`].

use std::os::windows::ffi::OsStrExt;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    CloseHandle, LocalFree, ERROR_ALREADY_EXISTS, GENERIC_READ, GENERIC_WRITE, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, SDDL_REVISION_1,
    SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, TokenUser, DACL_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateDirectoryW, CreateFileW, CREATE_NEW, FILE_ATTRIBUTE_NORMAL,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect()
}

fn wide_str(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A string or descriptor the system allocated with `LocalAlloc`, freed on drop.
struct Local(*mut core::ffi::c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a Win32 function documented to allocate it
            // with LocalAlloc, and is freed only here.
            unsafe {
                LocalFree(self.0);
            }
        }
    }
}

/// A NUL-terminated UTF-16 string at `p`, as a `String`.
///
/// # Safety
/// `p` must point to a NUL-terminated UTF-16 string.
unsafe fn from_wide(p: *const u16) -> String {
    let mut len = 0;
    // SAFETY: the caller promises a terminating NUL.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units before the NUL were just read.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) })
}

/// This process's user SID, as a string (`S-1-5-21-...`).
pub(crate) fn current_user_sid() -> std::io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo handle of this process; `token` is a live out-pointer.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buffer = vec![0u64; 128]; // 1 KiB, 8-aligned: a TOKEN_USER and its SID
    let mut len = 0u32;
    // SAFETY: `buffer` is writable for the byte length given; `len` is a live out-pointer.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buffer.as_mut_ptr().cast(),
            (buffer.len() * 8) as u32,
            &mut len,
        )
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: the token handle was opened above and is closed once.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(error);
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points inside it.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is valid while `buffer` lives; `text` is a live out-pointer.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _free = Local(text.cast());
    // SAFETY: ConvertSidToStringSidW returned a NUL-terminated string.
    Ok(unsafe { from_wide(text) })
}

/// An owner-only security descriptor: full control for this user, SYSTEM and
/// Administrators, protected from inheriting anything; `inheritable` for a directory
/// (what is created inside gets the same entries).
fn private_descriptor(inheritable: bool) -> std::io::Result<Local> {
    let me = current_user_sid()?;
    let flags = if inheritable { "OICI" } else { "" };
    let sddl = wide_str(&format!(
        "D:P(A;{flags};FA;;;{me})(A;{flags};FA;;;SY)(A;{flags};FA;;;BA)"
    ));
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated SDDL string; `descriptor` is a live out-pointer.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Local(descriptor))
}

fn attributes(descriptor: &Local) -> SECURITY_ATTRIBUTES {
    SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor.0,
        bInheritHandle: 0,
    }
}

/// Creates the directory `path` (its parent must exist) owner-only. The descriptor is
/// given at creation (as a Unix mode is), never set afterwards through the path. An
/// existing directory is left as it is (and checked by its user).
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let descriptor = private_descriptor(true)?;
    let attributes = attributes(&descriptor);
    let name = wide(path);
    // SAFETY: NUL-terminated path; `attributes` and the descriptor it points to are alive
    // for the call.
    if unsafe { CreateDirectoryW(name.as_ptr(), &attributes) } == 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(ERROR_ALREADY_EXISTS as i32) {
            return Ok(());
        }
        return Err(error);
    }
    Ok(())
}

/// Creates a new file at `path`, owner-only from its creation, for writing. Fails when
/// anything (a file, a symlink) is at `path` (`CREATE_NEW`).
pub(crate) fn create_new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::windows::io::FromRawHandle;
    let descriptor = private_descriptor(false)?;
    let attributes = attributes(&descriptor);
    let name = wide(path);
    // SAFETY: NUL-terminated path; `attributes` and its descriptor are alive for the call.
    let handle = unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            0,
            &attributes,
            CREATE_NEW,
            FILE_ATTRIBUTE_NORMAL,
            std::ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new, valid file handle that nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_handle(handle) })
}

/// The owner and DACL of `path`, as SDDL.
fn descriptor_sddl(path: &Path) -> std::io::Result<String> {
    let name = wide(path);
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    let info = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    // SAFETY: NUL-terminated path; the out-pointers we do not want are null, `descriptor`
    // is a live out-pointer.
    let status = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            info,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    if status != 0 {
        return Err(std::io::Error::from_raw_os_error(status as i32));
    }
    let _free = Local(descriptor);
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `descriptor` is valid until `_free`; `text` is a live out-pointer.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor,
            SDDL_REVISION_1,
            info,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _free_text = Local(text.cast());
    // SAFETY: the conversion returned a NUL-terminated string.
    Ok(unsafe { from_wide(text) })
}

/// Why `path` is not private to this process's user, or `None`.
pub(crate) fn private_problem(path: &Path) -> std::io::Result<Option<String>> {
    let me = current_user_sid()?;
    let sddl = descriptor_sddl(path)?;
    Ok(crate::sddl::private_problem(&sddl, &me))
}
