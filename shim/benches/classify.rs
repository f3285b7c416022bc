//! Classify latency against the number of VMAs in the process, on both lookup
//! paths, with the naive baselines measured in the same run.
//!
//! One address-space layout, grown tier by tier (10, 1k, 10k, 20k, 60k VMAs in
//! the whole process; the smallest tier is whatever this binary starts with).
//! A big PROT_NONE reservation holds, from low to high addresses:
//!
//!   [bulk: PROT_READ every other page, 2 VMAs per page] [guard]
//!   [16 pages alternating r--/rw-] [guard] [1 page of a file, MAP_SHARED] [guard]
//!   [1 GiB rw- anonymous] [guard]
//!
//! Every measured range sits above the bulk, so the maps-text path has to read
//! past every added VMA before it reaches the range: its worst case.
//!
//! Ids are `<what>/<path>-<range>/<tier>`; plot.py reads the medians back from
//! target/criterion and the actual VMA counts from vma-counts.json there.

use std::ffi::c_void;
use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::ptr;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, measurement::WallTime};
use daxguard::lookup::{mmap_events_status, reset_mmap_events};
use daxguard::{Kind, Lookup, LookupChoice, Options, Verdict, classify_with, judge};

const TIERS: [usize; 5] = [10, 1_000, 10_000, 20_000, 60_000];
/// Room for the largest tier: each PROT_READ page in the bulk adds 2 VMAs.
const BULK_SPLITS: usize = 31_000;
const GIB: usize = 1 << 30;

