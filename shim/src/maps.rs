//! `/proc/PID/maps` text: one line per VMA.
//!
//! The parser works on bytes and never allocates, so the preload path can use
//! it on a stack buffer. Paths are kept as the kernel wrote them (` (deleted)`
//! suffix included); [`unescape_into`] undoes the one escape maps applies
//! (`\n` is written as `\012` by `seq_file_path(m, file, "\n")`).
//!
//! # References
//! - [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html)
//! - `show_map_vma()` in the kernel's `fs/proc/task_mmu.c`

use crate::types::{Dev, Vma};

/// One parsed maps line; `name` borrows the (still escaped) pathname field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub shared: bool,
    pub offset: u64,
    pub dev: Dev,
    pub inode: u64,
    /// The pathname field, leading padding removed, escapes not undone.
    pub name: &'a [u8],
}

/// Parses one line (without its trailing newline). `None` if it is not a maps line.
pub fn parse_line(line: &[u8]) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let range = field(&mut rest)?;
    let perms = field(&mut rest)?;
    let offset = hex(field(&mut rest)?)?;
    let dev = field(&mut rest)?;
    let inode = dec(field(&mut rest)?)?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let (start, end) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    let colon = dev.iter().position(|&b| b == b':')?;
    let dev =
        Dev { major: u32::try_from(hex(&dev[..colon])?).ok()?, minor: u32::try_from(hex(&dev[colon + 1..])?).ok()? };
    if perms.len() != 4 || start > end {
        return None;
    }
    // The name is padded with spaces to a column; a name may itself start
    // with a space only in theory (d_path always starts with '/' or '[').
    let name = trim_start(rest);
    Some(MapsLine {
        start,
        end,
        readable: perms[0] == b'r',
        writable: perms[1] == b'w',
        executable: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        dev,
        inode,
        name,
    })
}

/// Just the `start-end` field: enough to skip the lines below a range without
/// parsing the rest (the text path reads every VMA below the range).
pub fn range_of(line: &[u8]) -> Option<(u64, u64)> {
    let sp = line.iter().position(|&b| b == b' ')?;
    span(&line[..sp])
}

/// `start-end` in hex, as maps text and `/proc/PID/map_files` name a VMA.
pub fn span(range: &[u8]) -> Option<(u64, u64)> {
    let dash = range.iter().position(|&b| b == b'-')?;
    Some((hex(&range[..dash])?, hex(&range[dash + 1..])?))
}

impl<'a> MapsLine<'a> {
    /// The VMA with its name unescaped into `buf` (truncated if it does not fit).
    pub fn to_vma<'b>(&self, buf: &'b mut [u8]) -> Vma<'b> {
        let n = unescape_into(self.name, buf);
        Vma {
            start: self.start,
            end: self.end,
            readable: self.readable,
            writable: self.writable,
            executable: self.executable,
            shared: self.shared,
            dev: self.dev,
            inode: self.inode,
            name: &buf[..n],
        }
    }
}

/// Copies `name` into `out`, turning `\012` back into `\n`; returns the length.
pub fn unescape_into(name: &[u8], out: &mut [u8]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < name.len() && n < out.len() {
        if name[i..].starts_with(b"\\012") {
            out[n] = b'\n';
            i += 4;
        } else {
            out[n] = name[i];
            i += 1;
        }
        n += 1;
    }
    n
}

fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let s = trim_start(rest);
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    *rest = &s[end..];
    Some(&s[..end])
}

fn trim_start(s: &[u8]) -> &[u8] {
    let skip = s.iter().take_while(|&&b| b == b' ').count();
    &s[skip..]
}

fn hex(s: &[u8]) -> Option<u64> {
    parse_radix(s, 16)
}

fn dec(s: &[u8]) -> Option<u64> {
    parse_radix(s, 10)
}

fn parse_radix(s: &[u8], radix: u32) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(radix)?;
        acc.checked_mul(u64::from(radix))?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_line() {
        let l = parse_line(b"7f3a00000000-7f3a00200000 rw-s 00001000 103:02 1234          /mnt/pmem/data").unwrap();
        assert_eq!((l.start, l.end, l.offset), (0x7f3a00000000, 0x7f3a00200000, 0x1000));
        assert!(l.readable && l.writable && !l.executable && l.shared);
        assert_eq!(l.dev, Dev { major: 0x103, minor: 2 });
        assert_eq!(l.inode, 1234);
        assert_eq!(l.name, b"/mnt/pmem/data");
    }

    #[test]
    fn anonymous_and_bracketed() {
        let l = parse_line(b"55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(l.name, b"");
        assert_eq!(l.inode, 0);
        let l = parse_line(b"7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]").unwrap();
        assert_eq!(l.name, b"[stack]");
    }

    #[test]
    fn spaces_deleted_and_newline_escape() {
        let l = parse_line(b"1000-2000 r--s 00000000 fd:01 77 /tmp/a b\\012c (deleted)").unwrap();
        assert_eq!(l.name, b"/tmp/a b\\012c (deleted)");
        let mut buf = [0u8; 64];
        let v = l.to_vma(&mut buf);
        assert_eq!(v.name, b"/tmp/a b\nc (deleted)");
    }

    #[test]
    fn big_minor_and_devdax() {
        let l = parse_line(b"7f0000000000-7f0000200000 rw-s 00000000 00:05 512 /dev/dax1.0").unwrap();
        assert_eq!(l.dev, Dev { major: 0, minor: 5 });
        let l = parse_line(b"1000-2000 r--p 00000000 103:1ff 5 /x").unwrap();
        assert_eq!(l.dev.minor, 0x1ff);
    }

    #[test]
    fn range_alone() {
        assert_eq!(range_of(b"1000-2000 rw-p 0 00:00 0"), Some((0x1000, 0x2000)));
        assert_eq!(range_of(b"1000-2000"), None);
        assert_eq!(range_of(b"zz-2000 x"), None);
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            &b""[..],
            b"zzzz",
            b"1000-2000",
            b"2000-1000 rw-p 0 00:00 0",
            b"1000-2000 rw-p 0 0000 0",
            b"1000-2000 rwxps 0 00:00 0",
            b"1000-2000 rw-p 0 00:00 99999999999999999999999",
        ] {
            assert_eq!(parse_line(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
