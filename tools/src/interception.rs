//! Which interception the daxguard preloaded into this process runs, for
//! `doctor` (in a program started with `daxguard run -- daxguard doctor`),
//! and which lookup path it uses.
//!
//! The CLI may link a copy of the library itself, so the preloaded copy is
//! asked with `dlsym(RTLD_NEXT, "daxguard_interception")`, which skips the
//! executable's own definition.
//!
//! # Safety
//! One `dlsym` with a NUL-terminated name; the pointer is called as the
//! `const char *daxguard_interception(void)` or `daxguard_lookup(void)` that
//! `daxguard.h` declares, each returning a static NUL-terminated string.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};

/// `none`, `plt` or `plt+dlsym` from the preloaded library, or `None` when
/// no daxguard is preloaded here.
pub fn preloaded() -> Option<String> {
    ask_preloaded(c"daxguard_interception")
}

/// `procmap_query` or `maps`: the lookup path of the preloaded library, or
/// `None` when no daxguard (or one without `daxguard_lookup`) is preloaded.
pub fn preloaded_lookup() -> Option<String> {
    ask_preloaded(c"daxguard_lookup")
}

/// Calls the preloaded copy's `const char *name(void)`.
fn ask_preloaded(name: &CStr) -> Option<String> {
    // SAFETY: RTLD_NEXT and a NUL-terminated name.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: both symbols asked for have this type (daxguard.h).
    let f = unsafe { std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> *const c_char>(p) };
    let s = f();
    // SAFETY: a static NUL-terminated string, per daxguard.h.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}
