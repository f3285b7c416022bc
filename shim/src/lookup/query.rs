//! The `PROCMAP_QUERY` side of the cursor: our kept descriptor of
//! `/proc/self/maps`, and one query.
//!
//! The descriptor is read without a lock (published packed with its fork
//! epoch); the lock is taken only to open or recheck it.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Source;
use crate::error::Error;
use crate::procmap_query;
use crate::sys::Errno;
use crate::sys::lock::EpochLock;
use crate::sys::procfd::{ProcFd, open_proc, unpack_current};
use crate::types::{Target, Vma};

/// The persistent descriptor for `PROCMAP_QUERY` on our own maps (a forked
/// child that finds it held by a thread of its parent starts afresh).
static SELF_MAPS: EpochLock<ProcFd> = EpochLock::new(fresh_maps(), fresh_maps);

const fn fresh_maps() -> ProcFd {
    ProcFd::new(b"maps")
}
/// [`ProcFd::packed`] of `SELF_MAPS`, so that lookups run without the lock.
static SELF_MAPS_KEPT: AtomicU64 = AtomicU64::new(0);

/// The query source for `target`: our kept descriptor for the calling
/// process (no syscall once open), else one opened for this walk alone.
pub(super) fn open(target: Target) -> Result<Source, Error> {
    if target == Target::Current {
        if let Some(fd) = unpack_current(SELF_MAPS_KEPT.load(Ordering::Acquire)) {
            return Ok(Source::Query { fd, kept: true, rechecked: false });
        }
        if let Some((fd, _)) = kept(ProcFd::get)? {
            return Ok(Source::Query { fd, kept: true, rechecked: false });
        }
    }
    // Another process, or our lock stays busy (inherited held across fork).
    let fd = open_proc(target, b"maps").map_err(|errno| Error::proc_open(target.pid(), errno))?;
    Ok(Source::Query { fd, kept: false, rechecked: false })
}

/// After a query on our kept `fd` failed: the descriptor to retry on (and
/// whether it is the kept one), or `None` if `fd` is still ours and the
/// failure was the kernel's genuine answer.
pub(super) fn recheck(fd: RawFd) -> Result<Option<(RawFd, bool)>, Error> {
    match kept(ProcFd::recheck)? {
        Some((again, reopened)) if reopened || again != fd => Ok(Some((again, true))),
        Some(_) => Ok(None),
        None => {
            let fresh = open_proc(Target::Current, b"maps").map_err(|errno| Error::proc_open(0, errno))?;
            Ok(Some((fresh, false)))
        }
    }
}

/// `op` on `SELF_MAPS` under its lock, publishing the result; `None` if the lock stays busy.
fn kept(op: fn(&mut ProcFd) -> Result<(RawFd, bool), Errno>) -> Result<Option<(RawFd, bool)>, Error> {
    let Some(mut maps) = SELF_MAPS.try_lock_briefly() else { return Ok(None) };
    let r = op(&mut maps).map_err(|errno| Error::proc_open(0, errno))?;
    SELF_MAPS_KEPT.store(maps.packed(), Ordering::Release);
    Ok(Some(r))
}

/// The VMA covering `at` or the next one, with its name in `name` if
/// `with_name`, as a nameless [`Vma`] and the name's length.
pub(super) fn at(
    fd: RawFd,
    at: u64,
    name: &mut [MaybeUninit<u8>],
    with_name: bool,
) -> Result<Option<(Vma<'static>, usize)>, Errno> {
    let buf = if with_name { name } else { &mut [] };
    let found = procmap_query::query(fd, at, buf)?;
    Ok(found.map(|v| (Vma { name: &[], ..v }, v.name.len())))
}
