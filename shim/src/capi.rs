//! The C API declared in `shim/include/daxguard.h`, for C and C++ programs
//! that want to ask before they register.
//!
//! # Safety
//! Called from C with the pointer/length contracts in the header; every
//! body runs under `catch_unwind`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::panic::catch_unwind;

use crate::explain;
use crate::judge::classify;
use crate::policy::Rule;
use crate::report::Verdict;
use crate::sys::Errno;

/// Registrable: no piece is fs-DAX.
pub const DAXGUARD_OK: c_int = 0;
/// Some piece is fs-DAX: the kernel would refuse a pinned registration.
pub const DAXGUARD_FSDAX: c_int = 1;
/// Some piece may be fs-DAX and could not be verified.
pub const DAXGUARD_UNVERIFIED: c_int = 2;
/// The range could not be judged (errno says why).
pub const DAXGUARD_ERROR: c_int = -1;

/// `int daxguard_check(const void *addr, size_t len, char *why, size_t why_len)`
///
/// Classifies `[addr, addr + len)` and returns `DAXGUARD_OK`, `DAXGUARD_FSDAX`,
/// `DAXGUARD_UNVERIFIED`, or `DAXGUARD_ERROR` with errno set. When `why` is not
/// NULL, a one-line explanation is written there, truncated to `why_len - 1`
/// bytes and NUL-terminated (empty for `DAXGUARD_OK`).
///
/// # Safety
/// `why` must be NULL or writable for `why_len` bytes. `addr` is not dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn daxguard_check(addr: *const c_void, len: usize, why: *mut c_char, why_len: usize) -> c_int {
    let (rc, text, errno) = catch_unwind(|| match classify(addr as u64, len as u64) {
        Ok(r) => match r.verdict() {
            Verdict::Allow => (DAXGUARD_OK, String::new(), Errno::from_raw(0)),
            Verdict::FsDax { .. } => (
                DAXGUARD_FSDAX,
                explain::refusal("daxguard_check", addr as u64, len as u64, r.culprit(), Rule::FsDax),
                Errno::from_raw(0),
            ),
            Verdict::Unverified { .. } => (
                DAXGUARD_UNVERIFIED,
                explain::refusal("daxguard_check", addr as u64, len as u64, r.culprit(), Rule::Unverified),
                Errno::from_raw(0),
            ),
        },
        Err(e) => (DAXGUARD_ERROR, format!("daxguard: cannot check: {e}"), e.errno()),
    })
    .unwrap_or((DAXGUARD_ERROR, "daxguard: internal error".into(), Errno::EIO));
    if !why.is_null() && why_len > 0 {
        let n = text.len().min(why_len - 1);
        // SAFETY: the caller gives `why_len` writable bytes; we write n + 1 <= why_len.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), why.cast::<u8>(), n);
            *why.add(n) = 0;
        }
    }
    if rc == DAXGUARD_ERROR {
        errno.set();
    }
    rc
}

/// `const char *daxguard_version(void)`: the library version, static storage.
#[unsafe(no_mangle)]
pub extern "C" fn daxguard_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// `const char *daxguard_interception(void)`: which interception this copy
/// of the library runs (`none`, `plt` or `plt+dlsym`, see
/// `daxguard::intercept::Active`), static storage. `daxguard doctor` in a
/// program started by `daxguard run` asks the preloaded copy for it with
/// `dlsym(RTLD_DEFAULT, "daxguard_interception")`.
#[unsafe(no_mangle)]
pub extern "C" fn daxguard_interception() -> *const c_char {
    let name = catch_unwind(|| crate::intercept::active().name()).unwrap_or("none");
    let c: &'static std::ffi::CStr = match name {
        "plt+dlsym" => c"plt+dlsym",
        "plt" => c"plt",
        _ => c"none",
    };
    c.as_ptr()
}

/// `const char *daxguard_lookup(void)`: how this copy of the library finds
/// the VMAs a registration spans in this process: `procmap_query` (the
/// `PROCMAP_QUERY` ioctl, Linux 6.11+), `events` (the mmap-events map:
/// kernels without the ioctl, where perf allows it) or `maps`
/// (`/proc/self/maps` text),
/// as `DAXGUARD_LOOKUP` and the kernel decide; static storage. `daxguard
/// doctor` under `daxguard run` asks the preloaded copy, as for
/// [`daxguard_interception`].
#[unsafe(no_mangle)]
pub extern "C" fn daxguard_lookup() -> *const c_char {
    let name = catch_unwind(|| crate::lookup::preferred_lookup(lookup_choice()).name()).unwrap_or("maps");
    let c: &'static std::ffi::CStr = match name {
        "procmap_query" => c"procmap_query",
        "events" => c"events",
        _ => c"maps",
    };
    c.as_ptr()
}

/// The `DAXGUARD_LOOKUP` the guard runs with (read at its setup).
#[cfg(feature = "interpose")]
fn lookup_choice() -> crate::types::LookupChoice {
    crate::guard::lookup_choice()
}

#[cfg(not(feature = "interpose"))]
fn lookup_choice() -> crate::types::LookupChoice {
    crate::types::LookupChoice::Auto
}
