//! The RDMA verbs consumer: what libibverbs' arguments mean to the pin.

use verbs_sys::{IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_ATOMIC, IBV_ACCESS_REMOTE_WRITE};

/// Whether a registration with `access` pins its pages for writing
/// (`FOLL_WRITE` in `ib_umem_get()`), which the 6.5+ file-mapping rule
/// ([`crate::fsdax::writable_file_mapping_allowed`]) depends on.
pub fn ib_access_writable(access: u32) -> bool {
    access & (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC) != 0
}
