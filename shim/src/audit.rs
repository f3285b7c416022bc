//! The audit trail: one JSON object per line for every registration seen.
//!
//! Each record is built in memory and written with a single `write(2)` on an
//! `O_APPEND` descriptor, so records from concurrent threads and processes
//! never interleave. The file is opened `O_NOFOLLOW|O_CLOEXEC` and created
//! 0600, and moved to a high number (as the `/proc` descriptors are), so
//! the program's next descriptor is the one it would get without us. The
//! schema is documented in `docs/policy.md`.
//!
//! # Safety
//! `open`/`write` on a path and buffers we own; `syslog` with a `%s` format.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::sys::lock::try_lock_briefly;
use crate::sys::procfd::{fstat_id, move_high};
use crate::sys::{Errno, without_sigpipe, write_quietly};

/// The keys of every record [`Record::to_json`] writes, in order (the
/// schema in `docs/policy.md`).
pub const RECORD_KEYS: [&str; 19] = [
    "time",
    "pid",
    "tid",
    "program",
    "consumer",
    "entry",
    "addr",
    "len",
    "access",
    "verdict",
    "reason",
    "file",
    "mount",
    "action",
    "errno",
    "errno_name",
    "explain",
    "lookup",
    "decide_ns",
];

/// One registration, as the audit record tells it.
#[derive(Debug, Clone, Default)]
pub struct Record<'a> {
    /// `rdma`, `v4l2` or `io_uring`.
    pub consumer: &'a str,
    pub entry: &'a str,
    pub addr: u64,
    pub len: u64,
    pub access: u32,
    /// `allow`, `fsdax`, `unverified`, `unchecked` or `error`.
    pub verdict: &'a str,
    /// The rule that decided, e.g. `fsdax`, `not_fsdax`, `on_demand`.
    pub reason: &'a str,
    pub file: Option<&'a std::path::Path>,
    pub mount: Option<String>,
    /// `refused`, `forwarded` or `rewritten_odp`.
    pub action: &'a str,
    /// 0 on success, else the errno the caller saw.
    pub errno: i32,
    /// Why a forwarded registration failed, in words.
    pub explain: Option<&'a str>,
    /// The lookup path that found the VMAs: `procmap_query`, `events` or `maps`
    /// ([`crate::Lookup::name`]).
    pub lookup: &'a str,
    pub decide_ns: u64,
}

impl Record<'_> {
    /// The JSON line, newline included.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(384);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let _ = write!(
            s,
            "{{\"time\":{}.{:06},\"pid\":{},\"tid\":{},\"program\":",
            now.as_secs(),
            now.subsec_micros(),
            crate::sys::pid(),
            crate::sys::tid()
        );
        json_str(&mut s, program().as_bytes());
        s.push_str(",\"consumer\":");
        json_str(&mut s, self.consumer.as_bytes());
        s.push_str(",\"entry\":");
        json_str(&mut s, self.entry.as_bytes());
        let _ = write!(s, ",\"addr\":\"{:#x}\",\"len\":{},\"access\":\"{:#x}\"", self.addr, self.len, self.access);
        for (key, val) in [("verdict", self.verdict), ("reason", self.reason)] {
            let _ = write!(s, ",\"{key}\":");
            json_str(&mut s, val.as_bytes());
        }
        s.push_str(",\"file\":");
        json_opt(&mut s, self.file.map(|p| p.as_os_str().as_bytes()));
        s.push_str(",\"mount\":");
        json_opt(&mut s, self.mount.as_deref().map(str::as_bytes));
        s.push_str(",\"action\":");
        json_str(&mut s, self.action.as_bytes());
        let _ = write!(s, ",\"errno\":{},\"errno_name\":", self.errno);
        json_str(&mut s, crate::explain::errno_name(self.errno).as_bytes());
        s.push_str(",\"explain\":");
        json_opt(&mut s, self.explain.map(str::as_bytes));
        s.push_str(",\"lookup\":");
        json_str(&mut s, self.lookup.as_bytes());
        let _ = writeln!(s, ",\"decide_ns\":{}}}", self.decide_ns);
        s
    }
}

