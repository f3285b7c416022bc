//! The report model: what each piece of a range is, how that is known, and
//! what daxguard concludes. Plain data; the walk that fills it is
//! [`crate::judge`], the predicate behind each file is [`crate::fsdax`].
//!
//! One name per idea: a [`Finding`] ([`FileKind`] and [`Evidence`]) is what
//! the predicate says of one file; a [`Kind`] is what a piece of the range
//! is, for a person; a [`Verdict`] is the conclusion for the whole range.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::mountinfo::Mount;
use crate::types::{Dev, Lookup};

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
    PlainFile,
    /// May be DAX; could not be verified.
    Unverified,
}

/// What the fs-DAX predicate ([`crate::fsdax::examine`]) found for one mapped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
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
    /// `STATX_ATTR_DAX` as the library's own `statx` saw it (see [`Finding::statx_dax`]).
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
    PlainFile(FileInfo),
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
            Kind::PlainFile(_) => "file",
            Kind::Unverified(_) => "unverified",
            Kind::Special { .. } => "special",
            Kind::Hole => "hole",
        }
    }

    /// The file behind any file-backed piece, DAX or not.
    pub fn file_info(&self) -> Option<&FileInfo> {
        match self {
            Kind::FsDax(f) | Kind::DeviceDax(f) | Kind::PlainFile(f) | Kind::Unverified(f) => Some(f),
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

    /// The fs-DAX (or unverifiable) file behind the verdict, if any.
    pub fn culprit(&self) -> Option<&FileInfo> {
        match self.verdict() {
            Verdict::FsDax { piece } | Verdict::Unverified { piece } => self.pieces.get(piece)?.kind.file_info(),
            Verdict::Allow => None,
        }
    }
}

impl From<&Mount> for MountInfo {
    fn from(m: &Mount) -> Self {
        MountInfo {
            mount_point: PathBuf::from(OsStr::from_bytes(&m.mount_point)),
            fstype: m.fstype.clone(),
            source: String::from_utf8_lossy(&m.source).into_owned(),
            options: m.super_options.clone(),
        }
    }
}
