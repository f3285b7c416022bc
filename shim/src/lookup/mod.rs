//! Which VMAs does `[start, end)` span: a cursor over the two lookup paths.
//!
//! [`Vmas`] yields every VMA that intersects the range, lowest first, in the
//! shape of rustix's `RawDir`: `while let Some(vma) = vmas.next()? { .. }`,
//! each item borrowing the cursor's buffer. Behind it:
//!
//! - `PROCMAP_QUERY` ([`query`], Linux 6.11+): one ioctl per VMA spanned,
//!   whatever the process size, on a descriptor of our own maps that stays
//!   open across calls ([`crate::sys::procfd`] reopens it after `fork` or
//!   `closefrom`). With [`Names::Lazy`] a VMA comes without its name (the
//!   kernel is spared a `d_path`), and [`Vmas::named`] asks again with it
//!   only when the caller's answer depends on it.
//! - mmap events ([`events`], the calling process's verdicts where the
//!   ioctl is missing or refused): our own map of the process's VMAs, built
//!   from one maps read and kept current from the kernel's
//!   `PERF_RECORD_MMAP2` records with no system call; no names, so a VMA
//!   whose answer needs its name, or an address the map does not cover, is
//!   read from maps text from there on (and that read refreshes the map).
//! - maps text ([`text`]): `/proc/PID/maps` streamed through the caller's
//!   buffer, stopping at the first VMA past the range; used where the other
//!   two cannot answer, from wherever they stopped.
//!
//! No path allocates per call (the mmap-events map allocates when it is built). `/proc/PID/smaps` is never read: it has no DAX
//! flag and costs tens of milliseconds in a big process.
//!
//! # Safety
//! [`Vmas::current`] rebuilds the last name from the caller's buffer, of
//! which exactly `name_len` bytes were written by the kernel or the unescaper.
#![allow(unsafe_code)]

mod events;
mod map_files;
mod query;
mod text;
mod vmamap;

use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::Error;
use crate::sys::Errno;
pub use crate::sys::procfd::{ForkCheck, fork_check, pid_checks};
use crate::sys::procfd::{close, open_proc};
use crate::types::{Lookup, LookupChoice, Target, Vma};

#[doc(hidden)]
pub use crate::perf_event::ring_area as mmap_events_ring_area;
pub use events::Unavailable as MmapEventsUnavailable;
#[doc(hidden)]
pub use events::reset as reset_mmap_events;
#[doc(hidden)]
pub use events::rings_lost as mmap_events_rings_lost;
pub use events::set_up_pending as set_up_mmap_events_pending;

/// Whether the mmap-events map works in this process (sets it up if it is
/// not yet: one `perf_event_open` per thread and one full maps read), and if
/// not, why: what `daxguard doctor` reports where `PROCMAP_QUERY` is missing.
///
/// # Errors
/// What refused it: perf (`perf_event_paranoid`, seccomp), the ring's
/// locked memory, a kernel before 4.15, too many threads.
pub fn mmap_events_status() -> Result<(), MmapEventsUnavailable> {
    events::status()
}

/// Whether the mmap-events map was tried in this process and cannot be
/// had; unlike [`mmap_events_status`], no lock and no set-up.
pub fn mmap_events_known_unavailable() -> bool {
    events::known_unavailable()
}

