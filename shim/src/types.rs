//! The types every layer shares: a device number, one VMA, whose address
//! space, which lookup path. This module imports nothing of the crate, so any
//! other module can use these without depending on the walk or the cache.

/// A device number as the kernel splits it (`MAJOR(dev)`, `MINOR(dev)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dev {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One VMA as either lookup path reports it; `name` is unescaped, and empty
/// when the VMA has none or was looked up without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma<'a> {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub shared: bool,
    pub dev: Dev,
    pub inode: u64,
    pub name: &'a [u8],
}

impl Vma<'_> {
    /// Backed by a file (possibly an internal one, as for shared anonymous memory).
    pub fn is_file_backed(&self) -> bool {
        self.inode != 0 || self.dev != Dev::default()
    }
}

/// Who asks for the long-term pin: the kernel subsystem behind the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consumer {
    /// RDMA memory registration (`ib_umem_get()`): libibverbs, DevX.
    #[default]
    Rdma,
    /// V4L2 `USERPTR` buffers (vb2's `get_userptr`), at `VIDIOC_QBUF` / `VIDIOC_PREPARE_BUF`.
    V4l2,
    /// io_uring fixed buffers (`io_pin_pages()`), at `IORING_REGISTER_BUFFERS*`.
    IoUring,
}

impl Consumer {
    /// A short stable name, used in JSON, the audit record and `--for`.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Rdma => "rdma",
            Consumer::V4l2 => "v4l2",
            Consumer::IoUring => "io_uring",
        }
    }

    /// Every consumer, in the order the docs list them.
    pub const ALL: [Consumer; 3] = [Consumer::Rdma, Consumer::V4l2, Consumer::IoUring];

    /// The consumer of a [`Consumer::name`].
    pub fn parse(name: &str) -> Option<Consumer> {
        Consumer::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What a consumer's pin asks of the kernel, as far as the rules care:
/// the `FOLL_*` flags its call ends up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pin {
    /// `FOLL_WRITE`: the pages are pinned for writing (the 6.5+ file rule).
    pub write: bool,
    /// On-demand paging: nothing is pinned at all (the kernel allows fs-DAX).
    pub on_demand: bool,
}

/// One buffer a call pins: `[addr, addr + len)` as the caller gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    pub addr: u64,
    pub len: u64,
}

/// Whose address space to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The calling process (`/proc/self`).
    Current,
    /// Another process, with the rights needed to read its maps.
    Pid(i32),
}

impl Target {
    /// The pid for messages: 0 for the calling process.
    pub fn pid(self) -> i32 {
        match self {
            Target::Current => 0,
            Target::Pid(pid) => pid,
        }
    }
}

/// Which lookup path produced a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `ioctl(PROCMAP_QUERY)` on `/proc/PID/maps` (Linux 6.11+).
    ProcmapQuery,
    /// Streaming the text of `/proc/PID/maps`.
    MapsText,
    /// The calling process's own map of its VMAs, built from one maps read
    /// and kept current from the kernel's `PERF_RECORD_MMAP2` records
    /// (kernels without `PROCMAP_QUERY`; `docs/design.md`).
    MmapEvents,
    /// `/proc/PID/map_files` said no VMA with a file meets the range (where
    /// maps text would be read: `docs/design.md`); a verdict only, never a report.
    MapFiles,
}

impl Lookup {
    /// A short stable name, used in JSON and the audit record.
    pub fn name(self) -> &'static str {
        match self {
            Lookup::ProcmapQuery => "procmap_query",
            Lookup::MapsText => "maps",
            Lookup::MmapEvents => "events",
            Lookup::MapFiles => "map_files",
        }
    }
}

/// Which lookup path to use (`DAXGUARD_LOOKUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupChoice {
    /// `PROCMAP_QUERY` where the kernel has it; else, for verdicts in the
    /// calling process, the mmap-events map where it can be set up; else
    /// maps text.
    #[default]
    Auto,
    /// Only `PROCMAP_QUERY`; fails with `ENOTTY` on older kernels.
    ProcmapQuery,
    /// Only maps text.
    MapsText,
    /// The mmap-events map for the calling process's verdicts ([`crate::judge`]);
    /// fails when perf refuses it. Full reports and other processes read maps text.
    MmapEvents,
}
