//! Property test: random layouts of real mappings, random ranges over them;
//! the report must match the layout that was built, on both lookup paths.
//!
//! proptest runs in this process and generates a [`Layout`]; each case re-runs
//! this test binary with only `layout_child` selected and the layout in
//! `DAXGUARD_PROPTEST_LAYOUT`. The child builds the layout inside a reserved
//! region and checks every range; its exit status and output are the verdict.
//! A separate process keeps the harness's threads (stacks, malloc arenas) out
//! of the holes the layout punches. To replay a failure, run
//! `DAXGUARD_PROPTEST_LAYOUT='<layout>' cargo test -p daxguard --test proptest_layouts layout_child -- --exact`.
//!
//! `mmap_events_layouts` does the same with raw system calls (`SYS_mmap`,
//! `SYS_munmap`, `SYS_mremap`, `SYS_mprotect`) between lookups, and compares
//! the mmap-events map with a fresh maps read page by page after each one
//! (replay: `events_child` with `DAXGUARD_PROPTEST_EVENTS` set as well).

use std::ffi::c_void;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use daxguard::{Kind, Lookup, LookupChoice, Options, Prot, Report, classify_with};
use proptest::prelude::*;

const PAGE: u64 = 4096;
const LAYOUT_VAR: &str = "DAXGUARD_PROPTEST_LAYOUT";
/// Protections a segment or an mprotect may ask for.
const PROTS: [i32; 4] =
    [libc::PROT_NONE, libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE, libc::PROT_READ | libc::PROT_EXEC];

/// What backs a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Back {
    AnonPrivate,
    AnonShared,
    /// One of two /dev/shm files, mapped at the file offset equal to the page's
    /// place in the region, so that neighbours of one file can merge.
    File {
        shared: bool,
        file: usize,
    },
    Hole,
}

const BACKS: [Back; 7] = [
    Back::AnonPrivate,
    Back::AnonShared,
    Back::File { shared: false, file: 0 },
    Back::File { shared: true, file: 0 },
    Back::File { shared: false, file: 1 },
    Back::File { shared: true, file: 1 },
    Back::Hole,
];

/// Pages of one kind, in order from the region's start; `back` and `prot` index BACKS and PROTS.
#[derive(Debug, Clone, Copy)]
struct Seg {
    back: usize,
    prot: usize,
    pages: usize,
}

/// The region: segments, then mprotects over page spans (mapped pages only),
/// then the ranges to classify as (first page, pages, bytes cut at the head, at the tail).
#[derive(Debug, Clone)]
struct Layout {
    segs: Vec<Seg>,
    protects: Vec<(usize, usize, usize)>,
    ranges: Vec<(usize, usize, u64, u64)>,
}

impl Layout {
    fn pages(&self) -> usize {
        self.segs.iter().map(|s| s.pages).sum()
    }

    /// `back.prot.pages,...;first.pages.prot,...;first.pages.head.tail,...`
    fn encode(&self) -> String {
        let segs: Vec<_> = self.segs.iter().map(|s| format!("{}.{}.{}", s.back, s.prot, s.pages)).collect();
        let prots: Vec<_> = self.protects.iter().map(|(a, n, p)| format!("{a}.{n}.{p}")).collect();
        let ranges: Vec<_> = self.ranges.iter().map(|(a, n, h, t)| format!("{a}.{n}.{h}.{t}")).collect();
        format!("{};{};{}", segs.join(","), prots.join(","), ranges.join(","))
    }

