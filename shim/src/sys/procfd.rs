//! Descriptors of our own `/proc/self` files kept open across calls, and a
//! way to tell a forked child from its parent without a syscall.
//!
//! A kept descriptor can go stale in three ways, all seen in real programs:
//! `fork` (the child inherits a file describing the parent), a program
//! closing every descriptor it did not open (`closefrom`), and that number
//! then reused for another file. Checking all three before each use costs two
//! syscalls (`getpid`, `fstat`), as much as the lookup itself, so the checks
//! are split by how cheap their trigger is:
//!
//! - fork: [`fork_epoch`] reads a word the kernel zeroes in every child
//!   (`MADV_WIPEONFORK`, Linux 4.14), so [`ProcFd::get`] notices a fork with
//!   one memory load;
//! - closed or reused: the caller sees the descriptor misbehave (`EBADF`, an
//!   ioctl or poll answer only another kind of file gives) and calls
//!   [`ProcFd::recheck`], which compares identities with `fstat`.
//!
//! The kept descriptor is moved to a high number, so after a close-all loop
//! the program's next files take the low numbers, not ours. What remains
//! undetected is a program that closes ours and, at that very number, opens
//! the same kind of file for another process (`docs/design.md`).
//!
//! # Safety
//! Raw `open`/`fstat`/`fcntl`/`close` on descriptors this module owns, and
//! `madvise` of one page-sized static of its own.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::Errno;
use crate::types::Target;

/// A `/proc/self/<leaf>` descriptor and the process it was opened in.
pub(crate) struct ProcFd {
    leaf: &'static [u8],
    fd: RawFd,
    epoch: u32,
    id: (u64, u64),
}

impl ProcFd {
    pub(crate) const fn new(leaf: &'static [u8]) -> Self {
        ProcFd { leaf, fd: -1, epoch: 0, id: (0, 0) }
    }

    /// Our descriptor, opened on first use and again in a forked child. No
    /// syscall otherwise. The bool says whether it was (re)opened by this call.
    pub(crate) fn get(&mut self) -> Result<(RawFd, bool), Errno> {
        let now = fork_epoch();
        if self.fd >= 0 && self.epoch == now {
            return Ok((self.fd, false));
        }
        if self.fd >= 0 && self.is_ours() {
            // Inherited across fork: ours to close, but it describes the parent.
            close(self.fd);
        }
        self.fd = -1;
        let fd = move_high(open_proc(Target::Current, self.leaf)?);
        self.id = fstat_id(fd).unwrap_or((0, 0));
        (self.fd, self.epoch) = (fd, now);
        Ok((fd, true))
    }

    /// After the descriptor misbehaved: reopens unless it is still ours (then
    /// the failure was the file's genuine answer). The bool says whether it
    /// was reopened.
    pub(crate) fn recheck(&mut self) -> Result<(RawFd, bool), Errno> {
        if self.fd >= 0 && self.epoch == fork_epoch() {
            if self.is_ours() {
                return Ok((self.fd, false));
            }
            self.fd = -1; // closed behind our back, or the number is someone else's now
        }
        self.get()
    }

    /// `epoch << 32 | fd` of the open descriptor (0 if none), for readers
    /// that use it without holding whatever guards this `ProcFd`.
    pub(crate) fn packed(&self) -> u64 {
        if self.fd < 0 { 0 } else { u64::from(self.epoch) << 32 | u64::from(self.fd as u32) }
    }

    fn is_ours(&self) -> bool {
        fstat_id(self.fd) == Some(self.id)
    }
}

/// The descriptor in a [`ProcFd::packed`] value, if it was opened in this process.
pub(crate) fn unpack_current(packed: u64) -> Option<RawFd> {
    (packed != 0 && (packed >> 32) as u32 == fork_epoch()).then_some(packed as u32 as RawFd)
}

/// A number that differs in every forked child from its parent's (and from
/// every ancestor's), read without a syscall where the kernel has
/// `MADV_WIPEONFORK`; the pid where it does not.
pub(crate) fn fork_epoch() -> u32 {
    match WIPE_WORKS.load(Ordering::Acquire) {
        0 => {
            let works = wipe_on_fork();
            WIPE_WORKS.store(if works { 1 } else { 2 }, Ordering::Release);
            fork_epoch()
        }
        1 => {
            let word = &WIPE.0[0];
            match word.load(Ordering::Relaxed) {
                0 => {
                    // Never set, or a child after fork (the kernel wiped it).
                    // NEXT is copied into the child, and every epoch handed
                    // out so far in this line of processes is below it.
                    let new = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
                    match word.compare_exchange(0, new, Ordering::Relaxed, Ordering::Relaxed) {
                        Ok(_) => new,
                        Err(raced) => raced,
                    }
                }
                e => e,
            }
        }
        _ => {
            PID_CHECKS.fetch_add(1, Ordering::Relaxed);
            super::pid() as u32
        }
    }
}

