//! Descriptors of our own `/proc/self` files kept open across calls.
//!
//! A descriptor opened by the library can go stale in three ways, all seen in
//! real programs: `fork` (the child inherits a file describing the parent),
//! a program closing every descriptor it did not open (`closefrom`), and that
//! number then reused for another file. [`ProcFd::get`] checks the owner pid
//! and the file's identity (`fstat`) before each use and reopens as needed.
//!
//! # Safety
//! Raw `open`/`fstat`/`close` on descriptors this module owns.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::RawFd;

use crate::vma::Target;

/// A `/proc/self/<leaf>` descriptor and who it belongs to.
pub(crate) struct ProcFd {
    leaf: &'static [u8],
    fd: RawFd,
    pid: i32,
    id: (u64, u64),
}

impl ProcFd {
    pub(crate) const fn new(leaf: &'static [u8]) -> Self {
        ProcFd { leaf, fd: -1, pid: 0, id: (0, 0) }
    }

    /// Our descriptor, reopened if it is not ours any more. The bool says
    /// whether it was (re)opened by this call.
    pub(crate) fn get(&mut self) -> Result<(RawFd, bool), i32> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let ours = self.fd >= 0 && fstat_id(self.fd) == Some(self.id);
        if ours && self.pid == pid {
            return Ok((self.fd, false));
        }
        if ours {
            // Inherited across fork: ours to close, but it describes the parent.
            close(self.fd);
        }
        self.fd = -1;
        let fd = open_proc(Target::Current, self.leaf)?;
        self.id = fstat_id(fd).unwrap_or((0, 0));
        (self.fd, self.pid) = (fd, pid);
        Ok((fd, true))
    }
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
pub(crate) fn open_proc(target: Target, leaf: &[u8]) -> Result<RawFd, i32> {
    let mut path = [0u8; 64];
    let c_path = proc_path(&mut path, target, leaf);
    // SAFETY: `c_path` is NUL-terminated.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 { Err(last_errno()) } else { Ok(fd) }
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

pub(crate) fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

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
        let mut p = ProcFd::new(b"maps");
        let (fd, fresh) = p.get().unwrap();
        assert!(fresh);
        assert_eq!(p.get().unwrap(), (fd, false));
        close(fd);
        // Someone else takes the number: we must not use (or close) theirs.
        let theirs = open_proc(Target::Current, b"status").unwrap();
        assert_eq!(theirs, fd);
        let (fd2, fresh) = p.get().unwrap();
        assert!(fresh && fd2 != theirs);
        close(theirs);
        close(fd2);
    }
}
