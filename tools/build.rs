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
    multiarch();
}

/// Debian's multiarch tuple for the target (`x86_64-linux-gnu`), for the
/// private library directory `/usr/lib/<tuple>/daxguard/` that `daxguard run`
/// searches and `enable` writes. `DEB_HOST_MULTIARCH` (set by Debian's build
/// tools) wins; otherwise it is derived from the Rust target the way
/// dpkg-architecture names it.
fn multiarch() {
    println!("cargo:rerun-if-env-changed=DEB_HOST_MULTIARCH");
    let tuple = env::var("DEB_HOST_MULTIARCH").ok().filter(|t| !t.is_empty()).unwrap_or_else(|| {
        let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
        let abi = env::var("CARGO_CFG_TARGET_ABI").unwrap_or_default();
        match (arch.as_str(), abi.as_str()) {
            ("x86", _) => "i386-linux-gnu".to_string(),
            ("arm", a) if a.ends_with("hf") => "arm-linux-gnueabihf".to_string(),
            ("arm", _) => "arm-linux-gnueabi".to_string(),
            ("powerpc64", _) if env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() == Ok("little") => {
                "powerpc64le-linux-gnu".to_string()
            }
            ("loongarch64", _) => "loongarch64-linux-gnu".to_string(),
            (a, _) => format!("{a}-linux-gnu"),
        }
    });
    println!("cargo:rustc-env=DAXGUARD_MULTIARCH={tuple}");
}
