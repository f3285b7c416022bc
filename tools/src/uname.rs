//! `uname(2)`: which kernel this is, for `doctor`.
//!
//! # Safety
//! One `uname` call filling a zeroed `utsname` on the stack; the kernel
//! NUL-terminates every field it fills.
#![allow(unsafe_code)]

use std::ffi::CStr;

/// `uname` - the kernel release (`6.12.3-amd64`), or "" if the call fails.
///
/// # References
/// - [uname(2)](https://man7.org/linux/man-pages/man2/uname.2.html)
pub fn kernel_release() -> String {
    // SAFETY: plain data filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: uname NUL-terminates its fields.
    unsafe { CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned()
}

/// The running kernel as `(major, minor)`, asked once.
pub fn kernel_version() -> Option<(u32, u32)> {
    static VERSION: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| version(&kernel_release()))
}

/// `6.12.3-amd64` -> (6, 12).
pub fn version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}
