//! The library's [`Report`] as the CLI shows it: serde structs for `--json`
//! (the library types do not derive serde) and the evidence lines for people.
//! Nothing here decides anything: kinds, verdicts and their names are the library's.

use daxguard::{Consumer, FileInfo, Kind, Piece, Report, Verdict, Via};
use serde::Serialize;

use crate::output::{Style, hex};
use crate::units::human_size;

#[derive(Serialize)]
pub struct ReportJson {
    pub lookup: &'static str,
    pub start: String,
    pub end: String,
    pub verdict: &'static str,
    /// Index into `pieces` of the piece behind a refusal or an unverifiable verdict.
    pub piece: Option<usize>,
    pub unmapped_bytes: u64,
    pub pieces: Vec<PieceJson>,
}

#[derive(Serialize)]
pub struct PieceJson {
    pub start: String,
    pub end: String,
    pub len: u64,
    pub kind: &'static str,
    /// The VMA's protection as maps shows it (`rw-s`, `r--p`); null for a hole.
    pub prot: Option<String>,
    /// The name the kernel shows for non-file pieces (`[heap]`, `[vdso]`...).
    pub label: Option<String>,
    pub file: Option<FileJson>,
    /// The long-term pinners (`rdma`, `v4l2`, `io_uring`) whose pin of this
    /// piece the running kernel refuses with EOPNOTSUPP.
    pub refused_by: Vec<&'static str>,
}

#[derive(Serialize)]
pub struct FileJson {
    pub path: String,
    pub dev: String,
    pub inode: u64,
    /// How the library judged the file (see docs/cli.md).
    pub evidence: &'static str,
    /// How statx reached the file, when the evidence is statx.
    pub via: Option<&'static str>,
    /// `STATX_ATTR_DAX` as the library's own statx saw it: set, clear, or null
    /// (not asked, not reported, or the file not reachable).
    pub statx_dax: Option<bool>,
    pub mount: Option<MountJson>,
    /// `queue/dax` of the block device under the filesystem; null without one.
    pub block_device_dax: Option<bool>,
    pub device_dax: bool,
}

#[derive(Serialize)]
pub struct MountJson {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub options: String,
}

pub fn unmapped_bytes(r: &Report) -> u64 {
    r.pieces.iter().filter(|p| p.kind == Kind::Hole).map(|p| p.end - p.start).sum()
}

pub fn report_json(r: &Report) -> ReportJson {
    let v = r.verdict();
    let piece = match v {
        Verdict::Allow => None,
        Verdict::FsDax { piece } | Verdict::Unverified { piece } => Some(piece),
    };
    ReportJson {
        lookup: r.lookup.name(),
        start: hex(r.start),
        end: hex(r.end),
        verdict: v.name(),
        piece,
        unmapped_bytes: unmapped_bytes(r),
        pieces: r.pieces.iter().map(piece_json).collect(),
    }
}

pub fn piece_json(p: &Piece) -> PieceJson {
    let label = match &p.kind {
        Kind::Anonymous { label } => label.clone(),
        Kind::Special { label } => Some(label.clone()),
        _ => None,
    };
    PieceJson {
        start: hex(p.start),
        end: hex(p.end),
        len: p.end - p.start,
        kind: p.kind.name(),
        prot: p.prot.map(|pr| {
            let bit = |on: bool, c: char| if on { c } else { '-' };
            [bit(pr.read, 'r'), bit(pr.write, 'w'), bit(pr.exec, 'x'), if pr.shared { 's' } else { 'p' }]
                .iter()
                .collect()
        }),
        label,
        file: p.kind.file_info().map(|f| file_json(f, &p.kind)),
        refused_by: refused_by(p),
    }
}

fn file_json(f: &FileInfo, kind: &Kind) -> FileJson {
    FileJson {
        path: f.path.to_string_lossy().into_owned(),
        dev: f.dev.to_string(),
        inode: f.inode,
        evidence: f.evidence.name(),
        via: f.evidence.via().map(Via::name),
        statx_dax: f.statx_dax,
        mount: f.mount.as_ref().map(|m| MountJson {
            mount_point: m.mount_point.to_string_lossy().into_owned(),
            fstype: m.fstype.clone(),
            source: m.source.clone(),
            options: m.options.clone(),
        }),
        block_device_dax: block_device_dax(f),
        device_dax: matches!(kind, Kind::DeviceDax(_)),
    }
}

fn block_device_dax(f: &FileInfo) -> Option<bool> {
    (f.dev.major != 0).then(|| daxguard::sysfs::block_device_dax(f.dev)).flatten()
}

