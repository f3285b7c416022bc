//! The cache: what the library remembers between calls for the calling
//! process, namely the mount table (re-read only when it changes) and the
//! fs-DAX finding for each file seen.
//!
//! Mount changes are noticed with `poll(POLLPRI)` on an open
//! `/proc/self/mountinfo`, which the kernel flags after every mount or unmount
//! in our namespace; each change bumps a generation that invalidates every
//! cached finding. Findings are keyed by the mapped file's (dev, inode) and the
//! path the VMA shows, in a fixed table: no allocation after the first use.
//!
//! # Safety
//! `poll` on a descriptor owned by [`ProcFd`]; a memfd of our own, closed at once.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::mountinfo::MountTable;
use crate::report::Finding;
use crate::sys::lock::{EpochGuard, EpochLock};
use crate::sys::procfd::ProcFd;
use crate::types::Dev;

const SLOTS: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    dev: Dev,
    ino: u64,
    path_hash: u64,
    generation: u64,
    finding: Finding,
}

pub(crate) struct Cache {
    mountinfo: ProcFd,
    /// `None` until read, and after a change was noticed.
    table: Option<MountTable>,
    /// Set when mountinfo could not be read: answer from an empty table.
    unreadable: bool,
    generation: u64,
    cache: [Option<Slot>; SLOTS],
    /// The device of the kernel's internal shmem mount (shared anonymous
    /// memory, memfd, SysV shm), learnt from a memfd of our own.
    shm_dev: Option<Option<Dev>>,
}

/// An [`EpochLock`]: a thread that finds it busy sleeps until it is free
/// (registering threads of one process all judge files through it, holding
/// it for their whole walk); a forked child takes over a copy its parent's
/// thread held, starting afresh.
static CACHE: EpochLock<Cache> = EpochLock::new(empty(), empty);

const fn empty() -> Cache {
    Cache {
        mountinfo: ProcFd::new(b"mountinfo"),
        table: None,
        unreadable: false,
        generation: 1,
        cache: [None; SLOTS],
        shm_dev: None,
    }
}

static EMPTY: MountTable = MountTable { mounts: Vec::new() };

/// Locks the cache, first noticing any mount change since the last call.
///
/// `None` if the lock stays busy (see [`EpochLock::try_lock_briefly`]):
/// callers answer without it (uncached) rather than wait longer.
pub(crate) fn lock() -> Option<EpochGuard<'static, Cache>> {
    let mut c = CACHE.try_lock_briefly()?;
    c.notice_mount_changes();
    Some(c)
}

/// The shmem device when the cache is unavailable (see [`lock`]).
pub(crate) fn shm_dev_uncached() -> Option<Dev> {
    probe_shm_dev()
}

impl Cache {
    fn notice_mount_changes(&mut self) {
        let changed = match self.mountinfo.get() {
            // A fresh descriptor (first use, after fork): we may have missed
            // changes, so start over.
            Ok((_, true)) => true,
            Ok((fd, false)) => match poll_mountinfo(fd) {
                Some(changed) => changed,
                // Not a mountinfo answer: closed behind our back or the number
                // reused. If reopened, changes may have been missed.
                None => {
                    self.mountinfo.recheck().is_ok_and(|(fd, reopened)| reopened || poll_mountinfo(fd) != Some(false))
                }
            },
            Err(_) => !self.unreadable,
        };
        if changed {
            self.table = None;
            self.unreadable = false;
            self.generation += 1;
        }
    }

    /// The current mount table (read on first use after a change).
    pub(crate) fn mounts(&mut self) -> &MountTable {
        if self.table.is_none() && !self.unreadable {
            match MountTable::read("/proc/self/mountinfo".as_ref()) {
                Ok(t) => self.table = Some(t),
                Err(_) => self.unreadable = true,
            }
        }
        self.table.as_ref().unwrap_or(&EMPTY)
    }

    pub(crate) fn shm_dev(&mut self) -> Option<Dev> {
        *self.shm_dev.get_or_insert_with(|| probe_shm_dev().inspect(|&d| note_internal_dev(d)))
    }

    /// The finding remembered for the file at (dev, ino) since the last mount
    /// change; also for the same path, if the caller knows it.
    pub(crate) fn cached(&self, dev: Dev, ino: u64, path: Option<&[u8]>) -> Option<Finding> {
        let slot = self.cache[slot_of(dev, ino)]?;
        let fresh = slot.dev == dev && slot.ino == ino && slot.generation == self.generation;
        (fresh && path.is_none_or(|p| slot.path_hash == hash(p))).then_some(slot.finding)
    }

    pub(crate) fn remember(&mut self, dev: Dev, ino: u64, path: &[u8], finding: Finding) {
        let slot = Slot { dev, ino, path_hash: hash(path), generation: self.generation, finding };
        self.cache[slot_of(dev, ino)] = Some(slot);
    }
}

/// `poll` on our mountinfo descriptor: whether the mount table changed since
/// the last poll, or `None` if the answer is not one mountinfo gives (it is
/// always readable and never writable; a closed descriptor is `POLLNVAL`).
fn poll_mountinfo(fd: std::os::fd::RawFd) -> Option<bool> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN | libc::POLLPRI, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    let odd = libc::POLLNVAL | libc::POLLOUT | libc::POLLHUP;
    if n != 1 || p.revents & libc::POLLIN == 0 || p.revents & odd != 0 {
        return None;
    }
    Some(p.revents & (libc::POLLPRI | libc::POLLERR) != 0)
}

/// Devices of the kernel's internal mounts seen so far (shared anonymous
/// memory, anonymous hugetlb, anon inodes), as `major << 32 | minor`: no file
/// on them can be DAX, whatever its name, and they are never unmounted.
static INTERNAL_DEVS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn dev_key(dev: Dev) -> u64 {
    u64::from(dev.major) << 32 | u64::from(dev.minor)
}

/// Remembers an internal mount's device (anonymous superblocks only: major 0).
pub(crate) fn note_internal_dev(dev: Dev) {
    let key = dev_key(dev);
    if dev.major != 0 || key == 0 {
        return;
    }
    for slot in &INTERNAL_DEVS {
        match slot.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(k) if k == key => return,
            Err(_) => {}
        }
    }
}

pub(crate) fn is_internal_dev(dev: Dev) -> bool {
    let key = dev_key(dev);
    key != 0 && INTERNAL_DEVS.iter().any(|s| s.load(Ordering::Relaxed) == key)
}

fn slot_of(dev: Dev, ino: u64) -> usize {
    let k = ino ^ (u64::from(dev.major) << 40) ^ (u64::from(dev.minor) << 20);
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % SLOTS
}

/// FNV-1a: the path is only a guard against a reused inode number.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn probe_shm_dev() -> Option<Dev> {
    // SAFETY: memfd_create with a static name; fstat into plain data; close our fd.
    unsafe {
        let fd = libc::memfd_create(c"daxguard-probe".as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut st: libc::stat = std::mem::zeroed();
        let ok = libc::fstat(fd, &mut st) == 0;
        libc::close(fd);
        ok.then(|| Dev { major: libc::major(st.st_dev), minor: libc::minor(st.st_dev) })
    }
}
