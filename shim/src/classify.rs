//! Classify `[addr, addr + len)` the way the kernel sees it for a long-term pin.
//!
//! The kernel refuses `FOLL_LONGTERM` pins of VMAs for which `vma_is_fsdax()`
//! holds: file-backed, the inode is DAX (`IS_DAX`), and not a character
//! device (device-DAX, `/dev/daxX.Y`, is fine). [`file_verdict`] asks the same
//! three questions, cheapest trustworthy evidence first; [`classify`] builds the
//! full per-piece [`Report`], and [`judge`] answers only the verdict without
//! allocating, for the registration hot path.
//!
//! # References
//! - `vma_is_fsdax()` in `include/linux/fs.h`; `check_vma_flags()` in `mm/gup.c`
//! - Documentation/filesystems/dax.rst

use std::cell::Cell;
use std::ffi::{CStr, OsStr};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::Error;
use crate::mountinfo::{DaxOption, Mount, MountTable};
use crate::statx::{FileStat, statx};
use crate::vma::{Dev, Lookup, LookupChoice, Names, Target, Vma, walk};
use crate::{state, sysfs};

/// Filesystems that can map files with DAX (the rest never can).
const DAX_CAPABLE_FS: &[&str] = &["ext2", "ext3", "ext4", "xfs", "erofs", "virtiofs", "fuse", "famfs"];

/// Names the kernel gives VMAs that are neither anonymous memory nor files.
const SPECIAL_NAMES: &[&[u8]] = &[b"[vdso]", b"[vvar]", b"[vvar_vclock]", b"[vsyscall]", b"[uprobes]"];

/// How a file-backed VMA was judged, most trustworthy first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// `statx` on the file reports `STATX_ATTR_DAX` set or clear.
    Statx { via: Via },
    /// `statx` says the file is a character device.
    CharDevice { via: Via },
    /// The kernel's internal shmem mount: shared anonymous memory, memfd, SysV shm.
    SharedMemory,
    /// The mount says `dax` / `dax=always` (the file itself could not be examined).
    MountDaxAlways,
    /// The mount says `dax=never`.
    MountDaxNever,
    /// The filesystem type cannot do DAX at all.
    FsTypeCannotDax,
    /// The block device under the filesystem is not DAX-capable (`queue/dax` is 0).
    BlockDeviceNotDax,
    /// Nothing could tell: file not reachable and the mount allows per-file DAX.
    NotVerifiable,
}

impl Evidence {
    /// A short stable name, used in JSON (`docs/cli.md`).
    pub fn name(self) -> &'static str {
        match self {
            Evidence::Statx { .. } => "statx",
            Evidence::CharDevice { .. } => "char_device",
            Evidence::SharedMemory => "shared_memory",
            Evidence::MountDaxAlways => "mount_dax_always",
            Evidence::MountDaxNever => "mount_dax_never",
            Evidence::FsTypeCannotDax => "fstype_cannot_dax",
            Evidence::BlockDeviceNotDax => "block_device_not_dax",
            Evidence::NotVerifiable => "not_verifiable",
        }
    }

    /// How `statx` reached the file, for the evidence that comes from it.
    pub fn via(self) -> Option<Via> {
        match self {
            Evidence::Statx { via } | Evidence::CharDevice { via } => Some(via),
            _ => None,
        }
    }

    /// The evidence in a few words, for people.
    pub fn words(self) -> &'static str {
        match self {
            Evidence::Statx { via: Via::Path } => "statx STATX_ATTR_DAX",
            Evidence::Statx { via: Via::MapFiles } => "statx STATX_ATTR_DAX via map_files",
            Evidence::CharDevice { .. } => "a character device",
            Evidence::SharedMemory => "shared memory (shmem, memfd)",
            Evidence::MountDaxAlways => "mount option dax=always",
            Evidence::MountDaxNever => "mount option dax=never",
            Evidence::FsTypeCannotDax => "the filesystem type cannot do DAX",
            Evidence::BlockDeviceNotDax => "the block device is not DAX-capable",
            Evidence::NotVerifiable => "the file could not be examined",
        }
    }
}

