//! The systemd journal's native protocol, for the audit sink
//! (`DAXGUARD_LOG=journal`) and `daxguard watch --journal`.
//!
//! One entry is one datagram on `/run/systemd/journal/socket`: each field
//! `KEY=value\n`, or for a value holding a newline `KEY\n`, its length as a
//! little-endian u64, the bytes and `\n`. An entry too big for one datagram
//! (`EMSGSIZE`, `ENOBUFS`: bigger than the socket's send buffer,
//! `net.core.wmem_default`) goes in a sealed memfd passed with
//! `SCM_RIGHTS`, as `sd_journal_sendv()` does. Sends are synchronous and
//! come from the calling thread (no thread, no queue): when `send` returns
//! the entry is in journald's receive queue, where the sender's exit or
//! `fork` cannot lose it. A send waits at most [`SEND_TIMEOUT_S`] for room
//! in that queue, so a wedged journald cannot hang the program.
//!
//! The socket is unconnected: each datagram names the path, so a restarted
//! journald (a new socket at the same path) is found again with no
//! reconnect. It is kept at a high number, close-on-exec, and reopened if the
//! program closes it ([`crate::sys::held`]); a forked child shares it.
//!
//! # References
//! - [Native Journal Protocol](https://systemd.io/JOURNAL_NATIVE_PROTOCOL/)
//! - [systemd.journal-fields(7)](https://man7.org/linux/man-pages/man7/systemd.journal-fields.7.html)
//!
//! # Safety
//! `socket`, `sendmsg`, `memfd_create`, `fcntl` and `write` on descriptors
//! and buffers this module owns; the `msghdr` points at locals that outlive
//! the call.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::Errno;
use crate::sys::held::Held;
use crate::sys::procfd::{close, move_high};

/// Where journald listens.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The `MESSAGE_ID` of every audit record the preload library sends
/// (`journalctl MESSAGE_ID=289bece2b89148a1a20688e09fb634eb`).
pub const RECORD_MESSAGE_ID: &str = "289bece2b89148a1a20688e09fb634eb";

/// How long one send may wait for room in journald's queue.
pub const SEND_TIMEOUT_S: i64 = 2;

/// Appends one field to an entry.
pub fn append(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The entry for `fields`, in order.
pub fn encode<K: AsRef<str>, V: AsRef<[u8]>>(fields: impl IntoIterator<Item = (K, V)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        append(&mut out, k.as_ref(), v.as_ref());
    }
    out
}

/// A datagram socket towards journald's socket at `path`.
#[derive(Debug)]
pub struct Journal {
    addr: libc::sockaddr_un,
    addr_len: libc::socklen_t,
    held: Held,
}

impl Journal {
    /// Opens the socket (journald need not be running yet: each send looks).
    pub fn open(path: &Path) -> Result<Journal, Errno> {
        // SAFETY: plain data; an all-zero sockaddr_un is valid.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
            return Err(Errno::EINVAL);
        }
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let addr_len = (std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1) as libc::socklen_t;
        Ok(Journal { addr, addr_len, held: Held::new(open_socket()?) })
    }

    /// Sends one entry; see the module's words for how.
    pub fn send(&self, entry: &[u8]) -> Result<(), Errno> {
        let fd = self.held.get(open_socket)?;
        let iov = libc::iovec { iov_base: entry.as_ptr() as *mut libc::c_void, iov_len: entry.len() };
        match self.sendmsg(fd, &[iov], None) {
            Err(e) if e.raw() == libc::EMSGSIZE || e.raw() == libc::ENOBUFS => self.send_memfd(fd, entry),
            r => r,
        }
    }

    /// The entry in a sealed memfd, its descriptor in an empty datagram.
    fn send_memfd(&self, fd: RawFd, entry: &[u8]) -> Result<(), Errno> {
        // SAFETY: a constant NUL-terminated name.
        let mfd =
            unsafe { libc::memfd_create(c"daxguard-journal".as_ptr(), libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC) };
        if mfd < 0 {
            return Err(Errno::last());
        }
        let sent = write_all(mfd, entry).and_then(|()| {
            let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
            // SAFETY: our memfd; journald refuses one that is not sealed.
            if unsafe { libc::fcntl(mfd, libc::F_ADD_SEALS, seals) } < 0 {
                return Err(Errno::last());
            }
            self.sendmsg(fd, &[], Some(mfd))
        });
        close(mfd);
        sent
    }

    fn sendmsg(&self, fd: RawFd, iov: &[libc::iovec], pass: Option<RawFd>) -> Result<(), Errno> {
        // CMSG_SPACE(sizeof(int)), aligned for cmsghdr.
        #[repr(C)]
        union Control {
            buf: [u8; 24],
            _align: libc::cmsghdr,
        }
        let mut control = Control { buf: [0; 24] };
        // SAFETY: plain data; every field is set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = std::ptr::from_ref(&self.addr) as *mut libc::c_void;
        msg.msg_namelen = self.addr_len;
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        if let Some(pass) = pass {
            // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic; the buffer holds
            // CMSG_SPACE(4) bytes, so CMSG_FIRSTHDR is non-null and its data fits an int.
            unsafe {
                msg.msg_control = std::ptr::addr_of_mut!(control.buf).cast();
                msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), pass);
            }
        }
        loop {
            // SAFETY: `msg` points at `self.addr`, `iov` and `control`, all alive for the call.
            if unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) } >= 0 {
                return Ok(());
            }
            let e = Errno::last();
            if e != Errno::EINTR {
                return Err(e);
            }
        }
    }
}

