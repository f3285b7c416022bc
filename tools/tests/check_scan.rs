//! `check` and `scan` on this host's real files and processes: tmpfs, ext4,
//! /dev/zero, and a helper child holding anonymous, memfd, tmpfs, ext4 and
//! /dev/zero mappings (this test binary itself, re-run in "child mode").

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

const CHILD_ENV: &str = "DAXGUARD_TEST_CHILD";

/// In child mode: map one of each kind, print `MAP name addr len` lines,
/// `READY`, then hold the mappings until stdin closes.
#[test]
fn helper_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let page = 4096usize;
    let map = |len: usize, prot: i32, flags: i32, fd: i32| -> usize {
        // SAFETY: a fresh mapping; nothing existing is touched.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        assert_ne!(p, libc::MAP_FAILED);
        p as usize
    };
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = map(16 * page, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
    // SAFETY: NUL-terminated name; the fd stays open for the child's life.
    let memfd = unsafe { libc::memfd_create(c"daxguard-test".as_ptr(), 0) };
    assert!(memfd >= 0);
    // SAFETY: our own descriptor.
    assert_eq!(unsafe { libc::ftruncate(memfd, 16 * 4096) }, 0);
    let memfd_map = map(16 * page, rw, libc::MAP_SHARED, memfd);
    let file_map = |dir: std::path::PathBuf, what: &str| {
        use std::os::fd::AsRawFd;
        let t = TempFile::new(&dir, what, 16 * page);
        let f = std::fs::File::open(&t.0).unwrap();
        let addr = map(16 * page, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd());
        (t, addr)
    };
    let (tmpfs_file, tmpfs_map) = file_map(shm(), "child-tmpfs");
    let (ext4_file, ext4_map) = file_map(target_tmp(), "child-ext4");
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let zero_map = {
        use std::os::fd::AsRawFd;
        map(4 * page, libc::PROT_READ, libc::MAP_SHARED, zero.as_raw_fd())
    };
    // Three pages with the middle one unmapped: a hole.
    let hole = map(3 * page, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
    // SAFETY: the middle page of our own mapping.
    assert_eq!(unsafe { libc::munmap((hole + page) as *mut libc::c_void, page) }, 0);
    for (name, addr, len) in [
        ("anon", anon, 16 * page),
        ("memfd", memfd_map, 16 * page),
        ("tmpfs", tmpfs_map, 16 * page),
        ("ext4", ext4_map, 16 * page),
        ("zero", zero_map, 4 * page),
        ("hole", hole, 3 * page),
    ] {
        println!("MAP {name} {addr:#x} {len}");
    }
    println!("FILE tmpfs {}", tmpfs_file.path());
    println!("FILE ext4 {}", ext4_file.path());
    println!("READY");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// The helper child; stopped (stdin closed, so it cleans up its files) when dropped.
struct Helper {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    maps: HashMap<String, (String, u64)>,
    files: HashMap<String, String>,
}

impl Helper {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut maps, mut files) = (HashMap::new(), HashMap::new());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while {
            line.clear();
            out.read_line(&mut line).unwrap() > 0
        } {
            // The harness may print "test helper_child ... " on the same line first.
            let w: Vec<&str> = line.split_whitespace().collect();
            let at = w.iter().position(|t| ["MAP", "FILE", "READY"].contains(t)).unwrap_or(w.len());
            match &w[at..] {
                ["MAP", name, addr, len] => {
                    maps.insert(name.to_string(), (addr.to_string(), len.parse().unwrap()));
                }
                ["FILE", name, path] => {
                    files.insert(name.to_string(), path.to_string());
                }
                ["READY"] => break,
                _ => {}
            }
        }
        assert_eq!(maps.len(), 6, "child reported its mappings");
        Helper { child, out, maps, files }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn check(&self, name: &str) -> (Value, Option<i32>) {
        let (addr, len) = &self.maps[name];
        daxguard_json(&["check", "--pid", &self.pid(), addr, &len.to_string()])
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.out.read_to_end(&mut Vec::new());
        let _ = self.child.wait();
        for f in self.files.values() {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn only_piece(v: &Value) -> &Value {
    let pieces = v["pieces"].as_array().unwrap();
    assert_eq!(pieces.len(), 1, "one piece: {v:#}");
    &pieces[0]
}

#[test]
fn check_pid_sees_each_kind_in_the_child() {
    let h = Helper::start();

    let (v, code) = h.check("anon");
    assert_eq!(code, Some(0));
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["registrable"], true);
    assert_eq!(v["target"]["pid"].as_i64(), Some(i64::from(h.child.id())));
    assert_eq!(only_piece(&v)["kind"], "anonymous");

    let (v, code) = h.check("memfd");
    assert_eq!(code, Some(0));
    let p = only_piece(&v);
    assert_eq!(p["kind"], "file");
    assert_eq!(p["file"]["evidence"], "shared_memory");
    assert!(p["file"]["path"].as_str().unwrap().starts_with("/memfd:daxguard-test"), "{p:#}");

    let (v, code) = h.check("tmpfs");
    assert_eq!(code, Some(0));
    let f = &only_piece(&v)["file"];
    assert_eq!(f["path"], h.files["tmpfs"].as_str());
    assert_eq!(f["mount"]["fstype"], "tmpfs");
    assert_eq!(f["device_dax"], false);
    assert_eq!(f["block_device_dax"], Value::Null, "tmpfs has no block device");

    let (v, code) = h.check("ext4");
    assert_eq!(code, Some(0));
    let f = &only_piece(&v)["file"];
    assert_eq!(f["path"], h.files["ext4"].as_str());
    assert_eq!(f["evidence"], "statx");
    assert_eq!(f["statx_dax"], false);
    assert!(f["mount"]["fstype"].is_string());

    let (v, code) = h.check("zero");
    assert_eq!(code, Some(0));
    assert_eq!(only_piece(&v)["kind"], "anonymous", "a shared /dev/zero mapping is anonymous memory");

    // A hole in the middle: not registrable (EFAULT), reported, exit 2.
    let (v, code) = h.check("hole");
    assert_eq!(code, Some(2));
    assert_eq!(v["registrable"], false);
    assert_eq!(v["unmapped_bytes"], 4096);
    let kinds: Vec<&str> = v["pieces"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["anonymous", "hole", "anonymous"]);
}

#[test]
fn check_pid_human_output_names_the_file_and_mount() {
    let h = Helper::start();
    let (addr, len) = &h.maps["tmpfs"];
    let r = daxguard(&["check", "--pid", &h.pid(), addr, &len.to_string()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let first = r.stdout.lines().next().unwrap();
    assert!(first.starts_with("registrable"), "{first}");
    assert!(r.stdout.contains(&h.files["tmpfs"]));
    assert!(r.stdout.contains("fs-DAX: no (statx STATX_ATTR_DAX)"), "{}", r.stdout);
    assert!(r.stdout.contains("filesystem: tmpfs on tmpfs mounted at /dev/shm"), "{}", r.stdout);
    assert!(r.stdout.contains("device-DAX: no"));
    assert!(!r.stdout.contains('\x1b'), "no colours when stdout is not a terminal");
}

#[test]
fn scan_pid_lists_every_mapping_of_the_child() {
    let h = Helper::start();
    let (v, code) = daxguard_json(&["scan", "--pid", &h.pid()]);
    assert_eq!(code, Some(0));
    assert_eq!(v["command"], "scan");
    assert_eq!(v["pid"].as_i64(), Some(i64::from(h.child.id())));
    let vmas = v["vmas"].as_array().unwrap();
    let by_start: HashMap<&str, &Value> = vmas.iter().map(|m| (m["start"].as_str().unwrap(), m)).collect();
    for (name, kind) in
        [("anon", "anonymous"), ("memfd", "file"), ("tmpfs", "file"), ("ext4", "file"), ("zero", "anonymous")]
    {
        let m = by_start.get(h.maps[name].0.as_str()).unwrap_or_else(|| panic!("{name} not in scan"));
        assert_eq!(m["kind"], kind, "{name}: {m:#}");
    }
    assert!(vmas.iter().all(|m| m["kind"] != "hole"), "gaps are not VMAs");
    let s = &v["summary"];
    assert_eq!(s["vmas"].as_u64(), Some(vmas.len() as u64));
    assert_eq!(s["fsdax_vmas"], 0);
    assert_eq!(s["fsdax_bytes"], 0);

    let (v, code) = daxguard_json(&["scan", "--pid", &h.pid(), "--only-dax"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["vmas"].as_array().unwrap().len(), 0, "nothing DAX on this host");
    assert_eq!(v["summary"]["vmas"].as_u64(), s["vmas"].as_u64(), "the summary still counts everything");

    let r = daxguard(&["scan", "--pid", &h.pid()]);
    assert_eq!(r.code, Some(0));
    let last = r.stdout.lines().last().unwrap();
    assert!(last.starts_with("summary: 0 fs-DAX VMAs (0 B)"), "{last}");
    assert!(r.stdout.contains("/memfd:daxguard-test"));
}

#[test]
fn scan_without_pid_scans_itself() {
    let (v, code) = daxguard_json(&["scan"]);
    assert_eq!(code, Some(0));
    let vmas = v["vmas"].as_array().unwrap();
    assert!(vmas.iter().any(|m| m["label"] == "[stack]"), "{v:#}");
    assert!(vmas.iter().any(|m| m["file"]["path"].as_str().is_some_and(|p| p.ends_with("/daxguard"))));
}

#[test]
fn check_tmpfs_file() {
    let f = TempFile::new(&shm(), "tmpfs", 10000);
    let (v, code) = daxguard_json(&["check", f.path()]);
    assert_eq!(code, Some(0));
    assert_eq!(v["target"]["path"], f.path());
    assert_eq!(v["target"]["source"], "file");
    assert_eq!(v["target"]["len"], 10000, "default: the whole file");
    let p = only_piece(&v);
    assert_eq!(p["len"], 12288, "whole pages");
    assert_eq!(p["file"]["mount"]["fstype"], "tmpfs");
    assert_eq!(p["file"]["mount"]["mount_point"], "/dev/shm");
}

#[test]
fn check_ext4_file_with_offset_and_len() {
    let f = TempFile::new(&target_tmp(), "ext4", 5 << 20);
    let (v, code) = daxguard_json(&["check", "--offset", "1M", "--len", "2M", f.path()]);
    assert_eq!(code, Some(0));
    assert_eq!(v["target"]["offset"], 1 << 20);
    assert_eq!(v["target"]["len"], 2 << 20);
    let file = &only_piece(&v)["file"];
    assert_eq!(file["evidence"], "statx");
    assert_eq!(file["statx_dax"], false);
    // The target dir's filesystem, whatever it is here, with its mount.
    assert!(file["mount"]["mount_point"].as_str().unwrap().starts_with('/'));

    let r = daxguard(&["check", "--offset", "0x1001", "--len", "100", f.path()]);
    assert_eq!(r.code, Some(0), "an unaligned offset is fine: {}", r.stderr);
    assert!(r.stdout.contains("offset 4097, 100 B"), "{}", r.stdout);
    assert!(r.stdout.contains("block device DAX-capable: "), "{}", r.stdout);
}

#[test]
fn check_dev_zero() {
    let (v, code) = daxguard_json(&["check", "/dev/zero"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["target"]["source"], "dev_zero");
    assert_eq!(only_piece(&v)["kind"], "anonymous");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let empty = TempFile::new(&target_tmp(), "empty", 0);
    let small = TempFile::new(&target_tmp(), "small", 8192);
    let dir = fresh(&target_tmp(), "dir");
    std::fs::create_dir(&dir).unwrap();
    let dir = TempFile(dir);
    let fifo = TempFile(fresh(&target_tmp(), "fifo"));
    let c_fifo = std::ffi::CString::new(fifo.path()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let cases: &[(&[&str], &str)] = &[
        (&["check", "/nonexistent/daxguard-test"], "No such file or directory"),
        (&["check", dir.path()], "is a directory"),
        (&["check", empty.path()], "is empty"),
        (&["check", "--offset", "8192", small.path()], "past the end"),
        (&["check", "--offset", "4096", "--len", "8K", small.path()], "past the end"),
        (&["check", "--len", "0", small.path()], "greater than 0"),
        (&["check", "--len", "4X", small.path()], "malformed size"),
        (&["check", "/dev/null"], "not device-DAX"),
        (&["check", fifo.path()], "not a regular file or a device"),
        (&["--json", "check", empty.path()], "is empty"),
        (&["check", "--json", "--offset", "1G", small.path()], "past the end"),
        (&["check", "--pid", "1", "0xzz", "4096"], "malformed address '0xzz'"),
        (&["check", "--pid", "1", "12q", "4096"], "malformed address"),
        (&["check", "--pid", "1", "0x1000"], "give ADDR and LEN"),
        (&["check", "--pid", "1", "0x1000", "0"], "greater than 0"),
        (&["check", "--pid", "x", "0x1000", "4K"], "malformed PID"),
        (&["check", "--pid", "1", "0xffffffffffffffff", "8K"], "overflows"),
        (&["scan", "--pid", "0"], "malformed PID"),
        (&["check"], "required"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&["check", "--bogus", small.path()], "--bogus"),
    ];
    for (args, want) in cases {
        let r = daxguard(args);
        assert_one_line_error(&r, want);
    }
}

#[test]
fn bad_input_writes_nothing_anywhere() {
    let cwd = fresh(&target_tmp(), "cwd");
    std::fs::create_dir(&cwd).unwrap();
    for args in [
        &["check", "missing"][..],
        &["check", "."],
        &["scan", "--pid", "999999999"],
        &["run", "--lib", "x.so", "--", "true"],
    ] {
        let r = common::ran(cmd(args).current_dir(&cwd).output().unwrap());
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
    }
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "no files left behind");
    std::fs::remove_dir(&cwd).unwrap();
}

#[test]
fn a_pid_that_is_gone() {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id().to_string();
    c.wait().unwrap();
    assert_one_line_error(&daxguard(&["check", "--pid", &pid, "0x1000", "4K"]), "does not exist");
    assert_one_line_error(&daxguard(&["scan", "--pid", &pid]), "does not exist");
}

#[test]
fn a_zombie_has_exited() {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    // Not reaped yet: wait until it is a zombie.
    for _ in 0..500 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        if stat.rsplit(')').next().unwrap().trim_start().starts_with('Z') {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_one_line_error(&daxguard(&["scan", "--pid", &pid.to_string()]), "has exited");
    c.wait().unwrap();
}

/// Runs `daxguard` as nobody when we are root (root reads everything), else as ourselves.
fn unprivileged(args: &[&str]) -> common::Ran {
    use std::os::unix::process::CommandExt;
    let mut c = cmd(args);
    if is_root() {
        c.uid(65534).gid(65534);
    }
    common::ran(c.output().unwrap())
}

#[test]
fn an_unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let f = TempFile::new(&target_tmp(), "unreadable", 4096);
    let mode = if is_root() { 0o600 } else { 0o000 };
    std::fs::set_permissions(&f.0, std::fs::Permissions::from_mode(mode)).unwrap();
    assert_one_line_error(&unprivileged(&["check", f.path()]), "Permission denied");
}

#[test]
fn another_users_process_is_eacces() {
    // As root: nobody looks at our helper; otherwise: we look at init.
    let h = Helper::start();
    let pid = if is_root() { h.pid() } else { "1".to_string() };
    let r = unprivileged(&["check", "--pid", &pid, "0x1000", "4K"]);
    assert_one_line_error(&r, "permission denied");
    let r = unprivileged(&["scan", "--pid", &pid]);
    assert_one_line_error(&r, "permission denied");
}
