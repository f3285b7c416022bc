//! The RDMA verbs consumer: libibverbs' registration calls, what their
//! arguments mean to the pin, and the Rust API around them.
//!
//! - `exports`: `ibv_reg_mr` and friends as `LD_PRELOAD` / link-time exports;
//! - `devx`: libmlx5's `mlx5dv_devx_umem_reg(_ex)`, the same way;
//! - [`args`]: what `ibv_rereg_mr`'s flags and `ibv_reg_mr_ex`'s attributes ask for;
//! - [`odp`]: does the device behind a pd do on-demand paging;
//! - [`register`]: [`check`](register::check) and [`register`](register::register) for Rust programs.

pub mod args;
#[cfg(feature = "interpose")]
mod devx;
#[cfg(feature = "interpose")]
mod exports;
#[cfg(feature = "interpose")]
pub(crate) mod odp;
pub mod register;

use verbs_sys::{IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_ON_DEMAND, IBV_ACCESS_REMOTE_ATOMIC, IBV_ACCESS_REMOTE_WRITE};

#[cfg(all(feature = "interpose", target_arch = "x86_64"))]
use crate::intercept::pointers::Guarded;
use crate::types::Pin;

/// Every function this consumer guards, for the `dlsym` wrapper.
#[cfg(all(feature = "interpose", target_arch = "x86_64"))]
pub(crate) fn guarded() -> impl Iterator<Item = &'static Guarded> {
    exports::GUARDED.iter().chain(devx::GUARDED.iter())
}

/// The pin a registration with `access` asks for.
pub fn pin(access: u32) -> Pin {
    Pin { write: ib_access_writable(access), on_demand: access & IBV_ACCESS_ON_DEMAND != 0 }
}

/// Whether a registration with `access` pins its pages for writing
/// (`FOLL_WRITE` in `ib_umem_get()`), which the 6.5+ file-mapping rule
/// ([`crate::fsdax::writable_file_mapping_allowed`]) depends on.
pub fn ib_access_writable(access: u32) -> bool {
    access & (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC) != 0
}
