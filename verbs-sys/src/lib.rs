//! Hand-written libibverbs types, constants and function-pointer types.
//!
//! Only what daxguard needs: the memory-registration entry points it
//! interposes (see ibv_reg_mr(3), ibv_rereg_mr(3)), the structs they take,
//! libmlx5's DevX UMEM registration (mlx5dv_devx_umem_reg(3)), and enough of the device/context ABI for `daxguard probe` (see
//! ibv_query_device(3), ibv_query_device_ex(3)).
//!
//! Nothing here links libibverbs: the crate has no `#[link]` and declares no
//! `extern` functions. Callers find the real functions at run time with
//! `dlvsym(3)` using the `*_VERSION` constants, so a preload library built on
//! this crate adds no DT_NEEDED entry.
//!
//! Layouts mirror `<infiniband/verbs.h>` from rdma-core for x86_64/aarch64 Linux
//! (LP64); `tests/layout.rs` compiles a C program against the system header and
//! checks every size, alignment, offset and constant below.
#![no_std]
#![allow(non_camel_case_types, non_upper_case_globals)]

use core::ffi::{CStr, c_char, c_int, c_uint, c_void};
use core::marker::{PhantomData, PhantomPinned};
use core::mem::{offset_of, size_of};

// ---------------------------------------------------------------------------
// Symbol versions (libibverbs.map.in). dlvsym(3) needs the exact string.
// ---------------------------------------------------------------------------

/// Symbol version `IBVERBS_1.1`: the default version of the classic verbs.
pub const IBVERBS_1_1: &CStr = c"IBVERBS_1.1";
/// Symbol version `IBVERBS_1.7`: added `ibv_reg_mr_iova`.
pub const IBVERBS_1_7: &CStr = c"IBVERBS_1.7";
/// Symbol version `IBVERBS_1.8`: added `ibv_reg_mr_iova2`.
pub const IBVERBS_1_8: &CStr = c"IBVERBS_1.8";
/// Symbol version `IBVERBS_1.15`: added `ibv_reg_mr_ex` (with `ibv_alloc_dmah`,
/// `ibv_dealloc_dmah`) in upstream rdma-core after Debian 12's v44.
pub const IBVERBS_1_15: &CStr = c"IBVERBS_1.15";

