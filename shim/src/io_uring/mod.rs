//! The io_uring consumer: fixed buffers, pinned long-term by
//! `io_sqe_buffers_register()` / `io_pin_pages()` when they are registered.
//!
//! Three ways in: liburing's registration functions (which issue the system
//! call with their own `syscall` instruction, so only the functions can be
//! interposed), `syscall(SYS_io_uring_register, ...)`, and liburing's own
//! `io_uring_register()`. Each decodes to the iovecs the kernel would pin;
//! [`iovecs`] reads them as the kernel's `copy_from_user` would.
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
use crate::sys::read_own_memory;
use crate::types::Buffer;

pub const IORING_REGISTER_BUFFERS: u32 = 0;
pub const IORING_REGISTER_BUFFERS2: u32 = 15;
pub const IORING_REGISTER_BUFFERS_UPDATE: u32 = 16;
/// Set on the opcode when `fd` is a registered ring index (6.3+).
const IORING_REGISTER_USE_REGISTERED_RING: u32 = 1 << 31;
/// The kernel's limit on one registration (`IORING_MAX_REG_BUFFERS`).
const MAX_REG_BUFFERS: usize = 1 << 14;
/// `struct io_uring_rsrc_register` and `struct io_uring_rsrc_update2`: 32 bytes each.
const RSRC_SIZE: usize = 32;
const IOVEC_SIZE: usize = 16;

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
    match opcode & !IORING_REGISTER_USE_REGISTERED_RING {
        IORING_REGISTER_BUFFERS => iovecs(arg, nr_args as usize),
        IORING_REGISTER_BUFFERS2 | IORING_REGISTER_BUFFERS_UPDATE => {
            if nr_args as usize != RSRC_SIZE {
                return None; // the kernel checks the size: EINVAL
            }
            let mut r = [0u8; RSRC_SIZE];
            read_own_memory(arg, &mut r).ok()?;
            // rsrc_register: nr at 0, data at 16; rsrc_update2: data at 8, nr at 24.
            let (data, nr) = if opcode & !IORING_REGISTER_USE_REGISTERED_RING == IORING_REGISTER_BUFFERS2 {
                (u64_at(&r, 16), u32_at(&r, 0))
            } else {
                (u64_at(&r, 8), u32_at(&r, 24))
            };
            if data == 0 {
                return None; // IORING_RSRC_REGISTER_SPARSE: an empty table
            }
            iovecs(data, nr as usize)
        }
        _ => None,
    }
}

/// `count` iovecs at `addr`, without the sparse entries (`NULL`, 0) that
/// pin nothing; `None` if the kernel would refuse the array itself.
pub fn iovecs(addr: u64, count: usize) -> Option<Vec<Buffer>> {
    if count == 0 || count > MAX_REG_BUFFERS {
        return None;
    }
    let mut raw = vec![0u8; count * IOVEC_SIZE];
    read_own_memory(addr, &mut raw).ok()?;
    let all = raw.chunks(IOVEC_SIZE).map(|v| Buffer { addr: u64_at(v, 0), len: u64_at(v, 8) });
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