/// How `statx` reached the mapped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The path shown for the VMA (through `/proc/PID/root` for another process).
    Path,
    /// `/proc/PID/map_files/START-END`, for deleted or unreachable files.
    MapFiles,
}

impl Via {
    /// A short stable name, used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Via::Path => "path",
            Via::MapFiles => "map_files",
        }
    }
}

/// The answer for one mapped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    FsDax,
    DeviceDax,
    /// A character device that is not device-DAX (driver memory, often VM_PFNMAP).
    CharDevice,
    /// A file that is not DAX.
    Regular,
    /// May be DAX; could not be verified.
    Unverified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVerdict {
    pub kind: FileKind,
    pub evidence: Evidence,
    /// What `statx` said of `STATX_ATTR_DAX` for the mapped inode: `None` when
    /// it was not asked, could not reach the inode, or the kernel is before 5.8.
    pub statx_dax: Option<bool>,
}

/// The mount behind a file, as a person would want to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    /// Superblock options, e.g. `rw,dax=always`.
    pub options: String,
}

/// A file-backed piece of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: PathBuf,
    pub dev: Dev,
    pub inode: u64,
    pub evidence: Evidence,
    /// `STATX_ATTR_DAX` as the library's own `statx` saw it (see [`FileVerdict::statx_dax`]).
    pub statx_dax: Option<bool>,
    pub mount: Option<MountInfo>,
}

/// What one piece of the range is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Private or shared anonymous memory (heap, stack, `MAP_ANONYMOUS`, hugetlb).
    Anonymous { label: Option<String> },
    /// Filesystem DAX: the kernel refuses long-term pins here.
    FsDax(FileInfo),
    /// Device DAX (`/dev/daxX.Y`): allowed.
    DeviceDax(FileInfo),
    /// A file that is not DAX.
    File(FileInfo),
    /// A file that may be DAX but could not be verified.
    Unverified(FileInfo),
    /// `[vdso]`, `[vvar]`, a character device's memory, an anon inode.
    Special { label: String },
    /// Nothing mapped (the kernel answers EFAULT).
    Hole,
}

impl Kind {
    /// A short stable name, used in JSON and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Anonymous { .. } => "anonymous",
            Kind::FsDax(_) => "fsdax",
            Kind::DeviceDax(_) => "devdax",
            Kind::File(_) => "file",
            Kind::Unverified(_) => "unverified",
            Kind::Special { .. } => "special",
            Kind::Hole => "hole",
        }
    }

    pub fn file(&self) -> Option<&FileInfo> {
        match self {
            Kind::FsDax(f) | Kind::DeviceDax(f) | Kind::File(f) | Kind::Unverified(f) => Some(f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub end: u64,
    pub kind: Kind,
    /// The VMA's protection; `None` for a hole.
    pub prot: Option<Prot>,
}

/// A VMA's protection and sharing, as maps shows `rwxs`/`rwxp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub shared: bool,
}

/// Every piece of a page-aligned range, in address order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub start: u64,
    pub end: u64,
    pub lookup: Lookup,
    pub pieces: Vec<Piece>,
}

/// What daxguard concludes about a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No piece is fs-DAX or unverifiable: the pin is the kernel's to judge.
    Allow,
    /// Piece `piece` is fs-DAX: the kernel would answer EOPNOTSUPP.
    FsDax { piece: usize },
    /// Piece `piece` may be fs-DAX and could not be verified.
    Unverified { piece: usize },
}

impl Verdict {
    /// A short stable name, used in JSON and the audit record.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::FsDax { .. } => "fsdax",
            Verdict::Unverified { .. } => "unverified",
        }
    }
}

impl Report {
    /// fs-DAX anywhere wins over unverifiable anywhere.
    pub fn verdict(&self) -> Verdict {
        let find = |f: fn(&Kind) -> bool| self.pieces.iter().position(|p| f(&p.kind));
        if let Some(piece) = find(|k| matches!(k, Kind::FsDax(_))) {
            return Verdict::FsDax { piece };
        }
        match find(|k| matches!(k, Kind::Unverified(_))) {
            Some(piece) => Verdict::Unverified { piece },
            None => Verdict::Allow,
        }
    }
}

