//! `daxguard scan [--pid PID] [--only-dax]`: every VMA of a process, classified.

use std::fmt::Write;

use anyhow::Context;
use daxguard::{Consumer, Kind, Options, Piece, Report, classify_with};
use serde::Serialize;

use crate::cli::ScanArgs;
use crate::output::{Done, EXIT_OK, EXIT_REFUSED, EXIT_UNJUDGED, SCHEMA, Style, json};
use crate::process::{classify_pid, comm};
use crate::report::{self, PieceJson};
use crate::units::human_size;

#[derive(Serialize)]
struct ScanJson {
    schema: u32,
    command: &'static str,
    pid: i32,
    lookup: &'static str,
    only_dax: bool,
    /// `--for`, if given.
    consumer: Option<&'static str>,
    vmas: Vec<PieceJson>,
    summary: Summary,
    exit_code: u8,
}

#[derive(Serialize, Default)]
struct Summary {
    vmas: u64,
    bytes: u64,
    fsdax_vmas: u64,
    fsdax_bytes: u64,
    unverified_vmas: u64,
    unverified_bytes: u64,
    devdax_vmas: u64,
    devdax_bytes: u64,
}

pub fn run(args: &ScanArgs, json_out: bool) -> anyhow::Result<Done> {
    let page = crate::region::page_size();
    // The whole address space; the library reports the gaps as holes, skipped here.
    let (start, len) = (0, u64::MAX - (page - 1));
    let (pid, report) = match args.pid {
        Some(pid) => (pid, classify_pid(pid, start, len)?),
        None => (std::process::id() as i32, scan_self(start, len)?),
    };
    let vmas: Vec<&Piece> = report.pieces.iter().filter(|p| p.kind != Kind::Hole).collect();
    let sum = Summary::of(&vmas);
    let code = sum.exit_code();
    let shown: Vec<&Piece> = vmas.into_iter().filter(|p| !args.only_dax || is_dax(&p.kind)).collect();
    if json_out {
        let j = ScanJson {
            schema: SCHEMA,
            command: "scan",
            pid,
            lookup: report.lookup.name(),
            only_dax: args.only_dax,
            consumer: args.consumer.map(Consumer::name),
            vmas: shown.iter().map(|p| report::piece_json(p)).collect(),
            summary: sum,
            exit_code: code,
        };
        return Ok(Done::new(json(&j)?, code));
    }
    let style = Style::detect(json_out);
    let mut out = format!("process {pid}{}: lookup {}\n", comm(pid), report.lookup.name());
    for p in &shown {
        let _ = writeln!(out, "{}", vma_line(p, args.consumer, style));
    }
    let _ = writeln!(out, "{}", sum.line());
    Ok(Done::new(out, code))
}

impl Summary {
    /// Counts and bytes of every VMA, and of the fs-DAX, unverified and device-DAX ones.
    fn of(vmas: &[&Piece]) -> Summary {
        let mut sum = Summary::default();
        for p in vmas {
            let n = p.end - p.start;
            sum.vmas += 1;
            sum.bytes += n;
            let (count, bytes) = match p.kind {
                Kind::FsDax(_) => (&mut sum.fsdax_vmas, &mut sum.fsdax_bytes),
                Kind::Unverified(_) => (&mut sum.unverified_vmas, &mut sum.unverified_bytes),
                Kind::DeviceDax(_) => (&mut sum.devdax_vmas, &mut sum.devdax_bytes),
                _ => continue,
            };
            *count += 1;
            *bytes += n;
        }
        sum
    }

    /// 1 if any VMA is fs-DAX, else 2 if any could not be verified, else 0.
    fn exit_code(&self) -> u8 {
        match (self.fsdax_vmas, self.unverified_vmas) {
            (0, 0) => EXIT_OK,
            (0, _) => EXIT_UNJUDGED,
            _ => EXIT_REFUSED,
        }
    }

    fn line(&self) -> String {
        format!(
            "summary: {} fs-DAX VMAs ({}), {} unverified ({}), {} device-DAX ({}); {} VMAs, {} in all",
            self.fsdax_vmas,
            human_size(self.fsdax_bytes),
            self.unverified_vmas,
            human_size(self.unverified_bytes),
            self.devdax_vmas,
            human_size(self.devdax_bytes),
            self.vmas,
            human_size(self.bytes)
        )
    }
}

/// One VMA as a maps-like line: range, protection, size, kind, verdict, name.
/// With `--for`, what that consumer would be refused is marked too.
fn vma_line(p: &Piece, consumer: Option<Consumer>, style: Style) -> String {
    let pj = report::piece_json(p);
    let refused = consumer.is_some_and(|c| pj.refused_by.contains(&c.name()));
    let verdict = match p.kind {
        Kind::FsDax(_) => style.red("REFUSED (fs-DAX)"),
        Kind::Unverified(_) => style.yellow("UNVERIFIED"),
        _ if refused => style.red("REFUSED (io_uring before 6.5: file-backed)"),
        _ => style.green("ok"),
    };
    let name = pj.file.as_ref().map(|f| f.path.clone()).or(pj.label.clone()).unwrap_or_default();
    let prot = pj.prot.as_deref().unwrap_or("----");
    let line = format!("{}-{} {prot} {:>10}  {:<10}  {verdict}  {name}", pj.start, pj.end, human_size(pj.len), pj.kind);
    line.trim_end().to_string()
}

fn is_dax(k: &Kind) -> bool {
    matches!(k, Kind::FsDax(_) | Kind::DeviceDax(_) | Kind::Unverified(_))
}

fn scan_self(start: u64, len: u64) -> anyhow::Result<Report> {
    classify_with(start, len, Options::default()).context("cannot read this process's mappings")
}
