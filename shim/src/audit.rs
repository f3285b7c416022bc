//! The audit trail: one record for every registration seen, as a JSON
//! object per line (a file, or syslog), or as a structured journal entry.
//!
//! Each JSON record is built in memory and written with a single `write(2)`
//! on an `O_APPEND` descriptor, so records from concurrent threads and
//! processes never interleave. The file is opened `O_NOFOLLOW|O_CLOEXEC` and
//! created 0600, and moved to a high number (as the `/proc` descriptors
//! are), so the program's next descriptor is the one it would get without
//! us. Journal entries go out as one datagram each ([`crate::journal`]). The
//! schema is documented in `docs/policy.md`.
//!
//! # Safety
//! `open`/`write` on a path and buffers we own; `syslog` with a `%s` format.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use crate::journal::{self, Journal};
use crate::sys::held::Held;
use crate::sys::procfd::move_high;
use crate::sys::{Errno, without_sigpipe, write_quietly};

/// The keys of every record [`Record::to_json`] writes, in order (the
/// schema in `docs/policy.md`).
pub const RECORD_KEYS: [&str; 23] = [
    "time",
    "pid",
    "tid",
    "program",
    "rank",
    "job",
    "step",
    "consumer",
    "entry",
    "addr",
    "len",
    "access",
    "mode",
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
    /// The MPI rank, Slurm job and step ([`crate::identity::Identity`]), if set.
    pub rank: Option<u32>,
    pub job: Option<&'a str>,
    pub step: Option<&'a str>,
    /// `rdma`, `v4l2` or `io_uring`.
    pub consumer: &'a str,
    pub entry: &'a str,
    pub addr: u64,
    pub len: u64,
    pub access: u32,
    /// The mode in effect for this process (`enforce`, `warn`, ...).
    pub mode: &'a str,
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
    /// The journal's `MESSAGE`: the line a person reads (the refusal, the
    /// warning); `None`: a summary made from the fields.
    pub message: Option<&'a str>,
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
        match self.rank {
            Some(r) => _ = write!(s, ",\"rank\":{r}"),
            None => s.push_str(",\"rank\":null"),
        }
        s.push_str(",\"job\":");
        json_opt(&mut s, self.job.map(str::as_bytes));
        s.push_str(",\"step\":");
        json_opt(&mut s, self.step.map(str::as_bytes));
        s.push_str(",\"consumer\":");
        json_str(&mut s, self.consumer.as_bytes());
        s.push_str(",\"entry\":");
        json_str(&mut s, self.entry.as_bytes());
        let _ = write!(s, ",\"addr\":\"{:#x}\",\"len\":{},\"access\":\"{:#x}\"", self.addr, self.len, self.access);
        for (key, val) in [("mode", self.mode), ("verdict", self.verdict), ("reason", self.reason)] {
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

    /// What the journal's `DAXGUARD_VERDICT` says: `refuse`, `warn`,
    /// `audit` (fs-DAX let through in those modes), `odp` (rewritten), or
    /// `allow` (forwarded, nothing to say).
    pub fn journal_verdict(&self) -> &'static str {
        match (self.action, self.reason) {
            ("refused", _) => "refuse",
            ("rewritten_odp", _) => "odp",
            (_, "warned") => "warn",
            (_, "audited") => "audit",
            _ => "allow",
        }
    }

    /// The journal entry: the record's fields as `DAXGUARD_*`, with
    /// `MESSAGE`, the fixed [`journal::RECORD_MESSAGE_ID`], `PRIORITY`
    /// (4, warning, for a refusal, a warning or a failed call; 5, notice,
    /// for `audit` and `odp`; 6, info, otherwise), `SYSLOG_IDENTIFIER`,
    /// `TID` and `ERRNO` (the journal's own fields).
    pub fn journal_entry(&self) -> Vec<u8> {
        let verdict = self.journal_verdict();
        let priority = match verdict {
            _ if self.errno != 0 => "4",
            "refuse" | "warn" => "4",
            "audit" | "odp" => "5",
            _ => "6",
        };
        let summary;
        let message = match self.message {
            Some(m) => m,
            None => {
                summary = format!(
                    "daxguard: {}({:#x}, {}): {} ({})",
                    self.entry, self.addr, self.len, self.action, self.reason
                );
                &summary
            }
        };
        let mut e = Vec::with_capacity(1024);
        let num = |n: u64| n.to_string();
        journal::append(&mut e, "MESSAGE", message.as_bytes());
        journal::append(&mut e, "MESSAGE_ID", journal::RECORD_MESSAGE_ID.as_bytes());
        journal::append(&mut e, "PRIORITY", priority.as_bytes());
        journal::append(&mut e, "SYSLOG_IDENTIFIER", b"daxguard");
        journal::append(&mut e, "TID", num(crate::sys::tid() as u64).as_bytes());
        if self.errno != 0 {
            journal::append(&mut e, "ERRNO", num(self.errno as u64).as_bytes());
        }
        journal::append(&mut e, "DAXGUARD_VERDICT", verdict.as_bytes());
        journal::append(&mut e, "DAXGUARD_MODE", self.mode.as_bytes());
        journal::append(&mut e, "DAXGUARD_PROGRAM", program().as_bytes());
        if let Some(r) = self.rank {
            journal::append(&mut e, "DAXGUARD_RANK", num(r.into()).as_bytes());
        }
        for (key, val) in [("DAXGUARD_JOB", self.job), ("DAXGUARD_STEP", self.step)] {
            if let Some(v) = val {
                journal::append(&mut e, key, v.as_bytes());
            }
        }
        journal::append(&mut e, "DAXGUARD_CONSUMER", self.consumer.as_bytes());
        journal::append(&mut e, "DAXGUARD_ENTRY", self.entry.as_bytes());
        journal::append(&mut e, "DAXGUARD_ADDR", format!("{:#x}", self.addr).as_bytes());
        journal::append(&mut e, "DAXGUARD_LEN", num(self.len).as_bytes());
        journal::append(&mut e, "DAXGUARD_ACCESS", format!("{:#x}", self.access).as_bytes());
        journal::append(&mut e, "DAXGUARD_RANGE", self.verdict.as_bytes());
        journal::append(&mut e, "DAXGUARD_REASON", self.reason.as_bytes());
        journal::append(&mut e, "DAXGUARD_ACTION", self.action.as_bytes());
        if let Some(f) = self.file {
            journal::append(&mut e, "DAXGUARD_FILE", f.as_os_str().as_bytes());
        }
        if let Some(m) = &self.mount {
            journal::append(&mut e, "DAXGUARD_MOUNT", m.as_bytes());
        }
        journal::append(&mut e, "DAXGUARD_ERRNO", num(self.errno as u64).as_bytes());
        journal::append(&mut e, "DAXGUARD_ERROR", crate::explain::errno_name(self.errno).as_bytes());
        if let Some(x) = self.explain {
            journal::append(&mut e, "DAXGUARD_EXPLAIN", x.as_bytes());
        }
        journal::append(&mut e, "DAXGUARD_LOOKUP", self.lookup.as_bytes());
        journal::append(&mut e, "DAXGUARD_DECIDE_NS", num(self.decide_ns).as_bytes());
        e
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
    Journal(Journal),
}

/// The log file: its path and the descriptor we keep ([`Held`]: reopened
/// if the program took its number, so records never land in its files).
/// Writers take no lock: `write(2)` on `O_APPEND` is atomic.
#[derive(Debug)]
pub struct LogFile {
    path: CString,
    held: Held,
}

impl Sink {
    /// Opens the log file for appending: `O_NOFOLLOW` so a planted symlink
    /// cannot redirect it, created 0600 because records name files.
    pub fn open_file(path: &std::path::Path) -> Result<Sink, Errno> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
        let held = Held::new(open_log(&path)?);
        Ok(Sink::File(LogFile { path, held }))
    }

    /// The journal at its usual socket.
    pub fn open_journal() -> Result<Sink, Errno> {
        Journal::open(std::path::Path::new(journal::SOCKET)).map(Sink::Journal)
    }

    /// Whether [`Record::message`] is used (it costs a line of words to make).
    pub fn wants_message(&self) -> bool {
        matches!(self, Sink::Journal(_))
    }

    /// One record, one `write(2)` (or one syslog message, or one journal
    /// entry). errno is left as it was. `Err`: the journal could not be
    /// reached (a file or syslog write never says).
    pub fn write(&self, rec: &Record) -> Result<(), Errno> {
        let saved = Errno::last();
        let r = match self {
            Sink::File(log) => {
                log.write(&rec.to_json());
                Ok(())
            }
            Sink::Syslog => {
                if let Ok(c) = CString::new(rec.to_json().trim_end()) {
                    // glibc sends with MSG_NOSIGNAL, but a program that called
                    // openlog(LOG_PERROR) has each message copied to stderr,
                    // which may be a pipe with no reader: no SIGPIPE either way.
                    without_sigpipe(|| {
                        // SAFETY: constant "%s" format with a NUL-terminated argument.
                        unsafe { libc::syslog(libc::LOG_USER | libc::LOG_INFO, c"%s".as_ptr(), c.as_ptr()) };
                        ((), true)
                    });
                }
                Ok(())
            }
            Sink::Journal(j) => j.send(&rec.journal_entry()),
        };
        saved.set();
        r
    }

    /// Writes a line to the file as it is.
    #[cfg(test)]
    fn write_line(&self, line: &str) {
        if let Sink::File(log) = self {
            log.write(line);
        }
    }
}