/// Version of `ibv_reg_mr` (the exported function, not the verbs.h macro).
pub const IBV_REG_MR_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_reg_mr_iova`.
pub const IBV_REG_MR_IOVA_VERSION: &CStr = IBVERBS_1_7;
/// Version of `ibv_reg_mr_iova2`.
pub const IBV_REG_MR_IOVA2_VERSION: &CStr = IBVERBS_1_8;
/// Version of `ibv_rereg_mr`.
pub const IBV_REREG_MR_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_reg_mr_ex` (upstream rdma-core; absent from v44).
pub const IBV_REG_MR_EX_VERSION: &CStr = IBVERBS_1_15;
/// Version of `ibv_dereg_mr`.
pub const IBV_DEREG_MR_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_get_device_list`.
pub const IBV_GET_DEVICE_LIST_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_free_device_list`.
pub const IBV_FREE_DEVICE_LIST_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_get_device_name`.
pub const IBV_GET_DEVICE_NAME_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_open_device`.
pub const IBV_OPEN_DEVICE_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_close_device`.
pub const IBV_CLOSE_DEVICE_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_alloc_pd`.
pub const IBV_ALLOC_PD_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_dealloc_pd`.
pub const IBV_DEALLOC_PD_VERSION: &CStr = IBVERBS_1_1;
/// Version of `ibv_query_device`.
pub const IBV_QUERY_DEVICE_VERSION: &CStr = IBVERBS_1_1;

// ---------------------------------------------------------------------------
// Access flags: `enum ibv_access_flags`, ibv_reg_mr(3).
// ---------------------------------------------------------------------------

/// `IBV_ACCESS_LOCAL_WRITE`: enable local write access.
pub const IBV_ACCESS_LOCAL_WRITE: c_uint = 1;
/// `IBV_ACCESS_REMOTE_WRITE`: enable remote write access (needs LOCAL_WRITE).
pub const IBV_ACCESS_REMOTE_WRITE: c_uint = 1 << 1;
/// `IBV_ACCESS_REMOTE_READ`: enable remote read access.
pub const IBV_ACCESS_REMOTE_READ: c_uint = 1 << 2;
/// `IBV_ACCESS_REMOTE_ATOMIC`: enable remote atomic access (needs LOCAL_WRITE).
pub const IBV_ACCESS_REMOTE_ATOMIC: c_uint = 1 << 3;
/// `IBV_ACCESS_MW_BIND`: enable memory-window binding.
pub const IBV_ACCESS_MW_BIND: c_uint = 1 << 4;
/// `IBV_ACCESS_ZERO_BASED`: addresses are offsets from the MR start.
pub const IBV_ACCESS_ZERO_BASED: c_uint = 1 << 5;
/// `IBV_ACCESS_ON_DEMAND`: on-demand-paging MR. Pages are not pinned, so the
/// long-term-pin refusal for fs-DAX does not apply; daxguard forwards these.
pub const IBV_ACCESS_ON_DEMAND: c_uint = 1 << 6;
/// `IBV_ACCESS_HUGETLB`: the MR is backed by huge pages (explicit ODP only).
pub const IBV_ACCESS_HUGETLB: c_uint = 1 << 7;
/// `IBV_ACCESS_OPTIONAL_FIRST` (`IB_UVERBS_ACCESS_OPTIONAL_FIRST`): first bit of
/// the optional range a kernel may ignore.
pub const IBV_ACCESS_OPTIONAL_FIRST: c_uint = 1 << 20;
/// `IBV_ACCESS_OPTIONAL_RANGE` (`IB_UVERBS_ACCESS_OPTIONAL_RANGE`): bits 20..=29.
/// The verbs.h `ibv_reg_mr` macro calls `ibv_reg_mr_iova2` when any of these
/// may be set.
pub const IBV_ACCESS_OPTIONAL_RANGE: c_uint = (((1 << 29) << 1) - 1) & !(IBV_ACCESS_OPTIONAL_FIRST - 1);
/// `IBV_ACCESS_RELAXED_ORDERING`: the first optional bit.
pub const IBV_ACCESS_RELAXED_ORDERING: c_uint = IBV_ACCESS_OPTIONAL_FIRST;

// ---------------------------------------------------------------------------
// ibv_rereg_mr(3): `enum ibv_rereg_mr_flags`, `enum ibv_rereg_mr_err_code`.
// ---------------------------------------------------------------------------

/// `IBV_REREG_MR_CHANGE_TRANSLATION`: move the MR to a new `addr`/`length`.
/// This is the flag that can point an MR at fs-DAX memory.
pub const IBV_REREG_MR_CHANGE_TRANSLATION: c_int = 1 << 0;
/// `IBV_REREG_MR_CHANGE_PD`: move the MR to another protection domain.
pub const IBV_REREG_MR_CHANGE_PD: c_int = 1 << 1;
/// `IBV_REREG_MR_CHANGE_ACCESS`: change the access flags.
pub const IBV_REREG_MR_CHANGE_ACCESS: c_int = 1 << 2;

/// `IBV_REREG_MR_ERR_INPUT`: old MR is valid, invalid input.
pub const IBV_REREG_MR_ERR_INPUT: c_int = -1;
/// `IBV_REREG_MR_ERR_DONT_FORK_NEW`: old MR is valid, `madvise(DONTFORK)` of
/// the new range failed.
pub const IBV_REREG_MR_ERR_DONT_FORK_NEW: c_int = -2;
/// `IBV_REREG_MR_ERR_DO_FORK_OLD`: new MR is valid, `madvise(DOFORK)` of the
/// old range failed.
pub const IBV_REREG_MR_ERR_DO_FORK_OLD: c_int = -3;
/// `IBV_REREG_MR_ERR_CMD`: the command failed; the MR should not be used.
pub const IBV_REREG_MR_ERR_CMD: c_int = -4;
/// `IBV_REREG_MR_ERR_CMD_AND_DO_FORK_NEW`: command failed and the fork state
/// of the new range is wrong; the MR should not be used.
pub const IBV_REREG_MR_ERR_CMD_AND_DO_FORK_NEW: c_int = -5;

// ---------------------------------------------------------------------------
// ODP capabilities, ibv_query_device_ex(3). Typed like the fields they are
// tested against: `general_caps` is u64, the per-transport caps are u32.
// ---------------------------------------------------------------------------

/// `IBV_ODP_SUPPORT` (`enum ibv_odp_general_caps`): the device supports ODP.
pub const IBV_ODP_SUPPORT: u64 = 1 << 0;
/// `IBV_ODP_SUPPORT_IMPLICIT`: implicit (whole address space) ODP MRs.
pub const IBV_ODP_SUPPORT_IMPLICIT: u64 = 1 << 1;

/// `IBV_ODP_SUPPORT_SEND` (`enum ibv_odp_transport_cap_bits`).
pub const IBV_ODP_SUPPORT_SEND: u32 = 1 << 0;
/// `IBV_ODP_SUPPORT_RECV`.
pub const IBV_ODP_SUPPORT_RECV: u32 = 1 << 1;
/// `IBV_ODP_SUPPORT_WRITE`.
pub const IBV_ODP_SUPPORT_WRITE: u32 = 1 << 2;
/// `IBV_ODP_SUPPORT_READ`.
pub const IBV_ODP_SUPPORT_READ: u32 = 1 << 3;
/// `IBV_ODP_SUPPORT_ATOMIC`.
pub const IBV_ODP_SUPPORT_ATOMIC: u32 = 1 << 4;
/// `IBV_ODP_SUPPORT_SRQ_RECV`.
pub const IBV_ODP_SUPPORT_SRQ_RECV: u32 = 1 << 5;

// ---------------------------------------------------------------------------
// Opaque types: only ever handled by pointer.
// ---------------------------------------------------------------------------

/// `struct ibv_device` (opaque here; ibv_get_device_list(3)).
#[repr(C)]
pub struct ibv_device {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct ibv_dmah` (opaque here; upstream ibv_alloc_dmah(3)), referenced by
/// `ibv_mr_init_attr`.
#[repr(C)]
pub struct ibv_dmah {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

// ---------------------------------------------------------------------------
// Core structs.
// ---------------------------------------------------------------------------

/// `struct ibv_pd`: a protection domain (ibv_alloc_pd(3)).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ibv_pd {
    /// `struct ibv_context *context`
    pub context: *mut ibv_context,
    /// `uint32_t handle`: kernel handle.
    pub handle: u32,
}