/// The mmap-events map's entry covering `addr` in the calling process, as
/// a nameless VMA (`None`: not covered, or the map is busy); sets the map up
/// and applies pending records first. For tests that compare the map with
/// a fresh maps read.
///
/// # Errors
/// As [`mmap_events_status`].
#[doc(hidden)]
pub fn mmap_events_at(addr: u64) -> Result<Option<Vma<'static>>, MmapEventsUnavailable> {
    // Busy (another thread builds the map) or dirty (a flood of records):
    // a lookup would read maps text; a test waits for the map's own answer.
    for _ in 0..100 {
        let step = match events::at(addr, false) {
            Err(why) if why.transient() => None,
            r => r?,
        };
        match step {
            Some(events::Step::Vma(e)) => return Ok(Some(events::vma_of(&e))),
            Some(events::Step::Uncovered) => return Ok(None),
            None => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
    Ok(None)
}

/// How many VMAs one walk remembers from maps text to refresh the map with.
const REFRESH_MAX: usize = 32;
/// Longest VMA name: a path (`PATH_MAX`) plus ` (deleted)`.
const NAME_MAX: usize = 4096 + 16;
/// The maps-text stream: room for a few whole lines.
const STREAM_LEN: usize = 3 * NAME_MAX;
/// How big a buffer [`Vmas::new`] wants.
pub const BUF_LEN: usize = NAME_MAX + STREAM_LEN;

/// A buffer for [`Vmas::new`], on the caller's stack, left uninitialised.
pub fn buffer() -> [MaybeUninit<u8>; BUF_LEN] {
    [MaybeUninit::uninit(); BUF_LEN]
}

/// Which VMAs come with their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Every VMA is named.
    All,
    /// On the `PROCMAP_QUERY` path, VMAs come without a name (empty) until
    /// [`Vmas::named`] asks for it; maps text always has them.
    Lazy,
}

/// 0 = not probed yet, 1 = PROCMAP_QUERY works, 2 = it does not (old kernel, seccomp).
static QUERY_WORKS: AtomicU8 = AtomicU8::new(0);

/// Whether `PROCMAP_QUERY` is known to work here (probes the kernel once).
pub fn procmap_query_supported() -> bool {
    if QUERY_WORKS.load(Ordering::Relaxed) == 0 {
        let mut buf = buffer();
        if let Ok(mut vmas) = Vmas::new(&mut buf, Target::Current, LookupChoice::Auto, 0, 1, Names::All) {
            let _ = vmas.next();
        }
    }
    QUERY_WORKS.load(Ordering::Relaxed) == 1
}

/// The path a verdict ([`crate::judge`]) with `choice` would take here
/// (a full report never uses the mmap-events map: it needs names). Probes
/// the kernel, and may set the map up.
pub fn preferred_lookup(choice: LookupChoice) -> Lookup {
    match choice {
        LookupChoice::ProcmapQuery => Lookup::ProcmapQuery,
        LookupChoice::MapsText => Lookup::MapsText,
        LookupChoice::MmapEvents => Lookup::MmapEvents,
        LookupChoice::Auto if procmap_query_supported() => Lookup::ProcmapQuery,
        LookupChoice::Auto if events::status().is_ok() => Lookup::MmapEvents,
        LookupChoice::Auto => Lookup::MapsText,
    }
}

/// Whether one VMA without a file holds all of `[start, end)` in the
/// calling process, as the mmap-events map says where a verdict walk would
/// ask it (set up already, `PROCMAP_QUERY` not working, `auto` or forced):
/// the answer the cursor reaches from the same map entry (anonymous memory:
/// allow), without the cursor. `false`: ask the cursor.
pub(crate) fn map_holds_no_file(start: u64, end: u64, choice: LookupChoice) -> bool {
    let map = match choice {
        LookupChoice::Auto => QUERY_WORKS.load(Ordering::Relaxed) == 2,
        LookupChoice::MmapEvents => true,
        LookupChoice::ProcmapQuery | LookupChoice::MapsText => false,
    };
    map && matches!(events::at_if_ready(start),
        Ok(Some(events::Step::Vma(e))) if e.end >= end && !events::vma_of(&e).is_file_backed())
}

/// Where the cursor's VMAs come from now.
enum Source {
    /// `PROCMAP_QUERY` on `fd`; `kept` is our long-lived descriptor (not
    /// closed here); `rechecked` once a failure made us check it.
    Query { fd: RawFd, kept: bool, rechecked: bool },
    /// The mmap-events map (no descriptor: it lives in memory).
    Events,
    /// The maps text, streamed from `fd`.
    Text { fd: RawFd, stream: text::Stream },
    /// Nothing more.
    Done,
}

