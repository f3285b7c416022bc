//! The guard around one `VIDIOC_QBUF` / `VIDIOC_PREPARE_BUF` (feature
//! `interpose`), reached from the `ioctl` and `syscall(SYS_ioctl)` exports.

use crate::guard::{Answer, Call, guard};
use crate::intercept::libc::decoded;
use crate::sys::Errno;
use crate::types::{Consumer, Pin};

/// `ioctl(fd, request, arg)` for a request that [`super::pins`], judged
/// when it queues `USERPTR` memory; `forward` makes the real call. Refused:
/// -1 with `errno = EOPNOTSUPP`, as vb2 answers itself.
pub(crate) fn ioctl<R: Copy + From<i8> + PartialOrd>(fd: i32, request: u64, arg: u64, forward: impl Fn() -> R) -> R {
    let Some(q) = decoded(|| super::decode(fd, arg)) else { return forward() };
    let device = || std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|p| p.display().to_string());
    let detail = |i: usize| {
        let dev = device().unwrap_or_else(|_| format!("fd {fd}"));
        Some(if q.multiplanar {
            format!("{dev} buffer {} plane {i}", q.index)
        } else {
            format!("{dev} buffer {}", q.index)
        })
    };
    let answer = Answer { refused: R::from(-1), failed: |r: R| (r < R::from(0)).then(Errno::last), sets_errno: true };
    let call = Call {
        consumer: Consumer::V4l2,
        entry: super::request_name(request),
        buffers: &q.planes,
        detail: &detail,
        access: 0,
        pin: Pin { write: q.capture, on_demand: false },
        device_odp: &|| false,
    };
    guard(call, |_| forward(), answer)
}
