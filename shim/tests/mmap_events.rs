//! The mmap-events lookup against real perf on this host (root, or
//! `perf_event_paranoid` <= 2): the map sees what the kernel reports, falls
//! back to maps text where it cannot know, and answers as maps text does.
//! Skipped (with a line saying so) where perf is refused, unless
//! `DAXGUARD_TEST_PERF=require`.

use std::ffi::c_void;
use std::fs::File;
use std::os::fd::AsRawFd;

use daxguard::lookup::{mmap_events_at, mmap_events_status};
use daxguard::{Lookup, LookupChoice, Verdict, judge};

const PAGE: usize = 4096;

fn perf_works() -> bool {
    match mmap_events_status() {
        Ok(()) => true,
        // Threads starting as the map attaches to them: try again.
        Err(why) if why.transient() => perf_works(),
        Err(why) => {
            // DAXGUARD_TEST_PERF=require: where perf must work (this host as root).
            assert!(std::env::var_os("DAXGUARD_TEST_PERF").is_none(), "mmap events unavailable: {why}");
            println!("skipped: mmap events unavailable here ({why})");
            false
        }
    }
}

fn raw_mmap(addr: usize, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> usize {
    // SAFETY: the raw syscall, as a program bypassing libc would make it.
    let p = unsafe { libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) };
    assert!(p >= 0 && p as usize != usize::MAX, "mmap: {}", std::io::Error::last_os_error());
    p as usize
}

fn raw_munmap(addr: usize, len: usize) {
    // SAFETY: unmapping memory this test mapped.
    assert_eq!(unsafe { libc::syscall(libc::SYS_munmap, addr, len) }, 0);
}

/// Runs `check` in a forked child (which leaves without the harness's exit
/// path) and asserts that it said yes.
fn in_child(what: &str, check: impl FnOnce() -> bool) {
    // SAFETY: the child runs `check` and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = check();
        // SAFETY: leaving the child without running the harness's exit path.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(status, 0, "{what}");
}

fn anon(len: usize) -> usize {
    raw_mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
}

/// Judged on the map and on maps text: the same verdict; the map's lookup named.
fn same_verdict(addr: usize, len: usize) -> Lookup {
    let e = judge(addr as u64, len as u64, LookupChoice::MmapEvents).unwrap();
    let t = judge(addr as u64, len as u64, LookupChoice::MapsText).unwrap();
    assert_eq!(e.verdict, t.verdict, "{addr:#x}+{len}");
    assert!(matches!(e.lookup, Lookup::MmapEvents | Lookup::MapsText));
    e.lookup
}

#[test]
fn anonymous_memory_is_answered_from_the_map() {
    if !perf_works() {
        return;
    }
    let a = anon(4 * PAGE);
    let v = mmap_events_at(a as u64).unwrap().expect("a fresh mmap is reported");
    assert!(v.start <= a as u64 && v.end >= (a + 4 * PAGE) as u64 && v.readable && v.writable && !v.shared);
    same_verdict(a, 4 * PAGE);
    // mprotect is reported: the middle page is its own VMA now.
    // SAFETY: our own mapping.
    assert_eq!(unsafe { libc::mprotect((a + PAGE) as *mut c_void, PAGE, libc::PROT_READ) }, 0);
    let mid = mmap_events_at((a + PAGE) as u64).unwrap().unwrap();
    assert_eq!((mid.start, mid.end, mid.writable), ((a + PAGE) as u64, (a + 2 * PAGE) as u64, false));
    raw_munmap(a, 4 * PAGE);
}