/// `struct ibv_mr`: a registered memory region (ibv_reg_mr(3)).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ibv_mr {
    /// `struct ibv_context *context`
    pub context: *mut ibv_context,
    /// `struct ibv_pd *pd`
    pub pd: *mut ibv_pd,
    /// `void *addr`: start of the registered range.
    pub addr: *mut c_void,
    /// `size_t length`
    pub length: usize,
    /// `uint32_t handle`
    pub handle: u32,
    /// `uint32_t lkey`
    pub lkey: u32,
    /// `uint32_t rkey`
    pub rkey: u32,
}

/// Number of function-pointer slots in the legacy `struct ibv_context_ops`.
pub const IBV_CONTEXT_OPS_SLOTS: usize = 32;

/// `struct ibv_context_ops`: the legacy op table embedded in `ibv_context`.
/// Kept opaque (32 pointer slots); daxguard never calls through it, it only
/// needs `ibv_context`'s later fields at the right offsets.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ibv_context_ops {
    pub _slots: [*mut c_void; IBV_CONTEXT_OPS_SLOTS],
}

/// `struct ibv_context`: an open device (ibv_open_device(3)).
#[repr(C)]
pub struct ibv_context {
    /// `struct ibv_device *device`
    pub device: *mut ibv_device,
    /// `struct ibv_context_ops ops` (legacy, opaque here)
    pub ops: ibv_context_ops,
    /// `int cmd_fd`: the uverbs command file descriptor.
    pub cmd_fd: c_int,
    /// `int async_fd`
    pub async_fd: c_int,
    /// `int num_comp_vectors`
    pub num_comp_vectors: c_int,
    /// `pthread_mutex_t mutex`
    pub mutex: libc::pthread_mutex_t,
    /// `void *abi_compat`: equals [`__VERBS_ABI_IS_EXTENDED`] when this
    /// context is the tail of a `struct verbs_context`.
    pub abi_compat: *mut c_void,
}

