//! Which VMAs does `[start, end)` span: the two lookup paths.
//!
//! [`walk`] calls a visitor for every VMA that intersects the range, in
//! address order, using `PROCMAP_QUERY` when the kernel has it (one ioctl per
//! VMA spanned) and streaming `/proc/PID/maps` otherwise (stopping at the
//! first VMA past the range). Neither path allocates. `/proc/PID/smaps` is never
//! read: it has no DAX flag and costs tens of milliseconds in a big process.
//!
//! For the calling process, the maps descriptor used by `PROCMAP_QUERY` stays
//! open across calls ([`crate::procfd`] reopens it after `fork` or `closefrom`).
//!
//! # Safety
//! Raw `read` on descriptors this module owns, into stack buffers that
//! outlive each call.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::error::Error;
use crate::procfd::{ProcFd, close, last_errno, open_proc, unpack_current};
use crate::{maps, procmap_query};

/// A device number as the kernel splits it (`MAJOR(dev)`, `MINOR(dev)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dev {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One VMA as either lookup path reports it; `name` is unescaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma<'a> {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub shared: bool,
    pub dev: Dev,
    pub inode: u64,
    pub name: &'a [u8],
}

impl Vma<'_> {
    /// Backed by a file (possibly an internal one, as for shared anonymous memory).
    pub fn is_file_backed(&self) -> bool {
        self.inode != 0 || self.dev != Dev::default()
    }
}

/// Whose address space to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The calling process (`/proc/self`).
    Current,
    /// Another process, with the rights needed to read its maps.
    Pid(i32),
}

/// Which lookup path produced a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `ioctl(PROCMAP_QUERY)` on `/proc/PID/maps` (Linux 6.11+).
    ProcmapQuery,
    /// Streaming the text of `/proc/PID/maps`.
    MapsText,
}

impl Lookup {
    /// A short stable name, used in JSON and the audit record.
    pub fn name(self) -> &'static str {
        match self {
            Lookup::ProcmapQuery => "procmap_query",
            Lookup::MapsText => "maps",
        }
    }
}

/// Which lookup path to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupChoice {
    /// `PROCMAP_QUERY` where the kernel has it, else maps text.
    #[default]
    Auto,
    /// Only `PROCMAP_QUERY`; fails with `ENOTTY` on older kernels.
    ProcmapQuery,
    /// Only maps text.
    MapsText,
}

/// 0 = not probed yet, 1 = PROCMAP_QUERY works, 2 = it does not (old kernel, seccomp).
static QUERY_WORKS: AtomicU8 = AtomicU8::new(0);

/// Whether `PROCMAP_QUERY` is known to work here (probes the kernel once).
pub fn procmap_query_supported() -> bool {
    if QUERY_WORKS.load(Ordering::Relaxed) == 0 {
        let _ = walk(Target::Current, LookupChoice::Auto, 0, 1, Names::All, &mut |_| ControlFlow::Continue(()));
    }
    QUERY_WORKS.load(Ordering::Relaxed) == 1
}

/// The path a call with `choice` would take here.
pub fn preferred_lookup(choice: LookupChoice) -> Lookup {
    match choice {
        LookupChoice::ProcmapQuery => Lookup::ProcmapQuery,
        LookupChoice::MapsText => Lookup::MapsText,
        LookupChoice::Auto if procmap_query_supported() => Lookup::ProcmapQuery,
        LookupChoice::Auto => Lookup::MapsText,
    }
}

/// Longest VMA name: a path (`PATH_MAX`) plus ` (deleted)`.
const NAME_MAX: usize = 4096 + 16;

/// Which VMAs a walk must name. On the `PROCMAP_QUERY` path a name costs the
/// kernel a `d_path` and a page-sized buffer per query; maps text always has them.
pub enum Names<'n> {
    All,
    /// Only those `wants` says yes to (it sees the VMA without its name);
    /// the others arrive with an empty name.
    When(&'n mut dyn FnMut(&Vma<'_>) -> bool),
}