#[test]
fn a_file_needs_maps_text_once_then_the_cached_verdict() {
    if !perf_works() {
        return;
    }
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let f = File::options().read(true).write(true).create(true).truncate(true).open(dir.path().join("f")).unwrap();
    f.set_len(PAGE as u64).unwrap();
    let a = raw_mmap(0, PAGE, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
    let v = mmap_events_at(a as u64).unwrap().unwrap();
    assert!(v.inode != 0 && v.shared, "{v:?}");
    // The first verdict on this file needs its name: maps text.
    let first = judge(a as u64, PAGE as u64, LookupChoice::MmapEvents).unwrap();
    assert_eq!((first.verdict, first.lookup), (Verdict::Allow, Lookup::MapsText));
    // Then the map and the cached verdict (other tests may flood the map
    // meanwhile, which sends a lookup to maps text: same verdict, ask again).
    let on_map = (0..100).any(|_| {
        let j = judge(a as u64, PAGE as u64, LookupChoice::MmapEvents).unwrap();
        assert_eq!(j.verdict, Verdict::Allow);
        j.lookup == Lookup::MmapEvents || {
            std::thread::sleep(std::time::Duration::from_millis(1));
            false
        }
    });
    assert!(on_map, "never answered from the map");
    raw_munmap(a, PAGE);
}

#[test]
fn mremap_is_not_reported_so_its_target_is_read_from_maps_text() {
    if !perf_works() {
        return;
    }
    let a = anon(2 * PAGE);
    // Reserve a target, learn it in the map, then unmap it (unreported): a stale entry.
    let b = anon(2 * PAGE);
    assert!(mmap_events_at(b as u64).unwrap().is_some());
    raw_munmap(b, 2 * PAGE);
    // SAFETY: moving our own mapping onto our own (now free) range.
    let r =
        unsafe { libc::syscall(libc::SYS_mremap, a, 2 * PAGE, 2 * PAGE, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, b) };
    assert_eq!(r as usize, b);
    // The stale entry says anonymous memory, which it is: the same answer.
    same_verdict(b, 2 * PAGE);
    // The old place is a hole; the map may still cover it (allow, as for a hole).
    same_verdict(a, 2 * PAGE);
    // Grown in place into uncovered space: read from maps text, which refreshes the map.
    let c = anon(4 * PAGE);
    raw_munmap(c + 2 * PAGE, 2 * PAGE);
    // SAFETY: growing our own mapping in place.
    let r = unsafe { libc::syscall(libc::SYS_mremap, c, 2 * PAGE, 4 * PAGE, 0) };
    assert_eq!(r as usize, c);
    same_verdict(c, 4 * PAGE);
    raw_munmap(b, 2 * PAGE);
    raw_munmap(c, 4 * PAGE);
}

#[test]
fn a_thread_started_before_the_map_is_seen() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (back, got) = std::sync::mpsc::channel::<usize>();
    let t = std::thread::spawn(move || {
        rx.recv().unwrap();
        back.send(anon(PAGE)).unwrap();
        // And a thread it starts after the map exists inherits the event.
        let inner = std::thread::spawn(|| anon(PAGE)).join().unwrap();
        back.send(inner).unwrap();
    });
    if !perf_works() {
        tx.send(()).unwrap();
        t.join().unwrap();
        return;
    }
    tx.send(()).unwrap();
    let (a, b) = (got.recv().unwrap(), got.recv().unwrap());
    t.join().unwrap();
    for x in [a, b] {
        let v = mmap_events_at(x as u64).unwrap().expect("another thread's mmap is reported");
        assert!(v.start <= x as u64 && v.end > x as u64);
        raw_munmap(x, PAGE);
    }
}

#[test]
fn a_flood_of_records_rebuilds_the_map() {
    if !perf_works() {
        return;
    }
    let n = 4000;
    let a = anon(n * PAGE);
    assert!(mmap_events_at(a as u64).unwrap().is_some());
    // Far more records than a ring holds: the kernel drops some, the map rebuilds.
    for i in (0..n).step_by(2) {
        // SAFETY: our own mapping.
        assert_eq!(unsafe { libc::mprotect((a + i * PAGE) as *mut c_void, PAGE, libc::PROT_READ) }, 0);
    }
    for i in [0, 1, n - 2, n - 1] {
        let v = mmap_events_at((a + i * PAGE) as u64).unwrap().unwrap();
        assert_eq!((v.start, v.writable), ((a + i * PAGE) as u64, i % 2 == 1), "page {i}");
    }
    raw_munmap(a, n * PAGE);
}

#[test]
fn a_forked_child_builds_its_own_map() {
    if !perf_works() {
        return;
    }
    let a = anon(PAGE);
    assert!(mmap_events_at(a as u64).unwrap().is_some());
    in_child("the child's map", || {
        let b = anon(PAGE);
        mmap_events_at(b as u64).ok().flatten().is_some()
            && judge(b as u64, PAGE as u64, LookupChoice::MmapEvents).is_ok_and(|j| j.lookup == Lookup::MmapEvents)
    });
    assert!(mmap_events_at(a as u64).unwrap().is_some(), "the parent's map is intact");
    raw_munmap(a, PAGE);
}

