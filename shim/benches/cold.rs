//! The first registration in a process (cold) beside the later ones (warm):
//! the exported `ibv_reg_mr_iova2` into the do-nothing stub, enforce mode,
//! 4 KiB of anonymous memory, on both lookup paths, in a small process and
//! in one grown to 10,000 VMAs (issue 17).
//!
//! A first call pays what later ones do not: reading the settings, finding
//! the next `ibv_reg_mr_iova2` (`dlvsym`), opening `/proc/self/maps` and, on
//! the `PROCMAP_QUERY` path, probing the ioctl. Each sample is its own
//! process (this binary run again with `DAXBENCH_COLD_CHILD` set), which
//! prints the first call's time, the second's, the median of the warm calls
//! after them, and the median time to read its whole `/proc/self/maps` (the
//! target: a cold registration costs at most one full maps read). The parent
//! prints the medians over `DAXBENCH_COLD_RUNS` processes (default 31) per case.
//!
//! Cases: `query` and `maps` force a lookup path (`DAXGUARD_LOOKUP`);
//! `auto, no query` is the default path with `PROCMAP_QUERY` refused by a
//! seccomp filter in the child, what a kernel before 6.11 does: map_files
//! for the first two registrations, the mmap-events map set up after the
//! second (root: perf is allowed). The child reads its maps once, untimed,
//! after growing, as `regbench` does: the kernel's first walk over freshly
//! made VMAs is slower than later ones (0.4-0.8 ms at 10k VMAs here), a cost
//! of the fresh VMAs that whichever reader comes first pays.

#[path = "../tests/common/seccomp.rs"]
mod seccomp;
#[path = "support/stub.rs"]
mod stub;

use std::ffi::c_void;
use std::io::Read;
use std::process::Command;
use std::time::Instant;

fn main() {
    if let Ok(vmas) = std::env::var("DAXBENCH_COLD_CHILD") {
        child(vmas.parse().unwrap());
        return;
    }
    for var in ["DAXGUARD_MODE", "DAXGUARD_LOG", "DAXGUARD_LOOKUP", "DAXGUARD_STATS"] {
        assert!(std::env::var_os(var).is_none(), "unset {var} for this benchmark");
    }
    let runs: usize = std::env::var("DAXBENCH_COLD_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(31);
    let exe = std::env::current_exe().unwrap();
    println!(
        "| lookup | VMAs | first registration | second | warm (median) | read all of /proc/self/maps | first / read |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for lookup in ["query", "maps", "auto, no query"] {
        for vmas in [0usize, 10_000] {
            let mut samples: Vec<[f64; 5]> = (0..runs)
                .map(|_| {
                    let mut cmd = Command::new(&exe);
                    cmd.env("DAXBENCH_COLD_CHILD", vmas.to_string());
                    match lookup {
                        "auto, no query" => cmd.env("DAXBENCH_DENY_QUERY", "1"),
                        _ => cmd.env("DAXGUARD_LOOKUP", lookup),
                    };
                    let out = cmd.output().unwrap();
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert!(out.status.success(), "child: {text}{}", String::from_utf8_lossy(&out.stderr));
                    let line = text.lines().find(|l| l.starts_with("COLD ")).unwrap_or_else(|| panic!("{text}"));
                    let get =
                        |k: &str| -> f64 { line.split(' ').find_map(|w| w.strip_prefix(k)).unwrap().parse().unwrap() };
                    [get("vmas="), get("first_ns="), get("second_ns="), get("warm_ns="), get("maps_read_ns=")]
                })
                .collect();
            // The ratio per process, then its median: both sides from one process.
            let mut ratios: Vec<f64> = samples.iter().map(|s| s[1] / s[4]).collect();
            ratios.sort_by(f64::total_cmp);
            let med = |i: usize, s: &mut Vec<[f64; 5]>| {
                s.sort_by(|a, b| a[i].total_cmp(&b[i]));
                s[s.len() / 2][i]
            };
            let [count, first, second, warm, read] = [0, 1, 2, 3, 4].map(|i| med(i, &mut samples));
            println!(
                "| {lookup} | {count} | {} | {} | {} | {} | {:.2} |",
                human(first),
                human(second),
                human(warm),
                human(read),
                ratios[ratios.len() / 2]
            );
        }
    }
    println!("(medians over {runs} processes each)");
}

fn human(ns: f64) -> String {
    match ns {
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// One sample: grow to about `vmas` VMAs, then time the first registration,
/// the warm ones, and a full read of the maps.
fn child(vmas: usize) {
    let stub = stub::Stub::load();
    let page = 4096;
    // Every other page of the bulk PROT_READ (2 VMAs each); the registered
    // page sits above them all, so maps text is read past every one.
    let bulk = vmas / 2 * 2 + 1;
    // SAFETY: a fresh anonymous reservation of our own; only its last page is touched.
    let buf = unsafe {
        let r = libc::mmap(
            std::ptr::null_mut(),
            (bulk + 2) * page,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        assert_ne!(r, libc::MAP_FAILED);
        let r = r.cast::<u8>();
        for i in (1..bulk).step_by(2) {
            assert_eq!(libc::mprotect(r.add(i * page).cast(), page, libc::PROT_READ), 0);
        }
        let buf = r.add((bulk + 1) * page);
        assert_eq!(libc::mprotect(buf.cast(), page, libc::PROT_READ | libc::PROT_WRITE), 0);
        buf.write_volatile(1);
        buf.cast::<c_void>()
    };
    // Untimed, as regbench's own count: the kernel's first walk of fresh VMAs.
    read_maps();
    if std::env::var_os("DAXBENCH_DENY_QUERY").is_some() {
        seccomp::install_filter(true, false, false);
    }
    let mut pd = [0u64; 32];
    let pd = pd.as_mut_ptr().cast::<c_void>();
    let access = verbs_sys::IBV_ACCESS_LOCAL_WRITE;
    let reg = || {
        let t = Instant::now();
        // SAFETY: arguments as ibv_reg_mr(3) wants them; the stub ignores them.
        let mr = unsafe { stub::ibv_reg_mr_iova2(pd, buf, 4096, buf as u64, access) };
        let ns = t.elapsed().as_nanos() as f64;
        assert!(!mr.is_null(), "the shim must forward the stub's answer");
        ns
    };
    let before = stub.calls();
    let first = reg();
    let second = reg();
    assert_eq!(stub.calls(), before + 2, "the shim did not reach the stub");
    let warm_calls = if std::env::var("DAXGUARD_LOOKUP").as_deref() == Ok("maps") { 11 } else { 201 };
    let mut warm: Vec<f64> = (0..warm_calls).map(|_| reg()).collect();
    warm.sort_by(f64::total_cmp);
    let mut reads: Vec<f64> = (0..5).map(|_| read_maps().0).collect();
    reads.sort_by(f64::total_cmp);
    let (vmas, warm) = (read_maps().1, warm[warm.len() / 2]);
    println!("COLD vmas={vmas} first_ns={first} second_ns={second} warm_ns={warm} maps_read_ns={}", reads[2]);
}

/// `(ns, lines)`: one read of all of `/proc/self/maps` with a 64 KiB buffer.
fn read_maps() -> (f64, usize) {
    let mut buf = vec![0u8; 65536];
    let t = Instant::now();
    let mut f = std::fs::File::open("/proc/self/maps").unwrap();
    let mut lines = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
    (t.elapsed().as_nanos() as f64, lines)
}
