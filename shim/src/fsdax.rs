//! The kernel's rules for long-term pins of file mappings, as named helpers.
//!
//! # References
//! - `vma_is_fsdax()` in `include/linux/fs.h`; `check_vma_flags()` and
//!   `writable_file_mapping_allowed()` in `mm/gup.c` (Linux 6.5+)

use crate::classify::{Kind, Piece};

/// Linux 6.5+ `writable_file_mapping_allowed()`: a long-term pin for writing
/// of a shared file mapping that needs dirty tracking is refused (`EFAULT`),
/// DAX or not, because the filesystem cannot be told the pages are dirty:
///
/// ```c
/// if ((gup_flags & (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE)) != (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE))
///         return true;
/// return !vma_needs_dirty_tracking(vma);
/// ```
///
/// `pins_for_write` is whether the consumer's pin carries `FOLL_WRITE` (for
/// verbs, [`crate::verbs::ib_access_writable`]). Every shared mapping of a
/// file that is not DAX counts as needing dirty tracking: daxguard only uses
/// this to explain (and in `odp` mode, to retry) an `EFAULT` the kernel
/// already gave, never to refuse.
pub fn writable_file_mapping_allowed(pins_for_write: bool, piece: &Piece) -> bool {
    let shared_file = matches!(piece.kind, Kind::File(_)) && piece.prot.is_some_and(|p| p.shared);
    !(pins_for_write && shared_file)
}
