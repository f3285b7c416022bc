//! The maps-text side of the cursor: `/proc/PID/maps` read line by line
//! through the caller's buffer, with no allocation per line.
//!
//! # Safety
//! `read` into the unused tail of the caller's buffer; only the bytes `read`
//! reported (and the name bytes zeroed once, then written by the unescaper)
//! are viewed as initialised.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use crate::error::Error;
use crate::maps;
use crate::sys::Errno;
use crate::types::Vma;

/// How far the stream has got in the caller's buffer.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Bytes read into the buffer.
    have: usize,
    /// Bytes of it already handed out as lines.
    done: usize,
    /// Inside a line too long for the buffer: drop it.
    skipping: bool,
    eof: bool,
    /// The name buffer was zeroed (once per stream, so it can be viewed as bytes).
    name_ready: bool,
}

/// The first VMA of the stream that ends above `at`, its name unescaped into
/// `name`, as a nameless [`Vma`] and the name's length; `None` at the end.
pub(super) fn at(
    fd: RawFd,
    st: &mut Stream,
    buf: &mut [MaybeUninit<u8>],
    name: &mut [MaybeUninit<u8>],
    at: u64,
) -> Result<Option<(Vma<'static>, usize)>, Error> {
    if !st.name_ready {
        name.fill(MaybeUninit::new(0));
        st.name_ready = true;
    }
    // SAFETY: zeroed above, on this stream's first use of it.
    let name = unsafe { &mut *(std::ptr::from_mut(name) as *mut [u8]) };
    while let Some((a, b)) = next_line(fd, st, buf)? {
        // SAFETY: `read` wrote every byte below `st.have`, and b <= st.have.
        let line = unsafe { std::slice::from_raw_parts(buf.as_ptr().add(a).cast::<u8>(), b - a) };
        // Most lines lie below the range: the address field alone tells.
        if maps::range_of(line).is_some_and(|(_, e)| e <= at) {
            continue;
        }
        let Some(l) = maps::parse_line(line) else { continue };
        if l.end <= at {
            continue;
        }
        let v = l.to_vma(name);
        return Ok(Some((Vma { name: &[], ..v }, v.name.len())));
    }
    Ok(None)
}

/// The next whole line (without its newline) as a range of `buf`.
pub(super) fn next_line(
    fd: RawFd,
    st: &mut Stream,
    buf: &mut [MaybeUninit<u8>],
) -> Result<Option<(usize, usize)>, Error> {
    loop {
        // SAFETY: bytes below `st.have` were written by `read`.
        let unread = unsafe { std::slice::from_raw_parts(buf.as_ptr().add(st.done).cast::<u8>(), st.have - st.done) };
        if let Some(nl) = newline(unread) {
            let line = (st.done, st.done + nl);
            st.done += nl + 1;
            if std::mem::take(&mut st.skipping) {
                continue;
            }
            return Ok(Some(line));
        }
        if st.eof {
            let rest = (st.done, st.have);
            st.done = st.have;
            return Ok((rest.0 < rest.1 && !std::mem::take(&mut st.skipping)).then_some(rest));
        }
        buf.copy_within(st.done..st.have, 0);
        st.have -= st.done;
        st.done = 0;
        if st.have == buf.len() {
            st.skipping = true;
            st.have = 0;
        }
        let n = read(fd, &mut buf[st.have..]).map_err(|errno| Error::Proc { what: "read maps", errno })?;
        st.eof = n == 0;
        st.have += n;
    }
}

/// The bytes `buf[a..b]` of a line [`next_line`] handed out.
pub(super) fn bytes(buf: &[MaybeUninit<u8>], a: usize, b: usize) -> &[u8] {
    let b = b.min(buf.len());
    let a = a.min(b);
    // SAFETY: `next_line` hands out ranges below `st.have`, which `read` wrote.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().add(a).cast::<u8>(), b - a) }
}

/// `read(2)`, retried on `EINTR`.
fn read(fd: RawFd, into: &mut [MaybeUninit<u8>]) -> Result<usize, Errno> {
    loop {
        // SAFETY: the destination is `into`, writable for its length.
        let n = unsafe { libc::read(fd, into.as_mut_ptr().cast(), into.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let errno = Errno::last();
        if errno != Errno::EINTR {
            return Err(errno);
        }
    }
}

/// The first `\n` in `bytes`: libc's `memchr` is vectorised, a byte loop is
/// not, and scanning is most of this side's work per maps line.
fn newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: searching within the slice's own bytes.
    let p = unsafe { libc::memchr(bytes.as_ptr().cast(), i32::from(b'\n'), bytes.len()) };
    (!p.is_null()).then(|| p as usize - bytes.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_partial_reads_and_without_a_final_newline() {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out-array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let text = b"a\nbb\n\nccc";
        // SAFETY: writing a small buffer to our own pipe.
        assert_eq!(unsafe { libc::write(fds[1], text.as_ptr().cast(), text.len()) }, text.len() as isize);
        crate::sys::procfd::close(fds[1]);
        let mut buf = [MaybeUninit::uninit(); 16];
        let mut st = Stream::default();
        let mut lines = Vec::new();
        while let Some((a, b)) = next_line(fds[0], &mut st, &mut buf).unwrap() {
            // SAFETY: as in `at`.
            lines.push(unsafe { std::slice::from_raw_parts(buf.as_ptr().add(a).cast::<u8>(), b - a) }.to_vec());
        }
        crate::sys::procfd::close(fds[0]);
        assert_eq!(lines, [&b"a"[..], b"bb", b"", b"ccc"]);
    }
}
