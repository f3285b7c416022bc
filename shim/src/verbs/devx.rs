//! libmlx5's DevX UMEM registration (feature `interpose`):
//! `mlx5dv_devx_umem_reg` and `mlx5dv_devx_umem_reg_ex` as exports.
//!
//! DPDK's mlx5 PMD and UCX's DevX transports hand user memory to the device
//! this way; the kernel pins it with `ib_umem_get()` (`devx_umem_get()` in
//! `drivers/infiniband/hw/mlx5/devx.c`), the same long-term pin as an MR,
//! refused on fs-DAX with `EOPNOTSUPP`. So a registration is judged as a
//! pinned one, writable per its `IBV_ACCESS_*` flags, with the guard's
//! message, audit record and errno: a refusal is `NULL` with `EOPNOTSUPP`.
//! The kernel accepts no `IBV_ACCESS_ON_DEMAND` here, so there is no ODP
//! rewrite: `DAXGUARD_MODE=odp` refuses fs-DAX as `enforce` does, and says
//! so once. A dma-buf UMEM (`MLX5DV_UMEM_MASK_DMABUF`) pins no user pages
//! and is forwarded unchecked.
//!
//! # Safety
//! The exports are called by C with the arguments mlx5dv_devx_umem_reg(3)
//! documents and pass them on unchanged. Real functions are transmuted from
//! `dlvsym` results to the `verbs-sys` types of the symbols and versions
//! they were looked up by.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_void};
use std::ptr::null_mut;
use std::sync::atomic::AtomicBool;

use verbs_sys::*;

use super::exports::real;
use crate::guard::{Answer, Buffer, Call, guard, say_once_unless_quiet};
#[cfg(target_arch = "x86_64")]
use crate::intercept::pointers::Guarded;
use crate::intercept::resolve::Real;
use crate::sys::Errno;
use crate::types::{Consumer, Pin};

const LIBMLX5: &CStr = c"libmlx5.so.1";
static UMEM_REG: Real = Real::new(LIBMLX5, c"mlx5dv_devx_umem_reg", MLX5DV_DEVX_UMEM_REG_VERSION);
static UMEM_REG_EX: Real = Real::new(LIBMLX5, c"mlx5dv_devx_umem_reg_ex", MLX5DV_DEVX_UMEM_REG_EX_VERSION);

/// What the `dlsym` wrapper hands out in place of libmlx5's own pointers.
#[cfg(target_arch = "x86_64")]
pub(crate) static GUARDED: [Guarded; 2] = [
    Guarded::new(|| mlx5dv_devx_umem_reg as *const c_void, &UMEM_REG),
    Guarded::new(|| mlx5dv_devx_umem_reg_ex as *const c_void, &UMEM_REG_EX),
];

static SAID_NO_ODP: AtomicBool = AtomicBool::new(false);

/// The guard's "could the device take this on demand": never, for DevX.
/// Asked only in `odp` mode, where it says once why the range is judged
/// as in `enforce`.
fn no_odp(entry: &'static str) -> impl Fn() -> bool {
    move || {
        say_once_unless_quiet(&SAID_NO_ODP, || {
            format!(
                "daxguard: {entry}: DevX UMEM cannot be registered on demand (the kernel always pins it): DAXGUARD_MODE=odp judges it as enforce does (said once)"
            )
        });
        false
    }
}

/// The call as the guard sees it: a pinned registration, writable per `access`.
fn call<'a>(entry: &'static str, buffer: &'a [Buffer; 1], access: u32, odp: &'a dyn Fn() -> bool) -> Call<'a> {
    let pin = Pin { write: super::ib_access_writable(access), on_demand: false };
    Call { consumer: Consumer::Rdma, entry, buffers: buffer, detail: &|_| None, access, pin, device_odp: odp }
}

/// NULL with errno, as libmlx5 answers.
const NULL_UMEM: Answer<*mut mlx5dv_devx_umem> =
    Answer { refused: null_mut(), failed: |r| r.is_null().then(Errno::last), sets_errno: true };

/// `mlx5dv_devx_umem_reg@MLX5_1.7`.
///
/// # Safety
/// As mlx5dv_devx_umem_reg(3).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mlx5dv_devx_umem_reg(
    context: *mut ibv_context,
    addr: *mut c_void,
    size: usize,
    access: u32,
) -> *mut mlx5dv_devx_umem {
    let odp = no_odp("mlx5dv_devx_umem_reg");
    let b = [Buffer { addr: addr as u64, len: size as u64 }];
    let c = call("mlx5dv_devx_umem_reg", &b, access, &odp);
    let fwd = |_on_demand| match real(&UMEM_REG, mlx5dv_devx_umem_reg as *const c_void) {
        // SAFETY: looked up as mlx5dv_devx_umem_reg@MLX5_1.7, whose type this is.
        Some(f) => unsafe {
            std::mem::transmute::<*mut c_void, mlx5dv_devx_umem_reg_fn>(f)(context, addr, size, access)
        },
        None => null_mut(),
    };
    guard(c, fwd, NULL_UMEM)
}

/// `mlx5dv_devx_umem_reg_ex@MLX5_1.19`: user-memory UMEMs are judged;
/// dma-buf ones (`MLX5DV_UMEM_MASK_DMABUF`) pass unchecked.
///
/// # Safety
/// As mlx5dv_devx_umem_reg(3).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mlx5dv_devx_umem_reg_ex(
    context: *mut ibv_context,
    umem_in: *mut mlx5dv_devx_umem_in,
) -> *mut mlx5dv_devx_umem {
    let call_real = || match real(&UMEM_REG_EX, mlx5dv_devx_umem_reg_ex as *const c_void) {
        // SAFETY: looked up as mlx5dv_devx_umem_reg_ex@MLX5_1.19.
        Some(f) => unsafe { std::mem::transmute::<*mut c_void, mlx5dv_devx_umem_reg_ex_fn>(f)(context, umem_in) },
        None => null_mut(),
    };
    // SAFETY: a non-NULL umem_in is readable per mlx5dv_devx_umem_reg(3).
    let Some(inp) = (unsafe { umem_in.as_ref() }).copied() else { return call_real() };
    if inp.comp_mask & MLX5DV_UMEM_MASK_DMABUF != 0 {
        return call_real();
    }
    let odp = no_odp("mlx5dv_devx_umem_reg_ex");
    let b = [Buffer { addr: inp.addr as u64, len: inp.size as u64 }];
    let c = call("mlx5dv_devx_umem_reg_ex", &b, inp.access, &odp);
    guard(c, |_on_demand| call_real(), NULL_UMEM)
}