/// The human lines for one piece: a header, then for files the evidence.
pub fn piece_lines(p: &Piece, pj: &PieceJson, style: Style, out: &mut String) {
    use std::fmt::Write;
    let kind = match &p.kind {
        Kind::FsDax(_) => style.red("fs-DAX"),
        Kind::Unverified(_) => style.yellow("unverified (may be fs-DAX)"),
        Kind::DeviceDax(_) => "device-DAX".to_string(),
        Kind::Hole => style.yellow("not mapped"),
        k => k.name().to_string(),
    };
    let what = match (&pj.file, &pj.label) {
        (Some(f), _) => f.path.clone(),
        (None, Some(l)) => l.clone(),
        (None, None) => String::new(),
    };
    let prot = pj.prot.as_deref().unwrap_or("    ");
    let line = format!("  {}-{} {prot} {:>9}  {kind}  {what}", pj.start, pj.end, human_size(pj.len));
    let _ = writeln!(out, "{}", line.trim_end());
    if let (Some(info), Some(f)) = (p.kind.file_info(), &pj.file) {
        file_lines(&p.kind, info, f, style, out);
    }
}

/// The evidence lines under a file-backed piece.
fn file_lines(kind: &Kind, info: &FileInfo, f: &FileJson, style: Style, out: &mut String) {
    use std::fmt::Write;
    let fsdax = match kind {
        Kind::FsDax(_) => style.red("yes"),
        Kind::Unverified(_) => style.yellow("unknown"),
        _ => "no".to_string(),
    };
    let _ = writeln!(out, "      fs-DAX: {fsdax} ({})", info.evidence.words());
    let attr = match f.statx_dax {
        Some(true) => "set",
        Some(false) => "clear",
        None => "not available (kernel before 5.8, or file not reachable)",
    };
    let _ = writeln!(out, "      statx STATX_ATTR_DAX: {attr}");
    match &f.mount {
        Some(m) => {
            let _ = writeln!(
                out,
                "      filesystem: {} on {} mounted at {} ({})",
                m.fstype, m.source, m.mount_point, m.options
            );
        }
        None => {
            let _ = writeln!(out, "      filesystem: unknown (device {} not in the mount table)", f.dev);
        }
    }
    let bdev = match f.block_device_dax {
        Some(true) => "yes".to_string(),
        Some(false) => "no".to_string(),
        None if info.dev.major == 0 => "n/a (no block device under this filesystem)".to_string(),
        None => format!("unknown (no queue/dax for {})", f.dev),
    };
    let _ = writeln!(out, "      block device DAX-capable: {bdev}");
    let _ = writeln!(out, "      device-DAX: {}", if f.device_dax { "yes" } else { "no" });
}

/// The conclusion `check` prints: daxguard's verdict, or the kernel's own
/// refusal of file-backed io_uring buffers before 6.5, which daxguard
/// leaves to the kernel ([`daxguard::fsdax::io_uring_file_allowed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Daxguard(Verdict),
    IoUringFileBacked,
}

/// The answer for `consumer` on this kernel.
pub fn answer(r: &Report, consumer: Consumer) -> Answer {
    let v = r.verdict();
    let kernel = crate::uname::kernel_version().unwrap_or((0, 0));
    let file_backed = |p: &Piece| !daxguard::fsdax::io_uring_file_allowed(p, kernel);
    if v == Verdict::Allow && consumer == Consumer::IoUring && r.pieces.iter().any(file_backed) {
        return Answer::IoUringFileBacked;
    }
    Answer::Daxguard(v)
}

/// The consumer's pinning call, as a verdict line names it.
fn call_words(consumer: Consumer) -> &'static str {
    match consumer {
        Consumer::Rdma => "ibv_reg_mr",
        Consumer::V4l2 => "VIDIOC_QBUF of a USERPTR buffer",
        Consumer::IoUring => "IORING_REGISTER_BUFFERS",
    }
}

/// What to do about a refusal or an unverifiable piece.
pub fn hint(a: Answer, unmapped: bool, consumer: Consumer) -> Option<&'static str> {
    match a {
        Answer::Daxguard(Verdict::FsDax { .. }) if consumer == Consumer::Rdma => Some(
            "register device-DAX (/dev/daxX.Y) or anonymous memory instead, \
             or use IBV_ACCESS_ON_DEMAND (ODP) if the device supports it",
        ),
        Answer::Daxguard(Verdict::FsDax { .. }) => Some(daxguard::explain::remedy(consumer)),
        Answer::Daxguard(Verdict::Unverified { .. }) => Some(
            "daxguard could not read the file's DAX flag: run as the process's owner or root \
             (the shim refuses such memory unless DAXGUARD_UNKNOWN=allow)",
        ),
        Answer::IoUringFileBacked => Some("register anonymous, tmpfs or hugetlbfs memory (or run Linux 6.5+)"),
        Answer::Daxguard(Verdict::Allow) if unmapped && consumer == Consumer::Rdma => {
            Some("part of the range is not mapped: ibv_reg_mr would fail with EFAULT")
        }
        Answer::Daxguard(Verdict::Allow) if unmapped => {
            Some("part of the range is not mapped: the pin would fail with EFAULT")
        }
        Answer::Daxguard(Verdict::Allow) => None,
    }
}

