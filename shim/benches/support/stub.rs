//! The stub `ibv_reg_mr_iova2` (stub.c) for the bench binaries that call the
//! shim's export: compiled with `cc` at start-up and loaded `RTLD_GLOBAL`, so
//! the shim's `dlvsym(RTLD_NEXT)` finds it as it would find libibverbs.

// Links the daxguard rlib, whose `ibv_reg_mr_iova2` export the extern block
// below names: a crate nothing else uses by path would not be linked.
extern crate daxguard as _;

use std::ffi::{CString, c_void};
use std::process::Command;

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
            let reg = libc::dlvsym(h, c"ibv_reg_mr_iova2".as_ptr(), c"IBVERBS_1.8".as_ptr());
            let calls = libc::dlsym(h, c"daxbench_stub_calls".as_ptr());
            assert!(!reg.is_null() && !calls.is_null(), "stub symbols missing");
            Stub { reg: std::mem::transmute::<*mut c_void, RegMrIova2>(reg), calls: calls as *const u64 }
        }
    }

    pub fn calls(&self) -> u64 {
        // SAFETY: a live global of the loaded stub; single-threaded benches.
        unsafe { self.calls.read_volatile() }
    }
}
