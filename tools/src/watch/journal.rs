//! Refusals to the systemd journal, with structured fields
//! (DAXGUARD_PID=, DAXGUARD_FILE=, ...), which `systemd-cat` cannot give
//! (it logs lines, not fields). The native protocol itself (the encoding,
//! one datagram per entry, a sealed memfd for a big one) is the preload
//! library's [`daxguard::journal`], shared with its audit sink.
//!
//! # References
//! - [Native Journal Protocol](https://systemd.io/JOURNAL_NATIVE_PROTOCOL/)
//! - [systemd.journal-fields(7)](https://man7.org/linux/man-pages/man7/systemd.journal-fields.7.html)

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::decode::Refusal;

pub const SOCKET: &str = daxguard::journal::SOCKET;

/// Every refusal's entries carry this id (`journalctl MESSAGE_ID=...`).
pub const REFUSAL_MESSAGE_ID: &str = "7f3c2b1e9d8a4c6fb0e5a2d4c8b6e1f0";
/// The entry saying refusals were dropped.
pub const DROPPED_MESSAGE_ID: &str = "4b9e0d2c7a1f4e8d9c3b5a6f2e1d0c7b";

/// syslog priorities (sd-daemon(3)).
pub const PRIORITY_ERR: u8 = 3;
pub const PRIORITY_WARNING: u8 = 4;

/// A datagram socket towards journald.
pub struct Journal {
    inner: daxguard::journal::Journal,
    path: PathBuf,
}

impl Journal {
    pub fn open(path: &Path) -> io::Result<Self> {
        // journald must be there: fail at start, not at the first refusal.
        UnixDatagram::unbound()?.connect(path)?;
        let inner = daxguard::journal::Journal::open(path).map_err(io::Error::from)?;
        Ok(Journal { inner, path: path.to_path_buf() })
    }

    /// Sends one entry. Each datagram names the socket, so a journald
    /// restarted since (a new socket at the same path) is found again.
    pub fn send(&mut self, fields: &[(&str, String)]) -> io::Result<()> {
        self.inner.send(&encode(fields)).map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
        })
    }
}

/// The datagram for `fields`.
pub fn encode(fields: &[(&str, String)]) -> Vec<u8> {
    daxguard::journal::encode(fields.iter().map(|(k, v)| (*k, v.as_bytes())))
}

/// The fields of a refusal: MESSAGE is the text line, the rest are for
/// `journalctl DAXGUARD_FILE=/mnt/pmem/db` and friends.
pub fn refusal_fields(r: &Refusal, message: String) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("MESSAGE", message),
        ("MESSAGE_ID", REFUSAL_MESSAGE_ID.to_string()),
        ("PRIORITY", PRIORITY_WARNING.to_string()),
        ("SYSLOG_IDENTIFIER", "daxguard-watch".to_string()),
        ("DAXGUARD_PID", r.pid.to_string()),
        ("DAXGUARD_TID", r.tid.to_string()),
        ("DAXGUARD_COMM", r.comm.clone()),
        ("DAXGUARD_UID", r.uid.to_string()),
        ("DAXGUARD_CONSUMER", r.consumer.name().to_string()),
        ("DAXGUARD_ERRNO", r.errno.to_string()),
        ("DAXGUARD_ERROR", r.error_name().to_string()),
        ("DAXGUARD_REASON", r.reason.name().to_string()),
        ("DAXGUARD_START", format!("{:#x}", r.start)),
        ("DAXGUARD_LEN", r.len.to_string()),
        ("DAXGUARD_HOOK", r.hook.to_string()),
    ];
    if let Some(c) = &r.caller {
        f.push(("DAXGUARD_CALLER", c.to_string()));
    }
    if let Some(file) = &r.file {
        f.extend([
            ("DAXGUARD_FILE", file.path.clone()),
            ("DAXGUARD_DEV", format!("{}:{}", file.dev_major, file.dev_minor)),
            ("DAXGUARD_INODE", file.inode.to_string()),
            ("DAXGUARD_MOUNT", file.mount.mount_point.clone()),
            ("DAXGUARD_FSTYPE", file.mount.fstype.clone()),
        ]);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_encoded_as_journald_reads_them() {
        let d = encode(&[("MESSAGE", "a=b".to_string()), ("DAXGUARD_FILE", "/x\ny".to_string())]);
        let mut want = b"MESSAGE=a=b\nDAXGUARD_FILE\n".to_vec();
        want.extend_from_slice(&4u64.to_le_bytes());
        want.extend_from_slice(b"/x\ny\n");
        assert_eq!(d, want);
    }

    #[test]
    fn an_entry_reaches_a_socket() {
        let dir = std::env::temp_dir().join(format!("daxguard-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let mut j = Journal::open(&path).unwrap();
        j.send(&[("MESSAGE", "hello".to_string()), ("DAXGUARD_PID", "7".to_string())]).unwrap();
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=hello\nDAXGUARD_PID=7\n");
        // journald restarted: a new socket at the same path is found again.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        j.send(&[("MESSAGE", "again".to_string())]).unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=again\n");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(Journal::open(&dir.join("none")).is_err(), "no journald: an error at start");
    }
}