#[test]
fn a_program_that_maps_over_the_ring_area_is_left_alone() {
    if !perf_works() {
        return;
    }
    // In a child: the area is spoiled for the rest of the process.
    in_child("the child after mapping over the ring area", || {
        let a = anon(PAGE);
        let set_up = mmap_events_at(a as u64).ok().flatten().is_some();
        // The program maps over the first ring's header, in our image, and writes to it.
        let (area, _) = daxguard::lookup::mmap_events_ring_area();
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
        raw_mmap(area, PAGE, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0);
        // SAFETY: the page just mapped.
        unsafe { std::ptr::write_volatile(area as *mut u64, 0x5eed) };
        let b = anon(PAGE);
        let refused = judge(b as u64, PAGE as u64, LookupChoice::MmapEvents).is_err();
        let why = mmap_events_status().err().map(|w| w.what);
        let text = judge(b as u64, PAGE as u64, LookupChoice::MapsText).is_ok_and(|j| j.verdict == Verdict::Allow);
        // SAFETY: the program's page, still mapped: the map never maps over it.
        let intact = unsafe { std::ptr::read_volatile(area as *const u64) } == 0x5eed;
        let ok = set_up && refused && why == Some("area") && text && intact;
        if !ok {
            eprintln!("set_up {set_up} refused {refused} why {why:?} text {text} intact {intact}");
        }
        ok
    });
    let a = anon(PAGE);
    assert!(mmap_events_at(a as u64).unwrap().is_some(), "the parent's map is intact");
    raw_munmap(a, PAGE);
}

#[test]
fn no_map_where_its_descriptors_would_crowd_the_program() {
    if !perf_works() {
        return;
    }
    in_child("the child with a second thread and 4 descriptors per CPU", || {
        // Only stdin, stdout and stderr open; a soft limit of 4 descriptors
        // per CPU: the map may hold a quarter, one per CPU, enough for our
        // own rings but not for a second thread's events.
        (3..1024).for_each(|fd| {
            // SAFETY: closing the child's copies (the parent keeps its own).
            unsafe { libc::close(fd) };
        });
        // SAFETY: plain sysconf and setrlimit calls.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } as libc::rlim_t;
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: valid out-pointer, then our own limit.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = 4 * cpus;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        });
        mmap_events_status().err().map(|w| w.what) == Some("descriptors")
    });
}

/// The ring area (3 MiB of our `.bss`) is inaccessible from load until rings
/// are mapped over it: a program that locks all its memory does not fault
/// it in. In a child (`mlockall` would lock the whole test process).
#[test]
fn mlockall_leaves_the_ring_area_alone() {
    let (area, len) = daxguard::lookup::mmap_events_ring_area();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut rings = 0;
    for l in maps.lines() {
        let (range, rest) = l.split_once(' ').unwrap();
        let (s, e) = range.split_once('-').unwrap();
        let (s, e) = (usize::from_str_radix(s, 16).unwrap(), usize::from_str_radix(e, 16).unwrap());
        if s < area + len && area < e {
            // Inaccessible, or a ring of the map (a perf event) where another test set it up.
            assert!(rest.starts_with("---p") || rest.contains("perf_event"), "the area at load: {l}");
            rings += usize::from(rest.contains("perf_event"));
        }
    }
    in_child("the ring area under mlockall", || {
        // SAFETY: locking the child's own memory; it exits right after.
        if unsafe { libc::mlockall(libc::MCL_CURRENT) } != 0 {
            println!("skipped: mlockall refused ({})", std::io::Error::last_os_error());
            return true;
        }
        // Page by page: the parent's rings are holes here (not copied by fork).
        let resident = (area..area + len).step_by(PAGE).filter(|&p| {
            let mut r = 0u8;
            // SAFETY: one page, one byte of answer.
            unsafe { libc::mincore(p as *mut _, PAGE, &mut r) == 0 && r & 1 != 0 }
        });
        // Only ring pages (a few per CPU) may be resident.
        resident.count() <= rings * 32
    });
}

