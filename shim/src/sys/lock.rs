//! A lock that never waits long: the library runs inside other programs,
//! which may `fork` while one of their threads holds one of our locks.

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
