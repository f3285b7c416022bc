//! Whether any VMA with a file meets a range, from `/proc/self/map_files`.
//!
//! The directory has one entry per VMA that has a file (`start-end` in hex,
//! in address order) and none for anonymous memory. To list it the kernel
//! walks the VMAs under the mmap lock without formatting them, and makes a
//! dentry only for the entries it returns; maps text formats every line up
//! to the range. So where a range holds no file, the listing up to it costs
//! a fraction of one maps read (docs/benchmarks.md), and that is the whole
//! answer: fs-DAX needs a file (`vma_is_fsdax()` starts at `vm_file`), so
//! no file means no piece the kernel would refuse and none daxguard could
//! not verify, the verdict maps text would give. A range that meets a file
//! is left to maps text, which names it.
//!
//! # Safety
//! `getdents64` writes whole records into our buffer; only the bytes it
//! reported are viewed, each record checked to lie inside them.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::maps;
use crate::sys::procfd::{close, open_proc};
use crate::types::Target;

/// How many `getdents64` calls one answer may take. Each makes the kernel
/// walk every VMA again (cheaply) and return as many entries as the buffer
/// holds (a 12 KiB buffer: about 250); files below a registered buffer are
/// usually few (the program, and libraries loaded after the buffer).
const CALLS: usize = 2;

/// Set once an answer ran out of calls: the files below this process's
/// ranges are too many for the listing to pay off, so it stops asking.
static CROWDED: AtomicBool = AtomicBool::new(false);

/// `Some(false)`: no VMA with a file meets `[start, end)` (anonymous memory
/// and holes only); `Some(true)`: one does; `None`: the directory could not
/// be read, or not within [`CALLS`] (maps text answers). `buf` is scratch.
pub(super) fn any_file_in(start: u64, end: u64, buf: &mut [MaybeUninit<u8>]) -> Option<bool> {
    if CROWDED.load(Ordering::Relaxed) {
        return None;
    }
    let fd = open_proc(Target::Current, b"map_files").ok()?;
    let found = scan(fd, start, end, buf);
    close(fd);
    found
}

fn scan(fd: i32, start: u64, end: u64, buf: &mut [MaybeUninit<u8>]) -> Option<bool> {
    for _ in 0..CALLS {
        // SAFETY: getdents64 writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            // 0: the end of the directory, no file met; < 0: an error.
            return (n == 0).then_some(false);
        }
        // SAFETY: the kernel wrote the first `n` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
        for name in names(bytes) {
            let Some((s, e)) = maps::span(name) else { continue }; // "." and ".."
            if s >= end {
                return Some(false); // in address order: none of the rest meets it either
            }
            if e > start {
                return Some(true);
            }
        }
    }
    // Out of calls (an error above, such as a descriptor closed under us by
    // another thread, is not a reason to stop asking).
    CROWDED.store(true, Ordering::Relaxed);
    None
}

/// The names of the `linux_dirent64` records in `bytes` (`d_ino` u64,
/// `d_off` i64, `d_reclen` u16, `d_type` u8, then the NUL-terminated name).
fn names(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    const NAME: usize = 19;
    let mut at = 0;
    std::iter::from_fn(move || {
        let rec = bytes.get(at..)?;
        let len = usize::from(u16::from_ne_bytes([*rec.get(16)?, *rec.get(17)?]));
        let rec = rec.get(..len).filter(|_| len > NAME)?;
        at += len;
        let name = &rec[NAME..];
        Some(&name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Vec<u8> {
        let len = (19 + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; len];
        r[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
        r[18] = libc::DT_LNK;
        r[19..19 + name.len()].copy_from_slice(name.as_bytes());
        r
    }

    #[test]
    fn names_are_read_record_by_record_and_a_short_one_ends_the_list() {
        let mut bytes: Vec<u8> =
            [".", "..", "1000-2000", "7f0000000000-7f0000001000"].iter().flat_map(|n| record(n)).collect();
        let got: Vec<&[u8]> = names(&bytes).collect();
        assert_eq!(got, [&b"."[..], b"..", b"1000-2000", b"7f0000000000-7f0000001000"]);
        bytes.extend_from_slice(&[0u8; 18]); // a cut record: no length to trust
        assert_eq!(names(&bytes).count(), 4);
        let mut bad = record("3000-4000");
        bad[16..18].copy_from_slice(&4000u16.to_ne_bytes()); // longer than what was read
        assert_eq!(names(&bad).count(), 0);
    }
}
