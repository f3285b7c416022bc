//! `daxguard check PATH` and `daxguard check --pid PID ADDR LEN`.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, bail};
use daxguard::{Consumer, Options, Report, Verdict, classify_with};
use serde::Serialize;

use crate::cli::CheckArgs;
use crate::output::{Done, EXIT_OK, EXIT_REFUSED, EXIT_UNJUDGED, SCHEMA, Style, hex, json};
use crate::process::{classify_pid, comm};
use crate::region::{self, Source};
use crate::report::{self, Answer, ReportJson};
use crate::units::{human_size, parse_addr, parse_len};

#[derive(Serialize)]
struct CheckJson {
    schema: u32,
    command: &'static str,
    target: TargetJson,
    /// The long-term pinner answered for (`--for`).
    consumer: &'static str,
    registrable: bool,
    exit_code: u8,
    message: String,
    hint: Option<&'static str>,
    #[serde(flatten)]
    report: ReportJson,
}

#[derive(Serialize)]
struct TargetJson {
    /// The file as given (PATH mode).
    path: Option<String>,
    /// What PATH is: file, block_device, device_dax, dev_zero.
    source: Option<Source>,
    offset: Option<u64>,
    /// Mapping granularity: the page size, or a device-DAX node's alignment.
    align: Option<u64>,
    /// The process (--pid mode).
    pid: Option<i32>,
    /// The range as asked: ADDR, or where PATH was mapped at `offset`.
    addr: String,
    len: u64,
}

/// How the answer is printed, and for whom.
#[derive(Clone, Copy)]
struct Out {
    json_out: bool,
    style: Style,
    consumer: Consumer,
}

pub fn run(args: &CheckArgs, json_out: bool) -> anyhow::Result<Done> {
    let out = Out { json_out, style: Style::detect(json_out), consumer: args.consumer };
    match args.pid {
        Some(pid) => check_pid(pid, &args.args, out),
        None => check_path(args, out),
    }
}

/// `check --pid PID ADDR LEN`: a range inside another process.
fn check_pid(pid: i32, args: &[String], out: Out) -> anyhow::Result<Done> {
    let [addr, len] = args else {
        bail!("with --pid, give ADDR and LEN (e.g. daxguard check --pid {pid} 0x7f0000000000 2M)");
    };
    let addr = parse_addr(addr).map_err(anyhow::Error::msg)?;
    let len = parse_len(len).map_err(|e| anyhow::anyhow!("LEN: {e}"))?;
    let report = classify_pid(pid, addr, len)?;
    let target =
        TargetJson { path: None, source: None, offset: None, align: None, pid: Some(pid), addr: hex(addr), len };
    let title = format!("process {pid}{}, {} at {}", comm(pid), human_size(len), hex(addr));
    finish(&report, target, &title, out)
}

/// `check [--offset N] [--len N] PATH`: PATH mapped here, read-only and shared.
fn check_path(args: &CheckArgs, out: Out) -> anyhow::Result<Done> {
    let [path] = args.args.as_slice() else {
        bail!("check takes one PATH (for ADDR LEN inside a process, add --pid PID)");
    };
    let path = Path::new(path);
    let region = region::map_path(path, args.offset, args.len, false)?;
    let report = classify_with(region.start, region.len, Options::default())
        .with_context(|| format!("cannot classify the mapping of {}", path.display()))?;
    let target = TargetJson {
        path: Some(path.display().to_string()),
        source: Some(region.source),
        offset: Some(region.offset),
        align: Some(region.align),
        pid: None,
        addr: hex(region.start),
        len: region.len,
    };
    let title = format!(
        "{}, offset {}, {} (mapped read-only, shared, at {})",
        path.display(),
        region.offset,
        human_size(region.len),
        hex(region.start)
    );
    let done = finish(&report, target, &title, out);
    drop(region); // unmapped only after the report is complete
    done
}

/// Exit status for an answer: the documented 0/1/2.
pub fn exit_code(a: Answer, unmapped: bool) -> u8 {
    match a {
        Answer::Daxguard(Verdict::FsDax { .. }) | Answer::IoUringFileBacked => EXIT_REFUSED,
        Answer::Daxguard(Verdict::Unverified { .. }) => EXIT_UNJUDGED,
        Answer::Daxguard(Verdict::Allow) if unmapped => EXIT_UNJUDGED,
        Answer::Daxguard(Verdict::Allow) => EXIT_OK,
    }
}

fn finish(r: &Report, target: TargetJson, title: &str, out_as: Out) -> anyhow::Result<Done> {
    let Out { json_out, style, consumer } = out_as;
    let v = report::answer(r, consumer);
    let unmapped = report::unmapped_bytes(r) > 0;
    let code = exit_code(v, unmapped);
    let plain = Style::plain();
    if json_out {
        let j = CheckJson {
            schema: SCHEMA,
            command: "check",
            target,
            consumer: consumer.name(),
            registrable: code == EXIT_OK,
            exit_code: code,
            message: report::verdict_line(v, unmapped, consumer, plain),
            hint: report::hint(v, unmapped, consumer),
            report: report::report_json(r),
        };
        return Ok(Done::new(json(&j)?, code));
    }
    let mut out = String::new();
    let _ = writeln!(out, "{}", report::verdict_line(v, unmapped, consumer, style));
    let _ = writeln!(out, "  {title}");
    let _ = writeln!(out, "  lookup: {}", r.lookup.name());
    for p in &r.pieces {
        report::piece_lines(p, &report::piece_json(p), style, &mut out);
    }
    if let Some(h) = report::hint(v, unmapped, consumer) {
        let _ = writeln!(out, "hint: {h}");
    }
    Ok(Done::new(out, code))
}
