//! The stub `ibv_reg_mr_iova2` (stub.c) for the bench binaries that call the
//! shim's export: compiled with `cc` at start-up and loaded `RTLD_GLOBAL`, so
//! the shim's `dlvsym(RTLD_NEXT)` finds it as it would find libibverbs.

// Links the daxguard rlib, whose `ibv_reg_mr_iova2` export the extern block
// below names: a crate nothing else uses by path would not be linked.
extern crate daxguard as _;

use std::ffi::{CString, c_void};
use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use criterion::Criterion;

pub type RegMrIova2 = unsafe extern "C" fn(*mut c_void, *mut c_void, usize, u64, u32) -> *mut c_void;

unsafe extern "C" {
    /// The shim's export, from the daxguard rlib (feature `interpose`).
    pub fn ibv_reg_mr_iova2(pd: *mut c_void, addr: *mut c_void, len: usize, iova: u64, access: u32) -> *mut c_void;
}

pub struct Stub {
    /// The stub itself, for the direct-call baseline (not every bench uses it).
    #[allow(dead_code)]
    pub reg: RegMrIova2,
    calls: *const u64,
}

impl Stub {
    /// Builds and loads the stub. Call before the first registration: the
    /// shim caches the first function it finds.
    pub fn load() -> Stub {
        // DAXBENCH_STUB: a stub built beforehand, for machines without a
        // compiler (the bench binary copied into the test guest).
        let out = std::env::var("DAXBENCH_STUB").unwrap_or_else(|_| {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/support");
            let out = concat!(env!("CARGO_TARGET_TMPDIR"), "/libdaxbench-stub.so");
            let st = Command::new("cc")
                .args(["-O2", "-fPIC", "-shared", "-o", out])
                .arg(format!("-Wl,--version-script={dir}/stub.map"))
                .arg(format!("{dir}/stub.c"))
                .status()
                .expect("cc (needed to build the bench stub; or set DAXBENCH_STUB)");
            assert!(st.success(), "cc failed building {out}");
            out.to_string()
        });
        let path = CString::new(out.as_str()).unwrap();
        // SAFETY: dlopen/dlvsym/dlsym with NUL-terminated names; the symbols
        // have the types stub.c gives them.
        unsafe {
            let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            assert!(!h.is_null(), "dlopen {out}");
            // The stub's own function, not dlvsym("ibv_reg_mr_iova2"): the
            // daxguard rlib linked here wraps dlvsym and would answer that
            // with its export (stub.c).
            let reg = libc::dlsym(h, c"daxbench_stub_reg".as_ptr()) as *const *mut c_void;
            let calls = libc::dlsym(h, c"daxbench_stub_calls".as_ptr());
            assert!(!reg.is_null() && !calls.is_null(), "stub symbols missing");
            Stub { reg: std::mem::transmute::<*mut c_void, RegMrIova2>(*reg), calls: calls as *const u64 }
        }
    }

    pub fn calls(&self) -> u64 {
        // SAFETY: a live global of the loaded stub; single-threaded benches.
        unsafe { self.calls.read_volatile() }
    }
}

/// Criterion group `group`: the stub called directly through a pointer (as
/// the shim calls it), against the shim's export into the stub (`export_id`)
/// on 4 KiB of heap memory, after checking that a call through the shim
/// reaches the stub and returns its non-NULL answer. The shim reads its
/// settings at that first call: set the environment before.
#[allow(dead_code)] // memory.rs loads the stub without this
pub fn export_against_direct(group: &str, export_id: &str) {
    export_against_direct_with(&Stub::load(), group, export_id);
}

