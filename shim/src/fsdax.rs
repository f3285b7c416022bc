//! The fs-DAX predicate: `vma_is_fsdax()`'s twin, and the other kernel
//! rule for long-term pins of file mappings.
//!
//! The kernel refuses a long-term pin of a VMA for which this holds
//! (`include/linux/fs.h`):
//!
//! ```c
//! static inline bool vma_is_fsdax(struct vm_area_struct *vma)
//! {
//!         struct inode *inode;
//!
//!         if (!IS_ENABLED(CONFIG_FS_DAX) || !vma->vm_file)
//!                 return false;
//!         if (!vma_is_dax(vma))
//!                 return false;
//!         inode = file_inode(vma->vm_file);
//!         if (S_ISCHR(inode->i_mode))
//!                 return false; /* device-dax */
//!         return true;
//! }
//! ```
//!
//! and `check_vma_flags()` in `mm/gup.c` turns it into the answer:
//! `if ((gup_flags & FOLL_LONGTERM) && vma_is_fsdax(vma)) return -EOPNOTSUPP;`.
//! [`examine`] asks the same three questions of a file-backed VMA from
//! userspace, where `IS_DAX()` is `statx`'s `STATX_ATTR_DAX`.
//!
//! # References
//! - `vma_is_fsdax()` in `include/linux/fs.h`; `check_vma_flags()` and
//!   `writable_file_mapping_allowed()` in `mm/gup.c`
//! - Documentation/filesystems/dax.rst

use std::ffi::CStr;

use crate::mountinfo::{DaxOption, MountTable};
use crate::report::{Evidence, FileInfo, FileKind, Finding, Kind, Piece, Via};
use crate::statx::{FileStat, statx};
use crate::sysfs;
use crate::types::{Consumer, Dev, Target, Vma};

/// Filesystems that can map files with DAX (the rest never can).
const DAX_CAPABLE_FS: &[&str] = &["ext2", "ext3", "ext4", "xfs", "erofs", "virtiofs", "fuse", "famfs"];

/// The `vma_is_fsdax()` question for one file-backed VMA, answered from the
/// best evidence available, cheapest trustworthy first. `shm_dev` is the
/// kernel's internal shmem mount, `mounts` the target's mount table.
pub fn examine(vma: &Vma<'_>, target: Target, shm_dev: Option<Dev>, mounts: &MountTable) -> Finding {
    let found = |kind, evidence| Finding { kind, evidence, statx_dax: None };
    // Shared anonymous memory, memfd and SysV shm: tmpfs, never DAX.
    if shm_dev == Some(vma.dev) {
        return found(FileKind::PlainFile, Evidence::SharedMemory);
    }
    // The file itself is the truth, if we can reach the very inode mapped.
    if let Some((st, via)) = stat_mapped_file(vma, target) {
        let found = |kind, evidence| Finding { kind, evidence, statx_dax: st.dax };
        if st.is_char_device() {
            // vma_is_fsdax(): "if (S_ISCHR(inode->i_mode)) return false; /* device-dax */"
            let kind = if sysfs::char_device_is_dax(st.rdev) { FileKind::DeviceDax } else { FileKind::CharDevice };
            return found(kind, Evidence::CharDevice { via });
        }
        match st.dax {
            Some(true) => return found(FileKind::FsDax, Evidence::Statx { via }),
            Some(false) => return found(FileKind::PlainFile, Evidence::Statx { via }),
            None => {} // before Linux 5.8: ask the mount
        }
    }
    // The mount: any entry for this device carries the superblock options.
    if let Some(m) = mounts.first_by_dev(vma.dev) {
        if !DAX_CAPABLE_FS.contains(&m.fstype.as_str()) {
            return found(FileKind::PlainFile, Evidence::FsTypeCannotDax);
        }
        match m.dax_option() {
            DaxOption::Always => return found(FileKind::FsDax, Evidence::MountDaxAlways),
            DaxOption::Never => return found(FileKind::PlainFile, Evidence::MountDaxNever),
            DaxOption::Inode => {}
        }
    }
    if vma.dev.major != 0 && sysfs::block_device_dax(vma.dev) == Some(false) {
        return found(FileKind::PlainFile, Evidence::BlockDeviceNotDax);
    }
    if shm_dev.is_none() && vma.name.starts_with(b"/memfd:") {
        return found(FileKind::PlainFile, Evidence::SharedMemory);
    }
    found(FileKind::Unverified, Evidence::NotVerifiable)
}

