//! A process at its VMA limit (`vm.max_map_count`), grown before its first
//! lookup, as in issue 17: `MADV_WIPEONFORK` cannot split a VMA there, so
//! unless the page was marked when the library was loaded, every lookup
//! pays a `getpid` to notice a fork. Checks which way this process tells a
//! fork, then times `judge` on anonymous 4 KiB (the PROCMAP_QUERY path where
//! the kernel has it). Syscalls per call: run it under
//! `strace -f -c -e trace=getpid,ioctl`. Its own process: nothing of the
//! library may run before the growth but its load-time constructor.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use daxguard::{LookupChoice, fork_detection, judge};

fn vma_count() -> usize {
    std::fs::read("/proc/self/maps").unwrap().iter().filter(|&&b| b == b'\n').count()
}

fn main() {
    let pg = 4096usize;
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    // One reservation; every other page made PROT_READ until the process is 32 VMAs short of the limit.
    let pages = limit + 64;
    // SAFETY: a fresh reservation.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            pages * pg,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    } as usize;
    let anon = base + (pages - 2) * pg;
    // SAFETY: inside our reservation.
    assert_eq!(unsafe { libc::mprotect(anon as *mut _, pg, libc::PROT_READ | libc::PROT_WRITE) }, 0);
    let mut i = 0;
    while vma_count() < limit - 32 {
        let more = (limit - 32 - vma_count()).div_ceil(2);
        for _ in 0..more {
            // SAFETY: inside our reservation, below the measured page.
            if unsafe { libc::mprotect((base + 2 * i * pg) as *mut _, pg, libc::PROT_READ) } != 0 {
                break;
            }
            i += 1;
        }
    }
    let have = vma_count();
    let how = fork_detection();
    println!("limit: {have} VMAs of {limit}; fork detection: {how}");
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("judge");
    g.sample_size(50).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    g.bench_function(BenchmarkId::new("auto-anon-4k", "limit"), |b| {
        b.iter(|| judge(black_box(anon as u64), pg as u64, LookupChoice::Auto).unwrap())
    });
    g.finish();
    c.final_summary();
    assert_eq!(how, "wipe-on-fork", "the page was not marked at load: every lookup pays a getpid");
}
