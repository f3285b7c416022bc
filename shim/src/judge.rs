//! Judging a range the way the kernel sees it for a long-term pin.
//!
//! [`judge`] walks the VMAs of `[addr, addr + len)` with the lookup cursor,
//! asks the fs-DAX predicate ([`crate::fsdax::examine`], through the cache)
//! about each file, and returns the [`Verdict`] with the culprit file:
//! no allocation on anonymous memory, no name asked of the kernel unless the
//! answer needs it, one walk even for a refusal. [`classify`] makes the
//! same walk and builds the full per-piece [`Report`] for people and tools.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::cache::{self, Cache};
use crate::error::Error;
use crate::fsdax;
use crate::lookup::{self, Names, Vmas};
use crate::mountinfo::MountTable;
use crate::report::{Evidence, FileInfo, FileKind, Finding, Kind, MountInfo, Piece, Prot, Report, Verdict};
use crate::types::{Dev, Lookup, LookupChoice, Target, Vma};

/// Names the kernel gives VMAs that are neither anonymous memory nor files.
const SPECIAL_NAMES: &[&[u8]] = &[b"[vdso]", b"[vvar]", b"[vvar_vclock]", b"[vsyscall]", b"[uprobes]"];

/// Where and how to look.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub target: Option<Target>,
    pub lookup: LookupChoice,
}

/// [`judge`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub lookup: Lookup,
    /// The file behind a verdict other than [`Verdict::Allow`], with its
    /// mount (boxed: every verdict is moved a few times, few have a culprit).
    pub culprit: Option<Box<FileInfo>>,
    /// Every page of the range is memory without a file (anonymous or the
    /// kernel's special mappings), no hole: a full report would name no
    /// file either, so an audit record needs none (`guard`).
    pub unnamed: bool,
}

/// `[addr, addr + len)` widened to whole pages, as the kernel pins it.
///
/// # Errors
/// [`Error::InvalidRange`] if the end overflows.
pub fn page_range(addr: u64, len: u64) -> Result<(u64, u64), Error> {
    let page = crate::sys::page_size();
    let end = addr.checked_add(len).and_then(|e| e.checked_add(page - 1)).ok_or(Error::InvalidRange { addr, len })?;
    if len == 0 {
        return Ok((addr & !(page - 1), addr & !(page - 1)));
    }
    Ok((addr & !(page - 1), end & !(page - 1)))
}

/// The verdict for `[addr, addr + len)` in the calling process, and the
/// culprit file; stops at the first fs-DAX piece.
///
/// # Errors
/// As [`classify`].
pub fn judge(addr: u64, len: u64, lookup: LookupChoice) -> Result<Judgement, Error> {
    let (start, end) = page_range(addr, len)?;
    if start < end && lookup::map_holds_no_file(start, end, lookup) {
        // What the walk below would find on the map, in a fraction of its instructions.
        return Ok(Judgement { verdict: Verdict::Allow, lookup: Lookup::MmapEvents, culprit: None, unnamed: true });
    }
    let (judged, from_map) = judge_walk(start, end, lookup)?;
    if judged.verdict != Verdict::Allow && from_map {
        // The mmap-events map may be stale; it is trusted to allow (the
        // kernel refuses fs-DAX itself), never to refuse: anything else is
        // judged again on the kernel's current view.
        return Ok(judge_walk(start, end, LookupChoice::MapsText)?.0);
    }
    Ok(judged)
}

/// One verdict walk, and whether any VMA in it came from the mmap-events map.
fn judge_walk(start: u64, end: u64, lookup: LookupChoice) -> Result<(Judgement, bool), Error> {
    let mut buf = lookup::buffer();
    let mut vmas = Vmas::new(&mut buf, Target::Current, lookup, start, end, Names::Lazy)?;
    let mut files = Files::new(Target::Current);
    let mut judged = Judgement { verdict: Verdict::Allow, lookup: Lookup::ProcmapQuery, culprit: None, unnamed: true };
    let (mut at, mut piece) = (start, 0);
    while let Some((vma, finding)) = look(&mut vmas, &mut files)? {
        piece += usize::from(vma.start > at); // a hole before it is a piece too
        judged.unnamed &= vma.start <= at && finding.is_none();
        at = vma.end;
        match finding.map(|f| f.kind) {
            Some(FileKind::FsDax) => {
                judged.verdict = Verdict::FsDax { piece };
                judged.culprit = finding.map(|f| Box::new(files.file_info(&vma, f)));
                break;
            }
            Some(FileKind::Unverified) if judged.verdict == Verdict::Allow => {
                judged.verdict = Verdict::Unverified { piece };
                judged.culprit = finding.map(|f| Box::new(files.file_info(&vma, f)));
            }
            _ => {}
        }
        piece += 1;
    }
    judged.unnamed &= at >= end;
    judged.lookup = vmas.lookup();
    Ok((judged, vmas.answered_from_map()))
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
    let target = opts.target.unwrap_or(Target::Current);
    let mut buf = lookup::buffer();
    let mut vmas = Vmas::new(&mut buf, target, opts.lookup, start, end, Names::All)?;
    let mut files = Files::new(target);
    let (mut pieces, mut at) = (Vec::new(), start);
    while let Some((vma, finding)) = look(&mut vmas, &mut files)? {
        if vma.start > at {
            pieces.push(Piece { start: at, end: vma.start, kind: Kind::Hole, prot: None });
        }
        let prot = Prot { read: vma.readable, write: vma.writable, exec: vma.executable, shared: vma.shared };
        let kind = kind_of(&vma, finding, &mut files);
        pieces.push(Piece { start: vma.start.max(at), end: vma.end.min(end), kind, prot: Some(prot) });
        at = vma.end;
    }
    if at < end {
        pieces.push(Piece { start: at, end, kind: Kind::Hole, prot: None });
    }
    Ok(Report { start, end, lookup: vmas.lookup(), pieces })
}