/// Where and how to look.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub target: Option<Target>,
    pub lookup: LookupChoice,
}

impl Options {
    fn target(&self) -> Target {
        self.target.unwrap_or(Target::Current)
    }
}

/// `[addr, addr + len)` widened to whole pages, as the kernel pins it.
///
/// # Errors
/// [`Error::InvalidRange`] if the end overflows.
pub fn page_range(addr: u64, len: u64) -> Result<(u64, u64), Error> {
    let page = page_size();
    let end = addr.checked_add(len).and_then(|e| e.checked_add(page - 1)).ok_or(Error::InvalidRange { addr, len })?;
    if len == 0 {
        return Ok((addr & !(page - 1), addr & !(page - 1)));
    }
    Ok((addr & !(page - 1), end & !(page - 1)))
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(crate::sys::page_size)
}

/// Classifies every piece of `[addr, addr + len)` in the calling process.
///
/// # Errors
/// [`Error::InvalidRange`] on overflow; [`Error::ProcOpen`] when `/proc` is unusable.
pub fn classify(addr: u64, len: u64) -> Result<Report, Error> {
    classify_with(addr, len, Options::default())
}

/// [`classify`] for another process or with a forced lookup path.
///
/// # Errors
/// As [`classify`]; for another process, `ESRCH`/`ENOENT` if it is gone and
/// `EACCES`/`EPERM` if its maps are not ours to read.
pub fn classify_with(addr: u64, len: u64, opts: Options) -> Result<Report, Error> {
    let (start, end) = page_range(addr, len)?;
    let mut pieces = Vec::new();
    let mut mounts = Mounts::new(opts.target());
    let lookup = visit_pieces(start, end, opts, false, &mut mounts, &mut |s, e, class, vma| {
        let kind = match class {
            Class::Hole => Kind::Hole,
            Class::Anonymous => Kind::Anonymous { label: vma.and_then(label) },
            Class::Special => Kind::Special { label: vma.and_then(label).unwrap_or_else(|| "special".into()) },
            Class::File(v) => file_kind(v, vma.expect("file pieces come from a VMA")),
        };
        let prot = vma.map(|v| Prot { read: v.readable, write: v.writable, exec: v.executable, shared: v.shared });
        pieces.push(Piece { start: s, end: e, kind, prot });
        ControlFlow::Continue(())
    })?;
    // Mount details only for the report, after the walk (the walk holds `mounts`).
    for p in &mut pieces {
        if let Some(info) = file_info_mut(&mut p.kind) {
            info.mount = mounts.mount_for(info.dev, info.path.as_os_str().as_bytes());
        }
    }
    Ok(Report { start, end, lookup, pieces })
}

/// The verdict alone for `[addr, addr + len)` in the calling process, without
/// allocating on anonymous memory; stops at the first fs-DAX piece.
///
/// # Errors
/// As [`classify`].
pub fn judge(addr: u64, len: u64, lookup: LookupChoice) -> Result<(Verdict, Lookup), Error> {
    let (start, end) = page_range(addr, len)?;
    let (mut verdict, mut index) = (Verdict::Allow, 0);
    let opts = Options { target: None, lookup };
    let mut mounts = Mounts::new(Target::Current);
    let lookup = visit_pieces(start, end, opts, true, &mut mounts, &mut |_, _, class, _| {
        match class {
            Class::File(FileVerdict { kind: FileKind::FsDax, .. }) => {
                verdict = Verdict::FsDax { piece: index };
                return ControlFlow::Break(());
            }
            Class::File(FileVerdict { kind: FileKind::Unverified, .. }) if verdict == Verdict::Allow => {
                verdict = Verdict::Unverified { piece: index };
            }
            _ => {}
        }
        index += 1;
        ControlFlow::Continue(())
    })?;
    Ok((verdict, lookup))
}