/// Calls `visit` for each VMA intersecting `[start, end)`, lowest first.
///
/// # Errors
/// [`Error::Proc`] when the maps file cannot be opened or read (no `/proc`,
/// a process that is gone or not ours to read).
pub fn walk(
    target: Target,
    choice: LookupChoice,
    start: u64,
    end: u64,
    mut names: Names<'_>,
    visit: &mut dyn FnMut(&Vma<'_>) -> ControlFlow<()>,
) -> Result<Lookup, Error> {
    let mut cursor = start;
    let try_query = match choice {
        LookupChoice::MapsText => false,
        LookupChoice::ProcmapQuery => true,
        LookupChoice::Auto => QUERY_WORKS.load(Ordering::Relaxed) != 2,
    };
    if try_query {
        match walk_query(target, &mut cursor, end, &mut names, visit) {
            Ok(()) => {
                QUERY_WORKS.store(1, Ordering::Relaxed);
                return Ok(Lookup::ProcmapQuery);
            }
            Err(QueryFailed::Open(e)) => return Err(e),
            Err(QueryFailed::Ioctl(errno)) if choice == LookupChoice::ProcmapQuery => {
                return Err(Error::Proc { what: "PROCMAP_QUERY", errno });
            }
            // Closed under us even after a reopen (a thread closing every
            // descriptor in a loop): this call reads text, the next one reopens.
            Err(QueryFailed::Ioctl(libc::EBADF)) => {}
            // ENOTTY (before 6.11), EPERM/ENOSYS (seccomp), EINVAL (odd kernels):
            // remember, and carry on from where the ioctl stopped with maps text.
            Err(QueryFailed::Ioctl(_)) => QUERY_WORKS.store(2, Ordering::Relaxed),
        }
    }
    walk_maps(target, cursor, end, visit)?;
    Ok(Lookup::MapsText)
}

enum QueryFailed {
    Open(Error),
    Ioctl(i32),
}

fn walk_query(
    target: Target,
    cursor: &mut u64,
    end: u64,
    names: &mut Names<'_>,
    visit: &mut dyn FnMut(&Vma<'_>) -> ControlFlow<()>,
) -> Result<(), QueryFailed> {
    let mut name = [MaybeUninit::uninit(); NAME_MAX];
    let mut step = |fd: RawFd| -> Result<(), i32> {
        while *cursor < end {
            let Some(vma) = next_vma(fd, *cursor, end, &mut name, names)? else { break };
            if vma.start >= end {
                break;
            }
            *cursor = vma.end;
            if visit(&vma).is_break() {
                break;
            }
        }
        Ok(())
    };
    match target {
        Target::Current => with_self_maps(&mut step),
        Target::Pid(_) => with_fresh_maps(target, &mut step),
    }
    .map_err(QueryFailed::Open)?
    .map_err(QueryFailed::Ioctl)
}

/// The VMA covering `at` or the next one, named if `names` wants it: first
/// asked without a name, then again with one (the answer may differ if the
/// mappings changed in between; the second one is used whole).
fn next_vma<'b>(
    fd: RawFd,
    at: u64,
    end: u64,
    name: &'b mut [MaybeUninit<u8>],
    names: &mut Names<'_>,
) -> Result<Option<Vma<'b>>, i32> {
    if let Names::When(wants) = names {
        match procmap_query::query(fd, at, &mut [])? {
            Some(v) if v.start < end && wants(&v) => {}
            bare => return Ok(bare),
        }
    }
    procmap_query::query(fd, at, name)
}

