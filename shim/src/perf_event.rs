//! `perf_event_open` - the kernel's `PERF_RECORD_MMAP2` records of our own
//! mappings, read from a ring buffer without a system call.
//!
//! A software dummy event counts nothing; with `mmap`, `mmap2` and
//! `mmap_data` set, the kernel writes one record into the event's ring for
//! every VMA that `mmap`, `brk`, `mprotect`, `shmat`, stack growth or a
//! special mapping creates or changes in the task it is attached to (and, with
//! `inherit`, in every thread that task creates afterwards): the VMA's range,
//! protection, sharing, device and inode as they are after the change. What
//! emits nothing (`munmap`, `mremap`, `madvise`, `mlock`) is listed in
//! `docs/design.md` with what the map does about it.
//!
//! This module is the kernel interface only: the attribute, the ring (its
//! head and tail words, read and written with the ordering the kernel's
//! `perf_event_mmap_page` documentation asks for) and a parser of records
//! that works on any [`Words`], so tests feed it canned bytes.
//!
//! # References
//! - [perf_event_open(2)](https://man7.org/linux/man-pages/man2/perf_event_open.2.html)
//! - `perf_event_mmap_event()` and `perf_event_mmap_output()` in the kernel's
//!   `kernel/events/core.c`; `perf_output_begin()` in `kernel/events/ring_buffer.c`
//!
//! # Safety
//! `perf_event_open` with an attribute of our own; `mmap` of the ring over
//! a reservation in our own `.bss` and back; loads and stores of its head
//! and tail words as atomics, and reads of the data area below the head the
//! kernel published.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::Errno;

/// `PERF_TYPE_SOFTWARE`.
const TYPE_SOFTWARE: u32 = 1;
/// `PERF_COUNT_SW_DUMMY` (Linux 3.12).
const COUNT_SW_DUMMY: u64 = 9;
/// `PERF_SAMPLE_TIME`: with `sample_id_all`, every record ends with its time.
const SAMPLE_TIME: u64 = 1 << 2;
/// `PERF_FLAG_FD_CLOEXEC`.
const FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// Bits of `perf_event_attr`'s flag word (`include/uapi/linux/perf_event.h`).
mod bit {
    pub const INHERIT: u64 = 1 << 1;
    pub const EXCLUDE_KERNEL: u64 = 1 << 5;
    pub const EXCLUDE_HV: u64 = 1 << 6;
    pub const MMAP: u64 = 1 << 8;
    pub const MMAP_DATA: u64 = 1 << 17;
    pub const SAMPLE_ID_ALL: u64 = 1 << 18;
    pub const MMAP2: u64 = 1 << 23;
    pub const USE_CLOCKID: u64 = 1 << 25;
    /// Linux 5.13: only `CLONE_THREAD` children inherit the event.
    pub const INHERIT_THREAD: u64 = 1 << 35;
}

/// `PERF_RECORD_LOST`: the kernel dropped records (the ring was full).
pub const RECORD_LOST: u32 = 2;
/// `PERF_RECORD_MMAP2`.
pub const RECORD_MMAP2: u32 = 10;
/// `PERF_RECORD_MISC_MMAP_BUILD_ID`: a build id stands where dev and inode would.
const MISC_MMAP_BUILD_ID: u16 = 1 << 14;

