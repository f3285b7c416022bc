//! What `DAXGUARD_MODE=off` costs per registration: the shim's exported
//! `ibv_reg_mr_iova2` forwarding to a do-nothing stub, against calling the
//! stub directly through a function pointer (as the shim itself does).
//!
//! Its own process: the shim reads DAXGUARD_MODE once, at the first call.

#[path = "support/stub.rs"]
mod stub;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;

fn main() {
    // SAFETY: single-threaded, before anything else reads the environment.
    unsafe { std::env::set_var("DAXGUARD_MODE", "off") };
    let stub = stub::Stub::load();
    let region = vec![0u8; 8192];
    let addr = region.as_ptr() as *mut std::ffi::c_void;
    let mut pd = [0u64; 32]; // never dereferenced with mode off
    let pd = pd.as_mut_ptr().cast();
    let access = verbs_sys::IBV_ACCESS_LOCAL_WRITE;

    // The export really forwards to the stub, and says nothing.
    let before = stub.calls();
    // SAFETY: arguments as ibv_reg_mr(3) wants them; the stub ignores them.
    let mr = unsafe { stub::ibv_reg_mr_iova2(pd, addr, 4096, addr as u64, access) };
    assert!(!mr.is_null(), "mode off must forward the stub's answer");
    assert_eq!(stub.calls(), before + 1, "the shim did not reach the stub");

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("mode-off");
    g.sample_size(100).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let direct = stub.reg;
    g.bench_function("direct-stub", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { direct(black_box(pd), black_box(addr), 4096, addr as u64, access) })
    });
    g.bench_function("shim-export-off", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { stub::ibv_reg_mr_iova2(black_box(pd), black_box(addr), 4096, addr as u64, access) })
    });
    g.finish();
    c.final_summary();
}
