//! The V4L2 consumer: `USERPTR` buffers, pinned by vb2 (`get_userptr`,
//! `pin_user_pages_fast(FOLL_LONGTERM)`) when they are queued with
//! `VIDIOC_QBUF` or prepared with `VIDIOC_PREPARE_BUF`. This is the third
//! patch of the kernel series daxguard mirrors ("[media] v4l2: disable
//! filesystem-dax mapping support").
//!
//! [`decode`] reads the `struct v4l2_buffer` (and its planes) the way the
//! kernel's `video_usercopy()` does, with `process_vm_readv`, so an address
//! the kernel could not read is answered by the kernel, never a crash here.
//! What the bytes mean is [`queued`], a pure function over them (and a
//! reader for the plane array), which the `v4l2_buffer` fuzz target drives.
//!
//! # References
//! - `struct v4l2_buffer`, `struct v4l2_plane` in `include/uapi/linux/videodev2.h`
//! - [VIDIOC_QBUF](https://docs.kernel.org/userspace-api/media/v4l/vidioc-qbuf.html)

#[cfg(feature = "interpose")]
pub(crate) mod guarded;

use crate::abi::{u32_at, u64_at};
use crate::sys::{Errno, read_own_memory};
use crate::types::Buffer;

/// `_IOWR('V', 15, struct v4l2_buffer)`.
pub const VIDIOC_QBUF: u32 = 0xC058_560F;
/// `_IOWR('V', 9, struct v4l2_buffer)`.
const VIDIOC_QUERYBUF: u32 = 0xC058_5609;
/// `_IOWR('V', 93, struct v4l2_buffer)`.
pub const VIDIOC_PREPARE_BUF: u32 = 0xC058_565D;
const V4L2_MEMORY_USERPTR: u32 = 2;
const V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
const V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;
pub const VIDEO_MAX_PLANES: usize = 8;
/// The character major of every V4L2 device node (`VIDEO_MAJOR`).
const VIDEO_MAJOR: u32 = 81;

/// `struct v4l2_buffer` (x86_64 layout, 88 bytes), the fields daxguard reads.
pub const BUF_SIZE: usize = 88;
const OFF_INDEX: usize = 0;
const OFF_TYPE: usize = 4;
const OFF_MEMORY: usize = 60;
const OFF_M: usize = 64;
const OFF_LENGTH: usize = 72;
/// `struct v4l2_plane` (64 bytes): `length` at 4, `m.userptr` at 8.
pub const PLANE_SIZE: usize = 64;

/// Whether an ioctl request is one that pins `USERPTR` memory: a cheap test
/// for the fast path. The kernel takes the request as `unsigned int`.
pub fn pins(request: u64) -> bool {
    let r = request as u32;
    r == VIDIOC_QBUF || r == VIDIOC_PREPARE_BUF
}

/// The request's name, for messages and records.
pub fn request_name(request: u64) -> &'static str {
    if request as u32 == VIDIOC_QBUF { "VIDIOC_QBUF" } else { "VIDIOC_PREPARE_BUF" }
}

/// A queued `USERPTR` buffer: its index, whether the device writes it, and
/// its planes (one for single-planar types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub index: u32,
    /// A capture type: vb2 pins for writing (`FOLL_WRITE`).
    pub capture: bool,
    /// A multi-planar type: planes are named in messages.
    pub multiplanar: bool,
    pub planes: Vec<Buffer>,
}

/// The `USERPTR` planes a `VIDIOC_QBUF` / `VIDIOC_PREPARE_BUF` on `fd` with
/// `arg` would pin, or `None` when there is nothing for daxguard to judge:
/// not a V4L2 device, not `USERPTR`, or a buffer the kernel itself rejects
/// (unreadable, too many planes): the kernel then gives its own answer.
pub fn decode(fd: i32, arg: u64) -> Option<Queued> {
    if !is_v4l2_device(fd) {
        return None;
    }
    let mut b = [0u8; BUF_SIZE];
    read_own_memory(arg, &mut b).ok()?;
    let q = queued(&b, read_own_memory)?;
    queue_takes_userptr(fd, q.kind, q.index, q.length).then_some(q.queued)
}

/// A [`Queued`] buffer and what [`decode`] asks the queue about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub queued: Queued,
    /// `type` and `length` as the program gave them.
    pub kind: u32,
    pub index: u32,
    pub length: u32,
}

