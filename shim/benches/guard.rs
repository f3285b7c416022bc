//! The whole per-registration cost of the shim in its default mode (enforce)
//! on 4 KiB of anonymous memory: the exported `ibv_reg_mr_iova2` (re-entry
//! guard, settings, judge on the PROCMAP_QUERY path, decision, forward) into a
//! do-nothing stub, against calling the stub directly.
//!
//! Its own process: the mode is read once, and must be the default here.

#[path = "support/stub.rs"]
mod stub;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;

fn main() {
    for var in ["DAXGUARD_MODE", "DAXGUARD_LOG", "DAXGUARD_LOOKUP", "DAXGUARD_STATS"] {
        assert!(std::env::var_os(var).is_none(), "unset {var} for this benchmark");
    }
    let stub = stub::Stub::load();
    let region = vec![0u8; 8192];
    let addr = region.as_ptr() as *mut std::ffi::c_void;
    let mut pd = [0u64; 32]; // the stub ignores it; enforce mode reads it only for ODP
    let pd = pd.as_mut_ptr().cast();
    let access = verbs_sys::IBV_ACCESS_LOCAL_WRITE;

    let before = stub.calls();
    // SAFETY: arguments as ibv_reg_mr(3) wants them; the stub ignores them.
    let mr = unsafe { stub::ibv_reg_mr_iova2(pd, addr, 4096, addr as u64, access) };
    assert!(!mr.is_null(), "anonymous memory must be forwarded");
    assert_eq!(stub.calls(), before + 1, "the shim did not reach the stub");

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("guard");
    g.sample_size(100).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let direct = stub.reg;
    g.bench_function("direct-stub", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { direct(black_box(pd), black_box(addr), 4096, addr as u64, access) })
    });
    g.bench_function("shim-export-enforce-anon-4k", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { stub::ibv_reg_mr_iova2(black_box(pd), black_box(addr), 4096, addr as u64, access) })
    });
    g.finish();
    c.final_summary();
}