/// [`export_against_direct`] with a stub already loaded.
#[allow(dead_code)] // memory.rs loads the stub without this
pub fn export_against_direct_with(stub: &Stub, group: &str, export_id: &str) {
    let region = vec![0u8; 8192];
    let addr = region.as_ptr() as *mut c_void;
    let mut pd = [0u64; 32]; // the stub ignores it; the shim reads it only for ODP
    let pd = pd.as_mut_ptr().cast();
    let access = verbs_sys::IBV_ACCESS_LOCAL_WRITE;

    assert_ne!(
        stub.reg as *const () as usize, ibv_reg_mr_iova2 as *const () as usize,
        "the baseline must be the stub, not the export"
    );
    let before = stub.calls();
    // SAFETY: arguments as ibv_reg_mr(3) wants them; the stub ignores them.
    let mr = unsafe { ibv_reg_mr_iova2(pd, addr, 4096, addr as u64, access) };
    assert!(!mr.is_null(), "the shim must forward the stub's answer");
    assert_eq!(stub.calls(), before + 1, "the shim did not reach the stub");

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group(group);
    g.sample_size(100).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let direct = stub.reg;
    g.bench_function("direct-stub", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { direct(black_box(pd), black_box(addr), 4096, addr as u64, access) })
    });
    g.bench_function(export_id, |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { ibv_reg_mr_iova2(black_box(pd), black_box(addr), 4096, addr as u64, access) })
    });
    g.finish();
    c.final_summary();
}

/// Grows the process to its VMA limit (`vm.max_map_count`): a `PROT_NONE`
/// reservation with every other page made `PROT_READ` until `mprotect`
/// fails with `ENOMEM`, as `tests/c/atlimit.c` does. Returns whether a
/// split of a fresh anonymous VMA now fails (it must: that is the limit).
#[allow(dead_code)] // only the guard bench uses it
pub fn fill_to_vma_limit() -> bool {
    let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    let page = 4096;
    // SAFETY: fresh anonymous mappings of our own, never touched; their
    // protections are ours to change.
    unsafe {
        let r = libc::mmap(
            std::ptr::null_mut(),
            max * page,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        assert_ne!(r, libc::MAP_FAILED, "reservation");
        let r = r.cast::<u8>();
        for i in (1..max).step_by(2) {
            if libc::mprotect(r.add(i * page).cast(), page, libc::PROT_READ) != 0 {
                break;
            }
        }
        let p = libc::mmap(
            std::ptr::null_mut(),
            3 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return true;
        }
        let fails = libc::madvise(p.cast::<u8>().add(page).cast(), page, libc::MADV_WIPEONFORK) != 0;
        libc::munmap(p, 3 * page);
        fails
    }
}

/// Timing by hand for where criterion cannot run (at the VMA limit): the
/// stub directly and through the shim's export, alternating rounds of
/// `calls` calls each on 4 KiB, into buffers allocated beforehand.
#[allow(dead_code)] // only the guard bench uses it
pub struct Rounds {
    direct: Vec<f64>,
    export: Vec<f64>,
    calls: u32,
    region: Vec<u8>,
}

#[allow(dead_code)]
impl Rounds {
    pub fn new(count: usize, calls: u32) -> Rounds {
        Rounds { direct: Vec::with_capacity(count), export: Vec::with_capacity(count), calls, region: vec![0u8; 8192] }
    }

    pub fn count(&self) -> usize {
        self.direct.capacity()
    }

    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// The median ns per call of each side: `(direct, export)`.
    pub fn run(&mut self, stub: &Stub) -> (f64, f64) {
        let addr = self.region.as_mut_ptr().cast::<c_void>();
        let mut pd = [0u64; 32];
        let pd = pd.as_mut_ptr().cast::<c_void>();
        let access = verbs_sys::IBV_ACCESS_LOCAL_WRITE;
        let direct = stub.reg;
        let time = |f: &dyn Fn()| {
            let t = std::time::Instant::now();
            for _ in 0..self.calls {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(self.calls)
        };
        let n = self.count();
        // The vectors allocated before the process was filled.
        let (mut d, mut e) = (std::mem::take(&mut self.direct), std::mem::take(&mut self.export));
        for _ in 0..n {
            // SAFETY: arguments as ibv_reg_mr(3) wants them; the stub ignores them.
            d.push(time(&|| unsafe {
                black_box(direct(black_box(pd), black_box(addr), 4096, addr as u64, access));
            }));
            // SAFETY: as above.
            e.push(time(&|| unsafe {
                black_box(ibv_reg_mr_iova2(black_box(pd), black_box(addr), 4096, addr as u64, access));
            }));
        }
        (self.direct, self.export) = (d, e);
        (median(&mut self.direct), median(&mut self.export))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