/// The verdict line.
pub fn verdict_line(a: Answer, unmapped: bool, consumer: Consumer, style: Style) -> String {
    match a {
        Answer::Daxguard(Verdict::FsDax { .. }) => format!(
            "{}: fs-DAX memory; {} fails with EOPNOTSUPP (Linux refuses long-term pins of fs-DAX)",
            style.red("REFUSED"),
            call_words(consumer)
        ),
        Answer::Daxguard(Verdict::Unverified { .. }) => format!(
            "{}: may be fs-DAX and could not be verified; daxguard refuses it unless DAXGUARD_UNKNOWN=allow",
            style.yellow("UNVERIFIED")
        ),
        Answer::IoUringFileBacked => format!(
            "{}: file-backed memory; io_uring before Linux 6.5 takes only anonymous, tmpfs and hugetlbfs memory as fixed \
             buffers (IORING_REGISTER_BUFFERS fails with EOPNOTSUPP; daxguard leaves this rule to the kernel)",
            style.red("REFUSED")
        ),
        Answer::Daxguard(Verdict::Allow) if unmapped => {
            format!("{}: part of the range is not mapped", style.yellow("UNMAPPED"))
        }
        Answer::Daxguard(Verdict::Allow) => format!("{}: no fs-DAX memory in this range", style.green("registrable")),
    }
}

/// The consumers whose long-term pin of this piece the running kernel refuses.
pub fn refused_by(p: &Piece) -> Vec<&'static str> {
    let kernel = crate::uname::kernel_version().unwrap_or((0, 0));
    Consumer::ALL.into_iter().filter(|c| daxguard::fsdax::refuses(*c, p, kernel)).map(Consumer::name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use daxguard::{Dev, Evidence, Lookup, MountInfo};

    fn fsdax_report() -> Report {
        let info = FileInfo {
            path: "/mnt/pmem/buf".into(),
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
        let prot = daxguard::Prot { read: true, write: false, exec: false, shared: true };
        let piece = Piece { start: 0x7f00_0000_0000, end: 0x7f00_0020_0000, kind: Kind::FsDax(info), prot: Some(prot) };
        Report { start: piece.start, end: piece.end, lookup: Lookup::MapsText, pieces: vec![piece] }
    }

    #[test]
    fn a_refusal_shows_its_cause() {
        let r = fsdax_report();
        let v = r.verdict();
        assert!(
            verdict_line(Answer::Daxguard(v), false, Consumer::Rdma, Style::plain())
                .starts_with("REFUSED: fs-DAX memory; ibv_reg_mr fails with EOPNOTSUPP")
        );
        let mut out = String::new();
        let p = &r.pieces[0];
        piece_lines(p, &piece_json(p), Style::plain(), &mut out);
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(lines[0], "0x7f0000000000-0x7f0000200000 r--s     2 MiB  fs-DAX  /mnt/pmem/buf");
        assert_eq!(lines[1], "fs-DAX: yes (statx STATX_ATTR_DAX)");
        assert_eq!(lines[2], "statx STATX_ATTR_DAX: set");
        assert_eq!(lines[3], "filesystem: ext4 on /dev/pmem0 mounted at /mnt/pmem (rw,dax=always)");
        assert!(lines[4].starts_with("block device DAX-capable: "));
        assert_eq!(lines[5], "device-DAX: no");
        assert!(hint(Answer::Daxguard(v), false, Consumer::Rdma).unwrap().contains("IBV_ACCESS_ON_DEMAND"));
        assert!(hint(Answer::Daxguard(v), false, Consumer::V4l2).unwrap().contains("USERPTR buffers in anonymous"));
    }

    #[test]
    fn refusal_json() {
        let r = fsdax_report();
        let j = serde_json::to_value(report_json(&r)).unwrap();
        assert_eq!(j["verdict"], "fsdax");
        assert_eq!(j["piece"], 0);
        assert_eq!(j["lookup"], "maps");
        let p = &j["pieces"][0];
        assert_eq!(
            (p["kind"].as_str(), p["prot"].as_str(), p["len"].as_u64()),
            (Some("fsdax"), Some("r--s"), Some(2 << 20))
        );
        let f = &p["file"];
        assert_eq!((f["evidence"].as_str(), f["via"].as_str()), (Some("statx"), Some("path")));
        assert_eq!(f["statx_dax"], true);
        assert_eq!(f["dev"], "259:0");
        assert_eq!(f["mount"]["options"], "rw,dax=always");
    }
}
