//! Classification of real mappings made by the test itself, on both lookup paths.

use std::ffi::c_void;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::ptr;

use daxguard::{Kind, Lookup, LookupChoice, Options, Report, Verdict, classify_with, page_range};

const PAGE: usize = 4096;

/// A mapping unmapped on drop.
struct Map {
    ptr: *mut c_void,
    len: usize,
}

impl Map {
    fn anon(len: usize, prot: i32, flags: i32) -> Map {
        // SAFETY: fresh anonymous mapping.
        let ptr = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags | libc::MAP_ANONYMOUS, -1, 0) };
        assert_ne!(ptr, libc::MAP_FAILED);
        Map { ptr, len }
    }

    fn file(f: &File, len: usize, flags: i32) -> Map {
        // SAFETY: mapping a file we own.
        let ptr =
            unsafe { libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, f.as_raw_fd(), 0) };
        assert_ne!(ptr, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        Map { ptr, len }
    }

    fn addr(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmapping what we mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Classifies on both lookup paths and checks they agree.
fn both(addr: u64, len: u64) -> Report {
    let q = classify_with(addr, len, Options { lookup: LookupChoice::ProcmapQuery, ..Default::default() });
    let m = classify_with(addr, len, Options { lookup: LookupChoice::MapsText, ..Default::default() }).unwrap();
    assert_eq!(m.lookup, Lookup::MapsText);
    match q {
        Ok(q) => {
            assert_eq!(q.lookup, Lookup::ProcmapQuery);
            assert_eq!(q.pieces, m.pieces, "PROCMAP_QUERY and maps text disagree");
        }
        // Kernels before 6.11: only the text path exists.
        Err(e) => assert_eq!(e.errno().raw(), libc::ENOTTY, "{e}"),
    }
    m
}

fn kinds(r: &Report) -> Vec<&'static str> {
    r.pieces.iter().map(|p| p.kind.name()).collect()
}

fn sized_file(dir: &std::path::Path, name: &str, len: usize) -> (File, std::path::PathBuf) {
    let path = dir.join(name);
    let mut f = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    f.write_all(&vec![7u8; len]).unwrap();
    (f, path)
}

#[test]
fn heap_and_stack_are_anonymous() {
    let heap = vec![1u8; 1 << 20];
    let r = both(heap.as_ptr() as u64, heap.len() as u64);
    assert!(r.pieces.iter().all(|p| matches!(p.kind, Kind::Anonymous { .. })), "{r:?}");
    assert_eq!(r.verdict(), Verdict::Allow);
    let local = 5u64;
    let r = both(&local as *const u64 as u64, 8);
    assert_eq!(kinds(&r), ["anonymous"]);
}

#[test]
fn shared_anonymous_and_dev_zero_are_anonymous() {
    let m = Map::anon(4 * PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED);
    assert_eq!(kinds(&both(m.addr(), m.len as u64)), ["anonymous"]);
    let zero = File::options().read(true).write(true).open("/dev/zero").unwrap();
    let z = Map::file(&zero, 4 * PAGE, libc::MAP_SHARED);
    assert_eq!(kinds(&both(z.addr(), z.len as u64)), ["anonymous"]);
    let zp = Map::file(&zero, 4 * PAGE, libc::MAP_PRIVATE);
    assert_eq!(kinds(&both(zp.addr(), zp.len as u64)), ["anonymous"]);
}

#[test]
fn tmpfs_ext4_and_memfd_files_are_plain_files() {
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let (f, path) = sized_file(shm.path(), "buf", 8 * PAGE);
    let m = Map::file(&f, 8 * PAGE, libc::MAP_SHARED);
    let r = both(m.addr(), m.len as u64);
    assert_eq!(kinds(&r), ["file"]);
    let info = r.pieces[0].kind.file_info().unwrap();
    assert_eq!(info.path, path);
    assert_eq!(info.mount.as_ref().unwrap().fstype, "tmpfs");

    // The workspace's target dir sits on this machine's root filesystem (ext4 here).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (f, path) = sized_file(dir.path(), "ext", 4 * PAGE);
    let m = Map::file(&f, 4 * PAGE, libc::MAP_PRIVATE);
    let r = both(m.addr(), m.len as u64);
    assert_eq!(kinds(&r), ["file"]);
    assert_eq!(r.pieces[0].kind.file_info().unwrap().path, path);

    // SAFETY: memfd_create with a static name.
    let fd = unsafe { libc::memfd_create(c"daxguard-test".as_ptr(), libc::MFD_CLOEXEC) };
    let memfd = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    memfd.set_len(4 * PAGE as u64).unwrap();
    let m = Map::file(&memfd, 4 * PAGE, libc::MAP_SHARED);
    let r = both(m.addr(), m.len as u64);
    assert_eq!(kinds(&r), ["file"]);
    assert!(r.pieces[0].kind.file_info().unwrap().path.to_string_lossy().starts_with("/memfd:daxguard-test"));
    assert_eq!(r.verdict(), Verdict::Allow);
}