/// A cursor over the VMAs that intersect `[start, end)`.
pub struct Vmas<'b> {
    target: Target,
    choice: LookupChoice,
    end: u64,
    /// Where the next VMA is asked for: the end of the last one returned.
    at: u64,
    /// Where the last VMA was asked for: [`Vmas::named`] asks the same question.
    asked: u64,
    names: Names,
    source: Source,
    lookup: Lookup,
    /// The last VMA returned (its name, if any, is in `name`), and whether it was named.
    last: Option<(Vma<'static>, bool)>,
    name: &'b mut [MaybeUninit<u8>],
    name_len: usize,
    stream: &'b mut [MaybeUninit<u8>],
    /// VMAs returned from the mmap-events map that still stand (the last one
    /// is withdrawn when it is asked again, named, from maps text).
    from_map: usize,
    /// After the map sent the walk to maps text: where that read began, the
    /// map's stamp then, and the VMAs it found, to refresh the map with.
    refresh: Option<(u64, events::Stamp)>,
    /// (Allocated only on that slow path: a cursor on the hot paths must not
    /// pay for it, not even a memset.)
    found: Vec<vmamap::Entry>,
    found_len: usize,
}

impl<'b> Vmas<'b> {
    /// A cursor over the target's VMAs in `[start, end)`, using `buf` (see
    /// [`buffer`]) for names and the maps text.
    ///
    /// # Errors
    /// [`Error::ProcOpen`] when the maps file cannot be opened (no `/proc`,
    /// a process that is gone or not ours to read).
    pub fn new(
        buf: &'b mut [MaybeUninit<u8>; BUF_LEN],
        target: Target,
        choice: LookupChoice,
        start: u64,
        end: u64,
        names: Names,
    ) -> Result<Self, Error> {
        let (name, stream) = buf.split_at_mut(NAME_MAX);
        let mut vmas = Vmas {
            target,
            choice,
            end,
            at: start,
            asked: start,
            names,
            source: Source::Done,
            lookup: Lookup::ProcmapQuery,
            last: None,
            name,
            name_len: 0,
            stream,
            from_map: 0,
            refresh: None,
            found: Vec::new(),
            found_len: 0,
        };
        if start >= end {
            vmas.lookup = match choice {
                LookupChoice::Auto if QUERY_WORKS.load(Ordering::Relaxed) == 2 => Lookup::MapsText,
                LookupChoice::Auto => Lookup::ProcmapQuery,
                c => preferred_lookup(c),
            };
        } else if vmas.query_first() {
            vmas.source = query::open(target)?;
        } else {
            vmas.switch_to_fallback()?;
        }
        Ok(vmas)
    }

