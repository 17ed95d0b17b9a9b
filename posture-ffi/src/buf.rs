//! `posture_buf`: bytes allocated by the library and owned by the caller until
//! `posture_buf_free`.

use crate::boundary::{ffi_value, free_handle};

/// Bytes the library allocated for the caller (JSON, evidence). Read them with
/// `posture_buf_data` and `posture_buf_len`; release them with `posture_buf_free`, never
/// with `free()`. The data is followed by a NUL byte (not counted in the length), so text
/// can be printed directly.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct posture_buf {
    /// The content followed by one NUL.
    bytes: Box<[u8]>,
}

impl posture_buf {
    /// A buffer holding `content` (plus the trailing NUL).
    pub(crate) fn new(content: impl Into<Vec<u8>>) -> Self {
        let mut bytes = content.into();
        bytes.push(0);
        Self {
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// The content without the trailing NUL.
    pub(crate) fn content(&self) -> &[u8] {
        self.bytes.split_last().map(|(_, c)| c).unwrap_or(&[])
    }
}

/// The bytes of `buf` (NUL-terminated), valid until `posture_buf_free(buf)`.
/// Returns NULL when `buf` is NULL.
///
/// # Safety
/// `buf` must be NULL or a live `posture_buf`.
#[no_mangle]
pub unsafe extern "C" fn posture_buf_data(buf: *const posture_buf) -> *const u8 {
    ffi_value(std::ptr::null(), || {
        // SAFETY: the caller promises NULL or a live buffer.
        match unsafe { buf.as_ref() } {
            Some(buf) => buf.bytes.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// The length of `buf` in bytes, without the trailing NUL. Returns 0 when `buf` is NULL.
///
/// # Safety
/// `buf` must be NULL or a live `posture_buf`.
#[no_mangle]
pub unsafe extern "C" fn posture_buf_len(buf: *const posture_buf) -> usize {
    ffi_value(0, || {
        // SAFETY: the caller promises NULL or a live buffer.
        unsafe { buf.as_ref() }.map_or(0, |b| b.content().len())
    })
}

/// Frees a buffer returned by the library. NULL is accepted and ignored.
///
/// # Safety
/// `buf` must be NULL or a buffer from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn posture_buf_free(buf: *mut posture_buf) {
    // SAFETY: the caller promises NULL or a live buffer freed once.
    ffi_value((), || unsafe { free_handle(buf) })
}
