//! The panic boundary and the helpers every entry point uses to read C arguments.
//!
//! Every `extern "C"` body runs inside exactly one [`ffi_status`] or [`ffi_value`]: a
//! panic never unwinds into C, it becomes `POSTURE_STATUS_PANIC` (or the documented
//! fallback value). NULL checks come first, before anything is allocated.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::posture_status;

/// Runs `body`, turning a panic into [`posture_status::Panic`].
pub(crate) fn ffi_status(body: impl FnOnce() -> posture_status) -> posture_status {
    // AssertUnwindSafe: on a panic nothing the body touched is handed back to C (out-params
    // are written last, only on success), so no broken invariant can be observed.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(posture_status::Panic)
}

/// Runs `body`, turning a panic into `fallback` (for entry points that return a value or
/// nothing, such as accessors and `_free` functions).
pub(crate) fn ffi_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    // AssertUnwindSafe: see `ffi_status`.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Writes `value` into a C out-param.
///
/// # Safety
/// `out` must be non-NULL, aligned and valid for writes.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: guaranteed by the caller.
    unsafe { out.write(value) }
}

/// Borrows a C buffer `(ptr, len)` as a slice.
///
/// NULL is refused even when `len` is 0, so a caller's forgotten pointer is always caught.
///
/// # Safety
/// When non-NULL, `ptr` must be valid for reads of `len` bytes for `'a`, not mutated
/// meanwhile.
pub(crate) unsafe fn input_bytes<'a>(
    ptr: *const u8,
    len: usize,
    max: usize,
) -> Result<&'a [u8], posture_status> {
    if ptr.is_null() {
        return Err(posture_status::NullParameter);
    }
    if len > max {
        return Err(posture_status::InputTooLarge);
    }
    // SAFETY: non-NULL, `len <= max` which is far below isize::MAX, and the caller promises
    // `len` readable bytes that live and stay unchanged for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a C buffer as UTF-8 text (see [`input_bytes`]).
///
/// # Safety
/// As [`input_bytes`].
pub(crate) unsafe fn input_text<'a>(
    ptr: *const u8,
    len: usize,
    max: usize,
) -> Result<&'a str, posture_status> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input_bytes(ptr, len, max) }?;
    std::str::from_utf8(bytes).map_err(|_| posture_status::InvalidUtf8)
}

/// Hands a Rust value to C as an owned opaque pointer.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops a handle created by [`into_handle`]; NULL is a no-op.
///
/// # Safety
/// `ptr` must be NULL or come from [`into_handle::<T>`] and not have been freed.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller promises it came from Box::into_raw and is freed only once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// Borrows a handle.
///
/// # Safety
/// `ptr` must be NULL or a live handle of type `T`.
pub(crate) unsafe fn borrow_handle<'a, T>(ptr: *const T) -> Result<&'a T, posture_status> {
    // SAFETY: the caller promises NULL or a live, properly aligned handle.
    unsafe { ptr.as_ref() }.ok_or(posture_status::NullParameter)
}

/// Unwraps a `Result<T, posture_status>` inside an entry point, returning the status.
macro_rules! try_ffi {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(status) => return status,
        }
    };
}
pub(crate) use try_ffi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_panic_status() {
        let status = ffi_status(|| panic!("boom"));
        assert_eq!(status, posture_status::Panic);
        assert_eq!(ffi_value(7usize, || panic!("boom")), 7);
        assert_eq!(ffi_status(|| posture_status::Ok), posture_status::Ok);
    }

    #[test]
    fn null_and_oversized_inputs_are_refused() {
        // SAFETY: NULL is never dereferenced; the array is valid for its length.
        unsafe {
            assert_eq!(
                input_bytes(std::ptr::null(), 0, 10),
                Err(posture_status::NullParameter)
            );
            let data = [0u8; 4];
            assert_eq!(
                input_bytes(data.as_ptr(), 4, 3),
                Err(posture_status::InputTooLarge)
            );
            assert_eq!(input_bytes(data.as_ptr(), 4, 4), Ok(&data[..]));
            let bad = [0xffu8, 0xfe];
            assert_eq!(
                input_text(bad.as_ptr(), 2, 10),
                Err(posture_status::InvalidUtf8)
            );
        }
    }
}