/// The program's name: the last path component of `argv[0]`.
fn program() -> String {
    std::env::args_os()
        .next()
        .map(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .unwrap_or_default()
}

fn json_opt(s: &mut String, v: Option<&[u8]>) {
    match v {
        Some(b) => json_str(s, b),
        None => s.push_str("null"),
    }
}

/// A JSON string; bytes that are not UTF-8 become U+FFFD (paths may be anything).
pub fn json_str(s: &mut String, bytes: &[u8]) {
    s.push('"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// Where records go.
#[derive(Debug)]
pub enum Sink {
    File(LogFile),
    Syslog,
}

/// The log file: its path and the descriptor we opened, with its identity.
///
/// A program may close every descriptor it did not open (`closefrom`) and
/// reuse the number for a file of its own; before each write the descriptor
/// is checked (`fstat`) to still be our log, and the path is reopened if not,
/// so records never land in the program's files.
/// Writers take no lock: `write(2)` on `O_APPEND` is atomic; only a reopen
/// is serialized.
#[derive(Debug)]
pub struct LogFile {
    path: CString,
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
    reopen: std::sync::Mutex<()>,
}

impl Sink {
    /// Opens the log file for appending: `O_NOFOLLOW` so a planted symlink
    /// cannot redirect it, created 0600 because records name files.
    pub fn open_file(path: &std::path::Path) -> Result<Sink, Errno> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
        let (fd, (dev, ino)) = open_log(&path)?;
        let (fd, dev, ino) = (AtomicI32::new(fd), AtomicU64::new(dev), AtomicU64::new(ino));
        Ok(Sink::File(LogFile { path, fd, dev, ino, reopen: std::sync::Mutex::new(()) }))
    }

    /// One record, one `write(2)` (or one syslog message).
    pub fn write(&self, line: &str) {
        match self {
            Sink::File(log) => log.write(line),
            Sink::Syslog => {
                if let Ok(c) = CString::new(line.trim_end()) {
                    // glibc sends with MSG_NOSIGNAL, but a program that called
                    // openlog(LOG_PERROR) has each message copied to stderr,
                    // which may be a pipe with no reader: no SIGPIPE either way.
                    without_sigpipe(|| {
                        // SAFETY: constant "%s" format with a NUL-terminated argument.
                        unsafe { libc::syslog(libc::LOG_USER | libc::LOG_INFO, c"%s".as_ptr(), c.as_ptr()) };
                        ((), true)
                    });
                }
            }
        }
    }
}

impl LogFile {
    fn write(&self, line: &str) {
        let Some(fd) = self.ours().or_else(|| self.reopened()) else { return };
        // A short write to a regular O_APPEND file only happens on a full
        // disk; the path may also name a FIFO whose reader is gone: no SIGPIPE.
        write_quietly(fd, line.as_bytes());
    }

    /// Our descriptor, if it still is the log we opened.
    fn ours(&self) -> Option<RawFd> {
        let fd = self.fd.load(Ordering::Acquire);
        let id = (self.dev.load(Ordering::Acquire), self.ino.load(Ordering::Acquire));
        (fstat_id(fd) == Some(id)).then_some(fd)
    }

    /// Reopens the path after the program took our descriptor's number; the
    /// old number is left to its new owner.
    fn reopened(&self) -> Option<RawFd> {
        // Never wait long: a lock inherited held across fork must not hang the child.
        let _g = try_lock_briefly(&self.reopen)?;
        if let Some(fd) = self.ours() {
            return Some(fd); // another thread reopened it meanwhile
        }
        let (fd, (dev, ino)) = open_log(&self.path).ok()?;
        self.dev.store(dev, Ordering::Release);
        self.ino.store(ino, Ordering::Release);
        self.fd.store(fd, Ordering::Release);
        Some(fd)
    }
}

fn open_log(path: &CString) -> Result<(RawFd, (u64, u64)), Errno> {
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: NUL-terminated path; mode passed as the variadic argument.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // Not the lowest free number: the program's next open() gets the number
    // it would get without us.
    let fd = move_high(fd);
    Ok((fd, fstat_id(fd).unwrap_or((0, 0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut s = String::new();
        json_str(&mut s, b"a\"b\\c\nd\x01e\xff");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001e\u{fffd}\"");
    }

    #[test]
    fn record_is_one_line_of_json_with_every_field() {
        let path = std::path::Path::new("/mnt/pmem/da\"ta");
        let r = Record {
            consumer: "rdma",
            entry: "ibv_reg_mr",
            addr: 0x1000,
            len: 4096,
            access: 7,
            verdict: "fsdax",
            reason: "fsdax",
            file: Some(path),
            mount: Some("ext4 on /dev/pmem0".into()),
            lookup: "procmap_query",
            action: "refused",
            errno: libc::EOPNOTSUPP,
            explain: None,
            decide_ns: 1234,
        };
        let line = r.to_json();
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        for key in RECORD_KEYS {
            assert!(line.contains(&format!("\"{key}\":")), "{key} missing in {line}");
        }
        assert!(line.contains(r#""file":"/mnt/pmem/da\"ta""#));
        assert!(line.contains(r#""errno_name":"EOPNOTSUPP""#));
    }

    #[test]
    fn log_file_is_private_and_refuses_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let _numbers = crate::sys::procfd::FD_NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("daxguard-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let _ = std::fs::remove_file(&log);
        let sink = Sink::open_file(&log).unwrap();
        sink.write("{}\n");
        sink.write("{}\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "{}\n{}\n");
        assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&log, &link).unwrap();
        assert_eq!(Sink::open_file(&link).unwrap_err(), Errno::from_raw(libc::ELOOP));
        // Our descriptor closed and its number reused by someone else's file:
        // the record goes to the log, not to their file.
        let Sink::File(f) = &sink else { unreachable!() };
        let ours = f.fd.load(Ordering::Relaxed);
        // SAFETY: closing our own descriptor, as closefrom would.
        unsafe { libc::close(ours) };
        let theirs = std::fs::File::create(dir.join("theirs")).unwrap();
        assert_ne!(std::os::fd::AsRawFd::as_raw_fd(&theirs), ours, "the log's descriptor sits high");
        // SAFETY: dup2 onto the number we just closed, as a program reusing it would.
        assert_eq!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&theirs), ours) }, ours);
        sink.write("{}\n");
        assert_eq!(std::fs::read_to_string(dir.join("theirs")).unwrap(), "");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "{}\n{}\n{}\n");
        // SAFETY: closing the duplicate this test made.
        unsafe { libc::close(ours) };
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