/// The cursor's next VMA and the predicate's finding for it (`None`: not a
/// file, as far as a pin is concerned). The name is asked for only when the
/// finding depends on it: not for anonymous memory, nor for a file whose
/// cached finding lets the pin through.
fn look<'v>(vmas: &'v mut Vmas<'_>, files: &mut Files) -> Result<Option<(Vma<'v>, Option<Finding>)>, Error> {
    let quick = match vmas.next()? {
        None => return Ok(None),
        Some(bare) if bare.name.is_empty() => files.without_name(&bare),
        Some(_) => None,
    };
    if let Some(finding) = quick {
        return Ok(vmas.current().map(|v| (v, finding)));
    }
    let Some(vma) = vmas.named()? else { return Ok(None) };
    let finding = files.finding(&vma);
    Ok(Some((vma, finding)))
}

/// What a piece is, for a person: the finding, and the VMA's name where
/// the kernel's internal files stand for anonymous memory.
fn kind_of(vma: &Vma<'_>, finding: Option<Finding>, files: &mut Files) -> Kind {
    let label = || (!vma.name.is_empty()).then(|| String::from_utf8_lossy(vma.name).into_owned());
    let special = || Kind::Special { label: label().unwrap_or_else(|| "special".into()) };
    let Some(f) = finding else {
        // Not a file to the pin: anonymous memory (anonymous hugetlb too), or
        // the kernel's special mappings and anon inodes.
        let special_name = SPECIAL_NAMES.contains(&vma.name) || is_anon_inode(vma.name);
        return if special_name { special() } else { Kind::Anonymous { label: label() } };
    };
    match f.kind {
        // A private mapping of /dev/zero is anonymous memory (newer kernels keep the file).
        FileKind::CharDevice if vma.name == b"/dev/zero" => Kind::Anonymous { label: label() },
        FileKind::CharDevice => special(),
        // Shared anonymous memory is a shmem file to the kernel, not to a person.
        FileKind::PlainFile if f.evidence == Evidence::SharedMemory && is_shared_anon_name(vma.name) => {
            Kind::Anonymous { label: label() }
        }
        FileKind::FsDax => Kind::FsDax(files.file_info(vma, f)),
        FileKind::DeviceDax => Kind::DeviceDax(files.file_info(vma, f)),
        FileKind::PlainFile => Kind::PlainFile(files.file_info(vma, f)),
        FileKind::Unverified => Kind::Unverified(files.file_info(vma, f)),
    }
}

/// `MAP_ANONYMOUS|MAP_HUGETLB` lives on an internal hugetlbfs mount.
fn is_anon_hugepage(name: &[u8]) -> bool {
    name == b"/anon_hugepage (deleted)"
}

/// `anon_inode:[perf_event]`, `anon_inode:i915.gem`, ...: driver memory on an internal mount.
fn is_anon_inode(name: &[u8]) -> bool {
    name.starts_with(b"anon_inode:")
}

fn is_shared_anon_name(name: &[u8]) -> bool {
    name.starts_with(b"/dev/zero") || name.starts_with(b"/SYSV") || name.starts_with(b"[anon_shmem:")
}

/// What one walk knows of files: for the calling process the shared cache,
/// locked once at the first file and held to the end of the walk; for
/// another process its mount table, read once.
enum Files {
    Current(Held),
    Other { pid: i32, table: Option<MountTable>, shm: Option<Option<Dev>> },
}

