//! Fields of the C structs the kernel copies from userspace (`struct
//! v4l2_buffer`, `struct iovec`, `struct io_uring_rsrc_register`, ...), read
//! out of bytes as the kernel reads them: native byte order, at the offsets
//! of the x86_64 layout each decoder names.

/// The `u32` at byte `at`.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The `u64` at byte `at`.
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}
