//! The two C calls `watch` makes itself: `sigaction` for a clean stop on
//! SIGINT and SIGTERM, and `sysconf(_SC_PAGESIZE)`.
//!
//! # Safety
//! The handler only stores to a static atomic (async-signal-safe); the
//! `sigaction` struct is zeroed, then filled with that handler and an empty
//! mask. `sysconf` takes no pointers.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// `sigaction(SIGINT)`, `sigaction(SIGTERM)` - ask [`stop_requested`] instead
/// of dying, so the ring buffer is drained and the summary printed. No
/// `SA_RESTART`: the ring buffer's `epoll_wait` returns `EINTR` at once.
///
/// # References
/// - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)
pub fn catch_stop_signals() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; we set the handler and an empty mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        // SAFETY: sa is a valid, exclusively borrowed sigaction.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: valid pointers; the old action is not asked for.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// `sysconf(_SC_PAGESIZE)` - the unit of `nr_pages` in a pin call.
///
/// # References
/// - [sysconf(3)](https://man7.org/linux/man-pages/man3/sysconf.3.html)
pub fn page_size() -> u64 {
    // SAFETY: no pointers; -1 only for an unknown name.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    }
}

/// `clock_gettime(CLOCK_BOOTTIME)` in nanoseconds: the clock of
/// `bpf_ktime_get_boot_ns()`, so a record's time can be put on the wall clock.
///
/// # References
/// - [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
pub fn boot_time_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer; CLOCK_BOOTTIME exists since 2.6.39.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}
