//! Finding the real functions behind our exports (libibverbs', libmlx5's).
//!
//! `dlvsym(RTLD_NEXT, ..)` first: the next definition after us in the global
//! search order. When the program loaded the library `RTLD_LOCAL` (UCX, NCCL)
//! it is not in that order, and `dlopen(LIB, RTLD_NOLOAD)` finds the
//! already-loaded copy without loading anything. Never `RTLD_DEFAULT`: that
//! finds us. Lookups happen at first use, not at load (the library may be
//! `dlopen`ed late), and a miss is retried next time.
//!
//! The object a hit comes from is kept loaded (a `RTLD_NOLOAD` reference
//! never dropped): the cached address must stay valid however often the
//! program `dlclose`s and `dlopen`s the library, so no stale pointer is ever
//! called, and a reopened library is the same copy at the same address.
//!
//! With the `dlsym` wrapper built (x86_64), the lookups here call the real
//! `dlvsym` directly: through our own export, a handle lookup of a guarded
//! name would come back as our export.
//!
//! # Safety
//! `dlvsym`/`dlopen`/`dladdr` with NUL-terminated names; the pointers returned
//! are only transmuted to the function types `verbs-sys` declares for them.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// One resolved symbol, cached after the first hit.
pub struct Real {
    lib: &'static CStr,
    name: &'static CStr,
    version: &'static CStr,
    ptr: AtomicPtr<c_void>,
    /// The library's own definition, when asked ([`Real::in_library`]).
    own: AtomicPtr<c_void>,
}

impl Real {
    /// `name@version`, normally defined by `lib` (a soname).
    pub const fn new(lib: &'static CStr, name: &'static CStr, version: &'static CStr) -> Self {
        Real {
            lib,
            name,
            version,
            ptr: AtomicPtr::new(std::ptr::null_mut()),
            own: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The real function's address, or `None` if no library defines it.
    /// `ours` is our own definition, never accepted as the answer.
    pub fn get(&self, ours: *const c_void) -> Option<*mut c_void> {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            return Some(p);
        }
        let p = lookup(self.lib, self.name, self.version, ours)?;
        self.ptr.store(p, Ordering::Release);
        Some(p)
    }

    /// The library's own definition (`lib`, already loaded in our
    /// namespace), which [`Real::get`] also is unless another interposer
    /// sits between us and the library.
    #[cfg_attr(not(all(feature = "interpose", target_arch = "x86_64")), allow(dead_code))]
    pub fn in_library(&self) -> Option<*mut c_void> {
        let p = self.own.load(Ordering::Acquire);
        if !p.is_null() {
            return Some(p);
        }
        // SAFETY: a valid handle and NUL-terminated names.
        let p = unsafe {
            let h = libc::dlopen(self.lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            let p = if h.is_null() { h } else { real_dlvsym(h, self.name.as_ptr(), self.version.as_ptr()) };
            libc::dlerror();
            p
        };
        // The NOLOAD reference is kept, as for `get`.
        (!p.is_null()).then(|| {
            self.own.store(p, Ordering::Release);
            p
        })
    }

    #[cfg_attr(not(feature = "interpose"), allow(dead_code))]
    pub fn lib(&self) -> &'static CStr {
        self.lib
    }

    #[cfg_attr(not(feature = "interpose"), allow(dead_code))]
    pub fn name(&self) -> &'static CStr {
        self.name
    }

    #[cfg_attr(not(all(feature = "interpose", target_arch = "x86_64")), allow(dead_code))]
    pub fn version(&self) -> &'static CStr {
        self.version
    }
}

fn lookup(lib: &CStr, name: &CStr, version: &CStr, ours: *const c_void) -> Option<*mut c_void> {
    let ok = |p: *mut c_void| (!p.is_null() && p.cast_const() != ours).then_some(p);
    // SAFETY: valid handles and NUL-terminated names.
    let found = unsafe {
        match ok(real_dlvsym(libc::RTLD_NEXT, name.as_ptr(), version.as_ptr())) {
            Some(p) => Some(p),
            None => {
                let h = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
                if h.is_null() {
                    None
                } else {
                    // This NOLOAD reference is kept on purpose (module doc).
                    ok(real_dlvsym(h, name.as_ptr(), version.as_ptr()))
                }
            }
        }
    };
    if let Some(p) = found {
        keep_loaded(p);
    }
    // Our failed lookups must not show in the program's next dlerror().
    // SAFETY: no preconditions.
    unsafe { libc::dlerror() };
    found
}

/// Takes a reference, never dropped, on the object defining `p`.
fn keep_loaded(p: *mut c_void) {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr fills `info`; dli_fname is the object's name as loaded.
    unsafe {
        if libc::dladdr(p, &mut info) != 0 && !info.dli_fname.is_null() && *info.dli_fname != 0 {
            libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD);
        }
    }
}

/// `dlvsym`, never through our own wrapper.
///
/// # Safety
/// As dlvsym(3).
unsafe fn real_dlvsym(handle: *mut c_void, name: *const c_char, version: *const c_char) -> *mut c_void {
    #[cfg(all(feature = "interpose", target_arch = "x86_64"))]
    {
        // SAFETY: as this function's.
        unsafe { super::dlsym::real_dlvsym(handle, name, version) }
    }
    #[cfg(not(all(feature = "interpose", target_arch = "x86_64")))]
    {
        // SAFETY: as this function's.
        unsafe { libc::dlvsym(handle, name, version) }
    }
}