/// How [`fork_epoch`] tells a forked child from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkCheck {
    /// Not decided yet: nothing has asked (no registration, no load-time mark).
    Undecided,
    /// A word the kernel wipes in every child: one memory load.
    WipeOnFork,
    /// The pid, compared on every use: one `getpid` per call.
    Pid,
}

impl ForkCheck {
    /// The name the CLI and the audit log use.
    pub fn name(self) -> &'static str {
        match self {
            ForkCheck::Undecided => "undecided",
            ForkCheck::WipeOnFork => "wipe-on-fork",
            ForkCheck::Pid => "pid",
        }
    }
}

/// Which check this process uses, without deciding it.
pub fn fork_check() -> ForkCheck {
    match WIPE_WORKS.load(Ordering::Acquire) {
        0 => ForkCheck::Undecided,
        1 => ForkCheck::WipeOnFork,
        _ => ForkCheck::Pid,
    }
}

/// How many times [`fork_epoch`] has asked for the pid in this process
/// (0 while the wipe-on-fork page works): what a test at the VMA limit counts.
pub fn pid_checks() -> u64 {
    PID_CHECKS.load(Ordering::Relaxed)
}

static PID_CHECKS: AtomicU64 = AtomicU64::new(0);

/// Marks the page when the library is loaded (feature `interpose`: the
/// preloaded `libdaxguard.so`, or a program linking it to be guarded),
/// before the program has grown. Marking needs the kernel to split the
/// library's `.bss` VMA in up to three, which fails with `ENOMEM` once the
/// process holds `vm.max_map_count` VMAs; a program that reaches its limit
/// before its first registration (a JVM, a database) would otherwise pay a
/// `getpid` on every one. Where the mark fails even here (before Linux 4.14,
/// a page bigger than 4 KiB), the pid is compared: exact also after a raw
/// `clone` that runs no `pthread_atfork` handlers, which is why those are
/// not used instead.
#[cfg(feature = "interpose")]
#[used]
#[unsafe(link_section = ".init_array")]
static MARK_AT_LOAD: extern "C" fn() = mark_at_load;

#[cfg(feature = "interpose")]
extern "C" fn mark_at_load() {
    // No panic may leave a constructor; there is none to catch, but a
    // failure here only means the first use decides.
    let _ = std::panic::catch_unwind(fork_epoch);
}

/// A page of our own zero-initialised data, alone on its page, that the
/// kernel wipes in every forked child. In `.bss`, so no mapping is added (a
/// new one could land in a gap the program means to reuse); the kernel only
/// splits the existing anonymous VMA around it.
#[repr(C, align(4096))]
struct WipePage([AtomicU32; 1024]);
static WIPE: WipePage = WipePage([const { AtomicU32::new(0) }; 1024]);
/// 0: not tried yet, 1: `WIPE` is wiped on fork, 2: it is not (use the pid).
static WIPE_WORKS: AtomicU8 = AtomicU8::new(0);
static NEXT_EPOCH: AtomicU32 = AtomicU32::new(1);

/// How this process tells a forked child from its parent: `wipe-on-fork`
/// (no syscall) or `pid` (a `getpid` per lookup), for doctor and benchmarks.
pub fn fork_detection() -> &'static str {
    let _ = fork_epoch();
    if WIPE_WORKS.load(Ordering::Relaxed) == 1 { "wipe-on-fork" } else { "pid" }
}

fn wipe_on_fork() -> bool {
    let (addr, len) = (std::ptr::from_ref(&WIPE) as usize, std::mem::size_of::<WipePage>());
    let page = super::page_size() as usize;
    // A bigger page would take our neighbours with it; the kernel refuses
    // file-backed pages (EINVAL), as where .bss shares a page with .data.
    // SAFETY: `WIPE` is ours alone, page-aligned and a whole page.
    page == len && addr % page == 0 && unsafe { libc::madvise(addr as *mut _, len, libc::MADV_WIPEONFORK) } == 0
}

