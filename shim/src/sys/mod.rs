//! The system layer: the few libc calls the library makes outside the
//! kernel-interface modules, `errno`, the lock helper, and our own `/proc`
//! descriptors.
//!
//! # Safety
//! Each call below has no preconditions beyond valid arguments, which are
//! constants or locals here.
#![allow(unsafe_code)]

pub mod errno;
pub(crate) mod held;
pub(crate) mod lock;
pub(crate) mod procfd;

pub use procfd::fork_detection;

pub use errno::Errno;

/// The page size, asked once.
pub(crate) fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf with a valid name.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 { n as u64 } else { 4096 }
    })
}

/// The running kernel's `(major, minor)` version from `uname(2)`, asked once;
/// `(0, 0)` if the release string does not start with two numbers.
pub(crate) fn kernel_version() -> (u32, u32) {
    static VERSION: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        // SAFETY: plain data filled by uname.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is a valid out-pointer.
        if unsafe { libc::uname(&mut u) } != 0 {
            return (0, 0);
        }
        let release: Vec<u8> = u.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        parse_release(&release)
    })
}

/// `"6.1.0-56-amd64"` -> `(6, 1)`.
pub(crate) fn parse_release(release: &[u8]) -> (u32, u32) {
    let mut nums = release.split(|&b| b == b'.' || b == b'-').map(|p| std::str::from_utf8(p).ok()?.parse::<u32>().ok());
    match (nums.next().flatten(), nums.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    }
}

pub(crate) fn pid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() }
}

pub(crate) fn tid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

/// `getauxval(AT_SECURE)`: set for setuid/setgid/capability-gaining execs,
/// where the environment is the caller's to forge.
#[cfg(feature = "interpose")]
pub(crate) fn secure_execution() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Copies `out.len()` bytes of our own memory at `addr` into `out`, as the
/// kernel's `copy_from_user` would read them: an address the kernel could
/// not read is an `EFAULT` here too, never a crash.
pub(crate) fn read_own_memory(addr: u64, out: &mut [u8]) -> Result<(), Errno> {
    let local = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: out.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: out.len() };
    // SAFETY: `local` is our buffer, writable for its length; the kernel
    // checks `remote` and fails with EFAULT rather than fault.
    let n = unsafe { libc::process_vm_readv(pid(), &local, 1, &remote, 1, 0) };
    match n {
        n if n as usize == out.len() => Ok(()),
        n if n < 0 => {
            let e = Errno::last();
            if e != Errno::EFAULT {
                OWN_MEMORY_UNREADABLE.store(e.raw(), std::sync::atomic::Ordering::Relaxed);
            }
            Err(e)
        }
        _ => Err(Errno::EFAULT), // a partial read: the rest is unmapped
    }
}

/// The errno with which `process_vm_readv` of our own memory was refused
/// for a reason other than a bad address (seccomp: `EPERM`, `ENOSYS`); 0 if never.
pub(crate) static OWN_MEMORY_UNREADABLE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// `getrlimit(resource)`: (soft, hard), or `None` if it fails.
pub(crate) fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(libc::rlim_t, libc::rlim_t)> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills a local struct.
    (unsafe { libc::getrlimit(resource, &mut rl) } == 0).then_some((rl.rlim_cur, rl.rlim_max))
}

/// The device a descriptor stands for, if it is a character device.
pub(crate) fn char_device_of(fd: i32) -> Option<crate::types::Dev> {
    // SAFETY: plain data filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; a bad fd is EBADF.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    (ok && st.st_mode & libc::S_IFMT == libc::S_IFCHR)
        .then(|| crate::types::Dev { major: libc::major(st.st_rdev), minor: libc::minor(st.st_rdev) })
}

/// `ioctl(fd, request, arg)`: 0 or -1 (errno set).
pub(crate) fn ioctl(fd: i32, request: u32, arg: *mut libc::c_void) -> i32 {
    // SAFETY: the caller gives an `arg` valid for `request`.
    unsafe { libc::ioctl(fd, request as _, arg) }
}

/// One line on stderr with a single write; errors are ignored (stderr may
/// be closed). Neither errno nor the program's signals notice it: see
/// [`write_quietly`].
#[cfg(feature = "interpose")]
pub(crate) fn stderr_line(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    write_quietly(2, buf.as_bytes());
}

