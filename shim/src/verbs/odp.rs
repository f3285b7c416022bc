//! Does the device behind a protection domain support on-demand paging?
//!
//! Asked only in `odp` mode and only for fs-DAX ranges. The answer comes from
//! `ibv_query_device_ex()` (`odp_caps`), which verbs.h implements inline
//! through the provider's `verbs_context`; it is cached per device context.
//!
//! # Safety
//! Reads `pd->context` from a protection domain the caller passed to an
//! `ibv_reg_mr*` entry point (which libibverbs itself would dereference), and
//! calls the provider's `query_device_ex` as verbs.h does.
#![allow(unsafe_code)]

use verbs_sys::{ibv_context, ibv_pd};

use crate::sys::lock::EpochLock;

/// Contexts seen so far and their answer; a handful of devices per process.
static SEEN: EpochLock<[(usize, bool); 16]> = EpochLock::new(none_seen(), none_seen);

const fn none_seen() -> [(usize, bool); 16] {
    [(0, false); 16]
}

/// Whether the device supports ODP for RC (send, receive, write, read): what
/// an RDMA application registering a buffer for remote access needs.
///
/// # Safety
/// `pd` must be NULL or a live protection domain.
pub unsafe fn supported(pd: *mut ibv_pd) -> bool {
    if pd.is_null() {
        return false;
    }
    // SAFETY: the caller guarantees `pd` is live.
    let ctx = unsafe { (*pd).context };
    if ctx.is_null() {
        return false;
    }
    let Some(mut seen) = SEEN.try_lock_briefly() else {
        // SAFETY: `ctx` comes from a live pd.
        return unsafe { query(ctx) };
    };
    if let Some(&(_, yes)) = seen.iter().find(|(c, _)| *c == ctx as usize) {
        return yes;
    }
    // SAFETY: `ctx` comes from a live pd.
    let yes = unsafe { query(ctx) };
    if let Some(slot) = seen.iter_mut().find(|(c, _)| *c == 0) {
        *slot = (ctx as usize, yes);
    }
    yes
}

/// # Safety
/// `ctx` must be a live device context.
unsafe fn query(ctx: *mut ibv_context) -> bool {
    use verbs_sys::*;
    // SAFETY: `ctx` is live; the helper checks the extended-ABI marker and size.
    let Some(query_device_ex) = (unsafe { verbs_get_ctx_query_device_ex(ctx) }) else { return false };
    // SAFETY: plain data for the provider to fill.
    let mut attr: ibv_device_attr_ex = unsafe { std::mem::zeroed() };
    // SAFETY: as verbs.h's ibv_query_device_ex(): no input, our attr and its size.
    let rc = unsafe { query_device_ex(ctx, std::ptr::null(), &mut attr, std::mem::size_of::<ibv_device_attr_ex>()) };
    let rc_needed = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ;
    rc == 0
        && attr.odp_caps.general_caps & IBV_ODP_SUPPORT != 0
        && attr.odp_caps.per_transport_caps.rc_odp_caps & rc_needed == rc_needed
}