/// `__VERBS_ABI_IS_EXTENDED`: `((void *)UINTPTR_MAX)`.
pub const __VERBS_ABI_IS_EXTENDED: *mut c_void = core::ptr::without_provenance_mut(usize::MAX);

/// A `verbs_context` op this crate never calls: only its slot matters.
pub type verbs_op = Option<unsafe extern "C" fn()>;

/// `int (*query_device_ex)(struct ibv_context *, const struct
/// ibv_query_device_ex_input *, struct ibv_device_attr_ex *, size_t attr_size)`:
/// the provider op behind ibv_query_device_ex(3).
pub type verbs_query_device_ex_fn =
    unsafe extern "C" fn(*mut ibv_context, *const ibv_query_device_ex_input, *mut ibv_device_attr_ex, usize) -> c_int;

/// `struct verbs_context`: the extended context that "grows up" (new ops are
/// added at lower addresses) in front of the `ibv_context` handed to the
/// application. Field order mirrors verbs.h; ops daxguard does not call are
/// [`verbs_op`].
#[repr(C)]
#[allow(non_snake_case)] // C field names kept verbatim (ABI_placeholder*)
pub struct verbs_context {
    pub query_port: verbs_op,
    pub advise_mr: verbs_op,
    pub alloc_null_mr: verbs_op,
    pub read_counters: verbs_op,
    pub attach_counters_point_flow: verbs_op,
    pub create_counters: verbs_op,
    pub destroy_counters: verbs_op,
    pub reg_dm_mr: verbs_op,
    pub alloc_dm: verbs_op,
    pub free_dm: verbs_op,
    pub modify_flow_action_esp: verbs_op,
    pub destroy_flow_action: verbs_op,
    pub create_flow_action_esp: verbs_op,
    pub modify_qp_rate_limit: verbs_op,
    pub alloc_parent_domain: verbs_op,
    pub dealloc_td: verbs_op,
    pub alloc_td: verbs_op,
    pub modify_cq: verbs_op,
    pub post_srq_ops: verbs_op,
    pub destroy_rwq_ind_table: verbs_op,
    pub create_rwq_ind_table: verbs_op,
    pub destroy_wq: verbs_op,
    pub modify_wq: verbs_op,
    pub create_wq: verbs_op,
    pub query_rt_values: verbs_op,
    pub create_cq_ex: verbs_op,
    /// `struct verbs_ex_private *priv`
    pub r#priv: *mut c_void,
    /// See [`verbs_query_device_ex_fn`].
    pub query_device_ex: Option<verbs_query_device_ex_fn>,
    pub ibv_destroy_flow: verbs_op,
    pub ABI_placeholder2: verbs_op,
    pub ibv_create_flow: verbs_op,
    pub ABI_placeholder1: verbs_op,
    pub open_qp: verbs_op,
    pub create_qp_ex: verbs_op,
    pub get_srq_num: verbs_op,
    pub create_srq_ex: verbs_op,
    pub open_xrcd: verbs_op,
    pub close_xrcd: verbs_op,
    /// `uint64_t _ABI_placeholder3`
    pub _ABI_placeholder3: u64,
    /// `size_t sz`: how many bytes of this struct, counted back from
    /// `context`, the provider actually filled in.
    pub sz: usize,
    /// `struct ibv_context context`: must be last.
    pub context: ibv_context,
}

/// `verbs_get_ctx()` from verbs.h: the `verbs_context` that contains `ctx`,
/// or null when `ctx->abi_compat != __VERBS_ABI_IS_EXTENDED`.
///
/// # Safety
/// `ctx` must point to a live `ibv_context` returned by libibverbs
/// (ibv_open_device(3) or `pd->context`). The result may only be
/// dereferenced as far as [`verbs_context::sz`] allows.
pub unsafe fn verbs_get_ctx(ctx: *mut ibv_context) -> *mut verbs_context {
    // SAFETY: the caller guarantees ctx points to a live ibv_context.
    if unsafe { (*ctx).abi_compat } != __VERBS_ABI_IS_EXTENDED {
        return core::ptr::null_mut();
    }
    // container_of(ctx, struct verbs_context, context), as verbs.h open-codes it.
    ctx.cast::<u8>().wrapping_sub(offset_of!(verbs_context, context)).cast()
}

