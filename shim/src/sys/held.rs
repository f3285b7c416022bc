//! A descriptor the library keeps open for the life of the process (the
//! audit log, the journal socket), safe from the program it lives in.
//!
//! A program may close every descriptor it did not open (`closefrom`) and
//! reuse the number for a file of its own; before each use the descriptor
//! is checked (`fstat`) to still be ours, and opened again if not, so
//! records never land in the program's files. After `fork` the child shares
//! the parent's descriptor, which is right for `O_APPEND` writes and
//! datagrams alike. Users take no lock; only a reopen is serialized.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use super::Errno;
use super::lock::EpochLock;
use super::procfd::fstat_id;

#[derive(Debug)]
pub(crate) struct Held {
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
    reopen: EpochLock<()>,
}

impl Held {
    /// Keeps `fd` (already moved high, close-on-exec).
    pub(crate) fn new(fd: RawFd) -> Held {
        let (dev, ino) = fstat_id(fd).unwrap_or((0, 0));
        Held {
            fd: AtomicI32::new(fd),
            dev: AtomicU64::new(dev),
            ino: AtomicU64::new(ino),
            reopen: EpochLock::new((), || ()),
        }
    }

    /// Our descriptor, opened again with `open` if the program took its number.
    pub(crate) fn get(&self, open: impl FnOnce() -> Result<RawFd, Errno>) -> Result<RawFd, Errno> {
        if let Some(fd) = self.ours() {
            return Ok(fd);
        }
        // Never wait long: a lock inherited held across fork must not hang the child.
        let _g = self.reopen.try_lock_briefly().ok_or(Errno::EAGAIN)?;
        if let Some(fd) = self.ours() {
            return Ok(fd); // another thread reopened it meanwhile
        }
        // The old number is left to its new owner.
        let fd = open()?;
        let (dev, ino) = fstat_id(fd).unwrap_or((0, 0));
        self.dev.store(dev, Ordering::Release);
        self.ino.store(ino, Ordering::Release);
        self.fd.store(fd, Ordering::Release);
        Ok(fd)
    }

    /// The number as it is now (tests).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> RawFd {
        self.fd.load(Ordering::Relaxed)
    }

    /// Our descriptor, if it still is the file we opened.
    fn ours(&self) -> Option<RawFd> {
        let fd = self.fd.load(Ordering::Acquire);
        let id = (self.dev.load(Ordering::Acquire), self.ino.load(Ordering::Acquire));
        (fstat_id(fd) == Some(id)).then_some(fd)
    }
}
