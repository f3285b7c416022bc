//! The library's one error type.

use crate::sys::Errno;

/// Why a range could not be classified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `addr + len` overflows the address space (the kernel answers EINVAL).
    InvalidRange { addr: u64, len: u64 },
    /// A `/proc` file could not be opened: no `/proc` (a chroot), a process
    /// that is gone (`ESRCH`/`ENOENT`) or not ours to read (`EACCES`/`EPERM`).
    ProcOpen { pid: i32, errno: Errno },
    /// A read or ioctl on an open `/proc` file failed.
    Proc { what: &'static str, errno: Errno },
}

impl Error {
    pub(crate) fn proc_open(pid: i32, errno: Errno) -> Self {
        Error::ProcOpen { pid, errno }
    }

    /// The errno behind the error, for C callers.
    pub fn errno(&self) -> Errno {
        match self {
            Error::InvalidRange { .. } => Errno::EINVAL,
            Error::ProcOpen { errno, .. } | Error::Proc { errno, .. } => *errno,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidRange { addr, len } => write!(f, "range {addr:#x} + {len} overflows the address space"),
            Error::ProcOpen { pid: 0, errno } => write!(f, "cannot read /proc/self: {errno}"),
            Error::ProcOpen { pid, errno } => write!(f, "cannot read /proc/{pid}: {errno}"),
            Error::Proc { what, errno } => write!(f, "{what} failed: {errno}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(std::io::Error::from(e.errno()).kind(), e)
    }
}