/// Moves a descriptor we keep to a number far above those a program usually
/// holds (half the soft `RLIMIT_NOFILE`, at most 512): after a close-all loop
/// or `closefrom`, the program's next files take the lowest free numbers, so
/// ours is not silently replaced by one of them.
pub(crate) fn move_high(fd: RawFd) -> RawFd {
    // SAFETY: plain data filled by getrlimit.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return fd;
    }
    let floor = (lim.rlim_cur / 2).min(512) as RawFd;
    if fd >= floor {
        return fd;
    }
    // SAFETY: duplicating our own descriptor; close-on-exec like the original.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
    if high < 0 {
        return fd;
    }
    close(fd);
    high
}

/// A descriptor's identity, `(st_dev, st_ino)`: tells our file from one that
/// took its number.
pub(crate) fn fstat_id(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: plain data filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer for the call.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Opens `/proc/self/<leaf>` or `/proc/<pid>/<leaf>` read-only, close-on-exec.
pub(crate) fn open_proc(target: Target, leaf: &[u8]) -> Result<RawFd, Errno> {
    let mut path = [0u8; 64];
    let c_path = proc_path(&mut path, target, leaf);
    // SAFETY: `c_path` is NUL-terminated.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 { Err(Errno::last()) } else { Ok(fd) }
}

/// Writes `/proc/{self|pid}/<leaf>\0` into `buf` without allocating.
pub(crate) fn proc_path<'b>(buf: &'b mut [u8; 64], target: Target, leaf: &[u8]) -> &'b CStr {
    use std::io::Write;
    let mut w = &mut buf[..63];
    let _ = match target {
        Target::Current => write!(w, "/proc/self/"),
        Target::Pid(pid) => write!(w, "/proc/{pid}/"),
    };
    let _ = w.write_all(&leaf[..leaf.len().min(40)]);
    let len = 63 - w.len();
    buf[len] = 0;
    CStr::from_bytes_until_nul(&buf[..=len]).unwrap_or(c"/proc/self/maps")
}

pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and gives it up here.
    unsafe { libc::close(fd) };
}

/// Held by unit tests that close a descriptor and put another file at its
/// number: tests run on threads of one process, and one test's `dup2` onto
/// a number it just closed would otherwise clobber a descriptor another test
/// was handed there meanwhile (`move_high` gives every kept descriptor the
/// lowest free number from the same floor).
#[cfg(test)]
pub(crate) static FD_NUMBERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths() {
        let mut b = [0u8; 64];
        assert_eq!(proc_path(&mut b, Target::Current, b"maps"), c"/proc/self/maps");
        assert_eq!(proc_path(&mut b, Target::Pid(42), b"mountinfo"), c"/proc/42/mountinfo");
    }

    #[test]
    fn reopens_after_close_behind_our_back() {
        let _numbers = FD_NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = ProcFd::new(b"maps");
        let (fd, fresh) = p.get().unwrap();
        assert!(fresh);
        assert_eq!(p.get().unwrap(), (fd, false), "no reopen while nothing happened");
        assert_eq!(p.recheck().unwrap(), (fd, false), "still ours: a failure would be genuine");
        close(fd);
        // Someone else takes the number: we must not use (or close) theirs.
        let other = open_proc(Target::Current, b"status").unwrap();
        // SAFETY: dup2 onto the number we just closed.
        assert_eq!(unsafe { libc::dup2(other, fd) }, fd);
        let (fd2, fresh) = p.recheck().unwrap();
        assert!(fresh && fd2 != fd);
        assert!(fstat_id(fd).is_some(), "their descriptor is left open");
        for f in [other, fd, fd2] {
            close(f);
        }
        let (_, fresh) = p.recheck().unwrap();
        assert!(fresh, "closed: reopened");
    }

    #[test]
    fn kept_descriptors_sit_high() {
        let _numbers = FD_NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = ProcFd::new(b"maps");
        let (fd, _) = p.get().unwrap();
        // SAFETY: plain data filled by getrlimit.
        let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: `lim` is a valid out-pointer.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert!(fd as u64 >= (lim.rlim_cur / 2).min(512), "fd {fd}");
        assert_eq!(unpack_current(p.packed()), Some(fd));
        close(fd);
    }

    #[test]
    fn a_forked_child_has_another_epoch() {
        let parent = fork_epoch();
        assert_eq!(fork_epoch(), parent, "stable within a process");
        // SAFETY: the child only reads memory and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let child = fork_epoch();
            // SAFETY: leaving the forked child without running Rust's exit path.
            unsafe { libc::_exit(if child != parent && child != 0 { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0, "the child saw its parent's epoch");
        assert_eq!(fork_epoch(), parent);
    }
}
