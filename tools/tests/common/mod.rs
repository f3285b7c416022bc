//! Shared by the integration tests: run the built `daxguard` binary and look
//! at what it printed.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_daxguard");

/// `daxguard ARGS` with a clean daxguard environment.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for v in ["DAXGUARD_LIB", "DAXGUARD_IBVERBS", "DAXGUARD_MODE", "DAXGUARD_LOG", "LD_PRELOAD", "NO_COLOR"] {
        c.env_remove(v);
    }
    c
}

pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn ran(o: Output) -> Ran {
    Ran {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn daxguard(args: &[&str]) -> Ran {
    ran(cmd(args).output().expect("run daxguard"))
}

/// Runs with --json and parses stdout.
pub fn daxguard_json(args: &[&str]) -> (serde_json::Value, Option<i32>) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = daxguard(&all);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("daxguard {args:?}: not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    (v, r.code)
}

/// The bad-input contract: exit 2, nothing on stdout, exactly one line on
/// stderr starting `daxguard: `, no panic or backtrace.
pub fn assert_one_line_error(r: &Ran, want: &str) {
    assert_eq!(r.code, Some(2), "exit status; stderr: {}", r.stderr);
    assert_eq!(r.stdout, "", "nothing on stdout");
    assert!(r.stderr.ends_with('\n'), "stderr ends its line: {:?}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "one line on stderr: {:?}", r.stderr);
    assert!(r.stderr.starts_with("daxguard: "), "prefix: {:?}", r.stderr);
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"), "{:?}", r.stderr);
    assert!(r.stderr.contains(want), "stderr {:?} should mention {want:?}", r.stderr);
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh path under `dir` (tmpfs: /dev/shm; ext4 here: the target's tmp dir).
pub fn fresh(dir: &Path, what: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("daxguard-test-{}-{n}-{what}", std::process::id()))
}

/// A file with `len` bytes that removes itself.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(dir: &Path, what: &str, len: usize) -> Self {
        let p = fresh(dir, what);
        std::fs::write(&p, vec![0x5a; len]).unwrap();
        TempFile(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

pub fn target_tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

pub fn shm() -> PathBuf {
    PathBuf::from("/dev/shm")
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}
