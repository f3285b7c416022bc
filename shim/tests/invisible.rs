//! A program that takes no long-term pin of fs-DAX memory cannot tell
//! that libdaxguard.so is loaded: `tests/c/keep.c` checks errno, the
//! signal mask, pending signals and dispositions, its descriptors
//! (numbers, files, `FD_CLOEXEC`, status flags, the next number), the
//! current directory, the umask and the locale around every kind of call
//! the shim interposes (verbs exports forwarded, failing, refused and
//! unjudged; `ioctl` and `syscall` on descriptors that are not V4L2
//! devices or rings; liburing and `syscall(SYS_io_uring_register)` on a
//! real ring), then again with stderr a pipe whose reader is gone.
//!
//! A refusal needs memory the shim refuses, and this host has no fs-DAX:
//! the program maps a file it then unlinks, in a user and mount namespace
//! (`unshare -U -r -m`) with a tmpfs over `/sys`, where the shim can
//! neither statx the mapped inode (`/proc/self/map_files` is refused
//! outside the initial user namespace) nor read the disk's DAX flag: it
//! cannot verify the file and refuses it, by default. Where `unshare -U`
//! is not permitted the refusal cases are skipped, and said so.

use std::process::{Command, Stdio};

mod common;
use common::built;

struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The namespace wrapper that makes a deleted file unverifiable, if it works here.
fn wrapper() -> Option<Vec<&'static str>> {
    let w = vec![
        "unshare",
        "-U",
        "-r",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"mount -t tmpfs none /sys && exec "$0" "$@""#,
    ];
    let ok = Command::new(w[0]).args(&w[1..]).arg("true").stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    ok.then_some(w)
}

/// Runs keep with `preload` and `env`, in the wrapper when there is one.
fn keep(preload: &str, env: &[(&str, &str)]) -> Ran {
    use std::os::unix::process::ExitStatusExt;
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let keep = b.c.join("keep");
    let wrapped = wrapper();
    let mut cmd = match &wrapped {
        Some(w) => {
            let mut c = Command::new(w[0]);
            c.args(&w[1..]).arg(&keep).arg("--unverified").arg(dir.path());
            c
        }
        None => {
            println!("note: unshare -U not permitted here: the refusal cases are skipped");
            Command::new(&keep)
        }
    };
    cmd.env_clear().stdin(Stdio::null()).env("LD_PRELOAD", preload);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let ran = Ran {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let failed: Vec<&str> = ran.stdout.lines().filter(|l| l.contains(" FAIL")).collect();
    assert!(failed.is_empty(), "{}\nstderr:\n{}", failed.join("\n"), ran.stderr);
    assert_eq!((ran.code, ran.signal), (Some(0), None), "keep:\n{}\nstderr:\n{}", ran.stdout, ran.stderr);
    let summary = ran.stdout.lines().last().unwrap_or_default();
    println!("{preload}: {summary}; {} skipped", ran.stdout.lines().filter(|l| l.starts_with("SKIP ")).count());
    if wrapped.is_some() {
        assert!(!ran.stdout.contains("SKIP "), "nothing skipped in the namespace:\n{}", ran.stdout);
    }
    ran
}

fn judged(stdout: &str) -> usize {
    stdout.lines().find_map(|l| l.strip_prefix("JUDGED ")).unwrap().parse().unwrap()
}

fn spy() -> String {
    built().c.join("libdaxspy.so").display().to_string()
}

fn shim_and_spy() -> String {
    format!("{}:{}", built().shim.display(), spy())
}

/// The checks themselves hold without daxguard (and see every change they claim to).
#[test]
fn every_check_holds_without_the_shim() {
    let r = keep(&spy(), &[]);
    assert!(r.stdout.contains("SHIM absent"));
    assert_eq!(judged(&r.stdout), 0);
    assert!(!r.stderr.contains("daxguard"), "{}", r.stderr);
}

/// Under the shim, default mode: every check holds, refusals included, and
/// the program survives a refusal message written to a pipe nobody reads.
#[test]
fn nothing_changes_under_the_shim() {
    let r = keep(&shim_and_spy(), &[]);
    assert!(r.stdout.contains("SHIM loaded"));
    assert!(judged(&r.stdout) > 0);
    if wrapper().is_some() {
        assert!(r.stderr.lines().any(|l| l.starts_with("daxguard: refused ")), "{}", r.stderr);
    }
}

/// With an audit log: the same, the log's descriptor is not where the
/// program's next file goes, and one record per call that reached the guard.
#[test]
fn nothing_changes_with_an_audit_log_and_each_judged_call_has_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let r = keep(&shim_and_spy(), &[("DAXGUARD_LOG", log.to_str().unwrap())]);
    let records = std::fs::read_to_string(&log).unwrap();
    assert_eq!(records.lines().count(), judged(&r.stdout), "records:\n{records}");
    assert!(records.lines().all(|l| l.starts_with("{\"time\":") && l.ends_with('}')));
    if wrapper().is_some() {
        let refused = records.lines().filter(|l| l.contains("\"action\":\"refused\"")).count();
        assert!(refused > 0, "{records}");
    }
}

/// The quiet mode writes nothing, and keeps everything too.
#[test]
fn nothing_changes_when_quiet() {
    let r = keep(&shim_and_spy(), &[("DAXGUARD_QUIET", "1")]);
    assert_eq!(r.stderr, "", "DAXGUARD_QUIET=1");
}
