//! Words for people: why a registration was refused, or why one that was
//! forwarded failed.
//!
//! Every line starts with `daxguard: ` and names the entry point and range, so
//! it can be found in the log of a big job far from the failing call.

use crate::fsdax::{is_shmem_or_hugetlb, writable_file_mapping_allowed};
use crate::policy::Rule;
use crate::report::{FileInfo, Kind, Piece, Report};
use crate::sys::Errno;
use crate::types::{Consumer, Pin};

/// A path as it goes into a one-line message: control characters (a newline
/// in a file name could split the line or forge another) are written as
/// octal escapes, the way `/proc/PID/maps` writes `\n` as `\012`.
pub fn shown(path: &std::path::Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if c.is_control() {
            out.push_str(&format!("\\{:03o}", c as u32 & 0xff));
        } else {
            out.push(c);
        }
    }
    out
}

/// `ext4 on /dev/pmem0, dax=always` - where a file lives, in a few words.
pub fn mount_words(info: &FileInfo) -> String {
    let Some(m) = &info.mount else {
        return format!("device {}, mount not visible", info.dev);
    };
    let dax = m.options.split(',').find(|o| o.starts_with("dax")).unwrap_or("no dax option");
    format!("{} on {} at {}, {dax}", m.fstype, shown(m.source.as_ref()), shown(&m.mount_point))
}

/// Where a long-term pin was asked for, as a message names it:
/// `ibv_reg_mr_iova2(0x7f3a00000000, 2097152)`, or with a detail
/// `VIDIOC_QBUF(/dev/video0 buffer 0 plane 1: 0x7f3a00000000, 115200)`.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    pub consumer: Consumer,
    /// The function or request: `ibv_reg_mr_iova2`, `VIDIOC_QBUF`, `io_uring_register_buffers`.
    pub entry: &'a str,
    /// What else names the buffer (device, index, plane), if anything.
    pub detail: Option<&'a str>,
    pub addr: u64,
    pub len: u64,
}

impl<'a> Site<'a> {
    /// An RDMA registration of `[addr, addr + len)` through `entry`.
    pub fn rdma(entry: &'a str, addr: u64, len: u64) -> Self {
        Site { consumer: Consumer::Rdma, entry, detail: None, addr, len }
    }
}

impl std::fmt::Display for Site<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.detail {
            Some(d) => write!(f, "{}({d}: {:#x}, {})", self.entry, self.addr, self.len),
            None => write!(f, "{}({:#x}, {})", self.entry, self.addr, self.len),
        }
    }
}

/// What to do instead, for each consumer.
pub fn remedy(consumer: Consumer) -> &'static str {
    match consumer {
        Consumer::Rdma => "register device-DAX or anonymous memory, or use IBV_ACCESS_ON_DEMAND",
        Consumer::V4l2 => "use MMAP or DMABUF buffers, or USERPTR buffers in anonymous or device-DAX memory",
        Consumer::IoUring => "register anonymous memory as fixed buffers, or read and write without them",
    }
}

/// The refusal line, e.g. `daxguard: refused ibv_reg_mr_iova2(0x7f3a00000000, 2097152):
/// /mnt/pmem/data is on filesystem-DAX (ext4 on /dev/pmem0 at /mnt/pmem, dax=always); ...`.
/// `culprit` is the file behind the verdict ([`Report::culprit`], or what `judge` found).
pub fn refusal(entry: &str, addr: u64, len: u64, culprit: Option<&FileInfo>, rule: Rule) -> String {
    refusal_at(&Site::rdma(entry, addr, len), culprit, rule)
}

/// [`refusal`] for any consumer's call.
pub fn refusal_at(site: &Site<'_>, culprit: Option<&FileInfo>, rule: Rule) -> String {
    let remedy = remedy(site.consumer);
    let cause = match (rule, culprit) {
        (Rule::Unverified, Some(f)) => format!(
            "could not verify that {} is not on filesystem-DAX ({}; {:?}); set DAXGUARD_UNKNOWN=allow to register it anyway",
            shown(&f.path),
            mount_words(f),
            f.evidence
        ),
        (Rule::Unverified, None) => "could not verify the range is not filesystem-DAX".to_string(),
        (_, Some(f)) => format!("{} is on filesystem-DAX ({}); {remedy}", shown(&f.path), mount_words(f)),
        (_, None) => format!("the range is on filesystem-DAX; {remedy}"),
    };
    format!("daxguard: refused {site}: {cause}")
}