/// `verbs_get_ctx_op(ctx, query_device_ex)` from verbs.h, returning the op
/// itself: `None` if the context is not extended, if the provider's
/// `verbs_context` is too small to contain the slot (`sz` check), or if the
/// slot is NULL.
///
/// # Safety
/// Same as [`verbs_get_ctx`]: `ctx` must be a live context from libibverbs.
pub unsafe fn verbs_get_ctx_query_device_ex(ctx: *mut ibv_context) -> Option<verbs_query_device_ex_fn> {
    // SAFETY: forwarded caller guarantee.
    let vctx = unsafe { verbs_get_ctx(ctx) };
    if vctx.is_null() {
        return None;
    }
    // Older providers allocate a shorter verbs_context: the slot exists only
    // if it lies within the last `sz` bytes before `context`.
    // SAFETY: `sz` sits immediately before `context`, present in every
    // extended context.
    if unsafe { (*vctx).sz } < size_of::<verbs_context>() - offset_of!(verbs_context, query_device_ex) {
        return None;
    }
    // SAFETY: the sz check above proves the slot is inside the provider's allocation.
    unsafe { (*vctx).query_device_ex }
}

/// `struct ibv_query_device_ex_input` (ibv_query_device_ex(3)).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_query_device_ex_input {
    /// `uint32_t comp_mask`: must be 0.
    pub comp_mask: u32,
}

/// The anonymous `per_transport_caps` struct inside `struct ibv_odp_caps`
/// (named here because Rust needs a name).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_odp_caps_per_transport {
    /// `uint32_t rc_odp_caps`: `IBV_ODP_SUPPORT_*` bits for RC.
    pub rc_odp_caps: u32,
    /// `uint32_t uc_odp_caps`
    pub uc_odp_caps: u32,
    /// `uint32_t ud_odp_caps`
    pub ud_odp_caps: u32,
}

/// `struct ibv_odp_caps` (ibv_query_device_ex(3)).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_odp_caps {
    /// `uint64_t general_caps`: [`IBV_ODP_SUPPORT`], [`IBV_ODP_SUPPORT_IMPLICIT`].
    pub general_caps: u64,
    /// `struct { ... } per_transport_caps`
    pub per_transport_caps: ibv_odp_caps_per_transport,
}

/// `enum ibv_atomic_cap` (an unsigned int in the C ABI).
pub type ibv_atomic_cap = c_uint;

/// `struct ibv_device_attr` (ibv_query_device(3)).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ibv_device_attr {
    pub fw_ver: [c_char; 64],
    /// `__be64 node_guid` (big endian)
    pub node_guid: u64,
    /// `__be64 sys_image_guid` (big endian)
    pub sys_image_guid: u64,
    pub max_mr_size: u64,
    pub page_size_cap: u64,
    pub vendor_id: u32,
    pub vendor_part_id: u32,
    pub hw_ver: u32,
    pub max_qp: c_int,
    pub max_qp_wr: c_int,
    pub device_cap_flags: c_uint,
    pub max_sge: c_int,
    pub max_sge_rd: c_int,
    pub max_cq: c_int,
    pub max_cqe: c_int,
    pub max_mr: c_int,
    pub max_pd: c_int,
    pub max_qp_rd_atom: c_int,
    pub max_ee_rd_atom: c_int,
    pub max_res_rd_atom: c_int,
    pub max_qp_init_rd_atom: c_int,
    pub max_ee_init_rd_atom: c_int,
    pub atomic_cap: ibv_atomic_cap,
    pub max_ee: c_int,
    pub max_rdd: c_int,
    pub max_mw: c_int,
    pub max_raw_ipv6_qp: c_int,
    pub max_raw_ethy_qp: c_int,
    pub max_mcast_grp: c_int,
    pub max_mcast_qp_attach: c_int,
    pub max_total_mcast_qp_attach: c_int,
    pub max_ah: c_int,
    pub max_fmr: c_int,
    pub max_map_per_fmr: c_int,
    pub max_srq: c_int,
    pub max_srq_wr: c_int,
    pub max_srq_sge: c_int,
    pub max_pkeys: u16,
    pub local_ca_ack_delay: u8,
    pub phys_port_cnt: u8,
}