    fn decode(s: &str) -> Layout {
        let nums = |item: &str| -> Vec<u64> { item.split('.').map(|n| n.parse().expect("layout number")).collect() };
        let section = |s: &str| -> Vec<Vec<u64>> { s.split(',').filter(|i| !i.is_empty()).map(nums).collect() };
        let parts: Vec<&str> = s.split(';').collect();
        assert_eq!(parts.len(), 3, "layout {s:?}");
        let u = |n: u64| n as usize;
        Layout {
            segs: section(parts[0]).iter().map(|v| Seg { back: u(v[0]), prot: u(v[1]), pages: u(v[2]) }).collect(),
            protects: section(parts[1]).iter().map(|v| (u(v[0]), u(v[1]), u(v[2]))).collect(),
            ranges: section(parts[2]).iter().map(|v| (u(v[0]), u(v[1]), v[2], v[3])).collect(),
        }
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    let seg = (0..BACKS.len(), 0..PROTS.len(), 1usize..=6).prop_map(|(back, prot, pages)| Seg { back, prot, pages });
    prop::collection::vec(seg, 1..=12)
        .prop_flat_map(|segs| {
            let n: usize = segs.iter().map(|s| s.pages).sum();
            let protects = prop::collection::vec((0..n, 1..=n, 0..PROTS.len()), 0..=4);
            let ranges = prop::collection::vec((0..n, 1..=n, 0..PAGE, 0..PAGE), 1..=6);
            (Just(segs), protects, ranges)
        })
        .prop_map(|(segs, protects, ranges)| {
            let n: usize = segs.iter().map(|s| s.pages).sum();
            // Clip spans to the region so the encoded layout is exactly what is built.
            let protects = protects.into_iter().map(|(a, k, p)| (a, k.min(n - a), p)).collect();
            let ranges = ranges.into_iter().map(|(a, k, h, t)| (a, k.min(n - a), h, t)).collect();
            Layout { segs, protects, ranges }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    #[test]
    fn random_layouts(l in layout()) {
        let text = l.encode();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["layout_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(LAYOUT_VAR, &text)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // "1 passed" also proves the child really ran the check, not zero tests.
        prop_assert!(
            out.status.success() && stdout.contains("1 passed"),
            "layout {text}: child {}\n{}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The child: a no-op in a normal run, the real check when the parent sets the layout.
#[test]
fn layout_child() {
    let Ok(text) = std::env::var(LAYOUT_VAR) else { return };
    build_and_check(&Layout::decode(&text));
}

/// What one page of the region should be; `None` is a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    back: Back,
    prot: i32,
}

/// File pages never get PROT_EXEC: /dev/shm may be mounted noexec.
fn effective(prot: i32, back: Back) -> i32 {
    if matches!(back, Back::File { .. }) { prot & !libc::PROT_EXEC } else { prot }
}

/// A built layout: the region, what each page is, the files behind it.
struct Built {
    base: u64,
    pages: Vec<Option<Page>>,
    files: Vec<(File, PathBuf)>,
    _dir: tempfile::TempDir,
}

fn build_and_check(l: &Layout) {
    let b = build(l);
    let paths: Vec<(PathBuf, u64)> = b.files.iter().map(|(f, p)| (p.clone(), f.metadata().unwrap().ino())).collect();
    let (base, pages) = (b.base, &b.pages);
    for &(first, count, head, tail) in &l.ranges {
        let addr = base + first as u64 * PAGE + head;
        let len = (count as u64 * PAGE).saturating_sub(head + tail).max(1);
        let m = classify_with(addr, len, Options { lookup: LookupChoice::MapsText, ..Default::default() }).unwrap();
        assert_eq!(m.lookup, Lookup::MapsText);
        let what = format!("range pages {first}..{} (+{head}, -{tail})", first + count);
        check(&m, base, first, count, pages, &paths, &what);
        match classify_with(addr, len, Options { lookup: LookupChoice::ProcmapQuery, ..Default::default() }) {
            Ok(q) => {
                assert_eq!(q.lookup, Lookup::ProcmapQuery);
                assert_eq!(q.pieces, m.pieces, "{what}: PROCMAP_QUERY and maps text disagree");
            }
            // Kernels before 6.11 have only the text path.
            Err(e) => assert_eq!(e.errno().raw(), libc::ENOTTY, "{what}: {e}"),
        }
    }
    // SAFETY: unmapping our own region (the process ends right after anyway).
    unsafe { libc::munmap(base as *mut c_void, pages.len() * PAGE as usize) };
}

fn build(l: &Layout) -> Built {
    let n = l.pages();
    let len = n as u64 * PAGE;
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let files: Vec<(File, PathBuf)> = (0..2)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            let f = File::options().read(true).write(true).create_new(true).open(&path).unwrap();
            f.set_len(len).unwrap();
            (f, path)
        })
        .collect();

    // SAFETY: a fresh reservation; every later mapping call stays inside it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    let base = base as u64;
    let at = |page: usize| (base + page as u64 * PAGE) as *mut c_void;

    let mut pages: Vec<Option<Page>> = Vec::with_capacity(n);
    for seg in &l.segs {
        let (first, back) = (pages.len(), BACKS[seg.back]);
        let prot = effective(PROTS[seg.prot], back);
        let size = seg.pages * PAGE as usize;
        let (flags, fd, off) = match back {
            Back::AnonPrivate => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0),
            Back::AnonShared => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0),
            Back::File { shared, file } => {
                let kind = if shared { libc::MAP_SHARED } else { libc::MAP_PRIVATE };
                (kind, files[file].0.as_raw_fd(), first as i64 * PAGE as i64)
            }
            Back::Hole => {
                // SAFETY: unmapping part of our own reservation.
                assert_eq!(unsafe { libc::munmap(at(first), size) }, 0);
                pages.extend(std::iter::repeat_n(None, seg.pages));
                continue;
            }
        };
        // SAFETY: MAP_FIXED over part of our own reservation.
        let p = unsafe { libc::mmap(at(first), size, prot, flags | libc::MAP_FIXED, fd, off) };
        assert_eq!(p, at(first), "{seg:?}: {}", std::io::Error::last_os_error());
        pages.extend(std::iter::repeat_n(Some(Page { back, prot }), seg.pages));
    }

    // mprotect each run of mapped pages that ends up with one protection: splits VMAs, may re-merge them.
    for &(first, count, p) in &l.protects {
        let mut i = first;
        while i < first + count {
            let Some(pg) = pages[i] else {
                i += 1;
                continue;
            };
            let prot = effective(PROTS[p], pg.back);
            let mut j = i;
            while j < first + count && pages[j].is_some_and(|q| effective(PROTS[p], q.back) == prot) {
                pages[j] = pages[j].map(|q| Page { prot, ..q });
                j += 1;
            }
            // SAFETY: changing protection of pages we mapped.
            let rc = unsafe { libc::mprotect(at(i), (j - i) * PAGE as usize, prot) };
            assert_eq!(rc, 0, "mprotect pages {i}..{j}: {}", std::io::Error::last_os_error());
            i = j;
        }
    }

    Built { base, pages, files, _dir: dir }
}

/// The report's pieces tile the page-aligned range, and every page in every
/// piece is what was built there (merged neighbours are one piece: compare pages).
fn check(
    r: &Report,
    base: u64,
    first: usize,
    count: usize,
    pages: &[Option<Page>],
    files: &[(PathBuf, u64)],
    what: &str,
) {
    let page_addr = |i: usize| base + i as u64 * PAGE;
    let (start, end) = (page_addr(first), page_addr(first + count));
    assert_eq!((r.start, r.end), (start, end), "{what}: widened to whole pages");
    assert!(!r.pieces.is_empty(), "{what}");
    let mut cursor = start;
    for (k, p) in r.pieces.iter().enumerate() {
        assert_eq!(p.start, cursor, "{what}: piece {k} does not continue the previous one: {r:#?}");
        assert!(p.start < p.end && p.end <= end && p.end % PAGE == 0, "{what}: piece {k}: {p:?}");
        let hole = matches!(p.kind, Kind::Hole);
        if k > 0 {
            assert!(!(hole && matches!(r.pieces[k - 1].kind, Kind::Hole)), "{what}: two holes in a row");
        }
        let span = ((p.start - base) / PAGE) as usize..((p.end - base) / PAGE) as usize;
        for (i, want) in span.clone().zip(&pages[span]) {
            let at = format!("{what}: page {i}, piece {p:?}");
            let Some(pg) = *want else {
                assert!(hole && p.prot.is_none(), "{at}: expected a hole");
                continue;
            };
            let shared = matches!(pg.back, Back::AnonShared | Back::File { shared: true, .. });
            let prot = Prot {
                read: pg.prot & libc::PROT_READ != 0,
                write: pg.prot & libc::PROT_WRITE != 0,
                exec: pg.prot & libc::PROT_EXEC != 0,
                shared,
            };
            assert_eq!(p.prot, Some(prot), "{at}: expected {pg:?}");
            match pg.back {
                Back::AnonPrivate | Back::AnonShared => {
                    assert!(matches!(p.kind, Kind::Anonymous { .. }), "{at}: expected anonymous")
                }
                Back::File { file, .. } => {
                    let Kind::PlainFile(info) = &p.kind else {
                        panic!("{at}: expected file {}", files[file].0.display())
                    };
                    assert_eq!((&info.path, info.inode), (&files[file].0, files[file].1), "{at}");
                }
                Back::Hole => unreachable!("holes are None"),
            }
        }
        cursor = p.end;
    }
    assert_eq!(cursor, end, "{what}: pieces stop short of the end");
}

/// Raw system calls made between lookups, bypassing libc: (kind, first page,
/// pages, target page). Kinds: 0 anonymous `SYS_mmap` (`MAP_FIXED`), 1 file
/// `SYS_mmap`, 2 `SYS_munmap`, 3 `SYS_mremap` to the target (`MREMAP_FIXED`),
/// 4 `SYS_mprotect` read-only.
type RawOp = (usize, usize, usize, usize);
const EVENTS_VAR: &str = "DAXGUARD_PROPTEST_EVENTS";

fn raw_ops(n: usize) -> impl Strategy<Value = Vec<RawOp>> {
    prop::collection::vec((0..5usize, 0..n, 1..=n, 0..n), 1..=8).prop_map(move |ops| {
        ops.into_iter().map(|(k, a, c, t)| (k, a, c.min(n - a), t.min(n - c.min(n - a)))).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(128) })]

    /// The mmap-events map against a fresh maps read, page by page, after
    /// every raw system call; and `judge` on the map against maps text.
    #[test]
    fn mmap_events_layouts((l, ops) in layout().prop_flat_map(|l| { let n = l.pages(); (Just(l), raw_ops(n)) })) {
        let text = l.encode();
        let ops_text: Vec<_> = ops.iter().map(|(k, a, c, t)| format!("{k}.{a}.{c}.{t}")).collect();
        let ops_text = ops_text.join(",");
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["events_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(LAYOUT_VAR, &text)
            .env(EVENTS_VAR, &ops_text)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        prop_assert!(
            out.status.success() && stdout.contains("1 passed"),
            "layout {text} ops {ops_text}: child {}\n{}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The child of `mmap_events_layouts`: a no-op in a normal run.
#[test]
fn events_child() {
    let (Ok(text), Ok(ops)) = (std::env::var(LAYOUT_VAR), std::env::var(EVENTS_VAR)) else { return };
    let ops: Vec<RawOp> = ops
        .split(',')
        .filter(|o| !o.is_empty())
        .map(|o| {
            let v: Vec<usize> = o.split('.').map(|n| n.parse().unwrap()).collect();
            (v[0], v[1], v[2], v[3])
        })
        .collect();
    let l = Layout::decode(&text);
    let b = build(&l);
    let n = b.pages.len();
    if let Err(why) = daxguard::lookup::mmap_events_status() {
        assert!(std::env::var_os("DAXGUARD_TEST_PERF").is_none(), "mmap events unavailable: {why}");
        println!("skipped: {why}");
        return;
    }
    // Pages an unreported call (munmap, mremap) touched: the map may be stale there.
    let mut exempt = vec![false; n];
    compare_with_maps(&b, &exempt, "after set-up");
    let at = |p: usize| b.base + p as u64 * PAGE;
    for (i, &(kind, first, count, target)) in ops.iter().enumerate() {
        let (addr, len) = (at(first), count as u64 * PAGE);
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: raw calls on our own region, as a program bypassing libc makes them.
        let rc = unsafe {
            match kind {
                0 => libc::syscall(
                    libc::SYS_mmap,
                    addr,
                    len,
                    rw,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                ),
                1 => {
                    let fd = b.files[first % 2].0.as_raw_fd();
                    libc::syscall(
                        libc::SYS_mmap,
                        addr,
                        len,
                        rw,
                        libc::MAP_SHARED | libc::MAP_FIXED,
                        fd,
                        first as u64 * PAGE,
                    )
                }
                2 => libc::syscall(libc::SYS_munmap, addr, len),
                3 => libc::syscall(
                    libc::SYS_mremap,
                    addr,
                    len,
                    len,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    at(target),
                ),
                _ => libc::syscall(libc::SYS_mprotect, addr, len, libc::PROT_READ),
            }
        };
        match kind {
            // Reported (when it succeeded): exact again.
            0 | 1 if rc >= 0 => exempt[first..first + count].iter_mut().for_each(|e| *e = false),
            2 => exempt[first..first + count].iter_mut().for_each(|e| *e = true),
            3 => {
                exempt[first..first + count].iter_mut().for_each(|e| *e = true);
                exempt[target..target + count].iter_mut().for_each(|e| *e = true);
            }
            _ => {}
        }
        let what = format!("after op {i} ({kind}.{first}.{count}.{target}, rc {rc})");
        // judge on the map answers as maps text does, for the op's pages and the whole region.
        for (a, len) in [(addr, len), (b.base, n as u64 * PAGE)] {
            let e = daxguard::judge(a, len, LookupChoice::MmapEvents).unwrap();
            let t = daxguard::judge(a, len, LookupChoice::MapsText).unwrap();
            assert_eq!(e.verdict, t.verdict, "{what}: judge {a:#x}+{len}");
        }
        compare_with_maps(&b, &exempt, &what);
    }
    // Grep-able: how often a raw call mapped over or unmapped one of the map's rings.
    let lost = daxguard::lookup::mmap_events_rings_lost();
    println!("rings lost and set up again: {lost}");
    if let Some(log) = std::env::var_os("DAXGUARD_PROPTEST_LOST_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        writeln!(f, "{lost}").unwrap();
    }
}

/// Every page of the region not exempt: the map's entry (or none) is what a
/// fresh read of /proc/self/maps shows there (device, inode, protection, sharing).
fn compare_with_maps(b: &Built, exempt: &[bool], what: &str) {
    let text = std::fs::read("/proc/self/maps").unwrap();
    let lines: Vec<_> = text.split(|&c| c == b'\n').filter_map(daxguard::maps::parse_line).collect();
    for (p, &skip) in exempt.iter().enumerate() {
        if skip {
            continue;
        }
        let addr = b.base + p as u64 * PAGE;
        let want = lines
            .iter()
            .find(|l| l.start <= addr && addr < l.end)
            .map(|l| (l.dev, l.inode, l.readable, l.writable, l.executable, l.shared));
        let got = daxguard::lookup::mmap_events_at(addr)
            .unwrap()
            .filter(|v| v.start <= addr && addr < v.end)
            .map(|v| (v.dev, v.inode, v.readable, v.writable, v.executable, v.shared));
        assert_eq!(got, want, "{what}: page {p}");
    }
}