fn page() -> usize {
    // SAFETY: sysconf with a valid name.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The reservation and where each measured range is in it.
struct Layout {
    bulk: usize,
    splits: usize,
    span16: usize,
    file: usize,
    anon: usize,
    _file: File,
}

fn mprotect(addr: usize, len: usize, prot: i32) {
    // SAFETY: inside our own reservation.
    let rc = unsafe { libc::mprotect(addr as *mut c_void, len, prot) };
    assert_eq!(rc, 0, "mprotect: {}", std::io::Error::last_os_error());
}

impl Layout {
    fn new() -> Layout {
        let pg = page();
        let bulk_len = 2 * BULK_SPLITS * pg;
        let total = bulk_len + pg + 16 * pg + pg + pg + pg + GIB + pg;
        // SAFETY: a fresh reservation; nothing else maps into it.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "reserve: {}", std::io::Error::last_os_error());
        let bulk = base as usize;
        let span16 = bulk + bulk_len + pg;
        let file = span16 + 16 * pg + pg;
        let anon = file + pg + pg;
        for i in 0..16 {
            let prot = if i % 2 == 0 { libc::PROT_READ } else { libc::PROT_READ | libc::PROT_WRITE };
            mprotect(span16 + i * pg, pg, prot);
        }
        // A file on the target directory's filesystem (ext4 here), not tmpfs:
        // an ordinary page-cache file, judged once and then answered from the cache.
        let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/classify-bench.dat");
        let mut f = File::options().read(true).write(true).create(true).truncate(true).open(path).unwrap();
        f.write_all(&vec![0u8; pg]).unwrap();
        // SAFETY: MAP_FIXED over a page of our own reservation.
        let m = unsafe {
            libc::mmap(file as *mut c_void, pg, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_FIXED, f.as_raw_fd(), 0)
        };
        assert_eq!(m as usize, file, "map file: {}", std::io::Error::last_os_error());
        mprotect(anon, GIB, libc::PROT_READ | libc::PROT_WRITE);
        Layout { bulk, splits: 0, span16, file, anon, _file: f }
    }

    /// Splits bulk pages until the process has at least `want` VMAs; returns the count.
    fn grow_to(&mut self, want: usize) -> usize {
        let pg = page();
        let mut have = vma_count();
        while have < want {
            let more = (want - have).div_ceil(2);
            assert!(self.splits + more <= BULK_SPLITS, "bulk reservation too small for {want} VMAs");
            for i in self.splits..self.splits + more {
                mprotect(self.bulk + 2 * i * pg, pg, libc::PROT_READ);
            }
            self.splits += more;
            have = vma_count();
        }
        have
    }

    /// (name, addr, len) of each measured range.
    fn ranges(&self) -> [(&'static str, u64, u64); 4] {
        let pg = page() as u64;
        [
            ("anon-4k", self.anon as u64, pg),
            ("anon-1g", self.anon as u64, GIB as u64),
            ("file", self.file as u64, pg),
            ("span16", self.span16 as u64, 16 * pg),
        ]
    }
}

fn vma_count() -> usize {
    std::fs::read("/proc/self/maps").unwrap().iter().filter(|&&b| b == b'\n').count()
}

/// Checks each range classifies as laid out, on both paths, before timing it
/// (and warms the file verdict cache).
fn check(l: &Layout) {
    for lookup in [LookupChoice::ProcmapQuery, LookupChoice::MapsText] {
        for (name, addr, len) in l.ranges() {
            let r = classify_with(addr, len, Options { target: None, lookup }).unwrap();
            let want = if lookup == LookupChoice::MapsText { Lookup::MapsText } else { Lookup::ProcmapQuery };
            assert_eq!(r.lookup, want, "{name}");
            assert_eq!(r.verdict(), Verdict::Allow, "{name}");
            match name {
                "span16" => assert_eq!(r.pieces.len(), 16, "{name}: {:?}", r.pieces),
                "file" => {
                    assert!(matches!(r.pieces[..], [ref p] if matches!(p.kind, Kind::PlainFile(_))), "{:?}", r.pieces)
                }
                _ => assert!(matches!(r.pieces[..], [ref p] if matches!(p.kind, Kind::Anonymous { .. }))),
            }
            let j = judge(addr, len, lookup).unwrap();
            assert_eq!((j.verdict, j.lookup), (Verdict::Allow, want), "{name}");
        }
    }
    // The mmap-events map: every range answered from it (the file's verdict
    // is cached by now, so no name is needed), unless perf is refused here.
    // After growing, the map meets a flood of records and is rebuilt; where
    // records overtake a rebuild that lookup reads maps text (the map's
    // tests allow the same): it settles within a few calls.
    if mmap_events_status().is_ok() {
        for (name, addr, len) in l.ranges() {
            let mut j = judge(addr, len, LookupChoice::MmapEvents).unwrap();
            for _ in 0..100 {
                if j.lookup == Lookup::MmapEvents {
                    break;
                }
                j = judge(addr, len, LookupChoice::MmapEvents).unwrap();
            }
            assert_eq!((j.verdict, j.lookup), (Verdict::Allow, Lookup::MmapEvents), "{name}");
        }
    }
}

/// Reads `/proc/self/maps` with a 64 KiB buffer until a line starts at or
/// after `end` (or to the end of the file when `end` is `u64::MAX`): the least
/// work any text lookup must do. Returns the bytes read.
fn read_maps_until(buf: &mut [u8], end: u64) -> usize {
    let mut f = File::open("/proc/self/maps").unwrap();
    // Line starts are parsed byte by byte: a read may end in the middle of a line.
    let (mut total, mut in_start, mut start) = (0, true, 0u64);
    loop {
        let n = f.read(buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
        for &b in &buf[..n] {
            if in_start {
                if b == b'-' {
                    if start >= end {
                        return total;
                    }
                    in_start = false;
                } else {
                    start = start << 4 | u64::from((b as char).to_digit(16).unwrap_or(0));
                }
            } else if b == b'\n' {
                (in_start, start) = (true, 0);
            }
        }
    }
}

/// The start address of a maps line.
fn line_start(b: &[u8]) -> Option<u64> {
    let dash = b.iter().take(17).position(|&c| c == b'-')?;
    u64::from_str_radix(std::str::from_utf8(&b[..dash]).ok()?, 16).ok()
}

/// The naive design: read all of `/proc/self/smaps` on every call and find the
/// entry covering `addr`; returns its `VmFlags` line length.
fn smaps_lookup(buf: &mut Vec<u8>, addr: u64) -> usize {
    buf.clear();
    File::open("/proc/self/smaps").unwrap().read_to_end(buf).unwrap();
    let mut inside = false;
    for line in buf.split(|&b| b == b'\n') {
        if let Some(dash) = line.iter().take(17).position(|&c| c == b'-') {
            let sp = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
            let hex = |s: &[u8]| u64::from_str_radix(std::str::from_utf8(s).unwrap_or("x"), 16).ok();
            if let (Some(s), Some(e)) = (hex(&line[..dash]), hex(&line[dash + 1..sp])) {
                inside = s <= addr && addr < e;
                continue;
            }
        }
        if inside && line.starts_with(b"VmFlags:") {
            return line.len();
        }
    }
    panic!("{addr:#x} not in smaps");
}

/// The fallback's ratio to its baseline, measured in alternation: the two
/// run next to each other for about 3 s (11 to 401 pairs), so drift on a busy
/// machine hits both alike, which two criterion groups run one after the
/// other cannot promise. Medians go to `fallback-paired-<tier>.json` for plot.py.
fn paired_fallback(buf: &mut [u8], tier: usize, addr: u64, len: u64) {
    use std::time::Instant;
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    while base.len() < 401 && (base.len() < 11 || t0.elapsed() < Duration::from_secs(3)) {
        let t = Instant::now();
        black_box(read_maps_until(buf, black_box(addr + len)));
        base.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        black_box(judge(black_box(addr), black_box(len), LookupChoice::MapsText).unwrap());
        ours.push(t.elapsed().as_nanos() as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, o) = (median(&mut base), median(&mut ours));
    println!(
        "paired fallback, tier {tier}: {} pairs, maps up to the range {b:.0} ns, judge on maps text {o:.0} ns, ratio {:.3}",
        base.len(),
        o / b
    );
    let dir = criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let json = format!("{{\"pairs\": {}, \"maps_ns\": {b:.0}, \"judge_ns\": {o:.0}}}\n", base.len());
    std::fs::write(format!("{dir}/fallback-paired-{tier}.json"), json).unwrap();
}

/// One raw `PROCMAP_QUERY` ioctl for the VMA covering `addr`, no name: the
/// floor under the query path on this kernel and machine.
fn raw_query(fd: i32, addr: u64) -> u64 {
    #[repr(C)]
    #[derive(Default)]
    struct Query {
        size: u64,
        flags: u64,
        addr: u64,
        start: u64,
        end: u64,
        vma_flags: u64,
        page_size: u64,
        offset: u64,
        inode: u64,
        dev: [u32; 2],
        name_size: u32,
        build_id_size: u32,
        name_addr: u64,
        build_id_addr: u64,
    }
    // _IOWR('f', 17, struct procmap_query); COVERING_OR_NEXT_VMA.
    const PROCMAP_QUERY: u64 = (3 << 30) | (104 << 16) | ((b'f' as u64) << 8) | 17;
    let mut q = Query { size: 104, flags: 0x10, addr, ..Default::default() };
    // SAFETY: a valid procmap_query with no name or build-id buffer.
    let rc = unsafe { libc::ioctl(fd, PROCMAP_QUERY as _, &mut q as *mut Query) };
    assert_eq!(rc, 0, "PROCMAP_QUERY: {}", std::io::Error::last_os_error());
    q.end
}

/// One `poll(POLLPRI)` with no wait, as the shim asks mountinfo on a cached file.
fn poll_pri(fd: i32) -> i16 {
    let mut p = libc::pollfd { fd, events: libc::POLLIN | libc::POLLPRI, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) };
    p.revents
}

/// A group with its timing. Fast benchmarks: many samples. Slow ones (text
/// path and baselines in big processes): few flat samples, so the whole run
/// stays near 10 minutes.
fn group<'c>(c: &'c mut Criterion, name: &str, slow: bool) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    if slow {
        g.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_millis(200));
        g.measurement_time(Duration::from_secs(2));
    } else {
        g.sample_size(50).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    }
    g
}