/// The longest record we can be sent: an `MMAP2` with a `PATH_MAX` name
/// (the kernel truncates there) and the time. A ring with less free space
/// than this may have had to drop one.
pub const MAX_RECORD: u64 = 72 + 4096 + 8;

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER5` (Linux 4.8+
/// accepts it whole; older kernels accept it with the tail zero).
#[repr(C)]
#[derive(Default)]
struct Attr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved_2: u16,
}

const _: () = assert!(std::mem::size_of::<Attr>() == 112);

/// `perf_event_open(2)` of a dummy event on thread `tid` (0: the caller)
/// while it runs on `cpu`, that reports every mapping change into its ring,
/// times on `CLOCK_MONOTONIC` (comparable across rings), inherited by the
/// threads `tid` creates later; with `thread_only`, not by the processes it
/// forks. Per CPU because the kernel refuses to map the ring of an inherited
/// event that follows its task on every CPU (`perf_mmap`: `cpu == -1 &&
/// inherit` is `EINVAL`).
///
/// # Errors
/// `EACCES`/`EPERM` when `perf_event_paranoid` (3 on Debian, 4 on Ubuntu for
/// unprivileged users) or seccomp refuse it, `ENOSYS` without perf,
/// `EINVAL` before Linux 5.13 with `thread_only`, `ESRCH` if the thread is gone.
#[doc(alias = "perf_event_open")]
pub fn open_mmap_events(tid: i32, cpu: i32, thread_only: bool) -> Result<RawFd, Errno> {
    let mut flags = bit::INHERIT
        | bit::EXCLUDE_KERNEL
        | bit::EXCLUDE_HV
        | bit::MMAP
        | bit::MMAP_DATA
        | bit::SAMPLE_ID_ALL
        | bit::MMAP2
        | bit::USE_CLOCKID;
    if thread_only {
        flags |= bit::INHERIT_THREAD;
    }
    let attr = Attr {
        type_: TYPE_SOFTWARE,
        size: std::mem::size_of::<Attr>() as u32,
        config: COUNT_SW_DUMMY,
        sample_type: SAMPLE_TIME,
        flags,
        clockid: libc::CLOCK_MONOTONIC,
        ..Attr::default()
    };
    // SAFETY: a valid attribute of the size it states; no group.
    let fd = unsafe {
        libc::syscall(libc::SYS_perf_event_open, &attr as *const Attr, tid, cpu, -1 as libc::c_int, FLAG_FD_CLOEXEC)
    };
    if fd < 0 { Err(Errno::last()) } else { Ok(fd as RawFd) }
}

