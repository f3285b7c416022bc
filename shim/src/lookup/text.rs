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
    /// Bytes were read since [`at`] last looked at the whole buffer.
    refilled: bool,
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
    loop {
        if std::mem::take(&mut st.refilled) {
            skip_lines_below(st, buf, at);
        }
        let Some((a, b)) = next_line(fd, st, buf)? else { break };
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

/// Skips every whole line of the buffer at once if the last of them ends at
/// or below `at` (the lines are in address order): a walk to a range above
/// thousands of VMAs then parses one line per read, not every line.
fn skip_lines_below(st: &mut Stream, buf: &[MaybeUninit<u8>], at: u64) {
    // SAFETY: bytes below `st.have` were written by `read`.
    let unread = unsafe { std::slice::from_raw_parts(buf.as_ptr().add(st.done).cast::<u8>(), st.have - st.done) };
    let Some(last_nl) = last_newline(unread) else { return };
    let first = last_newline(&unread[..last_nl]).map_or(0, |p| p + 1);
    if first == 0 && st.skipping {
        return; // the only whole line is the tail of one too long to keep
    }
    if maps::range_of(&unread[first..last_nl]).is_some_and(|(_, e)| e <= at) {
        st.done += last_nl + 1;
        st.skipping = false;
    }
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
        st.refilled = true;
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

/// The last `\n` in `bytes` (`memrchr`).
fn last_newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: searching within the slice's own bytes.
    let p = unsafe { libc::memrchr(bytes.as_ptr().cast(), i32::from(b'\n'), bytes.len()) };
    (!p.is_null()).then(|| p as usize - bytes.as_ptr() as usize)
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

    /// `at` skips whole buffers of lines below the address, across refills
    /// and an over-long line, and finds the same VMA a line-by-line walk does.
    #[test]
    fn the_first_vma_above_an_address_across_skipped_buffers() {
        let mut text = Vec::new();
        for i in 0..400u64 {
            text.extend_from_slice(
                format!("{:x}-{:x} r--p 00000000 00:00 0 \n", 0x1000 * (2 * i + 1), 0x1000 * (2 * i + 2)).as_bytes(),
            );
            if i == 37 {
                // A name longer than the buffer: dropped, as next_line drops it.
                text.extend_from_slice(
                    format!(
                        "{:x}-{:x} r--p 00000000 00:00 0 /{}\n",
                        0x1000 * (2 * i + 2),
                        0x1000 * (2 * i + 2) + 0x800,
                        "x".repeat(300)
                    )
                    .as_bytes(),
                );
            }
        }
        for (addr, want) in [
            (0u64, 0x1000),
            (0x1000, 0x1000),
            (0x2000, 0x3000),
            (0x1000 * 500, 0x1000 * 501),
            (0x1000 * 799, 0x1000 * 799),
        ] {
            let mut fds = [0; 2];
            // SAFETY: fds is a valid out-array of two descriptors.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let writer = {
                let text = text.clone();
                std::thread::spawn(move || {
                    // SAFETY: writing our buffer to our own pipe.
                    let n = unsafe { libc::write(fds[1], text.as_ptr().cast(), text.len()) };
                    crate::sys::procfd::close(fds[1]);
                    n
                })
            };
            let (mut buf, mut name) = ([MaybeUninit::uninit(); 256], [MaybeUninit::uninit(); 64]);
            let mut st = Stream::default();
            let got = at(fds[0], &mut st, &mut buf, &mut name, addr).unwrap().map(|(v, _)| v.start);
            crate::sys::procfd::close(fds[0]);
            assert_eq!(writer.join().unwrap(), text.len() as isize);
            assert_eq!(got, Some(want), "the first VMA ending above {addr:#x}");
        }
    }
}
