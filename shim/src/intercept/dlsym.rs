//! `dlsym(3)` and `dlvsym(3)`, wrapped (x86_64, feature `interpose`) - a
//! registration function a program fetches itself comes back as our export.
//!
//! NCCL (`src/misc/ibvsymbols.cc`), mscclpp, rocSHMEM, UCX and DPDK load
//! libibverbs or libmlx5 with `dlopen` and fetch each function with
//! `dlvsym`; a call through such a pointer passes no PLT slot, so the PLT
//! exports never see it. These two exports stand in front of glibc's:
//!
//! - `RTLD_DEFAULT` (0) and `RTLD_NEXT` (-1): glibc finds the calling object
//!   from the return address, so the wrapper jumps to the real function with
//!   every argument register and the stack exactly as they came. Nothing to
//!   substitute there: `RTLD_DEFAULT` already finds our export first, and an
//!   interposer after us asking `RTLD_NEXT` must get the next one down.
//! - any other handle: the real function is called, and its answer goes
//!   through [`super::pointers::substitute`], which returns our export when
//!   it would forward to exactly that function. The caller's return address
//!   goes along: code in the very object these wrappers are in (the CLI's
//!   `probe`, which asks libibverbs' own handle to reach the kernel) gets
//!   glibc's answer.
//!
//! The real functions are read from libc.so.6's (glibc 2.34+) or
//! libdl.so.2's dynamic symbol table ([`super::elf`]) the first time either
//! wrapper runs, never asked of `dlsym`, which is us. If they cannot be
//! found, every lookup answers NULL and one line says why; with glibc this
//! does not happen (libc or libdl is loaded in every process the shim is in).
//!
//! Nothing here writes code: the wrappers are ordinary exported functions,
//! so `MemoryDenyWriteExecute=yes` and `prctl(PR_SET_MDWE)` change nothing.
//!
//! # Safety
//! - The naked functions keep the System V calling convention by hand: before
//!   jumping they touch only `rax` (the return register) and, on the handle
//!   path, the next free argument register (`rdx` for `dlsym`, `rcx` for
//!   `dlvsym`), all caller-saved; they save the argument registers around the
//!   one call they make and keep the stack 16-byte aligned at that call; the
//!   return address stays on top of the stack for every jump.
//! - The real functions' addresses come from [`super::elf::find`], checked to
//!   be function definitions in libc/libdl, and are called with the
//!   arguments the caller gave.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_void};
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use super::elf::{self, Which};
use super::pointers;
use crate::sys::{Errno, stderr_line};

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
type DlvsymFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;

/// glibc's `dlsym` and `dlvsym`, 0 until found. Read by the assembly below.
static REAL_DLSYM: AtomicUsize = AtomicUsize::new(0);
static REAL_DLVSYM: AtomicUsize = AtomicUsize::new(0);
/// Where they were found: 0 not looked yet, else an index into `FROM`.
static FOUND_IN: AtomicU8 = AtomicU8::new(0);
const FROM: [&str; 4] = ["", "libc.so.6", "libdl.so.2", "another loaded object"];
const NOT_FOUND: u8 = u8::MAX;
static SAID_MISSING: AtomicBool = AtomicBool::new(false);

/// `void *dlsym(void *handle, const char *symbol)`
///
/// # Safety
/// As dlsym(3).
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "endbr64",
        // handle + 1 <= 1 exactly for RTLD_NEXT (-1) and RTLD_DEFAULT (0)
        "lea rax, [rdi + 1]",
        "cmp rax, 1",
        "ja 2f",
        "mov rax, qword ptr [rip + {real}@GOTPCREL]",
        "mov rax, qword ptr [rax]",
        "test rax, rax",
        "jz 3f",
        // the real dlsym, returning straight to our caller
        "jmp rax",
        "2:",
        // a real handle: the caller's return address as a third argument
        "mov rdx, qword ptr [rsp]",
        "jmp {by_handle}",
        "3:",
        // first call: find the real functions, keeping the arguments
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "call {init}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "mov rax, qword ptr [rip + {real}@GOTPCREL]",
        "mov rax, qword ptr [rax]",
        "test rax, rax",
        "jz 4f",
        "jmp rax",
        "4:",
        "xor eax, eax",
        "ret",
        real = sym REAL_DLSYM,
        by_handle = sym dlsym_by_handle,
        init = sym init_from_wrapper,
    )
}

