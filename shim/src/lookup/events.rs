//! The mmap-events side of the cursor: our own map of the calling process's
//! VMAs, built from one read of `/proc/self/maps` and kept current from the
//! kernel's `PERF_RECORD_MMAP2` records ([`crate::perf_event`]), read from
//! rings in our memory with no system call.
//!
//! Used only where `PROCMAP_QUERY` is missing or refused, only for the
//! calling process, and only for verdicts ([`super::Names::Lazy`]): the map
//! keeps no names. It is set up at the first lookup that would otherwise
//! read maps text, so a program that never registers pays nothing.
//!
//! What the map can be trusted with, and what sends a lookup back to maps
//! text, is argued in `docs/design.md` ("The mmap-events map"). In short:
//! every change that can put a *new* file at an address is reported, except
//! `mremap` (and tasks sharing our memory without being our threads); a
//! record the kernel had to drop, or might have, rebuilds the map; an
//! address the map does not cover is read from maps text (which then
//! refreshes the map); and the map only ever answers "allow": anything else
//! is judged again on maps text (`judge`).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::text;
use super::vmamap::{self, Entry, Full, VmaMap};
use crate::maps;
use crate::perf_event::{self, MAX_RECORD, Parsed, Record, Ring};
use crate::sys::Errno;
use crate::sys::lock::EpochLock;
use crate::sys::procfd::{close, fork_epoch, open_proc};
use crate::types::{Dev, Target, Vma};

/// One ring per CPU; past this many CPUs, maps text.
const MAX_RINGS: usize = 256;
/// Threads already running at set-up that we attach to (one event per CPU
/// each, whose descriptors stay open); threads created later inherit.
const MAX_THREADS: usize = 64;
/// Ring data pages for one ring; with more rings each gets less (never under 2).
const RING_PAGES: usize = 16;
/// Bytes per read of the maps text when building.
const BUILD_READ: usize = 64 << 10;

/// Why this process has no mmap-events map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable {
    /// What refused: `perf_event_open`, `mmap` (of the ring), `kernel` (before 4.15), `threads`, `maps`.
    pub what: &'static str,
    pub errno: Errno,
}

impl Unavailable {
    /// Whether a later lookup may succeed (threads were starting as we attached).
    pub fn transient(&self) -> bool {
        self.what == "threads" && self.errno == Errno::EAGAIN
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.what {
            "kernel" => write!(f, "kernel before 4.15 (no fs-DAX rule of its own to back a stale answer)"),
            "threads" => {
                write!(f, "more than {MAX_THREADS} threads, or threads starting faster than they can be attached")
            }
            "cpus" => write!(f, "more CPUs than the ring area holds rings for (at most {MAX_RINGS})"),
            "descriptors" => write!(
                f,
                "one event per CPU for each thread running at set-up would hold more than a quarter of RLIMIT_NOFILE"
            ),
            "area" => write!(f, "the ring area in the library's image was mapped over (by the program)"),
            what => write!(f, "{what}: {}", self.errno),
        }
    }
}

enum State {
    NotSetUp,
    /// Not set up, and one lookup already sent to maps text instead (see [`at`]).
    Deferred,
    Unavailable(Unavailable),
    Ready(Box<Events>),
}

fn not_set_up() -> State {
    State::NotSetUp
}

