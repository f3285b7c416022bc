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
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/support");
        let out = concat!(env!("CARGO_TARGET_TMPDIR"), "/libdaxbench-stub.so");
        let st = Command::new("cc")
            .args(["-O2", "-fPIC", "-shared", "-o", out])
            .arg(format!("-Wl,--version-script={dir}/stub.map"))
            .arg(format!("{dir}/stub.c"))
            .status()
            .expect("cc (needed to build the bench stub)");
        assert!(st.success(), "cc failed building {out}");
        let path = CString::new(out).unwrap();
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
    let stub = Stub::load();
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
