//! A ring-buffer record (watch.h's `struct watch_event`) into a [`Refusal`]:
//! plain Rust values, the path put together, the consumer named.
//!
//! # Safety
//! [`record`] copies at most `size_of::<watch_event>()` bytes from the
//! record into a zeroed `watch_event`, a plain-data struct of integers and
//! byte arrays for which every bit pattern is valid.
#![allow(unsafe_code)]

use super::kernel::HOOKS;
use super::skel::types::watch_event;
use super::symbols::{Consumer, Frame, Symbols, caller};

// watch.h's enums, as the BPF program writes them.
const VMA_FOUND: u32 = 0;
const VMA_NONE: u32 = 1;
const VMA_BUSY: u32 = 2;
const REASON_WRITABLE_FILE: u32 = 1;

/// A record as sent: the tail of `path` the BPF program did not send is zero.
pub fn record(data: &[u8]) -> watch_event {
    let mut e = watch_event::default();
    let n = data.len().min(std::mem::size_of::<watch_event>());
    // SAFETY: `e` is plain data (see the module doc), `n` bytes fit in both.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), (&raw mut e).cast::<u8>(), n) };
    e
}

/// Which rule of check_vma_flags() refused the pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// `-EOPNOTSUPP`: FOLL_LONGTERM on filesystem-DAX.
    Fsdax,
    /// `-EFAULT` (6.5+): a writable long-term pin of a shared file mapping
    /// whose file system tracks dirty pages.
    WritableFile,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Fsdax => "fsdax",
            Reason::WritableFile => "writable_file",
        }
    }

    /// What the errno means here, in a sentence.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::Fsdax => {
                "filesystem-DAX memory: Linux never pins it long-term (the file system may move or free \
                 those blocks under the device); use device-DAX, anonymous or tmpfs memory, or ODP for RDMA"
            }
            Reason::WritableFile => {
                "a writable long-term pin of a shared page-cache file mapping: Linux 6.5+ refuses it because \
                 the file system cannot see writes made through the pin; map the file read-only or \
                 MAP_PRIVATE, or use anonymous, tmpfs or hugetlbfs memory"
            }
        }
    }
}

/// What bpf_find_vma() saw at the refused address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaLookup {
    Found,
    /// Nothing mapped there by the time the BPF program looked.
    None,
    /// The mmap lock was contended; the program does not wait.
    Busy,
    /// A remote pin of another process's memory (VFIO on behalf of another mm).
    OtherMm,
}

impl VmaLookup {
    pub fn name(self) -> &'static str {
        match self {
            VmaLookup::Found => "found",
            VmaLookup::None => "none",
            VmaLookup::Busy => "busy",
            VmaLookup::OtherMm => "other_mm",
        }
    }
}

/// The mount the file is on, as the kernel had it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    /// The super block's `s_id`: the block device's name (`pmem0`) or the fs's.
    pub source: String,
    pub mount_id: i32,
}

/// The file the refused range maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Walked up from the file in the kernel, as the process saw it.
    pub path: String,
    /// False when the walk stopped early (too deep, too long): `path` starts with `...`.
    pub path_complete: bool,
    pub deleted: bool,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    /// The file offset of the refused address.
    pub offset: u64,
    /// `S_DAX` in the inode's flags: the kernel reads it through DAX.
    pub dax: bool,
    pub char_device: bool,
    pub mount: Mount,
}

/// One refused long-term pin.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub boot_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub uid: u32,
    pub consumer: Consumer,
    pub caller: Option<Frame>,
    /// The kernel stack above the BPF program, innermost first.
    pub stack: Vec<Frame>,
    pub hook: &'static str,
    pub gup_flags: u32,
    pub start: u64,
    pub len: u64,
    pub errno: i32,
    pub reason: Reason,
    pub vma: VmaLookup,
    pub vma_range: Option<(u64, u64)>,
    pub file: Option<File>,
}

impl Refusal {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    pub fn error_name(&self) -> &'static str {
        match self.errno {
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EFAULT => "EFAULT",
            _ => "E?",
        }
    }
}

/// A NUL-terminated C array as a string (lossy).
fn c_string(bytes: &[i8]) -> String {
    let b: Vec<u8> = bytes.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
    String::from_utf8_lossy(&b).into_owned()
}

/// The components (leaf first, NUL-separated) as `(file path, mount point)`.
fn paths(e: &watch_event) -> (String, String) {
    let len = usize::from(e.path_len).min(e.path.len());
    let bytes: Vec<u8> = e.path[..len].iter().map(|&c| c as u8).collect();
    let parts: Vec<&[u8]> = bytes.split(|&c| c == 0).take(usize::from(e.path_parts)).collect();
    let join = |parts: &[&[u8]]| {
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(p));
        }
        s
    };
    let inside = usize::from(e.mnt_parts).min(parts.len());
    let mut path = join(&parts);
    let mut mount_point = join(&parts[inside..]);
    if path.is_empty() {
        path.push('/');
    }
    if mount_point.is_empty() {
        mount_point.push('/');
    }
    if e.path_complete == 0 {
        path.insert_str(0, "...");
        mount_point.insert_str(0, "...");
    }
    (path, mount_point)
}