/// `write(fd, bytes)`, once, as the program cannot notice it: errno is left
/// as it was, and a write to a pipe whose reader is gone does not raise
/// `SIGPIPE` (whose default action would end the program for a line it
/// never asked for). Returns what `write` returned.
///
/// `SIGPIPE` is blocked in this thread around the write, so the kernel
/// queues it instead of delivering it; if the write failed with `EPIPE`
/// and `SIGPIPE` was not already pending before (the program's own, which
/// must stay), the one the write raised is taken back with a zero-timeout
/// `sigtimedwait`; then the thread's mask is restored exactly. (A `SIGPIPE`
/// another process sends in that window of microseconds would be taken with
/// it: standard signals do not queue twice, so the two cannot be told apart.)
pub(crate) fn write_quietly(fd: i32, bytes: &[u8]) -> isize {
    without_sigpipe(|| {
        // SAFETY: writing our own buffer; a bad descriptor is EBADF.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        (n, n < 0 && Errno::last() == Errno::EPIPE)
    })
}

/// Runs `f` with `SIGPIPE` blocked in this thread and errno saved; `f`
/// returns its result and whether it may have raised `SIGPIPE` (a write
/// that failed with `EPIPE`; for a call whose errno is not ours to see,
/// `true`). A `SIGPIPE` raised by `f` is consumed unless one was already
/// pending; the signal mask and errno are then restored.
pub(crate) fn without_sigpipe<R>(f: impl FnOnce() -> (R, bool)) -> R {
    let saved = Errno::last();
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let (mut pipe, mut old, mut pending): (libc::sigset_t, libc::sigset_t, libc::sigset_t) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: valid sigset pointers, a valid signal number.
    let blocked = unsafe {
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old) == 0
    };
    // SAFETY: a valid out-pointer; the set is read only after sigpending filled it.
    let was_pending = unsafe { libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, libc::SIGPIPE) == 1 };
    let (result, may_have_raised) = f();
    if blocked {
        if may_have_raised && !was_pending {
            let now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: valid set and timeout; no siginfo wanted. EAGAIN if none is pending.
            unsafe { libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now) };
        }
        // SAFETY: the mask this thread had on entry.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    }
    saved.set();
    result
}

/// The file name of the loaded object containing `addr` (`dladdr(3)`).
#[cfg(all(feature = "interpose", target_arch = "x86_64"))]
pub(crate) fn object_name(addr: *mut std::ffi::c_void) -> Option<String> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr fills `info`; dli_fname, when set, is a NUL-terminated name.
    unsafe {
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigset(signals: &[i32]) -> libc::sigset_t {
        // SAFETY: plain data, initialised by sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid set and signal numbers.
        unsafe {
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
        }
        set
    }

    fn mask() -> Vec<i32> {
        // SAFETY: plain data filled by pthread_sigmask.
        let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: querying this thread's mask.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur) };
        // SAFETY: a filled set.
        (1..65).filter(|&s| unsafe { libc::sigismember(&cur, s) } == 1).collect()
    }

    fn sigpipe_pending() -> bool {
        // SAFETY: plain data filled by sigpending.
        let mut p: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out-pointer, then a filled set.
        unsafe { libc::sigpending(&mut p) == 0 && libc::sigismember(&p, libc::SIGPIPE) == 1 }
    }

    /// A pipe whose reader is gone: each write raises SIGPIPE (ignored by
    /// Rust test binaries, but queued while blocked, so it would show).
    #[test]
    fn a_write_to_a_broken_pipe_raises_no_sigpipe_and_keeps_errno_and_mask() {
        let mut fds = [0; 2];
        // SAFETY: a valid out-array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        procfd::close(fds[0]);
        let other = sigset(&[libc::SIGUSR2]);
        // SAFETY: blocking SIGUSR2 in this test thread only.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &other, std::ptr::null_mut()) };
        let before = mask();
        Errno::ENOTTY.set();
        assert_eq!(write_quietly(fds[1], b"line\n"), -1);
        assert_eq!(Errno::last(), Errno::ENOTTY, "errno kept");
        assert_eq!(mask(), before, "mask restored");
        assert!(!sigpipe_pending(), "the SIGPIPE the write raised was taken back");

        // The program's own pending SIGPIPE stays pending.
        let pipe = sigset(&[libc::SIGPIPE]);
        // SAFETY: blocking SIGPIPE here, then raising it at this thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, std::ptr::null_mut());
            libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE);
        }
        assert!(sigpipe_pending());
        let before = mask();
        write_quietly(fds[1], b"line\n");
        assert_eq!(mask(), before);
        assert!(sigpipe_pending(), "the program's SIGPIPE is not ours to take");
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: consuming it, and restoring this thread's mask.
        unsafe {
            assert_eq!(libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero), libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &pipe, std::ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &other, std::ptr::null_mut());
        }
        procfd::close(fds[1]);
    }
}
