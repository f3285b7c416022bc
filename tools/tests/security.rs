//! `check --pid` and `scan --pid` reveal nothing the caller could not read
//! itself. The caller is uid 65534 (`setpriv --reuid=65534 --regid=65534
//! --clear-groups`, no capabilities); the targets are a root process, another
//! user's process, and a process of the caller's own uid that made itself
//! non-dumpable (its /proc files then belong to root). A process of its own
//! that it may read is the control: shown, but judged only with what the
//! caller can reach (no map_files, which needs CAP_SYS_ADMIN).
//!
//! Needs root (to become other users); as another user it only checks the
//! root-process case against pid 1.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

const HOLDER_ENV: &str = "DAXGUARD_SECURITY_HOLDER";
const NOBODY: &str = "65534";

/// In holder mode: map a tmpfs file (and one unlinked after mapping), print
/// `READY <pid> <addr> <visible path>`, then hold until stdin closes.
/// `HOLDER_ENV=nondumpable` first calls prctl(PR_SET_DUMPABLE, 0).
#[test]
fn holder() {
    let Ok(mode) = std::env::var(HOLDER_ENV) else { return };
    use std::os::fd::AsRawFd;
    if mode == "nondumpable" {
        // SAFETY: prctl with constant arguments.
        assert_eq!(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
    let pid = std::process::id();
    let map = |name: &str| {
        let path = shm().join(format!("daxguard-security-{pid}-{name}"));
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.set_len(8192).unwrap();
        // SAFETY: a fresh shared mapping of our own file.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 8192, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
        assert_ne!(p, libc::MAP_FAILED);
        (path, p as usize)
    };
    let (visible, addr) = map("visible");
    let (deleted, _) = map("deleted");
    std::fs::remove_file(&deleted).unwrap();
    println!("READY {pid} {addr:#x} {}", visible.display());
    let _ = std::io::stdin().read_line(&mut String::new());
    let _ = std::fs::remove_file(&visible);
}

/// A holder running as `uid` (via setpriv); killed and reaped on drop.
struct Holder {
    child: Child,
    /// Kept open: the holder still writes the test harness's last lines.
    _out: BufReader<std::process::ChildStdout>,
    pid: String,
    addr: String,
    path: String,
}

impl Holder {
    fn start(uid: &str, mode: &str) -> Holder {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()])
            .arg(exe)
            .args(["--exact", "holder", "--nocapture", "--test-threads=1"])
            .env(HOLDER_ENV, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("setpriv");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("READY ") {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "holder ended before READY");
        }
        let ready = line.split_once("READY ").unwrap().1.trim_end().to_string();
        let mut w = ready.splitn(3, ' ');
        let (pid, addr, path) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
        Holder { child, _out: out, pid: pid.into(), addr: addr.into(), path: path.into() }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // lets it clean up its file
        let _ = self.child.wait();
    }
}

/// `daxguard ARGS` as uid 65534 with no groups and no capabilities (as root),
/// or as ourselves when not root.
fn as_nobody(args: &[&str]) -> Ran {
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    c.args(args);
    for v in ["DAXGUARD_LIB", "DAXGUARD_IBVERBS", "DAXGUARD_MODE", "DAXGUARD_LOG", "LD_PRELOAD", "NO_COLOR"] {
        c.env_remove(v);
    }
    ran(c.output().expect("run daxguard"))
}

/// Every way of asking about `pid` fails with the one-line permission error,
/// and nothing about the process's memory is printed.
fn assert_denied(pid: &str, addr: &str, secrets: &[&str]) {
    for json in [false, true] {
        let mut asks: Vec<Vec<&str>> = vec![vec!["check", "--pid", pid, addr, "8K"], vec!["scan", "--pid", pid]];
        asks.push(vec!["scan", "--pid", pid, "--only-dax"]);
        for mut a in asks {
            if json {
                a.insert(0, "--json");
            }
            let r = as_nobody(&a);
            assert_one_line_error(&r, "permission denied");
            for s in secrets {
                assert!(!r.stderr.contains(s), "{a:?} revealed {s:?}: {}", r.stderr);
            }
        }
    }
}

fn need_root_and_setpriv() -> bool {
    if !is_root() {
        println!("skipped: needs root to run processes as other users");
        return false;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        println!("skipped: setpriv (util-linux) not installed");
        return false;
    }
    true
}

#[test]
fn a_root_process_is_not_revealed() {
    // As root: a sleep of our own; otherwise init.
    let mut sleeper = is_root().then(|| Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.as_ref().map_or("1".to_string(), |c| c.id().to_string());
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let first = maps.split('-').next().unwrap_or("7f").to_string();
    assert_denied(&pid, "0x1000", &["/usr/", "[heap]", "[stack]", &first]);
    if let Some(c) = sleeper.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn another_users_process_is_not_revealed() {
    if !need_root_and_setpriv() {
        return;
    }
    let h = Holder::start("12345", "dumpable");
    assert_denied(&h.pid, &h.addr, &[&h.path, "daxguard-security", "/dev/shm"]);
}

#[test]
fn a_non_dumpable_process_of_the_same_user_is_not_revealed() {
    if !need_root_and_setpriv() {
        return;
    }
    let h = Holder::start(NOBODY, "nondumpable");
    assert_denied(&h.pid, &h.addr, &[&h.path, "daxguard-security", "/dev/shm"]);
}

/// The control: the caller's own, dumpable process is shown; the unlinked
/// file is judged from its mount, since map_files is not the caller's to open.
#[test]
fn the_callers_own_process_is_shown_with_the_callers_rights_only() {
    if !need_root_and_setpriv() {
        return;
    }
    let h = Holder::start(NOBODY, "dumpable");
    let r = as_nobody(&["--json", "check", "--pid", &h.pid, &h.addr, "8K"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["pieces"][0]["file"]["path"], h.path.as_str(), "{v}");
    assert_eq!(v["pieces"][0]["file"]["via"], "path", "{v}");

    let r = as_nobody(&["--json", "scan", "--pid", &h.pid]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let files: Vec<&Value> = v["vmas"].as_array().unwrap().iter().filter(|p| p["file"].is_object()).collect();
    let deleted = files
        .iter()
        .find(|p| p["file"]["path"].as_str().is_some_and(|s| s.contains("-deleted (deleted)")))
        .unwrap_or_else(|| panic!("no deleted file in {v}"));
    assert_eq!(deleted["file"]["evidence"], "fstype_cannot_dax", "{deleted}");
    assert!(deleted["file"]["statx_dax"].is_null(), "statx through map_files needs CAP_SYS_ADMIN: {deleted}");
    for p in &files {
        assert_ne!(p["file"]["via"], "map_files", "judged through map_files without the right to: {p}");
    }
}
