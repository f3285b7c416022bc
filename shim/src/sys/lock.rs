//! A lock that never waits long: the library runs inside other programs,
//! which may `fork` while one of their threads holds one of our locks.
//!
//! # Safety
//! [`EpochLock`] hands out its data through one guard at a time, as a mutex does.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A lock that a forked child can take over: the word holds the fork epoch
/// ([`super::procfd::fork_epoch`]) of the process whose thread holds it, so
/// a child finds its parent's holder (who does not exist in the child) and
/// takes the lock, with the data it guards replaced by `fresh()`: the parent
/// may have forked halfway through an update, so the copy is leaked, never
/// read or dropped. It gives up after a while ([`WAITS_MAX`] sleeps) rather
/// than wait for ever, and a waiter sleeps on the word (`FUTEX_WAIT`, woken
/// at release) instead of yielding in a loop: with many registering threads
/// on few CPUs, yielding handed the CPU to other waiters rather than to the
/// holder (`reliability.sh`'s 16 threads on 2 CPUs made 78 `sched_yield`
/// calls per registration when the library's locks were std mutexes tried
/// up to 1000 times). Every lock of the library is one of these.
///
pub(crate) struct EpochLock<T> {
    word: AtomicU32,
    /// Threads sleeping on `word`, with the fork epoch they count in (high
    /// half; a forked child's copy counts waiters that do not exist there):
    /// the release wakes one only if there are any.
    waiters: AtomicU64,
    data: UnsafeCell<T>,
    fresh: fn() -> T,
}

/// How many times [`EpochLock::try_lock_briefly`] sleeps on the word before
/// giving up (the caller then answers without the lock, e.g. from maps
/// text): about 20 ms if the holder keeps it, fewer if other waiters win the
/// releases. Counted, not timed: without a TSC every clock read is a system call.
const WAITS_MAX: u32 = 20;
/// Each sleep on the word is bounded, so a lost wake costs at most this.
const WAIT_SLICE_NS: i64 = 1_000_000;

// SAFETY: the word serialises access to the data, as a mutex does.
unsafe impl<T: Send> Sync for EpochLock<T> {}

pub(crate) struct EpochGuard<'a, T> {
    lock: &'a EpochLock<T>,
}

impl<T> std::fmt::Debug for EpochLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochLock").field("word", &self.word).finish_non_exhaustive()
    }
}

impl<T> EpochLock<T> {
    pub(crate) const fn new(data: T, fresh: fn() -> T) -> Self {
        EpochLock { word: AtomicU32::new(0), waiters: AtomicU64::new(0), data: UnsafeCell::new(data), fresh }
    }

    /// The guard, or `None` if another thread of this process keeps the lock for long.
    pub(crate) fn try_lock_briefly(&self) -> Option<EpochGuard<'_, T>> {
        let me = super::procfd::fork_epoch().max(1);
        let (mut spins, mut waits) = (0, 0);
        loop {
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
                // Held by a thread of ours: a short spin (holds are
                // microseconds), then sleep until the release, at most WAITS_MAX times.
                Err(_) if spins < 64 => {
                    spins += 1;
                    std::hint::spin_loop();
                }
                Err(_) => {
                    if waits == WAITS_MAX {
                        return None;
                    }
                    waits += 1;
                    self.count_waiter(me, true);
                    futex_wait(&self.word, me, WAIT_SLICE_NS);
                    self.count_waiter(me, false);
                }
            }
        }
    }

    /// One more (`up`) or one fewer waiter in epoch `me`; a count left by
    /// another epoch (the parent's) starts over.
    fn count_waiter(&self, me: u32, up: bool) {
        let _ = self.waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
            let n = if (w >> 32) as u32 == me { w as u32 } else { 0 };
            let n = if up { n + 1 } else { n.saturating_sub(1) };
            Some(u64::from(me) << 32 | u64::from(n))
        });
    }

    /// Whether a thread of this process may be sleeping on the word.
    fn has_waiters(&self) -> bool {
        let w = self.waiters.load(Ordering::SeqCst);
        w as u32 > 0 && (w >> 32) as u32 == super::procfd::fork_epoch().max(1)
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
        // SeqCst on both: the store must not pass the load of `waiters`, or a
        // waiter that registered just before could sleep its whole slice.
        self.lock.word.store(0, Ordering::SeqCst);
        if self.lock.has_waiters() {
            futex_wake_one(&self.lock.word);
        }
    }
}

/// Sleeps while `word` holds `value`, at most `ns` (`FUTEX_WAIT`, private to
/// the process). Returns at once if the word changed, on a wake, a signal or
/// the timeout; the caller looks again in every case.
fn futex_wait(word: &AtomicU32, value: u32, ns: i64) {
    let t = libc::timespec { tv_sec: 0, tv_nsec: ns };
    // SAFETY: a futex wait on our own aligned word, with a relative timeout.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, value, &raw const t)
    };
}

/// Wakes one thread sleeping in [`futex_wait`] on `word`.
fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: a futex wake on our own aligned word.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    static COUNTED: EpochLock<u64> = EpochLock::new(0, || 0);

    /// Mutual exclusion under contention: no increment lost. (A give-up is
    /// allowed, on a loaded machine a holder can be off the CPU for longer
    /// than WAITS_MAX sleeps: the thread tries again.)
    #[test]
    fn contending_threads_all_get_the_lock() {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..2000 {
                        let mut g = loop {
                            if let Some(g) = COUNTED.try_lock_briefly() {
                                break g;
                            }
                        };
                        *g += 1;
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*COUNTED.try_lock_briefly().unwrap(), 16_000);
    }

    #[test]
    fn a_sleeping_waiter_gets_the_lock_at_release() {
        static LOCK: EpochLock<u32> = EpochLock::new(0, || 0);
        static HELD: AtomicBool = AtomicBool::new(false);
        let holder = std::thread::spawn(|| {
            let mut g = LOCK.try_lock_briefly().unwrap();
            HELD.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5)); // past the spin: the waiter sleeps
            *g = 1;
        });
        while !HELD.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let g = LOCK.try_lock_briefly().expect("the waiter gave up before a 5 ms hold ended");
        assert_eq!(*g, 1, "the lock was handed over only after the holder's write");
        drop(g);
        holder.join().unwrap();
        assert!(!LOCK.has_waiters());
    }

    #[test]
    fn a_waiter_gives_up_on_a_long_hold() {
        static LOCK: EpochLock<u32> = EpochLock::new(0, || 0);
        let g = LOCK.try_lock_briefly().unwrap();
        let waiter = std::thread::spawn(|| LOCK.try_lock_briefly().is_none());
        assert!(waiter.join().unwrap(), "a waiter must answer without the lock after {WAITS_MAX} sleeps");
        drop(g);
        assert!(LOCK.try_lock_briefly().is_some());
    }
}