static STATE: EpochLock<State> = EpochLock::new(State::NotSetUp, not_set_up);
/// 0: not tried, 1: works, 2: unavailable here (read without the lock).
static WORKS: AtomicU8 = AtomicU8::new(0);
/// Rings found not ours any more in this process: the program mapped over
/// the ring area in our image, which then is never used again ([`SPOILED`]).
static RINGS_LOST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Part of the ring area is not ours (a ring mapped over, or, in a forked
/// child, a hole the kernel filled with something else): no ring is mapped
/// there again, so nothing of the program's is ever replaced. A forked
/// child inherits the flag with the memory.
static SPOILED: AtomicBool = AtomicBool::new(false);

/// How many times this process found a ring mapped over.
#[doc(hidden)]
pub fn rings_lost() -> u64 {
    RINGS_LOST.load(Ordering::Relaxed)
}

/// A lookup asked for the map to be set up after its call ([`set_up_pending`]).
static PENDING: AtomicBool = AtomicBool::new(false);

/// Sets the map up if a lookup asked for it (after the call it judged: see
/// [`at`]); a load and nothing else otherwise. A caller that never calls
/// this gets the map set up at the next lookup instead.
pub fn set_up_pending() {
    if !PENDING.load(Ordering::Relaxed) {
        return;
    }
    let Some(mut st) = STATE.try_lock_briefly() else { return };
    if matches!(*st, State::Deferred) {
        let _ = ready(&mut st);
    }
}

/// Whether the kernel takes `inherit_thread` (5.13+); cleared on `EINVAL`.
static THREAD_ONLY: AtomicBool = AtomicBool::new(true);

struct Events {
    /// The fork epoch the rings were mapped in.
    epoch: u32,
    /// Our pid: records of other processes (children that inherited the
    /// event before Linux 5.13 had `inherit_thread`) are not about us.
    pid: u32,
    rings: Vec<Ring>,
    /// The CPU each ring is for, ascending (the CPUs online at set-up).
    cpus: Vec<i32>,
    /// The events of the other threads that ran at set-up, whose records go
    /// into our rings (`PERF_EVENT_IOC_SET_OUTPUT`); they live as long as
    /// these descriptors.
    kept: Vec<RawFd>,
    /// How far we have read each ring.
    tails: Vec<u64>,
    /// Each ring's canary and `data_head` as last read ([`read_heads`]).
    hdr: Vec<[u64; 2]>,
    /// A ring's page is not ours any more (its canary is gone), or a
    /// reported mapping covers one: the area is spoiled ([`SPOILED`]).
    ring_lost: bool,
    map: VmaMap,
    /// The time of the newest record applied (rings are merged by time).
    last_time: u64,
    /// Bumped by every rebuild and every applied record (see [`Stamp`]).
    changes: u64,
    /// The map may have missed a change (a record lost, or a rebuild that
    /// records overtook): it answers nothing until a rebuild succeeds.
    dirty: bool,
    buf: Vec<std::mem::MaybeUninit<u8>>,
}

impl Events {
    /// Whether the CPU we run on has a ring (`sched_getcpu` is a load from
    /// glibc's `rseq` area, or the vDSO). A CPU brought online after set-up
    /// is caught here once a registering thread runs on it; until then its
    /// other threads' mappings there are missed (docs/design.md, rule 7).
    fn has_ring_here(&self) -> bool {
        // SAFETY: no arguments; -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        cpu < 0 || self.cpus.binary_search(&cpu).is_ok()
    }
}

/// What the cursor gets for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The VMA that covers the address.
    Vma(Entry),
    /// The map has nothing at the address: ask maps text.
    Uncovered,
}

/// The map's state when a maps-text read started, so the read can refresh
/// the map only if nothing was reported in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    changes: u64,
    heads: u64,
}