/// `ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, target)` - `fd`'s records go into
/// `target`'s ring (both on the same CPU; `fd` not mapped itself).
///
/// # Errors
/// `EINVAL` if the kernel will not share the ring (another CPU or clock).
#[doc(alias = "PERF_EVENT_IOC_SET_OUTPUT")]
pub fn set_output(fd: RawFd, target: RawFd) -> Result<(), Errno> {
    // _IO('$', 5)
    const SET_OUTPUT: libc::c_ulong = 0x2405;
    // SAFETY: an ioctl on our own event descriptors with an integer argument.
    if unsafe { libc::ioctl(fd, SET_OUTPUT as _, target) } < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Where the ring's header page keeps its words (`struct perf_event_mmap_page`).
/// `CANARY` is the last word of `__reserved`, which the kernel never writes
/// (it zeroes the page once and then writes only the fields before it, and
/// the head); `DATA_HEAD` follows it.
const CANARY: usize = 1016;
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;

/// Where the rings live: a reservation inside the library's own image (its
/// `.bss`, never touched, so it costs address space only), which the rings
/// are mapped over (`MAP_FIXED`) and which is given back as inaccessible memory
/// when they go. A ring in a gap the kernel picked could be unmapped or
/// mapped over by a program that thinks the gap is its own (a hole it
/// punched in a range it reserved, then fills with `MAP_FIXED`: the
/// property test does exactly that); no correct program maps or unmaps
/// inside a library's image, where our other statics live too. So the
/// rings are read with plain loads, as every perf tool reads them, and a
/// lookup makes no system call. 3 MiB holds 256 rings of 3 pages (4 KiB
/// pages), the most the map sets up.
const AREA_BYTES: usize = 3 << 20;
/// Slack for rounding the start up to the page size (up to 64 KiB pages).
const AREA_SLACK: usize = 64 << 10;

#[repr(C, align(4096))]
struct Area(std::cell::UnsafeCell<[u8; AREA_BYTES + AREA_SLACK]>);

// SAFETY: no Rust code reads or writes the area's bytes; only its address is taken.
unsafe impl Sync for Area {}

static AREA: Area = Area(std::cell::UnsafeCell::new([0; AREA_BYTES + AREA_SLACK]));

/// At load (the preload library's constructor), the area becomes
/// inaccessible until rings are mapped over it, and is given back so: a
/// program that locks all its memory (`mlockall(MCL_CURRENT)`, common where
/// latency matters) would otherwise fault 3 MiB of zeros in and lock them.
#[cfg(feature = "interpose")]
#[used]
#[unsafe(link_section = ".init_array")]
static SEAL_AT_LOAD: extern "C" fn() = seal_at_load;

#[cfg(feature = "interpose")]
extern "C" fn seal_at_load() {
    // No panic may leave a constructor; a failure only leaves the area as
    // plain untouched memory.
    let _ = std::panic::catch_unwind(|| {
        let (at, len) = ring_area();
        // SAFETY: whole pages of our own `.bss` that no code reads or writes.
        unsafe { libc::mprotect(at as *mut _, len, libc::PROT_NONE) };
    });
}

/// The whole pages of the ring area: `(start, len)`.
pub fn ring_area() -> (usize, usize) {
    let page = crate::sys::page_size() as usize;
    let at = AREA.0.get() as usize;
    let start = at.next_multiple_of(page);
    let end = (at + AREA_BYTES + AREA_SLACK) & !(page - 1);
    (start, end - start)
}

/// An event's ring buffer, mapped read-write (we write `data_tail`, so the
/// kernel never overwrites what we have not read: it drops new records
/// instead and says so with a `PERF_RECORD_LOST`) at an address of the
/// ring area ([`ring_area`]). A random canary we put in the header's
/// reserved area says whether the page is still the ring's (see
/// [`Ring::canary`]): a program that mapped over the library's image is
/// caught, not trusted.
#[derive(Debug)]
pub struct Ring {
    base: NonNull<u8>,
    map_len: usize,
    data_off: usize,
    size: u64,
    canary: u64,
}

// SAFETY: the ring is shared memory with the kernel; the owner serialises users.
unsafe impl Send for Ring {}

impl Ring {
    /// The length of a ring of `data_pages` data pages plus its header page.
    pub fn map_len(data_pages: usize) -> usize {
        (1 + data_pages) * crate::sys::page_size() as usize
    }

    /// Maps `data_pages` (a power of two) of ring plus the header page over
    /// `at` (in the ring area, plain memory of ours: `MAP_FIXED` replaces
    /// it), and writes `canary` (non-zero) into the header's reserved area.
    /// The mapping keeps the event alive: the descriptor can be closed after
    /// (and keeping it would not help once the ring is unmapped: the kernel
    /// detaches the buffer from the event at its last unmap, and records
    /// are dropped from then on, descriptor or not).
    ///
    /// # Errors
    /// `EPERM` past the locked-memory allowance (`perf_event_mlock_kb` per
    /// user, then `RLIMIT_MEMLOCK`), `ENOMEM` at the VMA limit.
    ///
    /// # Safety
    /// `[at, at + map_len)` lies in the ring area and holds plain memory of
    /// ours (never a live ring, never the program's).
    pub unsafe fn map(fd: RawFd, data_pages: usize, canary: u64, at: usize) -> Result<Ring, Errno> {
        let page = crate::sys::page_size() as usize;
        let map_len = Ring::map_len(data_pages);
        let flags = libc::MAP_SHARED | libc::MAP_FIXED;
        // SAFETY: replaces our own area's pages (the caller's promise).
        let p = unsafe { libc::mmap(at as *mut _, map_len, libc::PROT_READ | libc::PROT_WRITE, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            // A failed MAP_FIXED may have unmapped the range: give it back.
            // SAFETY: the same range of our area.
            unsafe { restore(at, map_len, libc::MAP_FIXED) };
            return Err(Errno::last());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        // SAFETY: the header page we just mapped, which no other thread knows of yet.
        let (off, size) = unsafe {
            std::ptr::write_volatile(base.as_ptr().add(CANARY).cast::<u64>(), canary);
            (
                std::ptr::read_volatile(base.as_ptr().add(DATA_OFFSET).cast::<u64>()),
                std::ptr::read_volatile(base.as_ptr().add(DATA_SIZE).cast::<u64>()),
            )
        };
        // Before Linux 4.1 the header does not say: the data follows the first page.
        let (off, size) = if size == 0 { (page as u64, (data_pages * page) as u64) } else { (off, size) };
        let ring = Ring { base, map_len, data_off: off as usize, size, canary };
        if off as usize + size as usize > map_len || !size.is_power_of_two() {
            ring.unmap();
            return Err(Errno::EINVAL);
        }
        Ok(ring)
    }

    /// Bytes of record space (a power of two).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The value in the header's reserved word while the page is the ring's.
    pub fn canary(&self) -> u64 {
        self.canary
    }

    /// The canary word and `data_head` as they are now (the head with
    /// acquire ordering: the records below it are complete).
    pub fn header(&self) -> [u64; 2] {
        // SAFETY: the ring's header page, mapped by us in the library's
        // image (see [`ring_area`]); the kernel writes the head atomically.
        unsafe {
            let p = self.base.as_ptr();
            let canary = std::ptr::read_volatile(p.add(CANARY).cast::<u64>());
            let head = AtomicU64::from_ptr(p.add(DATA_HEAD).cast::<u64>()).load(Ordering::Acquire);
            [canary, head]
        }
    }

    /// Hands the bytes below `tail` back to the kernel (release ordering:
    /// our reads of them happen before the kernel may overwrite them).
    pub fn set_tail(&self, tail: u64) {
        // SAFETY: as in `header`.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(DATA_TAIL).cast::<u64>()).store(tail, Ordering::Release) };
    }

    /// Where the byte at offset `at` (since the ring began) is, and how many
    /// bytes follow it before the data area wraps.
    pub fn data_at(&self, at: u64) -> (usize, u64) {
        let off = at & (self.size - 1);
        (self.base.as_ptr() as usize + self.data_off + off as usize, self.size - off)
    }

    /// The range the mapping covers.
    pub fn range(&self) -> (u64, u64) {
        let start = self.base.as_ptr() as u64;
        (start, start + self.map_len as u64)
    }

    /// Gives the ring's pages back to the area as inaccessible memory (one
    /// `MAP_FIXED` over it, which unmaps the ring and, with it, the event).
    /// Only in the process that mapped it, and only once its canary was just
    /// read back: a ring the program mapped over is the program's memory now.
    pub fn unmap(self) {
        // SAFETY: our own ring's range, in our area.
        unsafe { restore(self.base.as_ptr() as usize, self.map_len, libc::MAP_FIXED) };
    }

    /// In a forked child, where the kernel did not copy the ring
    /// (`VM_DONTCOPY`) and left a hole in the area: fills the hole with
    /// inaccessible memory again, unless something else was mapped there meanwhile
    /// (`false`: that part of the area is not ours any more).
    pub fn refill(self) -> bool {
        let (at, len) = (self.base.as_ptr() as usize, self.map_len);
        // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping; a kernel
        // before 4.17 takes the address as a hint, checked in `restore`.
        unsafe { restore(at, len, libc::MAP_FIXED_NOREPLACE) }
    }
}

/// Inaccessible private memory at `[at, at + len)`, as the area is between
/// rings (see `seal_at_load`); `false` if the kernel would not put it
/// exactly there.
///
/// # Safety
/// With `MAP_FIXED`, the range must be ours to replace.
unsafe fn restore(at: usize, len: usize, fixed: i32) -> bool {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | fixed;
    // SAFETY: the caller's promise for MAP_FIXED; NOREPLACE replaces nothing.
    let p = unsafe { libc::mmap(at as *mut _, len, libc::PROT_NONE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return false;
    }
    if p as usize != at {
        // A kernel without MAP_FIXED_NOREPLACE put it elsewhere: not ours to keep.
        // SAFETY: the mapping just made.
        unsafe { libc::munmap(p, len) };
        return false;
    }
    true
}

/// Reads 8-byte words of a ring's data area by their offset since the ring
/// began (wrapping): records and their fields are 8-byte aligned, so no
/// word straddles the end.
pub trait Words {
    fn word(&self, at: u64) -> u64;
}

/// Canned rings for tests: the words in order, wrapping at the slice's end.
impl Words for [u64] {
    fn word(&self, at: u64) -> u64 {
        self[(at / 8) as usize % self.len()]
    }
}

/// A live ring's records, read in place: the caller reads only below the
/// head it last read ([`Ring::header`], acquire), which the kernel has
/// finished writing and does not touch again until the tail passes it.
impl Words for Ring {
    fn word(&self, at: u64) -> u64 {
        let (p, _) = self.data_at(at);
        // SAFETY: an 8-byte-aligned word of the data area, in our image's ring area.
        unsafe { std::ptr::read_volatile(p as *const u64) }
    }
}

/// One `PERF_RECORD_MMAP2`: a VMA as it is after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mmap2 {
    pub pid: u32,
    pub tid: u32,
    pub addr: u64,
    pub len: u64,
    pub major: u32,
    pub minor: u32,
    pub ino: u64,
    /// `PROT_READ | PROT_WRITE | PROT_EXEC` of the VMA.
    pub prot: u32,
    /// `MAP_SHARED` (for `VM_MAYSHARE`, as maps shows `s`) or `MAP_PRIVATE`, plus `MAP_LOCKED`/`MAP_HUGETLB`.
    pub flags: u32,
}

/// What a record says, as far as the map cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Mmap2(Mmap2),
    /// The kernel dropped `lost` records: the map missed changes.
    Lost {
        lost: u64,
    },
    /// An `MMAP2` with a build id instead of dev and inode: unusable.
    Mmap2BuildId,
    /// Any other type (none is asked for); skipped.
    Other {
        kind: u32,
    },
}

/// A record, its size in the ring and its time (`CLOCK_MONOTONIC` ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub record: Record,
    pub size: u64,
    pub time: u64,
}

/// The record at `at`, of which `avail` bytes are published; `None` if the
/// header is not one the kernel writes (size zero, unaligned, larger than
/// what is published or than any record we can be sent), which means the
/// ring is not what we think and the map must be rebuilt.
pub fn parse<W: Words + ?Sized>(ring: &W, at: u64, avail: u64) -> Option<Parsed> {
    if avail < 8 {
        return None;
    }
    let header = ring.word(at);
    let (kind, misc, size) = (header as u32, (header >> 32) as u16, header >> 48);
    if size < 16 || size % 8 != 0 || size > avail || size > MAX_RECORD {
        return None;
    }
    let w = |i: u64| ring.word(at + 8 * i);
    let halves = |v: u64| {
        let b = v.to_ne_bytes();
        (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), u32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
    };
    let time = w(size / 8 - 1);
    let record = match kind {
        RECORD_MMAP2 if size < 80 => return None,
        RECORD_MMAP2 if misc & MISC_MMAP_BUILD_ID != 0 => Record::Mmap2BuildId,
        RECORD_MMAP2 => {
            let (pid, tid) = halves(w(1));
            let (major, minor) = halves(w(5));
            let (prot, flags) = halves(w(8));
            Record::Mmap2(Mmap2 { pid, tid, addr: w(2), len: w(3), major, minor, ino: w(6), prot, flags })
        }
        RECORD_LOST if size < 32 => return None,
        RECORD_LOST => Record::Lost { lost: w(2) },
        kind => Record::Other { kind },
    };
    Some(Parsed { record, size, time })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One MMAP2 record as the kernel lays it out (`perf_event_mmap_output`),
    /// with the time after the name.
    #[allow(clippy::too_many_arguments)]
    fn mmap2(
        pid: u32,
        addr: u64,
        len: u64,
        dev: (u32, u32),
        ino: u64,
        prot: u32,
        flags: u32,
        name: &[u8],
        time: u64,
    ) -> Vec<u64> {
        let join = |lo: u32, hi: u32| {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&lo.to_ne_bytes());
            b[4..].copy_from_slice(&hi.to_ne_bytes());
            u64::from_ne_bytes(b)
        };
        let mut name = name.to_vec();
        name.push(0);
        name.resize(name.len().div_ceil(8) * 8, 0);
        let size = 72 + name.len() as u64 + 8;
        let misc = 2u64 | (u64::from(prot & 4 == 0) << 13); // USER, MMAP_DATA
        let mut w = vec![u64::from(RECORD_MMAP2) | misc << 32 | size << 48, join(pid, pid + 1), addr, len, 0];
        w.extend([join(dev.0, dev.1), ino, 0, join(prot, flags)]);
        w.extend(name.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())));
        w.push(time);
        w
    }

    #[test]
    fn an_mmap2_record() {
        let w = mmap2(42, 0x7f00_0000_0000, 0x2000, (259, 3), 1234, 3, 1, b"/mnt/pmem/data", 99);
        let p = parse(&w[..], 0, 8 * w.len() as u64).unwrap();
        assert_eq!(p.size, 8 * w.len() as u64);
        assert_eq!(p.time, 99);
        let want = Mmap2 {
            pid: 42,
            tid: 43,
            addr: 0x7f00_0000_0000,
            len: 0x2000,
            major: 259,
            minor: 3,
            ino: 1234,
            prot: 3,
            flags: 1,
        };
        assert_eq!(p.record, Record::Mmap2(want));
    }

    #[test]
    fn records_that_wrap_around_the_ring() {
        // A 16-word ring whose record starts 3 words before the end.
        let rec = mmap2(7, 0x1000, 0x1000, (0, 0), 0, 3, 2, b"//anon", 5);
        let mut ring = [0u64; 16];
        for (i, &v) in rec.iter().enumerate() {
            ring[(13 + i) % 16] = v;
        }
        let p = parse(&ring[..], 13 * 8 + 16 * 8 * 3, 8 * rec.len() as u64).unwrap();
        assert!(matches!(p.record, Record::Mmap2(m) if m.addr == 0x1000 && m.pid == 7));
        assert_eq!(p.time, 5);
    }

    #[test]
    fn lost_and_other_records() {
        let lost = [u64::from(RECORD_LOST) | 32 << 48, 1, 17, 8];
        assert_eq!(parse(&lost[..], 0, 32).unwrap(), Parsed { record: Record::Lost { lost: 17 }, size: 32, time: 8 });
        let comm = [3 | 24 << 48, 0, 9];
        assert_eq!(parse(&comm[..], 0, 24).unwrap().record, Record::Other { kind: 3 });
    }

    #[test]
    fn headers_the_kernel_never_writes() {
        let rec = mmap2(1, 0x1000, 0x1000, (0, 0), 0, 3, 2, b"//anon", 5);
        let n = 8 * rec.len() as u64;
        assert!(parse(&rec[..], 0, n - 8).is_none(), "larger than what is published");
        assert!(parse(&[0u64; 4][..], 0, 32).is_none(), "size zero");
        assert!(parse(&[10 | 12 << 48, 0][..], 0, 16).is_none(), "unaligned");
        assert!(parse(&[10 | 64 << 48, 0, 0, 0, 0, 0, 0, 0][..], 0, 64).is_none(), "an MMAP2 too short for its fields");
        assert!(parse(&rec[..], 0, 4).is_none());
    }

    #[test]
    fn build_id_records_are_not_read_as_inodes() {
        let mut rec = mmap2(1, 0x1000, 0x1000, (8, 1), 5, 5, 2, b"/bin/x", 5);
        rec[0] |= u64::from(MISC_MMAP_BUILD_ID) << 32;
        assert_eq!(parse(&rec[..], 0, 8 * rec.len() as u64).unwrap().record, Record::Mmap2BuildId);
    }
}