/// `judge` (or `classify_with` for the full report) on every range, ids `<path>-<range>/<tier>`.
fn bench_ranges(mut g: BenchmarkGroup<'_, WallTime>, report: bool, l: &Layout, tier: usize, lookup: LookupChoice) {
    let path = match lookup {
        LookupChoice::MapsText => "text",
        LookupChoice::MmapEvents => "events",
        _ => "query",
    };
    for (range, addr, len) in l.ranges() {
        let id = BenchmarkId::new(format!("{path}-{range}"), tier);
        let opts = Options { target: None, lookup };
        if report {
            g.bench_function(id, |b| b.iter(|| classify_with(black_box(addr), black_box(len), opts).unwrap()));
        } else {
            g.bench_function(id, |b| b.iter(|| judge(black_box(addr), black_box(len), lookup).unwrap()));
        }
    }
    g.finish();
}

/// One tier. Order matters on a busy machine: each baseline runs right next
/// to what it is compared with (floors after the query path, maps reading
/// just before the text path), so load drift hits both alike.
fn bench_tier(c: &mut Criterion, l: &Layout, tier: usize) {
    let big = tier >= 10_000;
    let (query, text) = (LookupChoice::ProcmapQuery, LookupChoice::MapsText);
    let (addr, len) = (l.anon as u64, page() as u64);
    bench_ranges(group(c, "judge", false), false, l, tier, query);
    if mmap_events_status().is_ok() {
        bench_ranges(group(c, "judge", false), false, l, tier, LookupChoice::MmapEvents);
        // The cold first lookup: set-up (one event and ring per CPU) plus one
        // full maps read into the map, then the answer.
        let mut g = group(c, "cold", big);
        g.bench_function(BenchmarkId::new("events-first", tier), |b| {
            b.iter_batched(
                reset_mmap_events,
                |()| judge(black_box(addr), black_box(len), LookupChoice::MmapEvents).unwrap(),
                BatchSize::PerIteration,
            )
        });
        g.finish();
        reset_mmap_events();
        judge(addr, len, LookupChoice::MmapEvents).unwrap();
    }
    let maps = File::open("/proc/self/maps").unwrap();
    let mut g = group(c, "baseline", false);
    // The floors: one syscall, and the one ioctl the query path needs here.
    g.bench_function(BenchmarkId::new("getpid-syscall", tier), |b| {
        // SAFETY: no preconditions.
        b.iter(|| unsafe { libc::syscall(libc::SYS_getpid) })
    });
    g.bench_function(BenchmarkId::new("procmap-query-ioctl", tier), |b| {
        b.iter(|| raw_query(maps.as_raw_fd(), black_box(addr)))
    });
    // The second syscall of a cached file's lookup: has the mount table changed?
    let mountinfo = File::open("/proc/self/mountinfo").unwrap();
    g.bench_function(BenchmarkId::new("poll-mountinfo", tier), |b| b.iter(|| poll_pri(mountinfo.as_raw_fd())));
    g.finish();
    bench_ranges(group(c, "classify", false), true, l, tier, query);
    let mut buf = vec![0u8; 64 << 10];
    let mut g = group(c, "baseline", big);
    g.bench_function(BenchmarkId::new("maps-to-end", tier), |b| b.iter(|| read_maps_until(&mut buf, u64::MAX)));
    g.bench_function(BenchmarkId::new("maps-to-range", tier), |b| {
        b.iter(|| read_maps_until(&mut buf, black_box(addr + len)))
    });
    g.finish();
    bench_ranges(group(c, "judge", big), false, l, tier, text);
    paired_fallback(&mut buf, tier, addr, len);
    bench_ranges(group(c, "classify", big), true, l, tier, text);
    let mut sbuf = Vec::new();
    let mut g = group(c, "baseline", true);
    g.bench_function(BenchmarkId::new("smaps-per-call", tier), |b| b.iter(|| smaps_lookup(&mut sbuf, black_box(addr))));
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut l = Layout::new();
    let mut counts = Vec::new();
    for tier in TIERS {
        let n = l.grow_to(tier);
        check(&l);
        let below = read_maps_lines_below(l.anon as u64);
        println!("tier {tier}: {n} VMAs in the process, {below} maps lines before the measured ranges");
        counts.push(format!("\"{tier}\": {{\"vmas\": {n}, \"lines_before_range\": {below}}}"));
        bench_tier(&mut c, &l, tier);
    }
    c.final_summary();
    let dir = criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/vma-counts.json"), format!("{{{}}}\n", counts.join(", "))).unwrap();
}

fn read_maps_lines_below(addr: u64) -> usize {
    let text = std::fs::read("/proc/self/maps").unwrap();
    text.split(|&b| b == b'\n').filter(|l| line_start(l).is_some_and(|s| s < addr)).count()
}

/// Where criterion writes: `$CRITERION_HOME`, else `<target>/criterion`.
fn criterion_dir() -> String {
    std::env::var("CRITERION_HOME").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
        format!("{target}/criterion")
    })
}