    /// The next VMA, or `None` past the range.
    ///
    /// # Errors
    /// [`Error::Proc`] when reading the maps fails, or when `PROCMAP_QUERY`
    /// was asked for alone and the kernel refuses it; [`Error::ProcOpen`]
    /// when a descriptor must be reopened and cannot be.
    // Not `Iterator::next`: the item borrows the cursor (a lending iterator,
    // as rustix's `RawDir::next`).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Vma<'_>>, Error> {
        if self.at >= self.end {
            self.settle(self.end);
            self.finish(); // the last VMA reached the end: nothing to ask
            return Ok(None);
        }
        self.asked = self.at;
        let with_name = self.names == Names::All;
        self.step(with_name)
    }

    /// The last VMA again, named: asked once more with its name on the
    /// `PROCMAP_QUERY` path (the answer may differ if the mappings changed
    /// in between; the new one is used whole), as it was otherwise.
    ///
    /// # Errors
    /// As [`Vmas::next`].
    pub fn named(&mut self) -> Result<Option<Vma<'_>>, Error> {
        match self.last {
            Some((_, true)) => Ok(self.current()),
            Some((_, false)) => self.step(true),
            None => Ok(None),
        }
    }

    /// The last VMA returned, as it was returned; no system call.
    pub fn current(&self) -> Option<Vma<'_>> {
        let (vma, named) = self.last?;
        let name = if named {
            // SAFETY: `name_len` bytes of `name` were written by the kernel or the unescaper.
            unsafe { std::slice::from_raw_parts(self.name.as_ptr().cast::<u8>(), self.name_len) }
        } else {
            &[]
        };
        Some(Vma { name, ..vma })
    }

    /// Which path answered (maps text if the walk fell back to it at any point).
    pub fn lookup(&self) -> Lookup {
        self.lookup
    }

    /// Whether any VMA this walk returned came from the mmap-events map (and
    /// was not asked again from maps text): a verdict other than "allow"
    /// resting on it must be confirmed against maps text.
    pub fn answered_from_map(&self) -> bool {
        self.from_map > 0
    }

    /// Asks the source for the VMA at `asked` (covering it, or the next one).
    fn step(&mut self, with_name: bool) -> Result<Option<Vma<'_>>, Error> {
        let found = loop {
            let r = match &mut self.source {
                Source::Done => break None,
                Source::Query { fd, .. } => query::at(*fd, self.asked, &mut self.name[..], with_name),
                Source::Events => {
                    if with_name {
                        // The map has no names: this VMA and the rest come from maps text.
                        self.from_map -= usize::from(matches!(self.last, Some((_, false))));
                        self.events_to_text(true)?;
                        continue;
                    }
                    // Deferred only under `auto`: a forced map answers from the first lookup.
                    match events::at(self.asked, self.choice == LookupChoice::Auto) {
                        Ok(Some(events::Step::Vma(e))) => {
                            self.from_map += 1;
                            break Some((events::vma_of(&e), 0));
                        }
                        // Not covered: maybe mapped by a call the kernel reports nothing
                        // for (mremap), maybe a hole; maps text says which.
                        Ok(Some(events::Step::Uncovered)) => self.events_to_text(true)?,
                        Ok(None) => self.events_to_text(false)?, // busy
                        Err(why) if self.choice == LookupChoice::MmapEvents => {
                            return Err(Error::Proc { what: why.what, errno: why.errno });
                        }
                        Err(_) => self.events_to_text(false)?,
                    }
                    continue;
                }
                Source::Text { fd, stream } => {
                    let found = text::at(*fd, stream, &mut *self.stream, &mut *self.name, self.asked)?;
                    if let Some((v, _)) = found.filter(|(v, _)| self.refresh.is_some() && v.start < self.end) {
                        if self.found_len < REFRESH_MAX {
                            self.found.push(events::entry_of_vma(&v));
                        }
                        self.found_len += 1;
                    }
                    break found;
                }
            };
            match r {
                Ok(found) => {
                    QUERY_WORKS.store(1, Ordering::Relaxed);
                    break found;
                }
                Err(errno) => self.query_failed(errno)?,
            }
        };
        let Some((vma, name_len)) = found.filter(|(v, _)| v.start < self.end) else {
            self.settle(self.end);
            self.finish();
            return Ok(None);
        };
        self.at = vma.end;
        self.name_len = name_len;
        self.last = Some((vma, with_name || matches!(self.source, Source::Text { .. })));
        Ok(self.current())
    }

    /// Whether to start with `PROCMAP_QUERY`.
    fn query_first(&self) -> bool {
        match self.choice {
            LookupChoice::MapsText | LookupChoice::MmapEvents => false,
            LookupChoice::ProcmapQuery => true,
            LookupChoice::Auto => QUERY_WORKS.load(Ordering::Relaxed) != 2,
        }
    }

    /// Where `PROCMAP_QUERY` cannot answer: the mmap-events map for the
    /// calling process's verdicts, if it works here; else maps text.
    fn switch_to_fallback(&mut self) -> Result<(), Error> {
        let map = self.target == Target::Current
            && self.names == Names::Lazy
            && match self.choice {
                // By default where PROCMAP_QUERY is missing or refused: its
                // property test passes on 6.1, the kernels it is for
                // (docs/design.md); where the map cannot be set up (perf
                // refused, too many threads) maps text answers.
                LookupChoice::MmapEvents | LookupChoice::Auto => true,
                LookupChoice::ProcmapQuery | LookupChoice::MapsText => false,
            };
        if !map {
            return self.switch_to_text();
        }
        self.finish();
        self.source = Source::Events;
        self.lookup = Lookup::MmapEvents;
        Ok(())
    }

    /// From the map to maps text at `asked`; with `refresh`, what the read
    /// finds goes back into the map. Without (the map is not set up yet,
    /// busy, or cannot be had), under `auto`, `/proc/self/map_files` is
    /// asked first: where no VMA with a file meets the rest of the range
    /// the walk ends there, the verdict maps text would give (anonymous
    /// memory and holes are the kernel's to judge), for a fraction of the
    /// read ([`map_files`]).
    fn events_to_text(&mut self, refresh: bool) -> Result<(), Error> {
        if !refresh
            && self.choice == LookupChoice::Auto
            && map_files::any_file_in(self.asked, self.end, self.stream) == Some(false)
        {
            self.finish();
            self.lookup = Lookup::MapFiles;
            return Ok(());
        }
        let stamp = if refresh { events::stamp() } else { None };
        self.switch_to_text()?;
        self.refresh = stamp.map(|s| (self.asked, s));
        self.found.clear();
        self.found_len = 0;
        Ok(())
    }

    /// The maps-text read sent here by the map has covered up to `to`: put
    /// what it found back into the map (unless it found more than we keep).
    fn settle(&mut self, to: u64) {
        if let Some((from, stamp)) = self.refresh.take()
            && self.found_len <= REFRESH_MAX
            && from < to
        {
            events::refresh(from, to, &self.found[..self.found_len], stamp);
        }
    }

    /// After the ioctl failed: retry on a reopened descriptor, carry on with
    /// maps text, or fail.
    fn query_failed(&mut self, errno: Errno) -> Result<(), Error> {
        let Source::Query { fd, kept, rechecked } = self.source else { return Ok(()) };
        // Our kept descriptor may have been closed or its number reused: check once.
        if kept && !rechecked {
            if let Some((again, kept)) = query::recheck(fd)? {
                self.source = Source::Query { fd: again, kept, rechecked: true };
                return Ok(());
            }
            self.source = Source::Query { fd, kept, rechecked: true };
        }
        if self.choice == LookupChoice::ProcmapQuery {
            return Err(Error::Proc { what: "PROCMAP_QUERY", errno });
        }
        // ENOTTY (before 6.11), EPERM/ENOSYS (seccomp), EINVAL (odd kernels):
        // remember. EBADF (closed under us even after a reopen, by a thread
        // closing every descriptor in a loop): only this walk reads text.
        if errno != Errno::EBADF {
            QUERY_WORKS.store(2, Ordering::Relaxed);
        }
        self.switch_to_fallback()
    }

    /// Switches to maps text, from where the ioctl stopped.
    fn switch_to_text(&mut self) -> Result<(), Error> {
        let fd = open_proc(self.target, b"maps").map_err(|errno| Error::proc_open(self.target.pid(), errno))?;
        self.finish();
        self.source = Source::Text { fd, stream: text::Stream::default() };
        self.lookup = Lookup::MapsText;
        Ok(())
    }

    /// Closes what this cursor opened.
    fn finish(&mut self) {
        match std::mem::replace(&mut self.source, Source::Done) {
            Source::Query { fd, kept: false, .. } | Source::Text { fd, .. } => close(fd),
            Source::Query { .. } | Source::Events | Source::Done => {}
        }
    }
}

impl Drop for Vmas<'_> {
    fn drop(&mut self) {
        // A walk that stopped early has covered up to the last VMA it returned.
        self.settle(self.at);
        self.finish();
    }
}