/// `struct ibv_tso_caps`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_tso_caps {
    pub max_tso: u32,
    pub supported_qpts: u32,
}

/// `struct ibv_rss_caps`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_rss_caps {
    pub supported_qpts: u32,
    pub max_rwq_indirection_tables: u32,
    pub max_rwq_indirection_table_size: u32,
    pub rx_hash_fields_mask: u64,
    pub rx_hash_function: u8,
}

/// `struct ibv_packet_pacing_caps`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_packet_pacing_caps {
    pub qp_rate_limit_min: u32,
    pub qp_rate_limit_max: u32,
    pub supported_qpts: u32,
}

/// `struct ibv_tm_caps`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_tm_caps {
    pub max_rndv_hdr_size: u32,
    pub max_num_tags: u32,
    pub flags: u32,
    pub max_ops: u32,
    pub max_sge: u32,
}

/// `struct ibv_cq_moderation_caps`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_cq_moderation_caps {
    pub max_cq_count: u16,
    pub max_cq_period: u16,
}

/// `struct ibv_pci_atomic_caps`
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ibv_pci_atomic_caps {
    pub fetch_add: u16,
    pub swap: u16,
    pub compare_swap: u16,
}

/// `struct ibv_device_attr_ex` (ibv_query_device_ex(3)), as in rdma-core v44.
/// Providers take the caller's size (`attr_size`), so a newer libibverbs with
/// a longer struct still fills this prefix.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ibv_device_attr_ex {
    pub orig_attr: ibv_device_attr,
    pub comp_mask: u32,
    pub odp_caps: ibv_odp_caps,
    pub completion_timestamp_mask: u64,
    pub hca_core_clock: u64,
    pub device_cap_flags_ex: u64,
    pub tso_caps: ibv_tso_caps,
    pub rss_caps: ibv_rss_caps,
    pub max_wq_type_rq: u32,
    pub packet_pacing_caps: ibv_packet_pacing_caps,
    /// Use `enum ibv_raw_packet_caps`.
    pub raw_packet_caps: u32,
    pub tm_caps: ibv_tm_caps,
    pub cq_mod_caps: ibv_cq_moderation_caps,
    pub max_dm_size: u64,
    pub pci_atomic_caps: ibv_pci_atomic_caps,
    pub xrc_odp_caps: u32,
    pub phys_port_cnt_ex: u32,
}

// ---------------------------------------------------------------------------
// ibv_reg_mr_ex (upstream rdma-core, IBVERBS_1.15; not in Debian 12's v44).
// Mirrors `enum ibv_mr_init_attr_mask` / `struct ibv_mr_init_attr` from
// linux-rdma/rdma-core libibverbs/verbs.h.
// ---------------------------------------------------------------------------

/// `IBV_REG_MR_MASK_IOVA`: `iova` is valid.
pub const IBV_REG_MR_MASK_IOVA: u64 = 1 << 0;
/// `IBV_REG_MR_MASK_ADDR`: `addr` is valid (a virtual-address registration,
/// the case daxguard classifies).
pub const IBV_REG_MR_MASK_ADDR: u64 = 1 << 1;
/// `IBV_REG_MR_MASK_FD`: `fd` is valid (a dma-buf registration).
pub const IBV_REG_MR_MASK_FD: u64 = 1 << 2;
/// `IBV_REG_MR_MASK_FD_OFFSET`: `fd_offset` is valid.
pub const IBV_REG_MR_MASK_FD_OFFSET: u64 = 1 << 3;
/// `IBV_REG_MR_MASK_DMAH`: `dmah` is valid.
pub const IBV_REG_MR_MASK_DMAH: u64 = 1 << 4;

/// `struct ibv_mr_init_attr`: the argument of upstream `ibv_reg_mr_ex()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ibv_mr_init_attr {
    /// `size_t length`
    pub length: usize,
    /// `int access`: `IBV_ACCESS_*`.
    pub access: c_int,
    /// `uint64_t comp_mask`: `IBV_REG_MR_MASK_*`, says which fields below are valid.
    pub comp_mask: u64,
    /// `uint64_t iova`
    pub iova: u64,
    /// `void *addr`
    pub addr: *mut c_void,
    /// `int fd`
    pub fd: c_int,
    /// `uint64_t fd_offset`
    pub fd_offset: u64,
    /// `struct ibv_dmah *dmah`
    pub dmah: *mut ibv_dmah,
}

