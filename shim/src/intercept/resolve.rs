//! Finding the real libibverbs functions behind ours.
//!
//! `dlvsym(RTLD_NEXT, ..)` first: the next definition after us in the global
//! search order. When the program loaded libibverbs `RTLD_LOCAL` (UCX, NCCL)
//! it is not in that order, and `dlopen("libibverbs.so.1", RTLD_NOLOAD)`
//! finds the already-loaded copy without loading anything. Never
//! `RTLD_DEFAULT`: that finds us. Lookups happen at first use, not at load
//! (libibverbs may be `dlopen`ed late), and a miss is retried next time.
//!
//! # Safety
//! `dlvsym`/`dlopen` with NUL-terminated names; the pointers returned are
//! only transmuted to the function types `verbs-sys` declares for them.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// One resolved symbol, cached after the first hit.
pub struct Real {
    /// The library that defines it, for programs that loaded it `RTLD_LOCAL`.
    library: &'static CStr,
    name: &'static CStr,
    version: &'static CStr,
    ptr: AtomicPtr<c_void>,
}

impl Real {
    /// A libibverbs function at `version`.
    pub const fn new(name: &'static CStr, version: &'static CStr) -> Self {
        Real::in_library(c"libibverbs.so.1", name, version)
    }

    /// A function of `library` at `version`.
    pub const fn in_library(library: &'static CStr, name: &'static CStr, version: &'static CStr) -> Self {
        Real { library, name, version, ptr: AtomicPtr::new(std::ptr::null_mut()) }
    }

    /// The real function's address, or `None` if its library is not loaded.
    /// `ours` is our own definition, never accepted as the answer.
    pub fn get(&self, ours: *const c_void) -> Option<*mut c_void> {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            return Some(p);
        }
        let p = lookup(self.library, self.name, self.version, ours)?;
        self.ptr.store(p, Ordering::Release);
        Some(p)
    }

    #[cfg_attr(not(feature = "interpose"), allow(dead_code))]
    pub fn name(&self) -> &'static CStr {
        self.name
    }
}

fn lookup(library: &CStr, name: &CStr, version: &CStr, ours: *const c_void) -> Option<*mut c_void> {
    let ok = |p: *mut c_void| (!p.is_null() && p.cast_const() != ours).then_some(p);
    // SAFETY: valid handles and NUL-terminated names.
    unsafe {
        if let Some(p) = ok(libc::dlvsym(libc::RTLD_NEXT, name.as_ptr(), version.as_ptr())) {
            return Some(p);
        }
        let h = libc::dlopen(library.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if h.is_null() {
            return None;
        }
        // The NOLOAD reference is kept on purpose: the function pointer we
        // cache must outlive any dlclose by the program.
        ok(libc::dlvsym(h, name.as_ptr(), version.as_ptr()))
    }
}
