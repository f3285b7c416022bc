//! A lock that never waits long: the library runs inside other programs,
//! which may `fork` while one of their threads holds one of our locks.
//!
//! # Safety
//! [`EpochLock`] hands out its data through one guard at a time, as a mutex does.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// Tries a mutex for a little while (yielding), then gives up. After a
/// `fork` taken while another thread held it, the child's copy is locked
/// forever, so callers must be able to answer without it rather than wait.
/// A poisoned lock is taken as it is: its data is plain state that a panic
/// (caught at our `extern "C"` edge) cannot leave half-written in a way that matters.
pub(crate) fn try_lock_briefly<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    for _ in 0..1000 {
        match m.try_lock() {
            Ok(g) => return Some(g),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    None
}

/// A lock that a forked child can take over: the word holds the fork epoch
/// ([`super::procfd::fork_epoch`]) of the process whose thread holds it, so
/// a child finds its parent's holder (who does not exist in the child) and
/// takes the lock, with the data it guards replaced by `fresh()`: the parent
/// may have forked halfway through an update, so the copy is leaked, never
/// read or dropped. Like [`try_lock_briefly`], it gives up after a while
/// rather than wait.
///
pub(crate) struct EpochLock<T> {
    word: AtomicU32,
    data: UnsafeCell<T>,
    fresh: fn() -> T,
}

// SAFETY: the word serialises access to the data, as a mutex does.
unsafe impl<T: Send> Sync for EpochLock<T> {}

pub(crate) struct EpochGuard<'a, T> {
    lock: &'a EpochLock<T>,
}

impl<T> EpochLock<T> {
    pub(crate) const fn new(data: T, fresh: fn() -> T) -> Self {
        EpochLock { word: AtomicU32::new(0), data: UnsafeCell::new(data), fresh }
    }

    /// The guard, or `None` if another thread of this process keeps the lock for long.
    pub(crate) fn try_lock_briefly(&self) -> Option<EpochGuard<'_, T>> {
        let me = super::procfd::fork_epoch().max(1);
        for _ in 0..1000 {
            match self.word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(EpochGuard { lock: self }),
                Err(holder) if holder != me => {
                    // Held by the process we were forked from: take it over.
                    if self.word.compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                        // SAFETY: we hold the lock now; the old value is leaked, not dropped.
                        unsafe { std::ptr::write(self.data.get(), (self.fresh)()) };
                        return Some(EpochGuard { lock: self });
                    }
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        None
    }
}

impl<T> std::ops::Deref for EpochGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the lock's only holder.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> std::ops::DerefMut for EpochGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the lock's only holder.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for EpochGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.word.store(0, Ordering::Release);
    }
}