/// The line for `warn` mode: what would have been refused.
pub fn warning(entry: &str, addr: u64, len: u64, culprit: Option<&FileInfo>, rule: Rule) -> String {
    warning_at(&Site::rdma(entry, addr, len), culprit, rule)
}

/// [`warning`] for any consumer's call.
pub fn warning_at(site: &Site<'_>, culprit: Option<&FileInfo>, rule: Rule) -> String {
    let refusal = refusal_at(site, culprit, rule);
    let rest = refusal.strip_prefix("daxguard: refused ").unwrap_or(&refusal);
    format!("daxguard: warning: would refuse {rest} (DAXGUARD_MODE=warn: forwarded)")
}

/// Why a forwarded registration that asked for `pin` failed with `errno`, as far as it can be known.
pub fn failure(entry: &str, addr: u64, len: u64, pin: Pin, errno: i32, report: Option<&Report>) -> String {
    failure_at(&Site::rdma(entry, addr, len), pin, errno, report)
}

/// [`failure`] for any consumer's call; `report` covers its buffers.
pub fn failure_at(site: &Site<'_>, pin: Pin, errno: i32, report: Option<&Report>) -> String {
    let head = format!("daxguard: {site} failed with {}", errno_name(errno));
    let pieces: &[Piece] = report.map_or(&[], |r| &r.pieces);
    let fsdax = pieces.iter().find_map(|p| match &p.kind {
        Kind::FsDax(f) => Some(f),
        _ => None,
    });
    let hole = pieces.iter().find(|p| matches!(p.kind, Kind::Hole) || p.prot.is_some_and(|pr| !pr.read && !pr.write));
    let shared_file = pieces.iter().find(|p| !writable_file_mapping_allowed(pin.write, p));
    let other_file = pieces.iter().find_map(|p| p.kind.file_info().filter(|f| !is_shmem_or_hugetlb(f)));
    // Only an io_uring EOPNOTSUPP with no fs-DAX piece gets here: the
    // kernel's own pre-6.5 rule (fsdax::io_uring_file_allowed).
    let why = match (errno, fsdax, hole, shared_file) {
        (libc::EOPNOTSUPP | libc::EINVAL, ..) if pin.on_demand => {
            "the device does not support on-demand paging (IBV_ACCESS_ON_DEMAND); check `ibv_devinfo -v` odp_caps"
                .into()
        }
        (libc::EOPNOTSUPP, Some(f), ..) => format!(
            "the kernel refuses long-term pins of filesystem-DAX memory: {} ({}); {}",
            shown(&f.path),
            mount_words(f),
            remedy(site.consumer)
        ),
        (libc::EOPNOTSUPP, None, ..) if site.consumer == Consumer::IoUring && other_file.is_some() => format!(
            "io_uring before Linux 6.5 refuses fixed buffers backed by any file but tmpfs and hugetlbfs ({}); {}",
            other_file.map(|f| shown(&f.path)).unwrap_or_default(),
            remedy(site.consumer)
        ),
        (libc::EFAULT, _, Some(p), _) => {
            let what = if matches!(p.kind, Kind::Hole) { "nothing is mapped" } else { "the pages are PROT_NONE" };
            format!("{what} at {:#x}-{:#x}; register only mapped, accessible memory", p.start, p.end)
        }
        (libc::EFAULT, _, None, Some(p)) => {
            let f = p.kind.file_info().map(|f| shown(&f.path)).unwrap_or_default();
            format!(
                "Linux 6.5+ refuses writable long-term pins of shared page-cache file mappings ({f}); \
                 register it read-only, map it MAP_PRIVATE, or use anonymous memory"
            )
        }
        (libc::ENOMEM, ..) => memlock_words(site.len),
        _ => return head,
    };
    format!("{head}: {why}")
}

