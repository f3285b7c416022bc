//! Builds `daxguard watch`'s BPF program: clang compiles
//! src/watch/watch.bpf.c (CO-RE, with the hand-written kernel types in
//! src/watch/kernel.h, so nothing depends on the build host's kernel), and
//! libbpf-cargo generates the Rust skeleton the loader includes
//! (`$OUT_DIR/watch.skel.rs`). Needs clang (any version with the BPF target
//! and CO-RE builtins: 10+); libbpf's headers come with libbpf-sys.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/watch/watch.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("watch.skel.rs");
    let clang = env::var_os("DAXGUARD_BPF_CLANG").unwrap_or_else(|| "clang".into());
    if let Err(e) = SkeletonBuilder::new()
        .source(SRC)
        .clang(&clang)
        .clang_args(["-Wall", "-Werror", "-Isrc/watch"])
        .build_and_generate(&out)
    {
        panic!("building {SRC} failed (is clang installed? DAXGUARD_BPF_CLANG names another): {e:#}");
    }
    for f in [SRC, "src/watch/watch.h", "src/watch/kernel.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=DAXGUARD_BPF_CLANG");
}
