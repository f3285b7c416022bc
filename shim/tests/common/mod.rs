//! What the host tests that run C programs under the shim share: building
//! the cdylib and the C programs once per test binary.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Built {
    /// `<target>/<profile>/libdaxguard.so`, with the `interpose` exports.
    pub shim: PathBuf,
    /// Where `make -C tests/c` put the C programs.
    pub c: PathBuf,
    /// The repository root.
    pub root: PathBuf,
}

/// Builds the cdylib and the C programs once per test run. `cargo test` puts
/// the cdylib only in `<target>/debug/deps/` (checked: it does not produce
/// `<target>/debug/libdaxguard.so`), and that copy is overwritten without
/// the `interpose` exports whenever the CLI is built. So `cargo build -p
/// daxguard` is run every time: a no-op when fresh, never a stale library.
pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        // The test binary is <target>/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target = profile_dir.parent().unwrap().to_path_buf();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev".to_string(),
            p => p.to_string(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "-p", "daxguard", "--profile", &profile])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo build -p daxguard failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let shim = profile_dir.join("libdaxguard.so");
        assert!(shim.is_file(), "{} missing after cargo build", shim.display());
        let c = target.join("c");
        let out = Command::new("make")
            .arg("-C")
            .arg(root.join("tests/c"))
            .arg(format!("OUT={}", c.display()))
            .arg(format!("SHIM_DIR={}", profile_dir.display()))
            .args(["all", "capi"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make -C tests/c failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Built { shim, c, root }
    })
}

/// `cmd.output()`, retried while exec answers `ETXTBSY`: a program the test
/// just copied may still be open for writing in a child another test thread
/// forked while the copy was written (until that child's own exec).
pub fn output(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r,
        }
    }
}