/// The cache lock for one walk.
enum Held {
    NotYet,
    Locked(crate::sys::lock::EpochGuard<'static, Cache>),
    /// Busy for too long (or inherited locked across fork): answer uncached.
    Busy(Option<MountTable>),
}

impl Files {
    fn new(target: Target) -> Self {
        match target {
            Target::Current => Files::Current(Held::NotYet),
            Target::Pid(pid) => Files::Other { pid, table: None, shm: None },
        }
    }

    /// The finding for a VMA seen without its name, when the name cannot
    /// change it: not a file, a file on the kernel's internal mounts, or a
    /// file whose cached finding lets the pin through. A cached refusal is
    /// not answered here: it is confirmed with the name (the cache's guard
    /// against a reused inode).
    fn without_name(&mut self, vma: &Vma<'_>) -> Option<Option<Finding>> {
        if !vma.is_file_backed() || cache::is_internal_dev(vma.dev) {
            return Some(None);
        }
        let found = self.cache()?.cached(vma.dev, vma.inode, None)?;
        match found.kind {
            FileKind::FsDax | FileKind::Unverified => None,
            _ => Some(Some(found)),
        }
    }

    /// The finding for a named VMA: `None` if it is not a file to the pin.
    fn finding(&mut self, vma: &Vma<'_>) -> Option<Finding> {
        if !vma.is_file_backed() {
            return None;
        }
        if is_anon_hugepage(vma.name) || is_anon_inode(vma.name) {
            cache::note_internal_dev(vma.dev);
            return None;
        }
        Some(match self {
            Files::Current(_) => match self.cache() {
                Some(c) => c.cached(vma.dev, vma.inode, Some(vma.name)).unwrap_or_else(|| {
                    let found = fsdax::examine(vma, Target::Current, c.shm_dev(), c.mounts());
                    c.remember(vma.dev, vma.inode, vma.name, found);
                    found
                }),
                None => {
                    let Files::Current(Held::Busy(table)) = self else {
                        unreachable!("cache() is None only when busy")
                    };
                    let table = table.get_or_insert_with(|| fresh_table(Target::Current));
                    fsdax::examine(vma, Target::Current, cache::shm_dev_uncached(), table)
                }
            },
            Files::Other { pid, table, shm } => {
                let shm =
                    *shm.get_or_insert_with(|| cache::lock().map_or_else(cache::shm_dev_uncached, |mut c| c.shm_dev()));
                let table = table.get_or_insert_with(|| fresh_table(Target::Pid(*pid)));
                fsdax::examine(vma, Target::Pid(*pid), shm, table)
            }
        })
    }

    /// The file behind a VMA, with the mount a person would look for, and
    /// what statx says of it even where the finding did not need to ask.
    fn file_info(&mut self, vma: &Vma<'_>, f: Finding) -> FileInfo {
        let path = PathBuf::from(OsStr::from_bytes(vma.name));
        let mount = self.mount_for(vma.dev, vma.name);
        let target = match self {
            Files::Current(_) => Target::Current,
            Files::Other { pid, .. } => Target::Pid(*pid),
        };
        let statx_dax = match f.evidence {
            Evidence::SharedMemory => fsdax::statx_dax(vma, target),
            _ => f.statx_dax,
        };
        FileInfo { path, dev: vma.dev, inode: vma.inode, evidence: f.evidence, statx_dax, mount }
    }

    fn mount_for(&mut self, dev: Dev, path: &[u8]) -> Option<MountInfo> {
        let table = match self {
            Files::Current(_) => match self.cache() {
                Some(c) => return c.mounts().best_for(dev, path).map(MountInfo::from),
                None => {
                    let Files::Current(Held::Busy(table)) = self else {
                        unreachable!("cache() is None only when busy")
                    };
                    table.get_or_insert_with(|| fresh_table(Target::Current))
                }
            },
            Files::Other { pid, table, .. } => table.get_or_insert_with(|| fresh_table(Target::Pid(*pid))),
        };
        table.best_for(dev, path).map(MountInfo::from)
    }

    /// The locked cache (taken at the first call), or `None` when it stays busy.
    fn cache(&mut self) -> Option<&mut Cache> {
        let Files::Current(held) = self else { return None };
        if let Held::NotYet = held {
            *held = cache::lock().map_or(Held::Busy(None), Held::Locked);
        }
        match held {
            Held::Locked(c) => Some(c),
            _ => None,
        }
    }
}

/// A mount table read for one walk. Unreadable means empty: the finding then
/// rests on statx alone, or says it could not verify.
fn fresh_table(target: Target) -> MountTable {
    let path = match target {
        Target::Current => "/proc/self/mountinfo".to_string(),
        Target::Pid(pid) => format!("/proc/{pid}/mountinfo"),
    };
    MountTable::read(path.as_ref()).unwrap_or_default()
}