fn memlock_words(len: u64) -> String {
    let lim = |v: libc::rlim_t| if v == libc::RLIM_INFINITY { "unlimited".to_string() } else { v.to_string() };
    match crate::sys::rlimit(libc::RLIMIT_MEMLOCK) {
        Some((soft, hard)) => format!(
            "out of locked memory: asked for {len} bytes with RLIMIT_MEMLOCK {} (hard {}); raise it (ulimit -l) or register less",
            lim(soft),
            lim(hard)
        ),
        None => format!("out of memory registering {len} bytes; check RLIMIT_MEMLOCK (ulimit -l)"),
    }
}

/// `EOPNOTSUPP`, `EFAULT`, ... for the errnos registrations meet; `errno N` otherwise.
pub fn errno_name(errno: i32) -> String {
    match Errno::from_raw(errno).name() {
        Some(name) => name.to_string(),
        None if errno == 0 => "0".to_string(),
        None => format!("errno {errno}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Evidence, MountInfo, Piece, Prot, Via};
    use crate::types::{Dev, Lookup};

    fn dax_report() -> Report {
        let info = FileInfo {
            path: "/mnt/pmem/data".into(),
            dev: Dev { major: 259, minor: 0 },
            inode: 12,
            evidence: Evidence::Statx { via: Via::Path },
            statx_dax: Some(true),
            mount: Some(MountInfo {
                mount_point: "/mnt/pmem".into(),
                fstype: "ext4".into(),
                source: "/dev/pmem0".into(),
                options: "rw,dax=always".into(),
            }),
        };
        let prot = Some(Prot { read: true, write: true, exec: false, shared: true });
        Report {
            start: 0x7f3a00000000,
            end: 0x7f3a00200000,
            lookup: Lookup::ProcmapQuery,
            pieces: vec![Piece { start: 0x7f3a00000000, end: 0x7f3a00200000, kind: Kind::FsDax(info), prot }],
        }
    }

    #[test]
    fn refusal_names_range_file_mount_and_remedy() {
        let r = dax_report();
        let line = refusal("ibv_reg_mr_iova2", 0x7f3a00000000, 2097152, r.culprit(), Rule::FsDax);
        assert_eq!(
            line,
            "daxguard: refused ibv_reg_mr_iova2(0x7f3a00000000, 2097152): /mnt/pmem/data is on filesystem-DAX \
             (ext4 on /dev/pmem0 at /mnt/pmem, dax=always); register device-DAX or anonymous memory, or use \
             IBV_ACCESS_ON_DEMAND"
        );
        assert!(
            warning("ibv_reg_mr", 1, 2, r.culprit(), Rule::FsDax)
                .starts_with("daxguard: warning: would refuse ibv_reg_mr(0x1, 2): /mnt/pmem/data")
        );
    }

    #[test]
    fn names_cannot_break_the_line() {
        let mut r = dax_report();
        if let Kind::FsDax(f) = &mut r.pieces[0].kind {
            f.path = "/mnt/pmem/a\ndaxguard: forged\tx".into();
        }
        let line = refusal("ibv_reg_mr", 1, 2, r.culprit(), Rule::FsDax);
        assert!(!line.contains('\n') && !line.contains('\t'), "{line}");
        assert!(line.contains("/mnt/pmem/a\\012daxguard: forged\\011x is on filesystem-DAX"), "{line}");
    }

    #[test]
    fn failures_are_explained() {
        let r = dax_report();
        let pinned = Pin { write: true, on_demand: false };
        let f = failure("ibv_reg_mr", 1, 2, pinned, libc::EOPNOTSUPP, Some(&r));
        assert!(
            f.contains("EOPNOTSUPP: the kernel refuses long-term pins of filesystem-DAX memory: /mnt/pmem/data"),
            "{f}"
        );
        let f = failure("ibv_reg_mr", 1, 2, Pin { on_demand: true, ..pinned }, libc::EINVAL, None);
        assert!(f.contains("on-demand paging"), "{f}");
        let f = failure("ibv_reg_mr", 1, 1 << 30, pinned, libc::ENOMEM, None);
        assert!(f.contains("asked for 1073741824 bytes with RLIMIT_MEMLOCK"), "{f}");
        let hole = Report { pieces: vec![Piece { start: 0, end: 4096, kind: Kind::Hole, prot: None }], ..dax_report() };
        assert!(failure("x", 0, 1, pinned, libc::EFAULT, Some(&hole)).contains("nothing is mapped at 0x0-0x1000"));
    }
}