/// What a piece is, before any detail is gathered.
#[derive(Debug, Clone, Copy)]
enum Class {
    Hole,
    Anonymous,
    Special,
    File(FileVerdict),
}

type PieceVisitor<'v> = dyn FnMut(u64, u64, Class, Option<&Vma<'_>>) -> ControlFlow<()> + 'v;

/// Walks the VMAs of `[start, end)`, clips them, fills holes, and classifies each.
///
/// With `lazy_names` (the verdict alone, for the calling process) a VMA is
/// named only when its class needs the name: not for anonymous memory, nor
/// for a file whose verdict is cached and lets the pin through.
fn visit_pieces(
    start: u64,
    end: u64,
    opts: Options,
    lazy_names: bool,
    mounts: &mut Mounts,
    f: &mut PieceVisitor<'_>,
) -> Result<Lookup, Error> {
    if start == end {
        return Ok(crate::vma::preferred_lookup(opts.lookup));
    }
    let decided = Cell::new(None);
    let mut without_name = |vma: &Vma<'_>| {
        decided.set(class_without_name(vma));
        decided.get().is_none()
    };
    let names =
        if lazy_names && opts.target() == Target::Current { Names::When(&mut without_name) } else { Names::All };
    let mut cursor = start;
    let mut stopped = false;
    let lookup = walk(opts.target(), opts.lookup, start, end, names, &mut |vma| {
        if vma.start > cursor && f(cursor, vma.start.min(end), Class::Hole, None).is_break() {
            stopped = true;
            return ControlFlow::Break(());
        }
        let (s, e) = (vma.start.max(cursor), vma.end.min(end));
        cursor = e;
        let class = decided.take().unwrap_or_else(|| class_of(vma, mounts));
        if f(s, e, class, Some(vma)).is_break() {
            stopped = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if !stopped && cursor < end {
        let _ = f(cursor, end, Class::Hole, None);
    }
    Ok(lookup)
}

/// The class of a VMA of the calling process seen without its name, when the
/// name cannot change the verdict: anonymous memory (a name would only tell
/// `[vdso]` from `[heap]`), files on the kernel's internal mounts, and files
/// whose cached verdict allows the pin. A cached refusal is not answered here:
/// it is confirmed with the name (the cache's guard against a reused inode).
fn class_without_name(vma: &Vma<'_>) -> Option<Class> {
    if !vma.is_file_backed() || state::is_internal_dev(vma.dev) {
        return Some(Class::Anonymous);
    }
    let v = state::lock()?.cached(vma.dev, vma.inode, None)?;
    match v.kind {
        FileKind::FsDax | FileKind::Unverified => None,
        FileKind::CharDevice => Some(Class::Special),
        FileKind::DeviceDax | FileKind::Regular => Some(Class::File(v)),
    }
}

fn class_of(vma: &Vma<'_>, mounts: &mut Mounts) -> Class {
    if !vma.is_file_backed() {
        return if SPECIAL_NAMES.contains(&vma.name) { Class::Special } else { Class::Anonymous };
    }
    // MAP_ANONYMOUS|MAP_HUGETLB lives on an internal hugetlbfs mount.
    if vma.name == b"/anon_hugepage (deleted)" {
        state::note_internal_dev(vma.dev);
        return Class::Anonymous;
    }
    if vma.name.starts_with(b"anon_inode:") {
        state::note_internal_dev(vma.dev);
        return Class::Special;
    }
    let v = mounts.file_verdict(vma);
    match v.kind {
        // A private mapping of /dev/zero is anonymous memory (newer kernels keep the file).
        FileKind::CharDevice if vma.name == b"/dev/zero" => Class::Anonymous,
        FileKind::CharDevice => Class::Special,
        // Shared anonymous memory is a shmem file to the kernel, not to a person.
        FileKind::Regular if v.evidence == Evidence::SharedMemory && is_shared_anon_name(vma.name) => Class::Anonymous,
        _ => Class::File(v),
    }
}

fn is_shared_anon_name(name: &[u8]) -> bool {
    name.starts_with(b"/dev/zero") || name.starts_with(b"/SYSV") || name.starts_with(b"[anon_shmem:")
}

fn label(vma: &Vma<'_>) -> Option<String> {
    (!vma.name.is_empty()).then(|| String::from_utf8_lossy(vma.name).into_owned())
}

fn file_info_mut(kind: &mut Kind) -> Option<&mut FileInfo> {
    match kind {
        Kind::FsDax(f) | Kind::DeviceDax(f) | Kind::File(f) | Kind::Unverified(f) => Some(f),
        _ => None,
    }
}

fn file_kind(v: FileVerdict, vma: &Vma<'_>) -> Kind {
    let info = FileInfo {
        path: PathBuf::from(OsStr::from_bytes(vma.name)),
        dev: vma.dev,
        inode: vma.inode,
        evidence: v.evidence,
        statx_dax: v.statx_dax,
        mount: None,
    };
    match v.kind {
        FileKind::FsDax => Kind::FsDax(info),
        FileKind::DeviceDax => Kind::DeviceDax(info),
        FileKind::Regular => Kind::File(info),
        FileKind::Unverified => Kind::Unverified(info),
        FileKind::CharDevice => Kind::Special { label: String::from_utf8_lossy(vma.name).into_owned() },
    }
}

fn mount_info(m: &Mount) -> MountInfo {
    MountInfo {
        mount_point: PathBuf::from(OsStr::from_bytes(&m.mount_point)),
        fstype: m.fstype.clone(),
        source: String::from_utf8_lossy(&m.source).into_owned(),
        options: m.super_options.clone(),
    }
}

/// Mount knowledge for one call: the shared, cached state for the calling
/// process, or a table read once for another process.
enum Mounts {
    Current,
    Other { pid: i32, table: Option<MountTable> },
}

impl Mounts {
    fn new(target: Target) -> Self {
        match target {
            Target::Current => Mounts::Current,
            Target::Pid(pid) => Mounts::Other { pid, table: None },
        }
    }

    fn mount_for(&mut self, dev: Dev, path: &[u8]) -> Option<MountInfo> {
        match self {
            Mounts::Current => match state::lock() {
                Some(mut st) => st.mounts().best_for(dev, path).map(mount_info),
                None => fresh_table(None).best_for(dev, path).map(mount_info),
            },
            Mounts::Other { pid, table } => other_table(*pid, table).best_for(dev, path).map(mount_info),
        }
    }

    fn file_verdict(&mut self, vma: &Vma<'_>) -> FileVerdict {
        match self {
            Mounts::Current => {
                let Some(mut st) = state::lock() else {
                    // Busy for too long (or inherited locked across fork): answer uncached.
                    return file_verdict(vma, Target::Current, state::shm_dev_uncached(), &fresh_table(None));
                };
                if let Some(v) = st.cached(vma.dev, vma.inode, Some(vma.name)) {
                    return v;
                }
                let shm = st.shm_dev();
                let v = file_verdict(vma, Target::Current, shm, st.mounts());
                st.remember(vma.dev, vma.inode, vma.name, v);
                v
            }
            Mounts::Other { pid, table } => {
                let shm = state::lock().map_or_else(state::shm_dev_uncached, |mut st| st.shm_dev());
                file_verdict(vma, Target::Pid(*pid), shm, other_table(*pid, table))
            }
        }
    }
}

/// Another process's mount table, read once per call. Unreadable means empty:
/// the verdict then rests on statx alone, or says it could not verify.
fn other_table(pid: i32, table: &mut Option<MountTable>) -> &MountTable {
    table.get_or_insert_with(|| fresh_table(Some(pid)))
}

fn fresh_table(pid: Option<i32>) -> MountTable {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/mountinfo"),
        None => "/proc/self/mountinfo".to_string(),
    };
    MountTable::read(path.as_ref()).unwrap_or_default()
}

/// The `vma_is_fsdax()` question for one file-backed VMA, answered from the
/// best evidence available.
pub fn file_verdict(vma: &Vma<'_>, target: Target, shm_dev: Option<Dev>, mounts: &MountTable) -> FileVerdict {
    let verdict = |kind, evidence| FileVerdict { kind, evidence, statx_dax: None };
    // Shared anonymous memory, memfd and SysV shm: tmpfs, never DAX.
    if shm_dev == Some(vma.dev) {
        return verdict(FileKind::Regular, Evidence::SharedMemory);
    }
    // The file itself is the truth, if we can reach the very inode mapped.
    let stat = stat_mapped_file(vma, target);
    if let Some((st, via)) = stat {
        let verdict = |kind, evidence| FileVerdict { kind, evidence, statx_dax: st.dax };
        if st.is_char_device() {
            // vma_is_fsdax(): "if (S_ISCHR(inode->i_mode)) return false; /* device-dax */"
            let kind = if sysfs::char_device_is_dax(st.rdev) { FileKind::DeviceDax } else { FileKind::CharDevice };
            return verdict(kind, Evidence::CharDevice { via });
        }
        match st.dax {
            Some(true) => return verdict(FileKind::FsDax, Evidence::Statx { via }),
            Some(false) => return verdict(FileKind::Regular, Evidence::Statx { via }),
            None => {} // before Linux 5.8: ask the mount
        }
    }
    // The mount: any entry for this device carries the superblock options.
    if let Some(m) = mounts.first_by_dev(vma.dev) {
        if !DAX_CAPABLE_FS.contains(&m.fstype.as_str()) {
            return verdict(FileKind::Regular, Evidence::FsTypeCannotDax);
        }
        match m.dax_option() {
            DaxOption::Always => return verdict(FileKind::FsDax, Evidence::MountDaxAlways),
            DaxOption::Never => return verdict(FileKind::Regular, Evidence::MountDaxNever),
            DaxOption::Inode => {}
        }
    }
    if vma.dev.major != 0 && sysfs::block_device_dax(vma.dev) == Some(false) {
        return verdict(FileKind::Regular, Evidence::BlockDeviceNotDax);
    }
    if shm_dev.is_none() && vma.name.starts_with(b"/memfd:") {
        return verdict(FileKind::Regular, Evidence::SharedMemory);
    }
    verdict(FileKind::Unverified, Evidence::NotVerifiable)
}

/// `statx` of the inode the VMA maps: by its path, else through map_files.
/// Only an answer for the same (dev, inode) counts: the path may now name
/// another file (renamed, deleted, another mount namespace).
fn stat_mapped_file(vma: &Vma<'_>, target: Target) -> Option<(FileStat, Via)> {
    let same = |st: &FileStat| st.dev == vma.dev && st.ino == vma.inode;
    let mut buf = [0u8; 4096 + 64];
    if vma.name.first() == Some(&b'/')
        && let Some(path) = path_in(&mut buf, target, vma.name)
        && let Some(st) = statx(path).ok().filter(same)
    {
        return Some((st, Via::Path));
    }
    let path = map_files_path(&mut buf, target, vma.start, vma.end)?;
    statx(path).ok().filter(same).map(|st| (st, Via::MapFiles))
}

/// `name` as seen by the target: itself, or under `/proc/PID/root`.
fn path_in<'b>(buf: &'b mut [u8], target: Target, name: &[u8]) -> Option<&'b CStr> {
    use std::io::Write;
    let cap = buf.len() - 1;
    let mut w = &mut buf[..cap];
    if let Target::Pid(pid) = target {
        write!(w, "/proc/{pid}/root").ok()?;
    }
    w.write_all(name).ok()?;
    let len = cap - w.len();
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok() // fails if the name holds a NUL
}

fn map_files_path(buf: &mut [u8], target: Target, start: u64, end: u64) -> Option<&CStr> {
    use std::io::Write;
    let cap = buf.len() - 1;
    let mut w = &mut buf[..cap];
    match target {
        Target::Current => write!(w, "/proc/self/map_files/{start:x}-{end:x}"),
        Target::Pid(pid) => write!(w, "/proc/{pid}/map_files/{start:x}-{end:x}"),
    }
    .ok()?;
    let len = cap - w.len();
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok()
}