/// Sets the map up if it is not yet, and says whether this process can use it.
///
/// # Errors
/// Why not ([`Unavailable`]).
pub fn status() -> Result<(), Unavailable> {
    // Another thread may be setting the map up: wait for its answer rather
    // than say "works" (a process where perf is refused would then be told so).
    for _ in 0..1000 {
        if let Some(mut st) = STATE.try_lock_briefly() {
            return ready(&mut st).map(|_| ());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(())
}

/// Whether the map was tried here and cannot be had (perf refused, ...):
/// read without the lock, for callers choosing a path before walking.
pub fn known_unavailable() -> bool {
    WORKS.load(Ordering::Relaxed) == 2
}

/// The VMA covering `addr`, or [`Step::Uncovered`]; `Ok(None)` when the map
/// is busy (another thread holds it for long): read maps text this time.
///
/// # Errors
/// Why the map is unavailable here (perf refused, old kernel, ...).
///
/// With `defer`, the first two lookups of a process are not answered
/// (`Ok(None)`: maps text answers them, one read each, as without the map;
/// a forked child of a process that had the map sets its own up at once);
/// the second asks for the map to be set up after its call ([`set_up_pending`]), and the third uses it. The set-up costs a
/// full maps read with every line parsed plus the perf events (the first
/// perf event in the system patches the kernel's jump labels): a process
/// that registers once never pays it, and its first registration costs one
/// walk of maps text, as it would without the map. After the call, so that
/// the map's memory, which lands wherever the kernel finds a gap, never
/// fills the range of the very call being judged (a range the program just
/// unmapped would then not be the hole the kernel should answer `EFAULT`
/// for; the rings themselves lie in our image).
pub(super) fn at(addr: u64, defer: bool) -> Result<Option<Step>, Unavailable> {
    let Some(mut st) = STATE.try_lock_briefly() else { return Ok(None) };
    if defer && matches!(*st, State::NotSetUp) {
        *st = State::Deferred;
        PENDING.store(false, Ordering::Relaxed); // a forked child starts over
        return Ok(None);
    }
    if defer && matches!(*st, State::Deferred) && !PENDING.swap(true, Ordering::Relaxed) {
        return Ok(None);
    }
    answer(&mut st, addr)
}

/// [`at`] where the map is set up already in this process, `Ok(None)`
/// otherwise: never sets it up, never counts towards the deferral.
pub(super) fn at_if_ready(addr: u64) -> Result<Option<Step>, Unavailable> {
    let Some(mut st) = STATE.try_lock_briefly() else { return Ok(None) };
    if !matches!(&*st, State::Ready(ev) if ev.epoch == fork_epoch()) {
        return Ok(None);
    }
    answer(&mut st, addr)
}

/// The map's answer for `addr`, setting it up first if it is not.
fn answer(st: &mut State, addr: u64) -> Result<Option<Step>, Unavailable> {
    let mut ev = ready(st)?;
    if !ev.has_ring_here() {
        // A CPU brought online since set-up has no event of ours: what
        // threads mapped there was never reported. Set up again, with the
        // CPUs online now and a fresh maps read.
        ev = start_over(st)?;
    }
    if ev.dirty || catch_up(ev).is_err() {
        if ev.ring_lost {
            // The program mapped over the library's image, where a ring was:
            // its records since are gone. Never again in this process.
            RINGS_LOST.fetch_add(1, Ordering::Relaxed);
            SPOILED.store(true, Ordering::Relaxed);
            ev = start_over(st)?;
            if ev.dirty {
                return Ok(None);
            }
        } else if !matches!(rebuild(ev), Ok(true)) {
            // One rebuild per lookup at most: under a flood of mappings the
            // lookup reads maps text rather than rebuild again and again.
            return Ok(None);
        }
    }
    Ok(Some(match ev.map.covering_or_next(addr) {
        Some(e) if e.start <= addr => Step::Vma(e),
        _ => Step::Uncovered,
    }))
}

/// The stamp to hand to [`refresh`] after a maps-text read that starts now.
pub(super) fn stamp() -> Option<Stamp> {
    let mut st = STATE.try_lock_briefly()?;
    let State::Ready(ev) = &mut *st else { return None };
    if ev.epoch != fork_epoch() || ev.dirty {
        return None;
    }
    if catch_up(ev).is_err() {
        ev.dirty = true;
        return None;
    }
    Some(Stamp { changes: ev.changes, heads: heads(ev)? })
}

/// Puts what a maps-text read found in `[from, to)` into the map, if no
/// record arrived since `stamp` (else the read may be older than a record).
pub(super) fn refresh(from: u64, to: u64, found: &[Entry], stamp: Stamp) {
    let Some(mut st) = STATE.try_lock_briefly() else { return };
    let State::Ready(ev) = &mut *st else { return };
    if ev.epoch != fork_epoch() || ev.dirty || ev.changes != stamp.changes || heads(ev) != Some(stamp.heads) {
        return;
    }
    ev.dirty = ev.map.replace(from, to, found).is_err();
    ev.changes += 1;
}

/// Drops the map and its rings: the next lookup sets it up again (benchmarks
/// of the cold first lookup, tests).
#[doc(hidden)]
pub fn reset() {
    let Some(mut st) = STATE.try_lock_briefly() else { return };
    if let State::Ready(ev) = std::mem::replace(&mut *st, State::NotSetUp) {
        teardown(ev);
    }
    WORKS.store(0, Ordering::Relaxed);
}

/// Tears the map down and sets it up afresh (which answers `area` once the
/// area is spoiled).
fn start_over(st: &mut State) -> Result<&mut Events, Unavailable> {
    if let State::Ready(old) = std::mem::replace(st, State::NotSetUp) {
        teardown(old);
    }
    ready(st)
}

/// Closes the kept descriptors and gives the rings' pages back to the ring
/// area; the map's memory is freed.
fn teardown(mut ev: Box<Events>) {
    ev.kept.iter().for_each(|&fd| close(fd));
    vacate(std::mem::take(&mut ev.rings), ev.epoch);
}

/// Gives rings mapped in fork epoch `epoch` back to the ring area as
/// inaccessible memory. In the process that mapped them, each ring whose canary reads
/// back is mapped over (a ring the program mapped over is the program's
/// memory now); in a forked child, where the kernel did not copy them,
/// each hole is filled unless something else took it. Either miss spoils
/// the area ([`SPOILED`]).
fn vacate(rings: Vec<Ring>, epoch: u32) {
    let here = epoch == fork_epoch();
    for r in rings {
        let ours = if here {
            let ours = r.header()[0] == r.canary();
            if ours {
                r.unmap();
            }
            ours
        } else {
            r.refill()
        };
        if !ours {
            SPOILED.store(true, Ordering::Relaxed);
        }
    }
}

/// A random non-zero word for a ring's canary (`getrandom`, else the clock).
fn random_canary() -> u64 {
    let mut v = 0u64;
    // SAFETY: 8 bytes of our own.
    let n = unsafe { libc::getrandom((&raw mut v).cast(), 8, libc::GRND_NONBLOCK) };
    if n != 8 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        v = (ts.tv_sec as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (ts.tv_nsec as u64).rotate_left(29)
            ^ (&raw const v as u64);
    }
    v | 1
}

/// The map, set up on first use and again in a forked child (the rings are
/// not inherited, and the child's changes were never reported).
fn ready(st: &mut State) -> Result<&mut Events, Unavailable> {
    let stale = matches!(st, State::Ready(ev) if ev.epoch != fork_epoch());
    if matches!(st, State::NotSetUp | State::Deferred) || stale {
        let old = match std::mem::replace(st, State::NotSetUp) {
            // In a child: the parent's rings are not mapped here; forget them, keep the memory.
            State::Ready(ev) => Some(ev),
            _ => None,
        };
        match set_up(old) {
            Ok(ev) => *st = State::Ready(ev),
            // Threads starting faster than we attach: try again at a later lookup.
            Err(why) if why.transient() => return Err(why),
            Err(why) => *st = State::Unavailable(why),
        }
        WORKS.store(if matches!(st, State::Ready(_)) { 1 } else { 2 }, Ordering::Relaxed);
        PENDING.store(false, Ordering::Relaxed);
    }
    match st {
        State::Ready(ev) => Ok(ev),
        State::Unavailable(why) => Err(*why),
        State::NotSetUp | State::Deferred => unreachable!("set up above"),
    }
}

/// Opens one event per CPU on the calling thread, maps their rings (one
/// per CPU), and attaches the other threads' events to them; builds the map.
fn set_up(mut old: Option<Box<Events>>) -> Result<Box<Events>, Unavailable> {
    // Before 4.15 the kernel does not refuse fs-DAX pins itself, so a stale
    // allow would go unchecked: this path is for kernels that back it.
    if crate::sys::kernel_version() < (4, 15) {
        return Err(Unavailable { what: "kernel", errno: Errno::ENOSYS });
    }
    let epoch = fork_epoch();
    if let Some(ev) = old.as_mut() {
        // A forked child: the parent's rings left holes in the area here.
        vacate(std::mem::take(&mut ev.rings), ev.epoch);
    }
    if SPOILED.load(Ordering::Relaxed) {
        return Err(Unavailable { what: "area", errno: Errno::EEXIST });
    }
    let cpus = online_cpus();
    let pages = (RING_PAGES / cpus.len().next_power_of_two()).max(2);
    let (area, area_len) = perf_event::ring_area();
    let slot = Ring::map_len(pages);
    if cpus.is_empty() || cpus.len() > MAX_RINGS || cpus.len() * slot > area_len {
        return Err(Unavailable { what: "cpus", errno: Errno::E2BIG });
    }
    let budget = fd_budget();
    if cpus.len() > budget {
        return Err(Unavailable { what: "descriptors", errno: Errno::EMFILE });
    }
    let mut ring_fds = Vec::with_capacity(cpus.len());
    let mut rings = Vec::with_capacity(cpus.len());
    let undo = |ring_fds: &[RawFd], rings: Vec<Ring>| {
        ring_fds.iter().for_each(|&fd| close(fd));
        rings.into_iter().for_each(Ring::unmap);
    };
    for (i, &cpu) in cpus.iter().enumerate() {
        let fd = match open_one(0, cpu) {
            Ok(fd) => fd,
            Err(errno) => {
                undo(&ring_fds, rings);
                return Err(Unavailable { what: "perf_event_open", errno });
            }
        };
        ring_fds.push(fd);
        // SAFETY: slot `i` of the area, plain memory: the area is not
        // spoiled, and every ring mapped before was given back (`vacate`).
        match unsafe { Ring::map(fd, pages, random_canary(), area + i * slot) } {
            Ok(r) => rings.push(r),
            Err(errno) => {
                undo(&ring_fds, rings);
                return Err(Unavailable { what: "mmap", errno });
            }
        }
    }
    let kept = match attach_others(&cpus, &ring_fds, budget) {
        Ok(kept) => kept,
        Err(why) => {
            undo(&ring_fds, rings);
            return Err(why);
        }
    };
    // The mappings keep our own events alive: their descriptors can go.
    ring_fds.iter().for_each(|&fd| close(fd));
    let mut ev = match old {
        Some(mut ev) => {
            // A forked child: the parent's kept descriptors are copies we
            // close; the map's memory is reused.
            ev.kept.iter().for_each(|&fd| close(fd));
            ev.rings = rings;
            ev.cpus = cpus;
            ev.kept = kept;
            ev
        }
        None => Box::new(Events {
            epoch,
            pid: 0,
            rings,
            cpus,
            kept,
            tails: Vec::new(),
            hdr: Vec::new(),
            ring_lost: false,
            map: VmaMap::default(),
            last_time: 0,
            changes: 0,
            dirty: true,
            buf: Vec::new(),
        }),
    };
    ev.epoch = epoch;
    ev.pid = crate::sys::pid() as u32;
    ev.tails = vec![0; ev.rings.len()];
    ev.hdr = vec![[0; 2]; ev.rings.len()];
    ev.ring_lost = false;
    ev.buf.resize(BUILD_READ, std::mem::MaybeUninit::new(0));
    // A rebuild that records overtook leaves the map dirty: the next lookup rebuilds.
    match rebuild(&mut ev) {
        Ok(_) => Ok(ev),
        Err(errno) => {
            ev.kept.iter().for_each(|&fd| close(fd));
            vacate(std::mem::take(&mut ev.rings), ev.epoch);
            Err(Unavailable { what: "maps", errno })
        }
    }
}

/// An event per CPU on each thread other than ours that runs now, its
/// records sent into that CPU's ring; the process's threads are listed
/// again until a pass finds none new (threads they create inherit the event).
/// Gives up past `budget` descriptors in all ([`fd_budget`]).
fn attach_others(cpus: &[i32], ring_fds: &[RawFd], budget: usize) -> Result<Vec<RawFd>, Unavailable> {
    let me = crate::sys::tid();
    let mut kept = Vec::new();
    let mut seen = vec![me];
    let fail = |kept: &[RawFd], why| {
        kept.iter().for_each(|&fd| close(fd));
        Err(why)
    };
    for _pass in 0..16 {
        let new: Vec<i32> = threads().into_iter().filter(|t| !seen.contains(t)).collect();
        if new.is_empty() {
            return Ok(kept);
        }
        for tid in new {
            seen.push(tid);
            if seen.len() > MAX_THREADS {
                return fail(&kept, Unavailable { what: "threads", errno: Errno::E2BIG });
            }
            // Our ring descriptors are still open while the others attach.
            if ring_fds.len() + kept.len() + cpus.len() > budget {
                return fail(&kept, Unavailable { what: "descriptors", errno: Errno::EMFILE });
            }
            for (&cpu, &ring) in cpus.iter().zip(ring_fds) {
                let fd = match open_one(tid, cpu) {
                    Ok(fd) => fd,
                    Err(Errno::ESRCH) => break, // exited meanwhile
                    Err(errno) => return fail(&kept, Unavailable { what: "perf_event_open", errno }),
                };
                kept.push(fd);
                if let Err(errno) = perf_event::set_output(fd, ring) {
                    return fail(&kept, Unavailable { what: "PERF_EVENT_IOC_SET_OUTPUT", errno });
                }
            }
        }
    }
    fail(&kept, Unavailable { what: "threads", errno: Errno::EAGAIN })
}

/// How many descriptors the map may hold at once: a quarter of the soft
/// `RLIMIT_NOFILE`. The other threads' events stay open for the life of the
/// map (one per CPU each: 15 threads on 64 CPUs would be 960), and a program
/// near its limit must not find its own `open` failing because of us; past
/// the budget the map is not set up, and maps text answers.
fn fd_budget() -> usize {
    crate::sys::rlimit(libc::RLIMIT_NOFILE).map_or(0, |(soft, _)| (soft / 4).min(1 << 20) as usize)
}

/// The event for one thread on one CPU; without `inherit_thread` before Linux 5.13.
fn open_one(tid: i32, cpu: i32) -> Result<RawFd, Errno> {
    if THREAD_ONLY.load(Ordering::Relaxed) {
        match perf_event::open_mmap_events(tid, cpu, true) {
            Err(Errno::EINVAL) => THREAD_ONLY.store(false, Ordering::Relaxed),
            r => return r,
        }
    }
    perf_event::open_mmap_events(tid, cpu, false)
}

/// The CPUs online now (`/sys/devices/system/cpu/online`, e.g. `0-3,8`).
fn online_cpus() -> Vec<i32> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let mut ends = part.splitn(2, '-').map(|n| n.parse::<i32>().ok());
        match (ends.next().flatten(), ends.next()) {
            (Some(a), None) => cpus.push(a),
            (Some(a), Some(Some(b))) if a <= b => cpus.extend(a..=b),
            _ => return Vec::new(),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// The process's threads (`/proc/self/task`).
fn threads() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.filter_map(|d| d.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Every ring's canary and head into `ev.hdr` (the head of ring `i` is
/// `ev.hdr[i][1]`); `None` (and `ring_lost` set) if any ring's page is not
/// ours any more.
fn read_heads(ev: &mut Events) -> Option<()> {
    ev.hdr.iter_mut().zip(&ev.rings).for_each(|(h, r)| *h = r.header());
    if ev.rings.iter().zip(&ev.hdr).any(|(r, h)| h[0] != r.canary()) {
        ev.ring_lost = true;
        return None;
    }
    Some(())
}

/// Applies every record published since the last call, in time order
/// across rings. `Err` means the map may have missed a change and must be
/// rebuilt: a record dropped (or possibly dropped: a ring that filled up to
/// less than one record of free space), a record out of time order, one we
/// cannot read, no room left in the map, or (with `ring_lost`) a ring that
/// is not ours any more.
///
/// Nothing here is a system call: the rings lie in our own image.
fn catch_up(ev: &mut Events) -> Result<(), Full> {
    read_heads(ev).ok_or(Full)?;
    let mut pending = false;
    for ((r, &tail), h) in ev.rings.iter().zip(&ev.tails).zip(&ev.hdr) {
        let used = h[1].wrapping_sub(tail);
        if h[1] % 8 != 0 || used > r.size() - MAX_RECORD.min(r.size()) {
            return Err(Full);
        }
        pending |= used != 0;
    }
    if !pending {
        return Ok(());
    }
    let result = drain(ev);
    write_tails(ev);
    result
}

/// Hands what we have read back to the kernel: each ring's `data_tail`.
fn write_tails(ev: &Events) {
    ev.rings.iter().zip(&ev.tails).for_each(|(r, &t)| r.set_tail(t));
}

/// [`catch_up`]'s loop: the oldest pending record of any ring, applied, until none.
fn drain(ev: &mut Events) -> Result<(), Full> {
    loop {
        let mut next: Option<(usize, Parsed)> = None;
        for (i, r) in ev.rings.iter().enumerate() {
            let head = ev.hdr[i][1];
            if ev.tails[i] == head {
                continue;
            }
            let p = perf_event::parse(r, ev.tails[i], head - ev.tails[i]).ok_or(Full)?;
            if next.is_none_or(|(_, n)| p.time < n.time) {
                next = Some((i, p));
            }
        }
        let Some((i, p)) = next else { return Ok(()) };
        ev.tails[i] += p.size;
        match p.record {
            Record::Mmap2(m) if m.pid == ev.pid => {
                if p.time < ev.last_time {
                    return Err(Full); // two rings disagree on the order: start over
                }
                ev.last_time = p.time;
                let e = Entry {
                    start: m.addr,
                    end: m.addr.saturating_add(m.len),
                    ino: m.ino,
                    dev: m.major << 20 | m.minor,
                    flags: flags_of(m.prot, m.flags),
                };
                if ev.rings.iter().any(|r| {
                    let (s, t) = r.range();
                    e.start < t && s < e.end
                }) {
                    // Mapped over (part of) a ring: what it held since is not to be trusted.
                    ev.ring_lost = true;
                    return Err(Full);
                }
                ev.map.replace(e.start, e.end, &[e])?;
                ev.changes += 1;
            }
            Record::Mmap2(_) | Record::Other { .. } => {}
            Record::Lost { .. } | Record::Mmap2BuildId => return Err(Full),
        }
    }
}

fn flags_of(prot: u32, flags: u32) -> u32 {
    let p = |bit: i32, f: u32| if prot & bit as u32 != 0 { f } else { 0 };
    let shared = if flags & libc::MAP_SHARED as u32 != 0 { vmamap::SHARED } else { 0 };
    p(libc::PROT_READ, vmamap::READ) | p(libc::PROT_WRITE, vmamap::WRITE) | p(libc::PROT_EXEC, vmamap::EXEC) | shared
}

/// The sum of the rings' heads: moves whenever a record is published
/// (`None`: a ring is not ours any more).
fn heads(ev: &mut Events) -> Option<u64> {
    read_heads(ev)?;
    Some(ev.hdr.iter().fold(0, |a, h| a.wrapping_add(h[1])))
}

/// Forgets every record published so far, reads the whole maps text into
/// the map, then applies what arrived during the read. `Ok(false)` if that
/// failed (records were lost meanwhile, or a ring with them): the map stays
/// dirty.
fn rebuild(ev: &mut Events) -> Result<bool, Errno> {
    ev.dirty = true;
    if read_heads(ev).is_none() {
        return Ok(false);
    }
    for (t, h) in ev.tails.iter_mut().zip(&ev.hdr) {
        *t = h[1];
    }
    write_tails(ev);
    read_all(ev)?;
    ev.last_time = 0;
    ev.changes += 1;
    ev.dirty = catch_up(ev).is_err();
    Ok(!ev.dirty)
}

/// Every line of `/proc/self/maps` into the map.
fn read_all(ev: &mut Events) -> Result<(), Errno> {
    let fd = open_proc(Target::Current, b"maps")?;
    let mut stream = text::Stream::default();
    ev.map.start_build();
    let r = loop {
        match text::next_line(fd, &mut stream, &mut ev.buf) {
            Ok(Some((a, b))) => {
                let line = text::bytes(&ev.buf, a, b);
                if let Some(l) = maps::parse_line(line) {
                    ev.map.push(entry_of(&l));
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.errno()),
        }
    };
    ev.map.finish_build();
    close(fd);
    r
}

fn entry_of(l: &maps::MapsLine<'_>) -> Entry {
    entry(l.start, l.end, l.inode, l.dev, [l.readable, l.writable, l.executable, l.shared])
}

/// The entry for a VMA a maps-text read found (to refresh the map).
pub(super) fn entry_of_vma(v: &Vma<'_>) -> Entry {
    entry(v.start, v.end, v.inode, v.dev, [v.readable, v.writable, v.executable, v.shared])
}

/// `[read, write, exec, shared]` as the map's flags.
fn entry(start: u64, end: u64, ino: u64, dev: Dev, [r, w, x, s]: [bool; 4]) -> Entry {
    let f = |b: bool, f: u32| if b { f } else { 0 };
    Entry {
        start,
        end,
        ino,
        dev: dev.major << 20 | dev.minor,
        flags: f(r, vmamap::READ) | f(w, vmamap::WRITE) | f(x, vmamap::EXEC) | f(s, vmamap::SHARED),
    }
}

/// A map entry as the cursor's nameless VMA.
pub(super) fn vma_of(e: &Entry) -> Vma<'static> {
    Vma {
        start: e.start,
        end: e.end,
        readable: e.flags & vmamap::READ != 0,
        writable: e.flags & vmamap::WRITE != 0,
        executable: e.flags & vmamap::EXEC != 0,
        shared: e.flags & vmamap::SHARED != 0,
        dev: Dev { major: e.dev >> 20, minor: e.dev & 0xf_ffff },
        inode: e.ino,
        name: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_and_flags_round_trip() {
        let v = Vma {
            start: 0x1000,
            end: 0x3000,
            readable: true,
            writable: false,
            executable: true,
            shared: true,
            dev: Dev { major: 259, minor: 0x1_2345 },
            inode: 77,
            name: &[],
        };
        assert_eq!(vma_of(&entry_of_vma(&v)), v);
        assert_eq!(flags_of(5, libc::MAP_SHARED as u32), vmamap::READ | vmamap::EXEC | vmamap::SHARED);
    }
}