#[test]
fn deleted_file_with_awkward_name() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let (f, path) = sized_file(dir.path(), "a b\nc", 4 * PAGE);
    let m = Map::file(&f, 4 * PAGE, libc::MAP_SHARED);
    std::fs::remove_file(&path).unwrap();
    let r = both(m.addr(), m.len as u64);
    assert_eq!(kinds(&r), ["file"], "{r:?}");
    let shown = r.pieces[0].kind.file_info().unwrap().path.to_string_lossy().into_owned();
    assert_eq!(shown, format!("{} (deleted)", path.display()));
    assert_eq!(r.verdict(), Verdict::Allow);
}

#[test]
fn span_of_several_vmas_with_a_hole_and_prot_none() {
    // Reserve 8 pages, then carve: [anon rw][anon PROT_NONE][hole][file][anon rw...].
    let m = Map::anon(8 * PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE);
    let base = m.addr();
    // SAFETY: all addresses lie inside our own reservation.
    unsafe {
        assert_eq!(libc::mprotect((base + PAGE as u64) as *mut c_void, PAGE, libc::PROT_NONE), 0);
        assert_eq!(libc::munmap((base + 2 * PAGE as u64) as *mut c_void, PAGE), 0);
    }
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let (f, _) = sized_file(dir.path(), "mid", PAGE);
    // SAFETY: MAP_FIXED over a page of our own reservation.
    let p = unsafe {
        libc::mmap(
            (base + 3 * PAGE as u64) as *mut c_void,
            PAGE,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_FIXED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_eq!(p as u64, base + 3 * PAGE as u64);
    // Start mid-page and end mid-page: the range widens to whole pages.
    let r = both(base + 10, 8 * PAGE as u64 - 20);
    assert_eq!((r.start, r.end), (base, base + 8 * PAGE as u64));
    assert_eq!(kinds(&r), ["anonymous", "anonymous", "hole", "file", "anonymous"]);
    let bounds: Vec<_> =
        r.pieces.iter().map(|p| ((p.start - base) / PAGE as u64, (p.end - base) / PAGE as u64)).collect();
    assert_eq!(bounds, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 8)]);
    assert_eq!(r.verdict(), Verdict::Allow);
}

#[test]
fn unmapped_range_is_one_hole() {
    // Below mmap_min_addr nothing is ever mapped; a range we unmapped ourselves
    // could be reused at once by another test thread's mmap.
    let addr = 0x2000;
    let r = both(addr, 4 * PAGE as u64);
    assert_eq!(kinds(&r), ["hole"]);
    assert_eq!((r.pieces[0].start, r.pieces[0].end), (addr, addr + 4 * PAGE as u64));
}

#[test]
fn dev_null_char_device_mapping_is_not_fsdax() {
    // /dev/zero is the only char device most kernels let us map; its private
    // mapping becomes anonymous. A mapping of /dev/mem needs privileges we
    // must not assume, so the char-device rule is covered by the guest's /dev/dax.
    let r = both(0x1000, 1);
    assert!(matches!(r.pieces[0].kind, Kind::Hole));
}

#[test]
fn zero_length_and_overflow() {
    let r = both(0x7000_0000_0123, 0);
    assert!(r.pieces.is_empty());
    assert_eq!((r.start, r.end), (0x7000_0000_0000, 0x7000_0000_0000));
    assert_eq!(r.verdict(), Verdict::Allow);
    let e = classify_with(u64::MAX - 10, 100, Options::default()).unwrap_err();
    assert_eq!(e.errno().raw(), libc::EINVAL);
    assert!(page_range(u64::MAX - 4095, 4095).is_err(), "rounding up past the top overflows too");
}

#[test]
fn vdso_is_special() {
    // SAFETY: getauxval has no preconditions.
    let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if vdso == 0 {
        return;
    }
    let r = both(vdso, 1);
    assert_eq!(kinds(&r), ["special"]);
    assert!(matches!(&r.pieces[0].kind, Kind::Special { label } if label == "[vdso]"));
}

#[test]
fn another_process_by_pid() {
    let heap = vec![1u8; 1 << 16];
    let me = std::process::id() as i32;
    let opts = Options { target: Some(daxguard::Target::Pid(me)), ..Default::default() };
    let r = classify_with(heap.as_ptr() as u64, heap.len() as u64, opts).unwrap();
    assert!(r.pieces.iter().all(|p| p.kind.name() == "anonymous"));
    let gone =
        classify_with(0x1000, 1, Options { target: Some(daxguard::Target::Pid(i32::MAX)), ..Default::default() });
    assert_eq!(gone.unwrap_err().errno().raw(), libc::ENOENT);
}
