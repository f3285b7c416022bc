//! `ioctl(PROCMAP_QUERY)` - ask the kernel for the VMA covering an address.
//!
//! One call on an open `/proc/PID/maps` descriptor returns one VMA, in about
//! a quarter of a microsecond whatever the number of VMAs (Linux 6.11+). Older
//! kernels answer `ENOTTY`, and the caller falls back to reading maps text.
//!
//! # Safety
//! This module calls `ioctl` with a pointer to a `#[repr(C)]` struct laid out
//! as the kernel's `struct procmap_query`, and a name buffer whose address and
//! size are passed in it; both outlive the call. The buffer may be
//! uninitialised: only the bytes the kernel reports written are read back.
//!
//! # References
//! - `struct procmap_query` in `include/uapi/linux/fs.h` and `do_procmap_query()`
//!   in `fs/proc/task_mmu.c` (Linux 6.11)
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use crate::sys::Errno;
use crate::types::{Dev, Vma};

/// `struct procmap_query` from `<linux/fs.h>`.
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

const _: () = assert!(std::mem::size_of::<ProcmapQuery>() == 104);

/// `PROCMAP_QUERY = _IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = (3 << 30) | (104 << 16) | ((b'f' as libc::c_ulong) << 8) | 17;

const VMA_READABLE: u64 = 0x01;
const VMA_WRITABLE: u64 = 0x02;
const VMA_EXECUTABLE: u64 = 0x04;
const VMA_SHARED: u64 = 0x08;
const COVERING_OR_NEXT_VMA: u64 = 0x10;

/// The VMA covering `addr`, or the next one above it; `Ok(None)` past the last VMA.
///
/// `name_buf` receives the VMA's name (file path with ` (deleted)` if unlinked,
/// `[heap]`, ...); names longer than the buffer fail with `ENAMETOOLONG`. An
/// empty buffer asks for no name, which spares the kernel a `d_path` and a
/// page-sized allocation: the returned `name` is then empty.
///
/// # Errors
/// The ioctl's errno: `ENOTTY` before Linux 6.11, `EBADF` on a closed descriptor.
pub fn query(fd: RawFd, addr: u64, name_buf: &mut [MaybeUninit<u8>]) -> Result<Option<Vma<'_>>, Errno> {
    let mut q = ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_flags: COVERING_OR_NEXT_VMA,
        query_addr: addr,
        vma_name_size: u32::try_from(name_buf.len()).unwrap_or(u32::MAX),
        // The kernel wants no address with a zero size (EINVAL otherwise).
        vma_name_addr: if name_buf.is_empty() { 0 } else { name_buf.as_mut_ptr() as u64 },
        ..Default::default()
    };
    // SAFETY: `q` is a valid procmap_query; the name buffer is writable for
    // `vma_name_size` bytes and both live across the call.
    let rc = unsafe { libc::ioctl(fd, PROCMAP_QUERY as _, &mut q as *mut ProcmapQuery) };
    if rc < 0 {
        let errno = Errno::last();
        return if errno == Errno::ENOENT { Ok(None) } else { Err(errno) };
    }
    // vma_name_size counts the terminating NUL; 0 means the VMA has no name.
    let name_len = (q.vma_name_size as usize).saturating_sub(1).min(name_buf.len());
    // SAFETY: the kernel wrote `name_len` bytes of name at the buffer's start.
    let name = unsafe { std::slice::from_raw_parts(name_buf.as_ptr().cast::<u8>(), name_len) };
    Ok(Some(Vma {
        start: q.vma_start,
        end: q.vma_end,
        readable: q.vma_flags & VMA_READABLE != 0,
        writable: q.vma_flags & VMA_WRITABLE != 0,
        executable: q.vma_flags & VMA_EXECUTABLE != 0,
        shared: q.vma_flags & VMA_SHARED != 0,
        dev: Dev { major: q.dev_major, minor: q.dev_minor },
        inode: q.inode,
        name,
    }))
}
