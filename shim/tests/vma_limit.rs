//! A process at its VMA limit (`vm.max_map_count`) pays no system call per
//! registration for fork detection (issue 17).
//!
//! The library marks its wipe-on-fork page when it is loaded, before the
//! program grows; marking later needs the kernel to split a VMA, which
//! fails at the limit, and the pid would then be asked on every call.
//! `tests/c/atlimit` grows itself to the limit (checking that a split now
//! fails) and registers 2,000 times under the shim and the stubbing spy;
//! strace counts the `getpid` calls.

use std::process::Command;

mod common;

use common::built;

const REGS: usize = 2000;

/// `(getpid calls, the program's ATLIMIT line)` for one run under strace.
fn getpids(fill: bool) -> (usize, String) {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let mut cmd = Command::new("strace");
    cmd.arg("-o").arg(&trace).args(["-e", "trace=getpid", "--"]).arg(b.c.join("atlimit"));
    if fill {
        cmd.arg("--fill");
    }
    let out = cmd
        .arg(REGS.to_string())
        .env_clear()
        .env("LD_PRELOAD", format!("{}:{}", b.shim.display(), b.c.join("libdaxspy.so").display()))
        .env("DAXSPY_STUB", "1")
        .output()
        .expect("strace (tests/steps.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "atlimit: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&trace).unwrap();
    (text.lines().filter(|l| l.starts_with("getpid(")).count(), stdout.trim().to_string())
}

#[test]
fn no_getpid_per_registration_at_the_vma_limit() {
    let (small, line) = getpids(false);
    assert_eq!(line, format!("ATLIMIT filled=0 split_fails=0 regs={REGS}"));
    let (full, line) = getpids(true);
    assert_eq!(line, format!("ATLIMIT filled=1 split_fails=1 regs={REGS}"), "the program must reach its limit");
    // The setup may ask once or twice (the audit record's pid); not per call.
    assert!(small < 5, "{small} getpid calls for {REGS} registrations in a small process");
    assert!(full <= small, "{full} getpid calls at the VMA limit, {small} in a small process");
}
