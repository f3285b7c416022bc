//! libc's `ioctl` and `syscall`, interposed (feature `interpose`) for the
//! consumers that reach the kernel through them: V4L2 (`VIDIOC_QBUF`,
//! `VIDIOC_PREPARE_BUF`; libv4l2 issues them with `syscall(SYS_ioctl)`)
//! and io_uring (`syscall(SYS_io_uring_register)`).
//!
//! Every other call costs one or two comparisons and a call through a
//! pointer resolved once, at load (`dlsym(RTLD_NEXT)`, in an
//! `.init_array` constructor, so the hot path never takes the loader's lock).
//!
//! Both are variadic in C. They are defined here with the fixed arguments
//! the kernel takes (`ioctl`: one pointer-sized argument; `syscall`: six),
//! which on x86_64 and aarch64 Linux arrive in the same registers (or, for
//! `syscall`'s sixth, the same stack slot glibc's own `syscall` reads).
//!
//! # Safety
//! The real functions are transmuted from `dlsym` results to the
//! signatures above; the exports pass every argument on unchanged.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, c_ulong, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::sys::Errno;
use crate::{io_uring, v4l2};

type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int;
type SyscallFn = unsafe extern "C" fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long;

static REAL_IOCTL: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static REAL_SYSCALL: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Resolves both at load, before the program runs (and before it has threads).
#[used]
#[unsafe(link_section = ".init_array")]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_at_load;

extern "C" fn resolve_at_load() {
    let _ = real(&REAL_IOCTL, c"ioctl");
    let _ = real(&REAL_SYSCALL, c"syscall");
}

/// The next definition of `name` after ours, cached.
fn real(slot: &AtomicPtr<c_void>, name: &std::ffi::CStr) -> *mut c_void {
    let p = slot.load(Ordering::Relaxed);
    if !p.is_null() {
        return p;
    }
    // SAFETY: RTLD_NEXT and a NUL-terminated name.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    slot.store(p, Ordering::Relaxed);
    p
}

/// Runs a decoder as the guard runs its judging: its system calls' errno
/// is not the caller's business, and a panic in it forwards the call. When
/// the arguments could not be read at all (seccomp refusing
/// `process_vm_readv`), the call is forwarded unchecked, as the policy says
/// for memory that cannot be inspected, and that is said once.
pub(crate) fn decoded<T>(decode: impl FnOnce() -> Option<T>) -> Option<T> {
    let saved = Errno::last();
    let found = catch_unwind(AssertUnwindSafe(decode)).ok().flatten();
    let refused = crate::sys::OWN_MEMORY_UNREADABLE.load(Ordering::Relaxed);
    if found.is_none() && refused != 0 {
        crate::guard::say_cannot_read(Errno::from_raw(refused));
    }
    saved.set();
    found
}

/// `int ioctl(int fd, unsigned long request, ...)`
///
/// # Safety
/// As `ioctl(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    // The fast path: a load, a test, two compares and a tail call.
    let f = REAL_IOCTL.load(Ordering::Relaxed);
    #[allow(clippy::unnecessary_cast)] // c_ulong is u32 on 32-bit targets
    if !f.is_null() && !v4l2::pins(request as u64) {
        // SAFETY: looked up as libc's ioctl; the arguments are the caller's.
        return unsafe { std::mem::transmute::<*mut c_void, IoctlFn>(f)(fd, request, arg) };
    }
    ioctl_judged(fd, request, arg)
}

#[inline(never)]
fn ioctl_judged(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let f = real(&REAL_IOCTL, c"ioctl");
    if f.is_null() {
        Errno::ENOSYS.set();
        return -1;
    }
    // SAFETY: looked up as libc's ioctl; the arguments are the caller's.
    let forward = || unsafe { std::mem::transmute::<*mut c_void, IoctlFn>(f)(fd, request, arg) };
    #[allow(clippy::unnecessary_cast)] // c_ulong is u32 on 32-bit targets
    let request = request as u64;
    if !v4l2::pins(request) {
        return forward();
    }
    v4l2::guarded::ioctl(fd, request, arg as u64, forward)
}

/// `long syscall(long number, ...)`
///
/// # Safety
/// As `syscall(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    // The fast path: a load, a test, two compares and a tail call.
    let f = REAL_SYSCALL.load(Ordering::Relaxed);
    if !f.is_null() && n != libc::SYS_ioctl && n != libc::SYS_io_uring_register {
        // SAFETY: looked up as libc's syscall; the arguments are the caller's.
        return unsafe { std::mem::transmute::<*mut c_void, SyscallFn>(f)(n, a1, a2, a3, a4, a5, a6) };
    }
    syscall_judged([n, a1, a2, a3, a4, a5, a6])
}

#[inline(never)]
fn syscall_judged([n, a1, a2, a3, a4, a5, a6]: [c_long; 7]) -> c_long {
    let f = real(&REAL_SYSCALL, c"syscall");
    if f.is_null() {
        Errno::ENOSYS.set();
        return -1;
    }
    // SAFETY: looked up as libc's syscall; the arguments are the caller's.
    let forward = || unsafe { std::mem::transmute::<*mut c_void, SyscallFn>(f)(n, a1, a2, a3, a4, a5, a6) };
    match n {
        libc::SYS_ioctl if v4l2::pins(a2 as u64) => v4l2::guarded::ioctl(a1 as c_int, a2 as u64, a3 as u64, forward),
        libc::SYS_io_uring_register if io_uring::registers_buffers(a2 as u32) => {
            let Some(buffers) = decoded(|| io_uring::decode_register(a1 as c_int, a2 as u32, a3 as u64, a4 as u32))
            else {
                return forward();
            };
            let entry = io_uring::opcode_name(a2 as u32);
            io_uring::guarded::register(
                entry,
                Some(a1 as c_int),
                &buffers,
                forward,
                io_uring::guarded::syscall_answer(),
            )
        }
        _ => forward(),
    }
}
