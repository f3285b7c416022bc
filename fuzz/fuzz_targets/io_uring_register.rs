//! `io_uring::register_with`: the buffers `io_uring_register(fd, opcode,
//! arg, nr_args)` would pin, for `IORING_REGISTER_BUFFERS` (an iovec
//! array), `_BUFFERS2` (`struct io_uring_rsrc_register`) and
//! `_BUFFERS_UPDATE` (`struct io_uring_rsrc_update2`), and every other opcode.
//!
//! The input: a selector byte (opcode: 0, 15, 16, or the next four bytes
//! as a raw opcode; bit 7 sets `IORING_REGISTER_USE_REGISTERED_RING`), then
//! `nr_args` (u32) and `arg` (u64), then the program's memory at `MEM` in a
//! fake address space (reads elsewhere fail with `EFAULT`). Invariants:
//! never panics; reads only what the kernel copies (the 32-byte struct at
//! `arg` when `nr_args` is 32, then `nr` iovecs at its `data`; or
//! `nr_args` iovecs at `arg`; 1 to 16384 iovecs); every buffer returned is
//! an iovec of the array the input described, with a length, in order; and
//! the result matches a model written here from io_uring.h.
#![no_main]

use daxguard::io_uring::{IORING_REGISTER_USE_REGISTERED_RING, IOVEC_SIZE, MAX_REG_BUFFERS, RSRC_SIZE, register_with};
use daxguard::{Buffer, Errno};
use libfuzzer_sys::fuzz_target;

const MEM: u64 = 0x7f00_0000_0000;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

fn inside(mem: &[u8], addr: u64, len: usize) -> Option<usize> {
    let off = addr.checked_sub(MEM)?;
    let end = off.checked_add(len as u64)?;
    (end <= mem.len() as u64).then_some(off as usize)
}

/// The iovecs with a length in `count` entries at `addr`, if readable.
fn model_iovecs(mem: &[u8], addr: u64, count: usize, reads: &mut Vec<(u64, usize)>) -> Option<Vec<Buffer>> {
    if count == 0 || count > MAX_REG_BUFFERS {
        return None;
    }
    reads.push((addr, count * IOVEC_SIZE));
    let off = inside(mem, addr, count * IOVEC_SIZE)?;
    let all = (0..count).map(|i| {
        let v = &mem[off + i * IOVEC_SIZE..];
        Buffer { addr: u64_at(v, 0), len: u64_at(v, 8) }
    });
    let pinned: Vec<Buffer> = all.filter(|b| b.len > 0).collect();
    (!pinned.is_empty()).then_some(pinned)
}

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; 17];
    let n = data.len().min(head.len());
    head[..n].copy_from_slice(&data[..n]);
    let mem = &data[n..];
    let sel = head[0];
    let base = match sel & 0x7f {
        0 => 0,
        1 => 15,
        2 => 16,
        _ => u32_at(&head, 1) & !IORING_REGISTER_USE_REGISTERED_RING,
    };
    let opcode = if sel & 0x80 != 0 { base | IORING_REGISTER_USE_REGISTERED_RING } else { base };
    let nr_args = u32_at(&head, 5);
    let arg = u64_at(&head, 9);

    let mut reads = Vec::new();
    let got = register_with(opcode, arg, nr_args, &mut |addr, out: &mut [u8]| {
        reads.push((addr, out.len()));
        let off = inside(mem, addr, out.len()).ok_or(Errno::from_raw(14))?;
        out.copy_from_slice(&mem[off..off + out.len()]);
        Ok(())
    });

    let mut want_reads = Vec::new();
    let want = match base {
        0 => model_iovecs(mem, arg, nr_args as usize, &mut want_reads),
        15 | 16 if nr_args as usize == RSRC_SIZE => {
            want_reads.push((arg, RSRC_SIZE));
            inside(mem, arg, RSRC_SIZE).and_then(|off| {
                let r = &mem[off..off + RSRC_SIZE];
                // rsrc_register { u32 nr; u32 flags; u64 resv2; u64 data; u64 tags }
                // rsrc_update2 { u32 offset; u32 resv; u64 data; u64 tags; u32 nr; u32 resv2 }
                let (data, nr) = if base == 15 { (u64_at(r, 16), u32_at(r, 0)) } else { (u64_at(r, 8), u32_at(r, 24)) };
                if data == 0 { None } else { model_iovecs(mem, data, nr as usize, &mut want_reads) }
            })
        }
        _ => None,
    };
    assert_eq!(reads, want_reads, "reads outside what io_uring_register(2) copies");
    assert_eq!(got, want, "claimed a buffer the input did not describe");
    if let Some(b) = &got {
        assert!(!b.is_empty() && b.len() <= MAX_REG_BUFFERS && b.iter().all(|b| b.len > 0));
    }
});
