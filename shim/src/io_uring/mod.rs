//! The io_uring consumer: fixed buffers, pinned long-term by
//! `io_sqe_buffers_register()` / `io_pin_pages()` when they are registered.
//!
//! Three ways in: liburing's registration functions (which issue the system
//! call with their own `syscall` instruction, so only the functions can be
//! interposed), `syscall(SYS_io_uring_register, ...)`, and liburing's own
//! `io_uring_register()`. Each decodes to the iovecs the kernel would pin;
//! [`iovecs`] reads them as the kernel's `copy_from_user` would. The
//! meaning of the bytes ([`register_with`], [`iovecs_in`], [`rsrc_array`])
//! is pure, over a reader the `io_uring_register` fuzz target fakes.
//!
//! # References
//! - `IORING_REGISTER_BUFFERS`, `_BUFFERS2`, `_BUFFERS_UPDATE`, `struct
//!   io_uring_rsrc_register`, `struct io_uring_rsrc_update2` in
//!   `include/uapi/linux/io_uring.h`
//! - [io_uring_register(2)](https://man7.org/linux/man-pages/man2/io_uring_register.2.html)

#[cfg(feature = "interpose")]
pub(crate) mod exports;
#[cfg(feature = "interpose")]
pub(crate) mod guarded;

use crate::abi::{u32_at, u64_at};
use crate::sys::{Errno, read_own_memory};
use crate::types::Buffer;

pub const IORING_REGISTER_BUFFERS: u32 = 0;
pub const IORING_REGISTER_BUFFERS2: u32 = 15;
pub const IORING_REGISTER_BUFFERS_UPDATE: u32 = 16;
/// Set on the opcode when `fd` is a registered ring index (6.3+).
pub const IORING_REGISTER_USE_REGISTERED_RING: u32 = 1 << 31;
/// The kernel's limit on one registration (`IORING_MAX_REG_BUFFERS`).
pub const MAX_REG_BUFFERS: usize = 1 << 14;
/// `struct io_uring_rsrc_register` and `struct io_uring_rsrc_update2`: 32 bytes each.
pub const RSRC_SIZE: usize = 32;
pub const IOVEC_SIZE: usize = 16;

/// Whether an `io_uring_register` opcode registers buffers (a cheap test).
pub fn registers_buffers(opcode: u32) -> bool {
    let op = opcode & !IORING_REGISTER_USE_REGISTERED_RING;
    matches!(op, IORING_REGISTER_BUFFERS | IORING_REGISTER_BUFFERS2 | IORING_REGISTER_BUFFERS_UPDATE)
}

/// The opcode's name, for messages and records.
pub fn opcode_name(opcode: u32) -> &'static str {
    match opcode & !IORING_REGISTER_USE_REGISTERED_RING {
        IORING_REGISTER_BUFFERS => "IORING_REGISTER_BUFFERS",
        IORING_REGISTER_BUFFERS2 => "IORING_REGISTER_BUFFERS2",
        _ => "IORING_REGISTER_BUFFERS_UPDATE",
    }
}

/// The buffers `io_uring_register(fd, opcode, arg, nr_args)` would pin, or
/// `None` when the kernel answers the call itself (not a ring, a malformed
/// argument, too many buffers, an unreadable array, a sparse table with no
/// memory).
pub fn decode_register(fd: i32, opcode: u32, arg: u64, nr_args: u32) -> Option<Vec<Buffer>> {
    // A registered ring's index cannot be checked here; a descriptor can.
    if opcode & IORING_REGISTER_USE_REGISTERED_RING == 0 && !is_ring(fd) {
        return None;
    }
    register_with(opcode, arg, nr_args, &mut read_own_memory)
}

/// The pure part of [`decode_register`]: what the arguments ask to pin,
/// reading user memory only with `read` (`read_own_memory` in the
/// library, a fake address space in the fuzzer), and only what the kernel
/// itself copies: the 32-byte `struct io_uring_rsrc_register` /
/// `_update2` at `arg` when `nr_args` is 32, then `nr` iovecs at its
/// `data`; for `IORING_REGISTER_BUFFERS`, `nr_args` iovecs at `arg`.
pub fn register_with(
    opcode: u32,
    arg: u64,
    nr_args: u32,
    read: &mut impl FnMut(u64, &mut [u8]) -> Result<(), Errno>,
) -> Option<Vec<Buffer>> {
    match opcode & !IORING_REGISTER_USE_REGISTERED_RING {
        IORING_REGISTER_BUFFERS => iovecs_with(arg, nr_args as usize, read),
        op @ (IORING_REGISTER_BUFFERS2 | IORING_REGISTER_BUFFERS_UPDATE) => {
            if nr_args as usize != RSRC_SIZE {
                return None; // the kernel checks the size: EINVAL
            }
            let mut r = [0u8; RSRC_SIZE];
            read(arg, &mut r).ok()?;
            let (data, nr) = rsrc_array(op, &r);
            if data == 0 {
                return None; // IORING_RSRC_REGISTER_SPARSE: an empty table
            }
            iovecs_with(data, nr as usize, read)
        }
        _ => None,
    }
}

