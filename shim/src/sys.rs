//! Tiny wrappers over libc calls that cannot fail in a way we care about.
//!
//! # Safety
//! Each call below has no preconditions beyond valid arguments, which are
//! constants or locals here.
#![allow(unsafe_code)]

pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf with a valid name.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

pub(crate) fn pid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() }
}

pub(crate) fn tid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

/// `getauxval(AT_SECURE)`: set for setuid/setgid/capability-gaining execs,
/// where the environment is the caller's to forge.
#[cfg(feature = "interpose")]
pub(crate) fn secure_execution() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub(crate) fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}
