//! The Rust API for programs that want to ask, or register through a guard,
//! whatever verbs binding they use (`ibverbs`'s ffi, `sideway`, `rdma-sys`).
//!
//! # Safety
//! [`register`] calls the real `ibv_reg_mr_iova2` with the caller's pd.
#![allow(unsafe_code)]

use std::ffi::c_void;

use verbs_sys::{IBV_ACCESS_ON_DEMAND, IBV_REG_MR_IOVA2_VERSION, ibv_mr, ibv_pd, ibv_reg_mr_iova2_fn};

use crate::error::Error;
use crate::intercept::resolve::Real;
use crate::judge::classify;
use crate::report::{Report, Verdict};

/// Why a range may not be registered (pinned).
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    /// Part of the range is fs-DAX; the report says which file and mount.
    FsDax(Report),
    /// Part of the range may be fs-DAX and could not be verified.
    Unverified(Report),
    /// The range could not be classified.
    Lookup(Error),
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::policy::Rule;
        let line = |r: &Report, rule| crate::explain::refusal("register", r.start, r.end - r.start, r.culprit(), rule);
        match self {
            CheckError::FsDax(r) => f.write_str(&line(r, Rule::FsDax)),
            CheckError::Unverified(r) => f.write_str(&line(r, Rule::Unverified)),
            CheckError::Lookup(e) => write!(f, "daxguard: cannot check the range: {e}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// `Ok` if `[addr, addr + len)` can be pinned for RDMA (no fs-DAX piece).
///
/// # Errors
/// [`CheckError::FsDax`] / [`CheckError::Unverified`] with the full report, or
/// [`CheckError::Lookup`] when the mappings cannot be read.
pub fn check(addr: *const u8, len: usize) -> Result<Report, CheckError> {
    let report = classify(addr as u64, len as u64).map_err(CheckError::Lookup)?;
    match report.verdict() {
        Verdict::Allow => Ok(report),
        Verdict::FsDax { .. } => Err(CheckError::FsDax(report)),
        Verdict::Unverified { .. } => Err(CheckError::Unverified(report)),
    }
}

/// Why [`register`] returned no MR.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegisterError {
    /// daxguard refused before calling libibverbs.
    Refused(CheckError),
    /// libibverbs is not loaded in this process.
    NoLibibverbs,
    /// `ibv_reg_mr_iova2` failed; the errno is the provider's.
    RegisterMemoryRegion(std::io::Error),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Refused(e) => e.fmt(f),
            RegisterError::NoLibibverbs => f.write_str("libibverbs.so.1 is not loaded in this process"),
            RegisterError::RegisterMemoryRegion(e) => write!(f, "ibv_reg_mr failed: {e}"),
        }
    }
}

impl std::error::Error for RegisterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegisterError::Refused(e) => Some(e),
            RegisterError::RegisterMemoryRegion(e) => Some(e),
            RegisterError::NoLibibverbs => None,
        }
    }
}

static REG_MR_IOVA2: Real = Real::new(c"libibverbs.so.1", c"ibv_reg_mr_iova2", IBV_REG_MR_IOVA2_VERSION);

/// `ibv_reg_mr()` behind the daxguard check: refuses fs-DAX ranges (unless
/// `access` asks for `IBV_ACCESS_ON_DEMAND`), else registers with the real
/// `ibv_reg_mr_iova2` (iova = addr). Cast any binding's `*mut ibv_pd` to `*mut c_void`.
///
/// # Errors
/// [`RegisterError::Refused`] before libibverbs is called; the provider's errno
/// as [`RegisterError::RegisterMemoryRegion`] (`EOPNOTSUPP` from the kernel for
/// fs-DAX it caught itself, `EFAULT`, `ENOMEM`, ...).
///
/// # Safety
/// - `pd` must be a live protection domain from libibverbs for the whole call.
/// - `[addr, addr + len)` must stay mapped for as long as the MR is registered,
///   and the MR must be deregistered with `ibv_dereg_mr` before `pd` is freed.
pub unsafe fn register(pd: *mut c_void, addr: *mut u8, len: usize, access: u32) -> Result<*mut ibv_mr, RegisterError> {
    if access & IBV_ACCESS_ON_DEMAND == 0 {
        check(addr, len).map_err(RegisterError::Refused)?;
    }
    let f = REG_MR_IOVA2.get(std::ptr::null()).ok_or(RegisterError::NoLibibverbs)?;
    // SAFETY: looked up as ibv_reg_mr_iova2@IBVERBS_1.8, whose type this is;
    // the caller guarantees `pd` is live.
    let mr = unsafe {
        std::mem::transmute::<*mut c_void, ibv_reg_mr_iova2_fn>(f)(
            pd.cast::<ibv_pd>(),
            addr.cast(),
            len,
            addr as u64,
            access,
        )
    };
    if mr.is_null() { Err(RegisterError::RegisterMemoryRegion(crate::sys::Errno::last().into())) } else { Ok(mr) }
}
