//! The interposed libibverbs entry points (feature `interpose`): exports
//! that the dynamic linker binds the program's PLT slots to.
//!
//! Plain unversioned exports: the dynamic linker binds versioned references
//! (`ibv_reg_mr@IBVERBS_1.1`, `ibv_reg_mr_iova2@IBVERBS_1.8`, ...) to them, so
//! no version script is needed. Each export builds a [`Call`] and hands it to
//! [`guard`] with a closure that makes the real call. `ibv_reg_dmabuf_mr` is
//! not interposed: a dma-buf registration pins no user pages.
//!
//! # Safety
//! The exports are called by C with the arguments libibverbs documents; they
//! pass them on unchanged (access flags may gain `IBV_ACCESS_ON_DEMAND` in
//! `odp` mode). Real functions are transmuted from `dlvsym` results to the
//! exact `verbs-sys` types of the symbols and versions they were looked up by.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

use verbs_sys::*;

use super::args::OdpPd;
use crate::guard::{Answer, Buffer, Call, guard};
#[cfg(target_arch = "x86_64")]
use crate::intercept::pointers::Guarded;
use crate::intercept::resolve::Real;
use crate::sys::{Errno, stderr_line};
use crate::types::Consumer;

const LIBIBVERBS: &CStr = c"libibverbs.so.1";
static REG_MR: Real = Real::new(LIBIBVERBS, c"ibv_reg_mr", IBV_REG_MR_VERSION);
static REG_MR_IOVA: Real = Real::new(LIBIBVERBS, c"ibv_reg_mr_iova", IBV_REG_MR_IOVA_VERSION);
static REG_MR_IOVA2: Real = Real::new(LIBIBVERBS, c"ibv_reg_mr_iova2", IBV_REG_MR_IOVA2_VERSION);
static REREG_MR: Real = Real::new(LIBIBVERBS, c"ibv_rereg_mr", IBV_REREG_MR_VERSION);
static REG_MR_EX: Real = Real::new(LIBIBVERBS, c"ibv_reg_mr_ex", IBV_REG_MR_EX_VERSION);

/// What the `dlsym` wrapper hands out in place of libibverbs' own pointers.
#[cfg(target_arch = "x86_64")]
pub(crate) static GUARDED: [Guarded; 5] = [
    Guarded::new(|| ibv_reg_mr as *const c_void, &REG_MR),
    Guarded::new(|| ibv_reg_mr_iova as *const c_void, &REG_MR_IOVA),
    Guarded::new(|| ibv_reg_mr_iova2 as *const c_void, &REG_MR_IOVA2),
    Guarded::new(|| ibv_rereg_mr as *const c_void, &REREG_MR),
    Guarded::new(|| ibv_reg_mr_ex as *const c_void, &REG_MR_EX),
];

static SAID_MISSING: AtomicBool = AtomicBool::new(false);

/// The real function, or `None` after saying (once) that it is missing and
/// setting errno to ENOSYS, as a call into a missing library would fail.
pub(super) fn real(r: &Real, ours: *const c_void) -> Option<*mut c_void> {
    let p = r.get(ours);
    if p.is_none() {
        if !SAID_MISSING.swap(true, Ordering::Relaxed) {
            let lib = r.lib().to_string_lossy();
            let lib = lib.split(".so").next().unwrap_or_default();
            stderr_line(&format!(
                "daxguard: cannot find {lib}' {} (is {lib} loaded?): failing the call with ENOSYS",
                r.name().to_string_lossy()
            ));
        }
        Errno::ENOSYS.set();
    }
    p
}

/// Whether the device behind `pd` can take the registration on demand.
pub(super) fn device_odp(pd: *mut ibv_pd) -> impl Fn() -> bool {
    // SAFETY: `pd` was handed to a registration call; libibverbs dereferences it too.
    move || unsafe { super::odp::supported(pd) }
}

/// The call as the guard sees it: one buffer.
fn call<'a>(entry: &'static str, buffer: &'a [Buffer; 1], access: u32, odp: &'a dyn Fn() -> bool) -> Call<'a> {
    let pin = super::pin(access);
    Call { consumer: Consumer::Rdma, entry, buffers: buffer, detail: &|_| None, access, pin, device_odp: odp }
}

fn buffer(addr: *mut c_void, len: usize) -> [Buffer; 1] {
    [Buffer { addr: addr as u64, len: len as u64 }]
}

/// libibverbs' answers: NULL (or non-zero for rereg) with errno set.
const NULL_MR: Answer<*mut ibv_mr> =
    Answer { refused: null_mut(), failed: |r| r.is_null().then(Errno::last), sets_errno: true };
const REREG: Answer<c_int> =
    Answer { refused: IBV_REREG_MR_ERR_INPUT, failed: |r| (r != 0).then(Errno::last), sets_errno: true };

/// `access`, with `IBV_ACCESS_ON_DEMAND` added when the guard asks for it.
fn with_odp(access: u32, on_demand: bool) -> u32 {
    if on_demand { access | IBV_ACCESS_ON_DEMAND } else { access }
}

/// `ibv_reg_mr@IBVERBS_1.1`: the verbs.h macro with constant access flags.
///
/// # Safety
/// As `ibv_reg_mr(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ibv_reg_mr(pd: *mut ibv_pd, addr: *mut c_void, length: usize, access: c_int) -> *mut ibv_mr {
    let odp = device_odp(pd);
    let b = buffer(addr, length);
    let c = call("ibv_reg_mr", &b, access as u32, &odp);
    let fwd = |on_demand| match real(&REG_MR, ibv_reg_mr as *const c_void) {
        // SAFETY: looked up as ibv_reg_mr@IBVERBS_1.1, whose type this is.
        Some(f) => unsafe {
            let acc = with_odp(access as u32, on_demand) as c_int;
            std::mem::transmute::<*mut c_void, ibv_reg_mr_fn>(f)(pd, addr, length, acc)
        },
        None => null_mut(),
    };
    guard(c, fwd, NULL_MR)
}

