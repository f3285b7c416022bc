//! Which interception the daxguard preloaded into this process runs, for
//! `doctor` (in a program started with `daxguard run -- daxguard doctor`).
//!
//! The CLI may link a copy of the library itself, so the preloaded copy is
//! asked with `dlsym(RTLD_NEXT, "daxguard_interception")`, which skips the
//! executable's own definition.
//!
//! # Safety
//! One `dlsym` with a NUL-terminated name; the pointer is called as the
//! `const char *daxguard_interception(void)` that `daxguard.h` declares,
//! which returns a static NUL-terminated string.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};

/// `none`, `plt` or `plt+dlsym` from the preloaded library, or `None` when
/// no daxguard is preloaded here.
pub fn preloaded() -> Option<String> {
    // SAFETY: RTLD_NEXT and a NUL-terminated name.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"daxguard_interception".as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: the symbol is daxguard_interception, whose type this is.
    let f = unsafe { std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> *const c_char>(p) };
    let s = f();
    // SAFETY: a static NUL-terminated string, per daxguard.h.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}