/// `void *dlvsym(void *handle, const char *symbol, const char *version)`
///
/// # Safety
/// As dlvsym(3).
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlvsym(handle: *mut c_void, symbol: *const c_char, version: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "endbr64",
        "lea rax, [rdi + 1]",
        "cmp rax, 1",
        "ja 2f",
        "mov rax, qword ptr [rip + {real}@GOTPCREL]",
        "mov rax, qword ptr [rax]",
        "test rax, rax",
        "jz 3f",
        "jmp rax",
        "2:",
        // a real handle: the caller's return address as a fourth argument
        "mov rcx, qword ptr [rsp]",
        "jmp {by_handle}",
        "3:",
        // three pushes keep the 16-byte alignment the call needs
        "push rdi",
        "push rsi",
        "push rdx",
        "call {init}",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "mov rax, qword ptr [rip + {real}@GOTPCREL]",
        "mov rax, qword ptr [rax]",
        "test rax, rax",
        "jz 4f",
        "jmp rax",
        "4:",
        "xor eax, eax",
        "ret",
        real = sym REAL_DLVSYM,
        by_handle = sym dlvsym_by_handle,
        init = sym init_from_wrapper,
    )
}

/// `dlsym` on a real handle: the real answer, or our export in its place.
unsafe extern "C" fn dlsym_by_handle(handle: *mut c_void, symbol: *const c_char, caller: *const c_void) -> *mut c_void {
    let Some(real) = real_dlsym_fn() else { return missing() };
    // SAFETY: the caller's arguments, to the real dlsym.
    let p = unsafe { real(handle, symbol) };
    substitute(Asked { handle, caller }, symbol, p)
}

/// `dlvsym` on a real handle.
unsafe extern "C" fn dlvsym_by_handle(
    handle: *mut c_void,
    symbol: *const c_char,
    version: *const c_char,
    caller: *const c_void,
) -> *mut c_void {
    let Some(real) = real_dlvsym_fn() else { return missing() };
    // SAFETY: the caller's arguments, to the real dlvsym.
    let p = unsafe { real(handle, symbol, version) };
    substitute(Asked { handle, caller }, symbol, p)
}

/// Who asked, for [`pointers::substitute`].
pub(crate) struct Asked {
    /// The handle the lookup was made in (one glibc just accepted).
    handle: *mut c_void,
    /// The return address of the `dlsym`/`dlvsym` call.
    caller: *const c_void,
}

impl Asked {
    /// The link-map namespace of the handle: 0 for the program's own,
    /// others come from `dlmopen`.
    pub(crate) fn namespace(&self) -> Option<i64> {
        let mut lmid: libc::Lmid_t = 0;
        // SAFETY: a handle dlsym just accepted; RTLD_DI_LMID writes an Lmid_t.
        let ok = unsafe { libc::dlinfo(self.handle, libc::RTLD_DI_LMID, (&raw mut lmid).cast()) } == 0;
        // SAFETY: no preconditions (a failed dlinfo leaves an error to clear).
        unsafe { libc::dlerror() };
        ok.then_some(lmid)
    }

    /// Whether the call comes from the object these wrappers are in: code
    /// linked with daxguard that asks a library's own handle means that
    /// library's function (the CLI's `probe` asks for the kernel's answer).
    pub(crate) fn by_daxguard_itself(&self) -> bool {
        let base = |addr: *const c_void| {
            let mut info = libc::Dl_info {
                dli_fname: std::ptr::null(),
                dli_fbase: std::ptr::null_mut(),
                dli_sname: std::ptr::null(),
                dli_saddr: std::ptr::null_mut(),
            };
            // SAFETY: dladdr only reads the loader's tables and fills `info`.
            (unsafe { libc::dladdr(addr, &mut info) } != 0).then_some(info.dli_fbase)
        };
        base(self.caller).is_some_and(|b| Some(b) == base(dlsym as *const c_void))
    }
}

/// Our export for `p` if it is a function we guard, else `p`. errno is kept.
fn substitute(asked: Asked, symbol: *const c_char, p: *mut c_void) -> *mut c_void {
    if p.is_null() || symbol.is_null() {
        return p;
    }
    let errno = Errno::last();
    // SAFETY: dlsym just found a symbol by this NUL-terminated name.
    let name = unsafe { CStr::from_ptr(symbol) };
    let out = catch_unwind(|| pointers::substitute(name, p, &asked)).unwrap_or(p);
    errno.set();
    out
}

fn missing() -> *mut c_void {
    if !SAID_MISSING.swap(true, Ordering::Relaxed) {
        stderr_line(
            "daxguard: cannot find the real dlsym/dlvsym (libc.so.6, libdl.so.2): dlsym and dlvsym answer NULL in this process",
        );
    }
    std::ptr::null_mut()
}

extern "C" fn init_from_wrapper() {
    let errno = Errno::last();
    let _ = catch_unwind(init);
    errno.set();
}

