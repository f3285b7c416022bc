//! `errno`: one `Copy` type and one way to read and write it, in the manner
//! of rustix's `io::Errno`.
//!
//! # Safety
//! `__errno_location()` returns this thread's errno slot, valid for the
//! thread's lifetime.
#![allow(unsafe_code)]

/// An error number, as a failed system call leaves it in `errno`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Errno(i32);

impl Errno {
    pub const E2BIG: Errno = Errno(libc::E2BIG);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    pub const EINTR: Errno = Errno(libc::EINTR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EMFILE: Errno = Errno(libc::EMFILE);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const ENXIO: Errno = Errno(libc::ENXIO);
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const EPIPE: Errno = Errno(libc::EPIPE);
    pub const ESRCH: Errno = Errno(libc::ESRCH);

    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw)
    }

    pub const fn raw(self) -> i32 {
        self.0
    }

    /// This thread's `errno` now: what the last failed call left.
    pub fn last() -> Errno {
        // SAFETY: this thread's errno slot.
        Errno(unsafe { *libc::__errno_location() })
    }

    /// Sets this thread's `errno`.
    pub fn set(self) {
        // SAFETY: this thread's errno slot.
        unsafe { *libc::__errno_location() = self.0 };
    }

    /// The C name (`EOPNOTSUPP`, `EFAULT`, ...) of the errnos registrations
    /// meet; `None` for the rest.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::EFAULT => "EFAULT",
            Errno::EINVAL => "EINVAL",
            Errno::ENOMEM => "ENOMEM",
            Errno::EPERM => "EPERM",
            Errno::EACCES => "EACCES",
            Errno::ENOSYS => "ENOSYS",
            Errno::ENODEV => "ENODEV",
            Errno::EAGAIN => "EAGAIN",
            Errno::EBUSY => "EBUSY",
            Errno::ENOENT => "ENOENT",
            Errno::EIO => "EIO",
            Errno::ENXIO => "ENXIO",
            Errno::ESRCH => "ESRCH",
            _ => return None,
        })
    }
}

impl std::fmt::Debug for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::io::Error::from_raw_os_error(self.0).fmt(f)
    }
}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_last() {
        let saved = Errno::last();
        Errno::ENOTTY.set();
        assert_eq!(Errno::last(), Errno::ENOTTY);
        saved.set();
        assert_eq!(format!("{:?} {:?}", Errno::EFAULT, Errno::from_raw(4095)), "EFAULT Errno(4095)");
    }
}
