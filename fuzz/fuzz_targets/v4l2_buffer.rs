//! `v4l2::queued`: what a `struct v4l2_buffer` handed to `VIDIOC_QBUF` /
//! `VIDIOC_PREPARE_BUF` asks to pin, single- or multi-planar.
//!
//! The input is the 88-byte struct (zero-padded if shorter), then the
//! program's memory, placed at `MEM` in a fake address space: the plane
//! array is read from there by a reader that fails with `EFAULT` outside
//! it, as `process_vm_readv` does. Invariants: never panics; the decoder
//! reads user memory only where and as far as the kernel's
//! `video_usercopy()` copies it (`length` planes of 64 bytes at `m.planes`,
//! multi-planar types only, `length` 1 to 8); every buffer it returns is one
//! the input described (the struct's `m.userptr`/`length`, or a plane entry
//! within `length`), with a length, in order; and it returns nothing
//! exactly when the kernel has nothing to pin (checked against a model
//! written here from videodev2.h, not by calling the decoder's helpers).
#![no_main]

use daxguard::v4l2::{BUF_SIZE, PLANE_SIZE, VIDEO_MAX_PLANES, queued};
use daxguard::{Buffer, Errno};
use libfuzzer_sys::fuzz_target;

/// Where the input's memory sits in the fake address space.
const MEM: u64 = 0x7f00_0000_0000;
const EFAULT: i32 = 14;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

/// `[addr, addr + len)` inside the memory, as an offset.
fn inside(mem: &[u8], addr: u64, len: usize) -> Option<usize> {
    let off = addr.checked_sub(MEM)?;
    let end = off.checked_add(len as u64)?;
    (end <= mem.len() as u64).then_some(off as usize)
}

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; BUF_SIZE];
    let n = data.len().min(BUF_SIZE);
    buf[..n].copy_from_slice(&data[..n]);
    let mem = &data[n..];

    let mut reads = Vec::new();
    let got = queued(&buf, |addr, out| {
        reads.push((addr, out.len()));
        let off = inside(mem, addr, out.len()).ok_or(Errno::from_raw(EFAULT))?;
        out.copy_from_slice(&mem[off..off + out.len()]);
        Ok(())
    });

    // The model: struct v4l2_buffer { index @0, type @4, memory @60, m @64, length @72 }.
    let (index, kind, memory) = (u32_at(&buf, 0), u32_at(&buf, 4), u32_at(&buf, 60));
    let (m, length) = (u64_at(&buf, 64), u32_at(&buf, 72));
    let userptr = memory == 2;
    let multiplanar = kind == 9 || kind == 10; // VIDEO_CAPTURE_MPLANE, VIDEO_OUTPUT_MPLANE
    let copies_planes = userptr && multiplanar && (1..=VIDEO_MAX_PLANES as u32).contains(&length);
    let want_reads: Vec<(u64, usize)> =
        if copies_planes { vec![(m, length as usize * PLANE_SIZE)] } else { Vec::new() };
    assert_eq!(reads, want_reads, "reads outside what video_usercopy() copies");

    let described: Option<Vec<Buffer>> = if !userptr {
        None
    } else if !multiplanar {
        Some(vec![Buffer { addr: m, len: u64::from(length) }])
    } else if !copies_planes {
        None
    } else {
        inside(mem, m, length as usize * PLANE_SIZE).map(|off| {
            (0..length as usize)
                .map(|i| {
                    let p = &mem[off + i * PLANE_SIZE..off + (i + 1) * PLANE_SIZE];
                    Buffer { addr: u64_at(p, 8), len: u64::from(u32_at(p, 4)) }
                })
                .collect()
        })
    };
    let want = described.map(|all| all.into_iter().filter(|b| b.len > 0).collect::<Vec<_>>()).filter(|p| !p.is_empty());

    match (&got, &want) {
        (None, None) => {}
        (Some(p), Some(planes)) => {
            assert_eq!(&p.queued.planes, planes, "claimed a buffer the input did not describe");
            assert!(p.queued.planes.len() <= VIDEO_MAX_PLANES);
            assert_eq!((p.index, p.kind, p.length, p.queued.index), (index, kind, length, index));
            assert_eq!(p.queued.multiplanar, multiplanar);
            // !V4L2_TYPE_IS_OUTPUT(type): the device writes capture buffers.
            let output = matches!(kind, 2 | 3 | 5 | 7 | 8 | 10 | 12 | 14);
            assert_eq!(p.queued.capture, !output);
        }
        _ => panic!("decoder {got:?}, model {want:?}"),
    }
});