/// `ibv_reg_mr_iova@IBVERBS_1.7`.
///
/// # Safety
/// As `ibv_reg_mr(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ibv_reg_mr_iova(
    pd: *mut ibv_pd,
    addr: *mut c_void,
    length: usize,
    iova: u64,
    access: c_int,
) -> *mut ibv_mr {
    let odp = device_odp(pd);
    let b = buffer(addr, length);
    let c = call("ibv_reg_mr_iova", &b, access as u32, &odp);
    let fwd = |on_demand| match real(&REG_MR_IOVA, ibv_reg_mr_iova as *const c_void) {
        // SAFETY: looked up as ibv_reg_mr_iova@IBVERBS_1.7.
        Some(f) => unsafe {
            let acc = with_odp(access as u32, on_demand) as c_int;
            std::mem::transmute::<*mut c_void, ibv_reg_mr_iova_fn>(f)(pd, addr, length, iova, acc)
        },
        None => null_mut(),
    };
    guard(c, fwd, NULL_MR)
}

/// `ibv_reg_mr_iova2@IBVERBS_1.8`: where most callers arrive (the verbs.h
/// macro with variable access flags, and libibverbs' own `ibv_reg_mr`).
///
/// # Safety
/// As `ibv_reg_mr(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ibv_reg_mr_iova2(
    pd: *mut ibv_pd,
    addr: *mut c_void,
    length: usize,
    iova: u64,
    access: u32,
) -> *mut ibv_mr {
    let odp = device_odp(pd);
    let b = buffer(addr, length);
    let c = call("ibv_reg_mr_iova2", &b, access, &odp);
    let fwd = |on_demand| match real(&REG_MR_IOVA2, ibv_reg_mr_iova2 as *const c_void) {
        // SAFETY: looked up as ibv_reg_mr_iova2@IBVERBS_1.8.
        Some(f) => unsafe {
            let acc = with_odp(access, on_demand);
            std::mem::transmute::<*mut c_void, ibv_reg_mr_iova2_fn>(f)(pd, addr, length, iova, acc)
        },
        None => null_mut(),
    };
    guard(c, fwd, NULL_MR)
}

/// `ibv_rereg_mr@IBVERBS_1.1`: checked only when the translation changes
/// (`IBV_REREG_MR_CHANGE_TRANSLATION`); refused with `IBV_REREG_MR_ERR_INPUT`.
///
/// # Safety
/// As `ibv_rereg_mr(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ibv_rereg_mr(
    mr: *mut ibv_mr,
    flags: c_int,
    pd: *mut ibv_pd,
    addr: *mut c_void,
    length: usize,
    access: c_int,
) -> c_int {
    let fwd = |on_demand| match real(&REREG_MR, ibv_rereg_mr as *const c_void) {
        // SAFETY: looked up as ibv_rereg_mr@IBVERBS_1.1. The access flags
        // are rewritten only when the call restates them.
        Some(f) => unsafe {
            let acc = super::args::rereg_access(flags, access, on_demand);
            std::mem::transmute::<*mut c_void, ibv_rereg_mr_fn>(f)(mr, flags, pd, addr, length, acc)
        },
        None => IBV_REREG_MR_ERR_INPUT,
    };
    let Some(r) = super::args::rereg(flags, addr as u64, length as u64, access, mr.is_null()) else {
        return fwd(false);
    };
    // SAFETY: `mr` is live per ibv_rereg_mr(3) when not NULL (args::rereg
    // answers `Given` for a NULL one).
    let odp_pd = match r.odp_pd {
        OdpPd::Given => pd,
        OdpPd::Mrs => unsafe { (*mr).pd },
    };
    let odp = device_odp(odp_pd);
    let b = [r.buffer];
    guard(call("ibv_rereg_mr", &b, r.access, &odp), fwd, REREG)
}

/// `ibv_reg_mr_ex` (rdma-core 57+): address-based registrations are checked;
/// dma-buf (`IBV_REG_MR_MASK_FD`) ones pin no user pages and pass unchecked.
///
/// # Safety
/// As `ibv_reg_mr_ex(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ibv_reg_mr_ex(pd: *mut ibv_pd, attr: *mut ibv_mr_init_attr) -> *mut ibv_mr {
    let real_fn = || real(&REG_MR_EX, ibv_reg_mr_ex as *const c_void);
    // SAFETY: looked up as ibv_reg_mr_ex at its upstream version.
    let call_real = |a: *mut ibv_mr_init_attr| match real_fn() {
        Some(f) => unsafe { std::mem::transmute::<*mut c_void, ibv_reg_mr_ex_fn>(f)(pd, a) },
        None => null_mut(),
    };
    // SAFETY: a non-NULL attr is readable per ibv_reg_mr_ex(3).
    let Some(orig) = (unsafe { attr.as_ref() }).copied() else { return call_real(attr) };
    let Some(buffer) = super::args::reg_mr_ex(&orig) else { return call_real(attr) };
    let odp = device_odp(pd);
    let b = [buffer];
    let c = call("ibv_reg_mr_ex", &b, orig.access as u32, &odp);
    let fwd = |on_demand| match super::args::reg_mr_ex_rewritten(&orig, on_demand) {
        Some(mut rewritten) => call_real(&mut rewritten),
        None => call_real(attr),
    };
    guard(c, fwd, NULL_MR)
}