/// `STATX_ATTR_DAX` of the inode the VMA maps, for a report: [`examine`]
/// does not ask it of the kernel's shmem mount, which is never DAX.
pub fn statx_dax(vma: &Vma<'_>, target: Target) -> Option<bool> {
    stat_mapped_file(vma, target).and_then(|(st, _)| st.dax)
}

/// `statx` of the inode the VMA maps: by its path, else through map_files.
/// Only an answer for the same (dev, inode) counts: the path may now name
/// another file (renamed, deleted, another mount namespace).
fn stat_mapped_file(vma: &Vma<'_>, target: Target) -> Option<(FileStat, Via)> {
    let same = |st: &FileStat| st.dev == vma.dev && st.ino == vma.inode;
    let mut buf = [0u8; 4096 + 64];
    if vma.name.first() == Some(&b'/')
        && let Some(path) = path_in(&mut buf, target, vma.name)
        && let Some(st) = statx(path).ok().filter(same)
    {
        return Some((st, Via::Path));
    }
    let path = map_files_path(&mut buf, target, vma.start, vma.end)?;
    statx(path).ok().filter(same).map(|st| (st, Via::MapFiles))
}

/// `name` as seen by the target: itself, or under `/proc/PID/root`.
fn path_in<'b>(buf: &'b mut [u8], target: Target, name: &[u8]) -> Option<&'b CStr> {
    use std::io::Write;
    let cap = buf.len() - 1;
    let mut w = &mut buf[..cap];
    if let Target::Pid(pid) = target {
        write!(w, "/proc/{pid}/root").ok()?;
    }
    w.write_all(name).ok()?;
    let len = cap - w.len();
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok() // fails if the name holds a NUL
}

fn map_files_path(buf: &mut [u8], target: Target, start: u64, end: u64) -> Option<&CStr> {
    use std::io::Write;
    let cap = buf.len() - 1;
    let mut w = &mut buf[..cap];
    match target {
        Target::Current => write!(w, "/proc/self/map_files/{start:x}-{end:x}"),
        Target::Pid(pid) => write!(w, "/proc/{pid}/map_files/{start:x}-{end:x}"),
    }
    .ok()?;
    let len = cap - w.len();
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok()
}

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
    let shared_file = matches!(piece.kind, Kind::PlainFile(_)) && piece.prot.is_some_and(|p| p.shared);
    !(pins_for_write && shared_file)
}

/// A kernel release as `(major, minor)`.
pub type KernelVersion = (u32, u32);

/// io_uring before Linux 6.5 (`io_pin_pages()` in `io_uring/rsrc.c`) refused
/// every fixed buffer backed by a file that is not shmem or hugetlbfs,
/// device-DAX and private file mappings included:
///
/// ```c
/// /* don't support file backed memory */
/// if (vma->vm_file && !vma_is_shmem(vma) && !is_file_hugepages(vma->vm_file))
///         ret = -EOPNOTSUPP;
/// ```
///
/// 6.5 left file-backed memory to GUP's own rules. daxguard does not enforce
/// this rule (it guards fs-DAX only); it explains it and `check --for
/// io_uring` reports it.
pub fn io_uring_file_allowed(piece: &Piece, kernel: KernelVersion) -> bool {
    if kernel >= (6, 5) {
        return true;
    }
    match &piece.kind {
        Kind::FsDax(f) | Kind::DeviceDax(f) | Kind::PlainFile(f) | Kind::Unverified(f) => is_shmem_or_hugetlb(f),
        Kind::Special { label } => !(label.starts_with('/') || label.starts_with("anon_inode:")),
        Kind::Anonymous { .. } | Kind::Hole => true,
    }
}

/// tmpfs (shmem, memfd, SysV shm) and hugetlbfs files.
pub fn is_shmem_or_hugetlb(f: &FileInfo) -> bool {
    f.evidence == Evidence::SharedMemory
        || f.mount.as_ref().is_some_and(|m| m.fstype == "tmpfs" || m.fstype == "hugetlbfs")
}

/// Whether Linux `kernel` refuses `consumer`'s long-term pin of `piece`
/// with `EOPNOTSUPP`: fs-DAX for every consumer (the rule daxguard
/// enforces), and io_uring's own pre-6.5 refusal of file-backed memory.
pub fn refuses(consumer: Consumer, piece: &Piece, kernel: KernelVersion) -> bool {
    matches!(piece.kind, Kind::FsDax(_)) || (consumer == Consumer::IoUring && !io_uring_file_allowed(piece, kernel))
}