// ---------------------------------------------------------------------------
// mlx5 DevX UMEM (libmlx5, `providers/mlx5/mlx5dv.h` and `libmlx5.map` in
// linux-rdma/rdma-core; unchanged from v44 to v64): user memory handed to the
// device for its own objects, pinned by the kernel with `ib_umem_get()`, the
// same long-term pin as an MR. See mlx5dv_devx_umem_reg(3).
// ---------------------------------------------------------------------------

/// Symbol version `MLX5_1.7`: added `mlx5dv_devx_umem_reg` (rdma-core v20).
pub const MLX5_1_7: &CStr = c"MLX5_1.7";
/// Symbol version `MLX5_1.19`: added `mlx5dv_devx_umem_reg_ex` (rdma-core v35).
pub const MLX5_1_19: &CStr = c"MLX5_1.19";
/// Version of `mlx5dv_devx_umem_reg`.
pub const MLX5DV_DEVX_UMEM_REG_VERSION: &CStr = MLX5_1_7;
/// Version of `mlx5dv_devx_umem_reg_ex`.
pub const MLX5DV_DEVX_UMEM_REG_EX_VERSION: &CStr = MLX5_1_19;

/// `MLX5DV_UMEM_MASK_DMABUF` (`enum mlx5dv_devx_umem_in_mask`): `dmabuf_fd`
/// is valid and `addr` is an offset into that dma-buf, not user memory.
pub const MLX5DV_UMEM_MASK_DMABUF: u64 = 1 << 0;

/// `struct mlx5dv_devx_umem`: what a registration returns; freed with
/// `mlx5dv_devx_umem_dereg()`.
#[repr(C)]
#[derive(Debug)]
pub struct mlx5dv_devx_umem {
    /// `uint32_t umem_id`: the firmware's id of the registered memory.
    pub umem_id: u32,
}

/// `struct mlx5dv_devx_umem_in`: the argument of `mlx5dv_devx_umem_reg_ex()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mlx5dv_devx_umem_in {
    /// `void *addr`: start of the user memory (an offset with `MLX5DV_UMEM_MASK_DMABUF`).
    pub addr: *mut c_void,
    /// `size_t size`
    pub size: usize,
    /// `uint32_t access`: 0 or `IBV_ACCESS_*` (the kernel accepts LOCAL_WRITE,
    /// REMOTE_WRITE, REMOTE_READ and RELAXED_ORDERING; no ON_DEMAND).
    pub access: u32,
    /// `uint64_t pgsz_bitmap`: page sizes the device may use.
    pub pgsz_bitmap: u64,
    /// `uint64_t comp_mask`: `MLX5DV_UMEM_MASK_*`.
    pub comp_mask: u64,
    /// `int dmabuf_fd`
    pub dmabuf_fd: c_int,
}

// ---------------------------------------------------------------------------
// Function-pointer types for the entry points resolved at run time.
// ---------------------------------------------------------------------------