/// A close-on-exec datagram socket at a high number, with a bounded send wait.
fn open_socket() -> Result<RawFd, Errno> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let timeout = libc::timeval { tv_sec: SEND_TIMEOUT_S as libc::time_t, tv_usec: 0 };
    // SAFETY: our socket; a timeval of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            std::ptr::from_ref(&timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    Ok(move_high(fd))
}

fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        // SAFETY: our memfd and our buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn fields_are_encoded_as_journald_reads_them() {
        let d = encode([("MESSAGE", "a=b"), ("DAXGUARD_FILE", "/x\ny")]);
        let mut want = b"MESSAGE=a=b\nDAXGUARD_FILE\n".to_vec();
        want.extend_from_slice(&4u64.to_le_bytes());
        want.extend_from_slice(b"/x\ny\n");
        assert_eq!(d, want);
    }

    /// What a journald would read: the datagram, or the memfd passed with it.
    fn receive(server: &UnixDatagram) -> (Vec<u8>, bool) {
        use std::io::{Read as _, Seek as _};
        use std::os::fd::{AsRawFd, FromRawFd};
        let mut buf = vec![0u8; 1 << 16];
        let mut control = [0u64; 8];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: test code; the msghdr points at locals alive for the call.
        let (n, fd) = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            let n = libc::recvmsg(server.as_raw_fd(), &mut msg, 0);
            assert!(n >= 0, "{}", std::io::Error::last_os_error());
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            let fd = (!cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS)
                .then(|| std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()));
            (n as usize, fd)
        };
        match fd {
            None => (buf[..n].to_vec(), false),
            Some(fd) => {
                assert_eq!(n, 0, "a memfd comes in an empty datagram");
                // SAFETY: the descriptor the kernel just gave us.
                let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
                assert_eq!(seals & libc::F_SEAL_WRITE, libc::F_SEAL_WRITE, "sealed");
                // SAFETY: as above; the File owns and closes it.
                let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
                // journald maps it from the start; our write left the shared offset at the end.
                f.rewind().unwrap();
                let mut out = Vec::new();
                f.read_to_end(&mut out).unwrap();
                (out, true)
            }
        }
    }

    #[test]
    fn entries_reach_the_socket_small_large_and_after_a_restart() {
        let _numbers = crate::sys::procfd::FD_NUMBERS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.send(b"MESSAGE=nobody\n"), Err(Errno::ENOENT), "no journald: the send says so");
        let server = UnixDatagram::bind(&path).unwrap();
        j.send(b"MESSAGE=hello\n").unwrap();
        assert_eq!(receive(&server), (b"MESSAGE=hello\n".to_vec(), false));
        // Bigger than the send buffer: the memfd.
        let mut big = Vec::new();
        append(&mut big, "MESSAGE", &vec![b'x'; 1 << 20]);
        j.send(&big).unwrap();
        let (got, memfd) = receive(&server);
        assert!(memfd && got == big, "memfd {memfd}, {} bytes of {}", got.len(), big.len());
        // journald restarted: a new socket at the same path, found again.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        j.send(b"MESSAGE=again\n").unwrap();
        assert_eq!(receive(&server).0, b"MESSAGE=again\n");
        // The program closed our socket and reused its number: reopened.
        let ours = j.held.raw();
        let theirs = UnixDatagram::unbound().unwrap();
        // SAFETY: dup2 onto our own socket's number, as a program reusing it would.
        assert_eq!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&theirs), ours) }, ours);
        j.send(b"MESSAGE=reopened\n").unwrap();
        assert_ne!(j.held.raw(), ours);
        assert_eq!(receive(&server).0, b"MESSAGE=reopened\n");
        close(ours);
        assert_eq!(Journal::open(Path::new("")).unwrap_err(), Errno::EINVAL);
        assert_eq!(Journal::open(&dir.path().join("x".repeat(200))).unwrap_err(), Errno::EINVAL);
    }
}