/// The pure part of [`decode`]: what the `struct v4l2_buffer` in `buf`
/// asks to pin, reading a multi-planar buffer's plane array with `read`
/// (`read_own_memory` in the library, a fake address space in the fuzzer)
/// exactly where and as far as the kernel's `video_usercopy()` copies it:
/// `length` planes of 64 bytes at `m.planes`, and only when `length` is 1
/// to `VIDEO_MAX_PLANES`. `None`: not `USERPTR`, an array the kernel
/// refuses or cannot read, or no plane with a length.
pub fn queued(buf: &[u8; BUF_SIZE], read: impl FnOnce(u64, &mut [u8]) -> Result<(), Errno>) -> Option<Parsed> {
    if u32_at(buf, OFF_MEMORY) != V4L2_MEMORY_USERPTR {
        return None;
    }
    let (index, kind) = (u32_at(buf, OFF_INDEX), u32_at(buf, OFF_TYPE));
    let (m, length) = (u64_at(buf, OFF_M), u32_at(buf, OFF_LENGTH));
    let multiplanar = is_multiplanar(kind);
    let planes = if multiplanar {
        let count = length as usize;
        if count == 0 || count > VIDEO_MAX_PLANES {
            return None;
        }
        let mut raw = [0u8; PLANE_SIZE * VIDEO_MAX_PLANES];
        let raw = &mut raw[..PLANE_SIZE * count];
        read(m, raw).ok()?;
        planes(raw)
    } else {
        vec![Buffer { addr: m, len: u64::from(length) }]
    };
    // A zero-length plane pins nothing (vb2 rejects it itself).
    let planes: Vec<Buffer> = planes.into_iter().filter(|p| p.len > 0).collect();
    if planes.is_empty() {
        return None;
    }
    let queued = Queued { index, capture: is_capture(kind), multiplanar, planes };
    Some(Parsed { queued, kind, index, length })
}

/// Every `struct v4l2_plane` in `raw` (whole 64-byte entries), as the
/// buffer it names: `m.userptr` at 8, `length` at 4.
pub fn planes(raw: &[u8]) -> Vec<Buffer> {
    raw.chunks_exact(PLANE_SIZE).map(|p| Buffer { addr: u64_at(p, 8), len: u64::from(u32_at(p, 4)) }).collect()
}

/// `V4L2_TYPE_IS_MULTIPLANAR(type)` from videodev2.h.
fn is_multiplanar(kind: u32) -> bool {
    kind == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE || kind == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE
}

/// Whether the queue has buffer `index` of this type, for `USERPTR` memory:
/// vb2 checks that before it pins, and answers `EINVAL` itself otherwise.
/// Asked with `VIDIOC_QUERYBUF`, which changes nothing.
fn queue_takes_userptr(fd: i32, kind: u32, index: u32, length: u32) -> bool {
    let mut b = [0u8; BUF_SIZE];
    let mut planes = [0u8; PLANE_SIZE * VIDEO_MAX_PLANES];
    b[OFF_INDEX..OFF_INDEX + 4].copy_from_slice(&index.to_ne_bytes());
    b[OFF_TYPE..OFF_TYPE + 4].copy_from_slice(&kind.to_ne_bytes());
    if is_multiplanar(kind) {
        b[OFF_M..OFF_M + 8].copy_from_slice(&(planes.as_mut_ptr() as u64).to_ne_bytes());
        b[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.min(VIDEO_MAX_PLANES as u32).to_ne_bytes());
    }
    crate::sys::ioctl(fd, VIDIOC_QUERYBUF, b.as_mut_ptr().cast()) == 0 && u32_at(&b, OFF_MEMORY) == V4L2_MEMORY_USERPTR
}

/// `!V4L2_TYPE_IS_OUTPUT(type)` from videodev2.h.
fn is_capture(kind: u32) -> bool {
    !matches!(kind, 2 | 3 | 5 | 7 | 8 | 10 | 12 | 14)
}

fn is_v4l2_device(fd: i32) -> bool {
    crate::sys::char_device_of(fd).is_some_and(|rdev| rdev.major == VIDEO_MAJOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert!(pins(u64::from(VIDIOC_QBUF)) && pins(u64::from(VIDIOC_PREPARE_BUF)));
        // Sign-extended by a caller that held the request in an int: the kernel truncates.
        assert!(pins(0xFFFF_FFFF_C058_560F));
        assert!(!pins(libc::FIONREAD));
        assert_eq!(request_name(u64::from(VIDIOC_PREPARE_BUF)), "VIDIOC_PREPARE_BUF");
    }

    #[test]
    fn a_pipe_is_not_a_v4l2_device() {
        use std::os::fd::AsRawFd;
        let (reader, _writer) = std::io::pipe().unwrap();
        assert_eq!(decode(reader.as_raw_fd(), 0), None);
        assert_eq!(decode(-1, 0), None, "a bad fd: the kernel answers EBADF");
    }
}