/// `struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
/// int access)`, [`IBV_REG_MR_VERSION`]. Reached by the verbs.h macro only when
/// `access` is a compile-time constant without optional bits.
pub type ibv_reg_mr_fn = unsafe extern "C" fn(*mut ibv_pd, *mut c_void, usize, c_int) -> *mut ibv_mr;
/// `struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t length,
/// uint64_t iova, int access)`, [`IBV_REG_MR_IOVA_VERSION`].
pub type ibv_reg_mr_iova_fn = unsafe extern "C" fn(*mut ibv_pd, *mut c_void, usize, u64, c_int) -> *mut ibv_mr;
/// `struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
/// uint64_t iova, unsigned int access)`, [`IBV_REG_MR_IOVA2_VERSION`]. The
/// common path: the verbs.h macro with a non-constant `access`, and
/// libibverbs' own `ibv_reg_mr`/`ibv_reg_mr_iova` call it via the PLT.
pub type ibv_reg_mr_iova2_fn = unsafe extern "C" fn(*mut ibv_pd, *mut c_void, usize, u64, c_uint) -> *mut ibv_mr;
/// `int ibv_rereg_mr(struct ibv_mr *mr, int flags, struct ibv_pd *pd, void *addr,
/// size_t length, int access)`, [`IBV_REREG_MR_VERSION`]. Returns 0 or an
/// `IBV_REREG_MR_ERR_*` code, with errno set.
pub type ibv_rereg_mr_fn = unsafe extern "C" fn(*mut ibv_mr, c_int, *mut ibv_pd, *mut c_void, usize, c_int) -> c_int;
/// `struct ibv_mr *ibv_reg_mr_ex(struct ibv_pd *pd, struct ibv_mr_init_attr
/// *mr_init_attr)`, [`IBV_REG_MR_EX_VERSION`].
pub type ibv_reg_mr_ex_fn = unsafe extern "C" fn(*mut ibv_pd, *mut ibv_mr_init_attr) -> *mut ibv_mr;
/// `struct mlx5dv_devx_umem *mlx5dv_devx_umem_reg(struct ibv_context *ctx,
/// void *addr, size_t size, uint32_t access)`, [`MLX5DV_DEVX_UMEM_REG_VERSION`].
pub type mlx5dv_devx_umem_reg_fn =
    unsafe extern "C" fn(*mut ibv_context, *mut c_void, usize, u32) -> *mut mlx5dv_devx_umem;
/// `struct mlx5dv_devx_umem *mlx5dv_devx_umem_reg_ex(struct ibv_context *ctx,
/// struct mlx5dv_devx_umem_in *umem_in)`, [`MLX5DV_DEVX_UMEM_REG_EX_VERSION`].
pub type mlx5dv_devx_umem_reg_ex_fn =
    unsafe extern "C" fn(*mut ibv_context, *mut mlx5dv_devx_umem_in) -> *mut mlx5dv_devx_umem;
/// `int ibv_dereg_mr(struct ibv_mr *mr)`, [`IBV_DEREG_MR_VERSION`].
pub type ibv_dereg_mr_fn = unsafe extern "C" fn(*mut ibv_mr) -> c_int;
/// `struct ibv_device **ibv_get_device_list(int *num_devices)`,
/// [`IBV_GET_DEVICE_LIST_VERSION`].
pub type ibv_get_device_list_fn = unsafe extern "C" fn(*mut c_int) -> *mut *mut ibv_device;
/// `void ibv_free_device_list(struct ibv_device **list)`,
/// [`IBV_FREE_DEVICE_LIST_VERSION`].
pub type ibv_free_device_list_fn = unsafe extern "C" fn(*mut *mut ibv_device);
/// `const char *ibv_get_device_name(struct ibv_device *device)`,
/// [`IBV_GET_DEVICE_NAME_VERSION`].
pub type ibv_get_device_name_fn = unsafe extern "C" fn(*mut ibv_device) -> *const c_char;
/// `struct ibv_context *ibv_open_device(struct ibv_device *device)`,
/// [`IBV_OPEN_DEVICE_VERSION`].
pub type ibv_open_device_fn = unsafe extern "C" fn(*mut ibv_device) -> *mut ibv_context;
/// `int ibv_close_device(struct ibv_context *context)`, [`IBV_CLOSE_DEVICE_VERSION`].
pub type ibv_close_device_fn = unsafe extern "C" fn(*mut ibv_context) -> c_int;
/// `struct ibv_pd *ibv_alloc_pd(struct ibv_context *context)`, [`IBV_ALLOC_PD_VERSION`].
pub type ibv_alloc_pd_fn = unsafe extern "C" fn(*mut ibv_context) -> *mut ibv_pd;
/// `int ibv_dealloc_pd(struct ibv_pd *pd)`, [`IBV_DEALLOC_PD_VERSION`].
pub type ibv_dealloc_pd_fn = unsafe extern "C" fn(*mut ibv_pd) -> c_int;
/// `int ibv_query_device(struct ibv_context *context, struct ibv_device_attr
/// *device_attr)`, [`IBV_QUERY_DEVICE_VERSION`].
pub type ibv_query_device_fn = unsafe extern "C" fn(*mut ibv_context, *mut ibv_device_attr) -> c_int;