/// Decodes one record; `symbols` names its stack.
pub fn refusal(e: &watch_event, symbols: &mut Symbols, page_size: u64) -> Refusal {
    let depth = usize::try_from(e.stack_bytes.max(0)).unwrap_or(0) / 8;
    let addrs: Vec<u64> = e.stack[..depth.min(e.stack.len())].iter().copied().filter(|&a| a != 0).collect();
    let frames = symbols.frames(&addrs);
    let hook = HOOKS.get(e.hook as usize).copied().unwrap_or("?");
    let vma = match e.vma {
        VMA_FOUND => VmaLookup::Found,
        VMA_NONE => VmaLookup::None,
        VMA_BUSY => VmaLookup::Busy,
        _ => VmaLookup::OtherMm,
    };
    let file = (vma == VmaLookup::Found && e.i_mode != 0).then(|| {
        let (path, mount_point) = paths(e);
        File {
            path,
            path_complete: e.path_complete != 0,
            deleted: e.deleted != 0,
            dev_major: e.dev >> 20,
            dev_minor: e.dev & 0xfffff,
            inode: e.ino,
            offset: e.start.saturating_sub(e.vm_start) + e.vm_pgoff * page_size,
            dax: e.i_flags & 8192 != 0,
            char_device: e.i_mode & 0o170000 == 0o020000,
            mount: Mount { mount_point, fstype: c_string(&e.fstype), source: c_string(&e.source), mount_id: e.mnt_id },
        }
    });
    Refusal {
        boot_ns: e.boot_ns,
        pid: e.tgid,
        tid: e.tid,
        comm: c_string(&e.comm),
        uid: e.uid,
        consumer: Consumer::of_stack(&frames),
        caller: caller(&frames, hook).cloned(),
        stack: frames.iter().filter(|f| !f.is_bpf()).cloned().collect(),
        hook,
        gup_flags: e.gup_flags,
        start: e.start,
        len: e.nr_pages.saturating_mul(page_size),
        errno: -e.ret,
        reason: if e.reason == REASON_WRITABLE_FILE { Reason::WritableFile } else { Reason::Fsdax },
        vma,
        vma_range: (vma == VmaLookup::Found).then_some((e.vm_start, e.vm_end)),
        file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(parts: &[&str], mnt_parts: u16, complete: bool) -> watch_event {
        let mut e = watch_event::default();
        let mut off = 0;
        for p in parts {
            for &b in p.as_bytes() {
                e.path[off] = b as i8;
                off += 1;
            }
            off += 1; // NUL
        }
        e.path_len = off as u16;
        e.path_parts = parts.len() as u16;
        e.mnt_parts = mnt_parts;
        e.path_complete = u8::from(complete);
        e
    }

    #[test]
    fn paths_are_put_together_leaf_last() {
        let e = event(&["x", "pmem", "mnt"], 1, true);
        assert_eq!(paths(&e), ("/mnt/pmem/x".to_string(), "/mnt/pmem".to_string()));
        // A file on the root file system: the mount point is /.
        let e = event(&["b", "a"], 2, true);
        assert_eq!(paths(&e), ("/a/b".to_string(), "/".to_string()));
        let e = event(&["deep", "er"], 1, false);
        assert_eq!(paths(&e), (".../er/deep".to_string(), ".../er".to_string()));
    }

    #[test]
    fn a_short_record_decodes_with_the_rest_zero() {
        let mut e = event(&["f", "pmem", "mnt"], 1, true);
        e.tgid = 42;
        e.ret = -95;
        e.vma = VMA_FOUND;
        e.i_mode = 0o100644;
        e.i_flags = 8192;
        e.dev = (259 << 20) | 3;
        e.start = 0x7f00_0000_1000;
        e.vm_start = 0x7f00_0000_0000;
        e.vm_pgoff = 2;
        e.nr_pages = 512;
        let size = std::mem::offset_of!(watch_event, path) + usize::from(e.path_len);
        // SAFETY: reading the bytes of a plain-data struct.
        let bytes = unsafe { std::slice::from_raw_parts((&raw const e).cast::<u8>(), size) };
        let r = refusal(&record(bytes), &mut Symbols::default(), 4096);
        assert_eq!((r.pid, r.errno, r.error_name(), r.len), (42, 95, "EOPNOTSUPP", 2 << 20));
        let f = r.file.unwrap();
        assert_eq!((f.path.as_str(), f.mount.mount_point.as_str()), ("/mnt/pmem/f", "/mnt/pmem"));
        assert_eq!(
            (f.dev_major, f.dev_minor, f.offset, f.dax, f.char_device),
            (259, 3, 0x1000 + 2 * 4096, true, false)
        );
        assert_eq!(r.consumer, Consumer::Other, "no stack: no consumer");
    }
}
