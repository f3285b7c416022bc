//! Memory the shim costs: heap allocations per call (a counting global
//! allocator) and resident set growth, on the anonymous fast path and beyond.
//! Prints a table; not a criterion benchmark. Its own process, default mode.
//!
//! Counted: every allocation made through Rust's global allocator, which the
//! shim's code in this binary uses. Not counted: malloc calls made inside libc
//! itself (none are expected on this path: it is read/ioctl/poll/statx).

#[path = "support/stub.rs"]
mod stub;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use daxguard::{LookupChoice, Options, Verdict, classify_with, judge};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as the caller promised.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as the caller promised.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as the caller promised.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as the caller promised.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// VmRSS in KiB, from a field of `/proc/<self|pid>/status`.
fn rss_kib(status: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn self_rss() -> u64 {
    rss_kib(&std::fs::read_to_string("/proc/self/status").unwrap())
}

/// Allocations per call over `n` calls of `f` (after the caller warmed it up).
fn allocs_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    let a0 = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..n {
        f();
    }
    (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / n as f64
}

fn row(what: &str, n: u64, per_call: f64) {
    println!("| {what} | {n} | {per_call:.3} |");
}

/// Median VmRSS of `grep` reading its own status, with and without the
/// preloaded library: what loading libdaxguard.so costs a process that never
/// registers memory.
fn preload_rss(so: &str) -> Option<(u64, u64)> {
    if !std::path::Path::new(so).exists() {
        return None;
    }
    let run = |preload: bool| {
        let mut v: Vec<u64> = (0..9)
            .map(|_| {
                let mut cmd = Command::new("grep");
                cmd.args(["VmRSS", "/proc/self/status"]);
                if preload {
                    cmd.env("LD_PRELOAD", so);
                }
                let out = cmd.output().unwrap();
                assert!(out.status.success());
                rss_kib(&String::from_utf8(out.stdout).unwrap())
            })
            .collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    Some((run(false), run(true)))
}

fn main() {
    for var in ["DAXGUARD_MODE", "DAXGUARD_LOG", "DAXGUARD_LOOKUP"] {
        assert!(std::env::var_os(var).is_none(), "unset {var} for this benchmark");
    }
    let stub = stub::Stub::load();
    let pg = 4096;
    // 4 KiB of anonymous memory, and one page of a file (cached verdict path).
    let anon = vec![0u8; 2 * pg];
    let addr = (anon.as_ptr() as u64).next_multiple_of(pg as u64);
    let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/memory-bench.dat");
    let mut f = File::options().read(true).write(true).create(true).truncate(true).open(path).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    // SAFETY: a fresh shared mapping of our own file.
    let fmap = unsafe { libc::mmap(std::ptr::null_mut(), pg, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(fmap, libc::MAP_FAILED);
    let faddr = fmap as u64;
    let mut pd = [0u64; 32];
    let pd: *mut c_void = pd.as_mut_ptr().cast();
    let access = verbs_sys::IBV_ACCESS_LOCAL_WRITE;
    // SAFETY: arguments as ibv_reg_mr(3) wants them; the stub ignores them.
    let reg = || unsafe { stub::ibv_reg_mr_iova2(pd, addr as *mut c_void, pg, addr, access) };

    let rss_start = self_rss();
    // First use: opens /proc/self/maps and mountinfo, reads the mount table,
    // probes the shmem device, resolves the stub.
    let q = LookupChoice::ProcmapQuery;
    assert_eq!(judge(addr, pg as u64, q).unwrap().verdict, Verdict::Allow);
    assert_eq!(judge(faddr, pg as u64, q).unwrap().verdict, Verdict::Allow);
    let calls0 = stub.calls();
    assert!(!reg().is_null());
    assert_eq!(stub.calls(), calls0 + 1, "the shim did not forward");
    let rss_first = self_rss();

    println!("| call | calls | heap allocations per call |");
    println!("|---|---:|---:|");
    // DAXBENCH_CALLS: fewer calls, e.g. to count syscalls per call under `strace -c`.
    let n: u64 = std::env::var("DAXBENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let small = (n / 10).max(1);
    let judge_q = allocs_per_call(n, || {
        judge(std::hint::black_box(addr), pg as u64, q).unwrap();
    });
    row("judge, anonymous 4 KiB, PROCMAP_QUERY", n, judge_q);
    let rss_judged = self_rss();
    row(
        "judge, anonymous 4 KiB, maps text",
        small,
        allocs_per_call(small, || {
            judge(std::hint::black_box(addr), pg as u64, LookupChoice::MapsText).unwrap();
        }),
    );
    row(
        "judge, cached file page, PROCMAP_QUERY",
        n,
        allocs_per_call(n, || {
            judge(std::hint::black_box(faddr), pg as u64, q).unwrap();
        }),
    );
    let export = allocs_per_call(n, || {
        std::hint::black_box(reg());
    });
    row("exported ibv_reg_mr_iova2 (enforce), anonymous 4 KiB", n, export);
    assert_eq!(stub.calls(), calls0 + 1 + n, "every call forwarded");
    let rss_end = self_rss();
    row(
        "classify_with (full report), anonymous 4 KiB, PROCMAP_QUERY",
        small,
        allocs_per_call(small, || {
            classify_with(std::hint::black_box(addr), pg as u64, Options { target: None, lookup: q }).unwrap();
        }),
    );

    println!();
    println!("| RSS (KiB) | value |");
    println!("|---|---:|");
    println!("| before the first call | {rss_start} |");
    println!(
        "| after first use (judge anon, judge file, one export call) | {rss_first} (+{}) |",
        rss_first - rss_start
    );
    println!("| after {n} judge calls | {rss_judged} (+{}) |", rss_judged - rss_start);
    println!("| after {n} more judge (file) and {n} export calls | {rss_end} (+{}) |", rss_end - rss_start);
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
    let so = format!("{target}/release/libdaxguard.so");
    let so = std::fs::canonicalize(&so).map_or(so, |p| p.display().to_string());
    match preload_rss(&so) {
        Some((plain, pre)) => {
            println!("| grep, median of 9 runs | {plain} |");
            println!("| grep with LD_PRELOAD={so} | {pre} ({:+}) |", pre as i64 - plain as i64)
        }
        None => println!("| LD_PRELOAD cost | skipped: {so} not built |"),
    }
    if judge_q > 0.0 || export > 0.0 {
        println!("\nFAIL: the anonymous fast path allocates");
        std::process::exit(1);
    }
}
