//! The guard around one io_uring buffer registration (feature `interpose`).

use crate::guard::{Answer, Buffer, Call, guard};
use crate::sys::Errno;
use crate::types::{Consumer, Pin};

/// Judges `buffers` registered through `entry` on ring `ring_fd` and makes
/// the call with `forward` unless refused. `answer` is the API's own
/// convention: liburing returns `-EOPNOTSUPP`, the system call -1 and errno.
pub(crate) fn register<R: Copy>(
    entry: &'static str,
    ring_fd: Option<i32>,
    buffers: &[Buffer],
    forward: impl Fn() -> R,
    answer: Answer<R>,
) -> R {
    let detail = |i: usize| {
        Some(match ring_fd {
            Some(fd) => format!("ring fd {fd}, buffer {i}"),
            None => format!("buffer {i}"),
        })
    };
    let call = Call {
        consumer: Consumer::IoUring,
        entry,
        buffers,
        detail: &detail,
        access: 0,
        // io_pin_pages() pins with FOLL_WRITE | FOLL_LONGTERM.
        pin: Pin { write: true, on_demand: false },
        device_odp: &|| false,
    };
    guard(call, |_| forward(), answer)
}

/// liburing's convention: `-errno` in the return value, errno untouched.
pub(crate) fn liburing_answer() -> Answer<i32> {
    Answer { refused: -libc::EOPNOTSUPP, failed: |r| (r < 0).then(|| Errno::from_raw(-r)), sets_errno: false }
}

/// The system call's convention: -1 and errno.
pub(crate) fn syscall_answer() -> Answer<libc::c_long> {
    Answer { refused: -1, failed: |r| (r < 0).then(Errno::last), sets_errno: true }
}
