//! liburing's buffer registration functions, interposed (feature
//! `interpose`). liburing issues `io_uring_register` with its own inline
//! `syscall` instruction, so these functions are the only way in; each
//! answers as liburing does (`-errno`, errno untouched).
//! `io_uring_register_buffers_sparse` registers no memory and is not interposed.
//!
//! # Safety
//! The exports are called by C with liburing's documented arguments and
//! pass them on unchanged; real functions are transmuted from `dlvsym`
//! results to the exact signatures of the names and versions looked up.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint, c_void};

use super::guarded::{liburing_answer, register};
use crate::intercept::libc::decoded;
use crate::intercept::resolve::Real;
use crate::sys::{Errno, stderr_line};

static REGISTER_BUFFERS: Real = Real::new(c"liburing.so.2", c"io_uring_register_buffers", c"LIBURING_2.0");
static REGISTER_BUFFERS_TAGS: Real = Real::new(c"liburing.so.2", c"io_uring_register_buffers_tags", c"LIBURING_2.1");
static UPDATE_TAG: Real = Real::new(c"liburing.so.2", c"io_uring_register_buffers_update_tag", c"LIBURING_2.1");
static REGISTER: Real = Real::new(c"liburing.so.2", c"io_uring_register", c"LIBURING_2.3");

/// The real function, or `-ENOSYS` (liburing's way) after saying so once.
fn real(r: &Real, ours: *const c_void) -> Result<*mut c_void, c_int> {
    r.get(ours).ok_or_else(|| {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            stderr_line(&format!("daxguard: cannot find liburing's {}: failing the call", r.name().to_string_lossy()));
        }
        -Errno::ENOSYS.raw()
    })
}

type RegisterBuffersFn = unsafe extern "C" fn(*mut c_void, *const libc::iovec, c_uint) -> c_int;
type RegisterBuffersTagsFn = unsafe extern "C" fn(*mut c_void, *const libc::iovec, *const u64, c_uint) -> c_int;
type UpdateTagFn = unsafe extern "C" fn(*mut c_void, c_uint, *const libc::iovec, *const u64, c_uint) -> c_int;
type RegisterFn = unsafe extern "C" fn(c_uint, c_uint, *const c_void, c_uint) -> c_int;

/// `int io_uring_register_buffers(struct io_uring *ring, const struct iovec *iovecs, unsigned nr_iovecs)`
///
/// # Safety
/// As `io_uring_register_buffers(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn io_uring_register_buffers(ring: *mut c_void, iovecs: *const libc::iovec, nr: c_uint) -> c_int {
    let fwd = || match real(&REGISTER_BUFFERS, io_uring_register_buffers as *const c_void) {
        // SAFETY: looked up as io_uring_register_buffers@LIBURING_2.0.
        Ok(f) => unsafe { std::mem::transmute::<*mut c_void, RegisterBuffersFn>(f)(ring, iovecs, nr) },
        Err(e) => e,
    };
    guarded("io_uring_register_buffers", iovecs, nr, fwd)
}

/// `int io_uring_register_buffers_tags(struct io_uring *ring, const struct iovec *iovecs, const __u64 *tags, unsigned nr)`
///
/// # Safety
/// As `io_uring_register_buffers_tags(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn io_uring_register_buffers_tags(
    ring: *mut c_void,
    iovecs: *const libc::iovec,
    tags: *const u64,
    nr: c_uint,
) -> c_int {
    let fwd = || match real(&REGISTER_BUFFERS_TAGS, io_uring_register_buffers_tags as *const c_void) {
        // SAFETY: looked up as io_uring_register_buffers_tags@LIBURING_2.1.
        Ok(f) => unsafe { std::mem::transmute::<*mut c_void, RegisterBuffersTagsFn>(f)(ring, iovecs, tags, nr) },
        Err(e) => e,
    };
    guarded("io_uring_register_buffers_tags", iovecs, nr, fwd)
}

/// `int io_uring_register_buffers_update_tag(struct io_uring *ring, unsigned off, const struct iovec *iovecs, const __u64 *tags, unsigned nr)`
///
/// # Safety
/// As `io_uring_register_buffers_update_tag(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn io_uring_register_buffers_update_tag(
    ring: *mut c_void,
    off: c_uint,
    iovecs: *const libc::iovec,
    tags: *const u64,
    nr: c_uint,
) -> c_int {
    let fwd = || match real(&UPDATE_TAG, io_uring_register_buffers_update_tag as *const c_void) {
        // SAFETY: looked up as io_uring_register_buffers_update_tag@LIBURING_2.1.
        Ok(f) => unsafe { std::mem::transmute::<*mut c_void, UpdateTagFn>(f)(ring, off, iovecs, tags, nr) },
        Err(e) => e,
    };
    guarded("io_uring_register_buffers_update_tag", iovecs, nr, fwd)
}

/// `int io_uring_register(unsigned int fd, unsigned int opcode, const void *arg, unsigned int nr_args)`
///
/// # Safety
/// As `io_uring_register(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn io_uring_register(fd: c_uint, opcode: c_uint, arg: *const c_void, nr_args: c_uint) -> c_int {
    let fwd = || match real(&REGISTER, io_uring_register as *const c_void) {
        // SAFETY: looked up as io_uring_register@LIBURING_2.3.
        Ok(f) => unsafe { std::mem::transmute::<*mut c_void, RegisterFn>(f)(fd, opcode, arg, nr_args) },
        Err(e) => e,
    };
    if !super::registers_buffers(opcode) {
        return fwd();
    }
    let buffers = decoded(|| super::decode_register(fd as i32, opcode, arg as u64, nr_args));
    match buffers {
        Some(b) => register(super::opcode_name(opcode), Some(fd as i32), &b, fwd, liburing_answer()),
        None => fwd(),
    }
}

/// Decodes `nr` iovecs and guards the call.
fn guarded(entry: &'static str, iovecs: *const libc::iovec, nr: c_uint, fwd: impl Fn() -> c_int) -> c_int {
    let buffers = decoded(|| super::iovecs(iovecs as u64, nr as usize));
    match buffers {
        Some(b) => register(entry, None, &b, fwd, liburing_answer()),
        None => fwd(),
    }
}