/// Where the iovec array of a `struct io_uring_rsrc_register`
/// (`IORING_REGISTER_BUFFERS2`: `nr` at 0, `data` at 16) or `struct
/// io_uring_rsrc_update2` (`IORING_REGISTER_BUFFERS_UPDATE`: `data` at 8,
/// `nr` at 24) is: `(data, nr)`.
pub fn rsrc_array(opcode: u32, r: &[u8; RSRC_SIZE]) -> (u64, u32) {
    if opcode & !IORING_REGISTER_USE_REGISTERED_RING == IORING_REGISTER_BUFFERS2 {
        (u64_at(r, 16), u32_at(r, 0))
    } else {
        (u64_at(r, 8), u32_at(r, 24))
    }
}

/// `count` iovecs at `addr`, without the sparse entries (`NULL`, 0) that
/// pin nothing; `None` if the kernel would refuse the array itself.
pub fn iovecs(addr: u64, count: usize) -> Option<Vec<Buffer>> {
    iovecs_with(addr, count, &mut read_own_memory)
}

/// [`iovecs`], reading with `read`.
pub fn iovecs_with(
    addr: u64,
    count: usize,
    read: &mut impl FnMut(u64, &mut [u8]) -> Result<(), Errno>,
) -> Option<Vec<Buffer>> {
    if count == 0 || count > MAX_REG_BUFFERS {
        return None;
    }
    let mut raw = vec![0u8; count * IOVEC_SIZE];
    read(addr, &mut raw).ok()?;
    iovecs_in(&raw)
}

/// The pinned buffers of an iovec array's bytes (whole 16-byte entries:
/// `iov_base` at 0, `iov_len` at 8): every entry with a length, in order;
/// `None` if none has one.
pub fn iovecs_in(raw: &[u8]) -> Option<Vec<Buffer>> {
    let all = raw.chunks_exact(IOVEC_SIZE).map(|v| Buffer { addr: u64_at(v, 0), len: u64_at(v, 8) });
    let pinned: Vec<Buffer> = all.filter(|b| b.len > 0).collect();
    (!pinned.is_empty()).then_some(pinned)
}

/// Whether `fd` is an io_uring instance (`anon_inode:[io_uring]`).
fn is_ring(fd: i32) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|p| p.as_os_str() == "anon_inode:[io_uring]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovec_arrays_are_read_as_the_kernel_reads_them() {
        let data = [7u8; 64];
        let iov = [
            libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: 64 },
            libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
        ];
        let got = iovecs(iov.as_ptr() as u64, 2).unwrap();
        assert_eq!(got, [Buffer { addr: data.as_ptr() as u64, len: 64 }], "the sparse entry pins nothing");
        assert_eq!(iovecs(8, 1), None, "unreadable: the kernel says EFAULT");
        assert_eq!(iovecs(iov.as_ptr() as u64, MAX_REG_BUFFERS + 1), None);
        let ring = 1 << 31; // a registered ring index: not checked
        assert_eq!(decode_register(0, IORING_REGISTER_BUFFERS2 | ring, iov.as_ptr() as u64, 8), None, "wrong size");
        assert_eq!(decode_register(0, IORING_REGISTER_BUFFERS, iov.as_ptr() as u64, 1), None, "stdin is not a ring");
    }

    #[test]
    fn rsrc_structs() {
        let data = [7u8; 64];
        let iov = [libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: 64 }];
        let mut reg = [0u8; 32];
        reg[0..4].copy_from_slice(&1u32.to_ne_bytes());
        reg[16..24].copy_from_slice(&(iov.as_ptr() as u64).to_ne_bytes());
        let want = Some(vec![Buffer { addr: data.as_ptr() as u64, len: 64 }]);
        let ring = 1 << 31;
        assert_eq!(decode_register(0, IORING_REGISTER_BUFFERS2 | ring, reg.as_ptr() as u64, 32), want);
        let mut upd = [0u8; 32];
        upd[8..16].copy_from_slice(&(iov.as_ptr() as u64).to_ne_bytes());
        upd[24..28].copy_from_slice(&1u32.to_ne_bytes());
        assert_eq!(decode_register(0, IORING_REGISTER_BUFFERS_UPDATE | ring, upd.as_ptr() as u64, 32), want);
        assert!(registers_buffers(IORING_REGISTER_BUFFERS) && !registers_buffers(1));
    }
}
