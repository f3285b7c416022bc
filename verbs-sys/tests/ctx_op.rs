//! verbs_get_ctx / verbs_get_ctx_query_device_ex follow verbs.h's
//! verbs_get_ctx_op(): abi_compat marker, container_of, the `sz` bound and the
//! NULL slot. The context is built by hand because no provider exists here;
//! the layout it relies on is checked against the header in layout.rs.

use std::mem::{offset_of, size_of};

use verbs_sys::*;

unsafe extern "C" fn fake_query_device_ex(
    _: *mut ibv_context,
    _: *const ibv_query_device_ex_input,
    _: *mut ibv_device_attr_ex,
    _: usize,
) -> std::ffi::c_int {
    42
}

/// A zeroed verbs_context as a provider would allocate it (all ops NULL).
fn zeroed() -> Box<verbs_context> {
    // SAFETY: every field (raw pointers, Option<fn>, integers, pthread_mutex_t) is valid when zero.
    Box::new(unsafe { std::mem::zeroed() })
}

/// `sz` of a provider whose verbs_context starts exactly at query_device_ex.
const SZ_JUST_ENOUGH: usize = size_of::<verbs_context>() - offset_of!(verbs_context, query_device_ex);

#[test]
fn legacy_context_is_not_extended() {
    let mut v = zeroed();
    v.query_device_ex = Some(fake_query_device_ex);
    v.sz = size_of::<verbs_context>();
    let ctx: *mut ibv_context = &mut v.context;
    unsafe {
        assert!(verbs_get_ctx(ctx).is_null());
        assert!(verbs_get_ctx_query_device_ex(ctx).is_none());
    }
}

#[test]
fn extended_context_yields_the_op() {
    let mut v = zeroed();
    v.context.abi_compat = __VERBS_ABI_IS_EXTENDED;
    v.query_device_ex = Some(fake_query_device_ex);
    v.sz = SZ_JUST_ENOUGH;
    let vptr: *mut verbs_context = &mut *v;
    let ctx: *mut ibv_context = &mut v.context;
    unsafe {
        assert_eq!(verbs_get_ctx(ctx), vptr);
        let op = verbs_get_ctx_query_device_ex(ctx).expect("op present");
        assert_eq!(op(ctx, std::ptr::null(), std::ptr::null_mut(), 0), 42);
    }
}

#[test]
fn short_provider_context_hides_the_op() {
    let mut v = zeroed();
    v.context.abi_compat = __VERBS_ABI_IS_EXTENDED;
    v.query_device_ex = Some(fake_query_device_ex);
    v.sz = SZ_JUST_ENOUGH - 1;
    unsafe { assert!(verbs_get_ctx_query_device_ex(&mut v.context).is_none()) }
}

#[test]
fn null_slot_is_none() {
    let mut v = zeroed();
    v.context.abi_compat = __VERBS_ABI_IS_EXTENDED;
    v.sz = size_of::<verbs_context>();
    unsafe { assert!(verbs_get_ctx_query_device_ex(&mut v.context).is_none()) }
}