/// A CPU brought online after the map was set up has no event of ours:
/// a registering thread that runs there sets the map up again. Takes CPU 1
/// offline and back (root, a guest: `mapprop.sh`); `--ignored`.
#[test]
#[ignore]
fn a_cpu_brought_online_later_gets_a_ring() {
    if !perf_works() {
        return;
    }
    let online = |on: bool| std::fs::write("/sys/devices/system/cpu/cpu1/online", if on { "1" } else { "0" });
    online(false).expect("taking CPU 1 offline (root, 2 CPUs or more)");
    daxguard::lookup::reset_mmap_events();
    let a = anon(PAGE);
    assert!(mmap_events_at(a as u64).unwrap().is_some(), "the map, set up without CPU 1");
    online(true).expect("bringing CPU 1 back");
    // On CPU 1 from now on: a file mapped over the anonymous page there is
    // reported on CPU 1 only.
    // SAFETY: a cpu_set_t for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(1, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set), 0);
    }
    let file = tempfile_page();
    raw_mmap(a, PAGE, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_FIXED, file.as_raw_fd(), 0);
    let ino = std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap());
    let got = mmap_events_at(a as u64).unwrap().map(|v| v.inode);
    // SAFETY: every CPU again for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (0..libc::CPU_SETSIZE as usize).for_each(|c| libc::CPU_SET(c, &mut set));
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
    raw_munmap(a, PAGE);
    assert_eq!(got, Some(ino), "the file mapped on CPU 1");
}

/// Not a benchmark harness (criterion's rows run on the host; this one runs
/// where the TCG guest has no criterion): `judge` on the map,
/// anonymous 4 KiB and a cached file page, median of 2001 calls, at the
/// process's own size, then grown to about 10k and 60k VMAs (every other
/// page of one reservation made read-only), for a guest without
/// `PROCMAP_QUERY`. `--ignored --nocapture`; one `FLAT` line per size.
#[test]
#[ignore]
fn judge_on_the_map_is_flat() {
    if !perf_works() {
        return;
    }
    let file = tempfile_page();
    let f = raw_mmap(0, PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, file.as_raw_fd(), 0);
    let a = anon(PAGE);
    let bulk_pages = 2 * 31_000;
    let bulk = raw_mmap(
        0,
        bulk_pages * PAGE,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    let vmas = || std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    let median = |addr: usize| {
        let mut t: Vec<u128> = (0..2001)
            .map(|_| {
                let s = std::time::Instant::now();
                let j = judge(addr as u64, PAGE as u64, LookupChoice::MmapEvents).unwrap();
                let d = s.elapsed().as_nanos();
                assert_eq!((j.verdict, j.lookup), (Verdict::Allow, Lookup::MmapEvents));
                d
            })
            .collect();
        t.sort_unstable();
        t[t.len() / 2]
    };
    let mut done = 0;
    for want in [0usize, 10_000, 60_000] {
        while vmas() < want && done < bulk_pages / 2 {
            // SAFETY: inside our own reservation.
            let n = ((want - vmas()) / 2 + 1).min(bulk_pages / 2 - done);
            for i in done..done + n {
                assert_eq!(unsafe { libc::mprotect((bulk + 2 * i * PAGE) as *mut c_void, PAGE, libc::PROT_READ) }, 0);
            }
            done += n;
        }
        // The first call after growing meets a flood of records: the map is
        // rebuilt (or, if records overtake the rebuild, that call reads maps text).
        let mut calls = 0;
        while judge(a as u64, PAGE as u64, LookupChoice::MmapEvents).unwrap().lookup != Lookup::MmapEvents {
            calls += 1;
            assert!(calls < 100, "the map did not recover after growing to {} VMAs", vmas());
        }
        let _ = judge(f as u64, PAGE as u64, LookupChoice::MmapEvents).unwrap();
        println!("FLAT vmas={} anon_4k_ns={} file_page_ns={}", vmas(), median(a), median(f));
    }
}

fn tempfile_page() -> File {
    let path = std::env::temp_dir().join(format!("daxguard-flat-{}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.set_len(PAGE as u64).unwrap();
    let _ = std::fs::remove_file(&path);
    file
}