fn walk_maps(
    target: Target,
    start: u64,
    end: u64,
    visit: &mut dyn FnMut(&Vma<'_>) -> ControlFlow<()>,
) -> Result<(), Error> {
    with_fresh_maps(target, |fd| {
        stream_lines(fd, &mut |line| {
            if maps::range_of(line).is_some_and(|(_, e)| e <= start) {
                return ControlFlow::Continue(());
            }
            let Some(l) = maps::parse_line(line) else { return ControlFlow::Continue(()) };
            if l.end <= start {
                return ControlFlow::Continue(());
            }
            if l.start >= end {
                return ControlFlow::Break(());
            }
            let mut name = [0u8; NAME_MAX];
            visit(&l.to_vma(&mut name))
        })
    })?
    .map_err(|errno| Error::Proc { what: "read maps", errno })
}

/// Reads `fd` to the end (or until `f` breaks), one line at a time, on a stack buffer.
fn stream_lines(fd: RawFd, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> Result<(), i32> {
    let mut buf = [0u8; 3 * NAME_MAX];
    let mut have = 0;
    let mut skipping = false; // inside a line too long for the buffer
    loop {
        // SAFETY: the destination is the unused tail of `buf`.
        let n = unsafe { libc::read(fd, buf[have..].as_mut_ptr().cast(), buf.len() - have) };
        if n < 0 {
            let errno = last_errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err(errno);
        }
        let eof = n == 0;
        have += n as usize;
        let mut done = 0;
        while let Some(nl) = newline(&buf[done..have]) {
            let line = &buf[done..done + nl];
            done += nl + 1;
            if std::mem::take(&mut skipping) {
                continue;
            }
            if f(line).is_break() {
                return Ok(());
            }
        }
        if eof {
            if done < have && !skipping {
                let _ = f(&buf[done..have]);
            }
            return Ok(());
        }
        buf.copy_within(done..have, 0);
        have -= done;
        if have == buf.len() {
            skipping = true;
            have = 0;
        }
    }
}

/// The first `\n` in `bytes`: libc's `memchr` is vectorised, a byte loop is
/// not, and scanning is most of this side's work per maps line.
fn newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: searching within the slice's own bytes.
    let p = unsafe { libc::memchr(bytes.as_ptr().cast(), i32::from(b'\n'), bytes.len()) };
    (!p.is_null()).then(|| p as usize - bytes.as_ptr() as usize)
}

/// The persistent descriptor for `PROCMAP_QUERY` on our own maps; the lock
/// is taken only to open or recheck it.
static SELF_MAPS: Mutex<ProcFd> = Mutex::new(ProcFd::new(b"maps"));
/// [`ProcFd::packed`] of `SELF_MAPS`, so that lookups run without the lock.
static SELF_MAPS_KEPT: AtomicU64 = AtomicU64::new(0);

/// Runs `f` with a descriptor of our own `/proc/self/maps`: the kept-open one
/// (no syscall to get it), reopened and `f` run again if `f` fails on a
/// descriptor that turns out not to be ours any more; a fresh one when the
/// lock stays busy (a lock inherited held across `fork`).
fn with_self_maps(mut f: impl FnMut(RawFd) -> Result<(), i32>) -> Result<Result<(), i32>, Error> {
    let fd = match unpack_current(SELF_MAPS_KEPT.load(Ordering::Acquire)) {
        Some(fd) => fd,
        None => match kept_maps(ProcFd::get)? {
            Some((fd, _)) => fd,
            None => return with_fresh_maps(Target::Current, f),
        },
    };
    let Err(errno) = f(fd) else { return Ok(Ok(())) };
    match kept_maps(ProcFd::recheck)? {
        Some((again, reopened)) if reopened || again != fd => Ok(f(again)),
        Some(_) => Ok(Err(errno)), // still ours: the kernel's genuine answer
        None => with_fresh_maps(Target::Current, f),
    }
}

/// `op` on `SELF_MAPS` under its lock, publishing the result; `None` if the lock stays busy.
fn kept_maps(op: fn(&mut ProcFd) -> Result<(RawFd, bool), i32>) -> Result<Option<(RawFd, bool)>, Error> {
    let Some(mut maps) = crate::state::try_lock_briefly(&SELF_MAPS) else { return Ok(None) };
    let r = op(&mut maps).map_err(|errno| Error::proc_open(0, errno))?;
    SELF_MAPS_KEPT.store(maps.packed(), Ordering::Release);
    Ok(Some(r))
}

/// Runs `f` on a descriptor of the target's maps opened for this call alone.
fn with_fresh_maps(target: Target, mut f: impl FnMut(RawFd) -> Result<(), i32>) -> Result<Result<(), i32>, Error> {
    let pid = match target {
        Target::Current => 0,
        Target::Pid(p) => p,
    };
    let fd = open_proc(target, b"maps").map_err(|errno| Error::proc_open(pid, errno))?;
    let r = f(fd);
    close(fd);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_lines_handles_partial_reads_and_no_final_newline() {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out-array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let text = b"a\nbb\n\nccc";
        // SAFETY: writing a small buffer to our own pipe.
        assert_eq!(unsafe { libc::write(fds[1], text.as_ptr().cast(), text.len()) }, text.len() as isize);
        close(fds[1]);
        let mut lines = Vec::new();
        stream_lines(fds[0], &mut |l| {
            lines.push(l.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
        close(fds[0]);
        assert_eq!(lines, [&b"a"[..], b"bb", b"", b"ccc"]);
    }
}