impl LogFile {
    fn write(&self, line: &str) {
        let Ok(fd) = self.held.get(|| open_log(&self.path)) else { return };
        // A short write to a regular O_APPEND file only happens on a full
        // disk; the path may also name a FIFO whose reader is gone: no SIGPIPE.
        write_quietly(fd, line.as_bytes());
    }
}

fn open_log(path: &CString) -> Result<RawFd, Errno> {
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: NUL-terminated path; mode passed as the variadic argument.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // Not the lowest free number: the program's next open() gets the number
    // it would get without us.
    Ok(move_high(fd))
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
            rank: Some(3),
            job: Some("42"),
            step: None,
            mode: "enforce",
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
            message: None,
        };
        let line = r.to_json();
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        for key in RECORD_KEYS {
            assert!(line.contains(&format!("\"{key}\":")), "{key} missing in {line}");
        }
        assert!(line.contains(r#""file":"/mnt/pmem/da\"ta""#));
        assert!(line.contains(r#""errno_name":"EOPNOTSUPP""#));
        assert!(
            line.contains(r#""program":"#) && line.contains(r#","rank":3,"job":"42","step":null,"consumer":"rdma","#)
        );
        assert!(line.contains(r#""access":"0x7","mode":"enforce","verdict":"fsdax""#), "{line}");
        let none = Record { rank: None, job: None, ..r.clone() }.to_json();
        assert!(none.contains(r#","rank":null,"job":null,"step":null,"#), "{none}");
    }

    #[test]
    fn journal_entry_has_the_fields_operators_query() {
        let path = std::path::Path::new("/mnt/pmem/a\nb");
        let r = Record {
            rank: Some(1),
            job: Some("42"),
            step: Some("0"),
            mode: "enforce",
            consumer: "rdma",
            entry: "ibv_reg_mr_iova2",
            verdict: "fsdax",
            reason: "fsdax",
            file: Some(path),
            action: "refused",
            errno: libc::EOPNOTSUPP,
            lookup: "maps",
            message: Some("daxguard: refused it"),
            ..Record::default()
        };
        let e = r.journal_entry();
        let text = String::from_utf8_lossy(&e);
        for field in [
            "MESSAGE=daxguard: refused it\n",
            "MESSAGE_ID=289bece2b89148a1a20688e09fb634eb\n",
            "PRIORITY=4\n",
            "SYSLOG_IDENTIFIER=daxguard\n",
            "ERRNO=95\n",
            "DAXGUARD_VERDICT=refuse\n",
            "DAXGUARD_MODE=enforce\n",
            "DAXGUARD_RANK=1\n",
            "DAXGUARD_JOB=42\n",
            "DAXGUARD_STEP=0\n",
            "DAXGUARD_CONSUMER=rdma\n",
            "DAXGUARD_RANGE=fsdax\n",
            "DAXGUARD_ERROR=EOPNOTSUPP\n",
        ] {
            assert!(text.contains(field), "{field:?} missing in {text:?}");
        }
        // A file name with a newline: the length-prefixed form.
        let mut file = b"DAXGUARD_FILE\n".to_vec();
        file.extend_from_slice(&13u64.to_le_bytes());
        file.extend_from_slice(b"/mnt/pmem/a\nb\n");
        assert!(e.windows(file.len()).any(|w| w == file.as_slice()));
        let warned = Record { action: "forwarded", reason: "warned", errno: 0, message: None, ..r.clone() };
        assert_eq!(warned.journal_verdict(), "warn");
        let quiet = Record { rank: None, job: None, step: None, ..warned };
        let text = String::from_utf8_lossy(&quiet.journal_entry()).into_owned();
        assert!(text.contains("MESSAGE=daxguard: ibv_reg_mr_iova2(0x0, 0): forwarded (warned)\n"), "{text}");
        assert!(!text.contains("DAXGUARD_RANK") && !text.contains("\nERRNO="), "{text}");
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
        sink.write_line("{}\n");
        sink.write_line("{}\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "{}\n{}\n");
        assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&log, &link).unwrap();
        assert_eq!(Sink::open_file(&link).unwrap_err(), Errno::from_raw(libc::ELOOP));
        // Our descriptor closed and its number reused by someone else's file:
        // the record goes to the log, not to their file.
        let Sink::File(f) = &sink else { unreachable!() };
        let ours = f.held.raw();
        // SAFETY: closing our own descriptor, as closefrom would.
        unsafe { libc::close(ours) };
        let theirs = std::fs::File::create(dir.join("theirs")).unwrap();
        assert_ne!(std::os::fd::AsRawFd::as_raw_fd(&theirs), ours, "the log's descriptor sits high");
        // SAFETY: dup2 onto the number we just closed, as a program reusing it would.
        assert_eq!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&theirs), ours) }, ours);
        sink.write_line("{}\n");
        assert_eq!(std::fs::read_to_string(dir.join("theirs")).unwrap(), "");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "{}\n{}\n{}\n");
        // SAFETY: closing the duplicate this test made.
        unsafe { libc::close(ours) };
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