/// Finds glibc's `dlsym` and `dlvsym`, once (a racing second search finds
/// the same addresses).
fn init() {
    if FOUND_IN.load(Ordering::Acquire) != 0 {
        return;
    }
    let ours = dlsym as *const () as usize;
    let places = [Which::Named(b"libc.so.6"), Which::Named(b"libdl.so.2"), Which::NotContaining(ours)];
    for (i, which) in places.into_iter().enumerate() {
        let (Some(s), Some(v)) = (elf::find(which, c"dlsym"), elf::find(which, c"dlvsym")) else { continue };
        if s.addr == ours || v.addr == dlvsym as *const () as usize {
            continue;
        }
        REAL_DLVSYM.store(v.addr, Ordering::Release);
        REAL_DLSYM.store(s.addr, Ordering::Release);
        FOUND_IN.store(i as u8 + 1, Ordering::Release);
        return;
    }
    FOUND_IN.store(NOT_FOUND, Ordering::Release);
    missing();
}

fn real_dlsym_fn() -> Option<DlsymFn> {
    init();
    let p = REAL_DLSYM.load(Ordering::Acquire);
    // SAFETY: a function definition named dlsym in libc/libdl (module doc).
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, DlsymFn>(p) })
}

fn real_dlvsym_fn() -> Option<DlvsymFn> {
    init();
    let p = REAL_DLVSYM.load(Ordering::Acquire);
    // SAFETY: as for dlsym.
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, DlvsymFn>(p) })
}

/// glibc's `dlvsym`, for daxguard's own lookups ([`super::resolve`]). The
/// caller, for `RTLD_NEXT`, is daxguard.
///
/// # Safety
/// As dlvsym(3).
pub(crate) unsafe fn real_dlvsym(handle: *mut c_void, name: *const c_char, version: *const c_char) -> *mut c_void {
    match real_dlvsym_fn() {
        // SAFETY: as this function's.
        Some(f) => unsafe { f(handle, name, version) },
        None => missing(),
    }
}

/// Where the real functions were found, if they were.
pub(crate) fn found_in() -> Option<&'static str> {
    init();
    FROM.get(FOUND_IN.load(Ordering::Acquire) as usize).copied().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary links the crate with `interpose`: its `dlsym` and
    /// `dlvsym` are the wrappers.
    #[test]
    fn wrappers_answer_as_glibc_does() {
        assert_eq!(found_in(), Some("libc.so.6"));
        // SAFETY: plain lookups with NUL-terminated names.
        unsafe {
            let libc_h = libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            assert!(!libc_h.is_null());
            let getpid = libc::getpid as *const () as *mut c_void;
            assert_eq!(dlsym(libc_h, c"getpid".as_ptr()), getpid, "by handle");
            assert_eq!(dlvsym(libc_h, c"getpid".as_ptr(), c"GLIBC_2.2.5".as_ptr()), getpid, "dlvsym by handle");
            assert_eq!(dlsym(libc::RTLD_DEFAULT, c"getpid".as_ptr()), getpid, "RTLD_DEFAULT");
            // RTLD_NEXT from this binary: libc comes after it.
            assert_eq!(dlsym(libc::RTLD_NEXT, c"getpid".as_ptr()), getpid, "RTLD_NEXT");
            assert_eq!(dlvsym(libc::RTLD_NEXT, c"getpid".as_ptr(), c"GLIBC_2.2.5".as_ptr()), getpid);
            // A miss is NULL with glibc's own message.
            assert!(dlsym(libc_h, c"no_such_function_x".as_ptr()).is_null());
            let e = libc::dlerror();
            assert!(!e.is_null() && CStr::from_ptr(e).to_bytes().ends_with(b"no_such_function_x"));
            // RTLD_DEFAULT for "dlsym" finds this binary's export first.
            assert_eq!(dlsym(libc::RTLD_DEFAULT, c"dlsym".as_ptr()) as usize, dlsym as *const () as usize);
            // and the real one by handle: libc's, which is what we jump to.
            assert_eq!(dlsym(libc_h, c"dlsym".as_ptr()) as usize, REAL_DLSYM.load(Ordering::Relaxed));
        }
    }

    /// Code in the wrapper's own object (here the test binary, as the CLI's
    /// `probe` in the CLI) asking libibverbs' handle gets libibverbs' own
    /// function, never the export it links.
    #[test]
    fn lookups_from_our_own_object_are_not_replaced() {
        // SAFETY: plain lookups with NUL-terminated names.
        unsafe {
            let h = libc::dlopen(c"libibverbs.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if h.is_null() {
                println!("skipped: no libibverbs.so.1 here");
                return;
            }
            let p = dlvsym(h, c"ibv_reg_mr_iova2".as_ptr(), c"IBVERBS_1.8".as_ptr());
            assert!(!p.is_null());
            let ours = crate::verbs::guarded().find(|g| g.real.name() == c"ibv_reg_mr_iova2").unwrap().ours;
            assert_ne!(p.cast_const(), ours(), "our own lookup was replaced by our export");
            assert_eq!(crate::sys::object_name(p).as_deref().map(|n| n.contains("libibverbs")), Some(true));
        }
    }
}
