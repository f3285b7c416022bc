//! `daxguard probe --device DEV (PATH | --anon)`: register for real and
//! compare the kernel's answer with daxguard's prediction.

use std::fmt::Write;

use anyhow::Context;
use daxguard::explain::errno_name;
use daxguard::fsdax::writable_file_mapping_allowed;
use daxguard::verbs::ib_access_writable;
use daxguard::{Options, Report, Verdict, classify_with};
use serde::Serialize;
use verbs_sys as v;

use crate::access::{self, flag_names};
use crate::cli::ProbeArgs;
use crate::output::{Done, EXIT_DISAGREE, EXIT_OK, SCHEMA, Style, errno_text, hex, json};
use crate::region::{self, Region, Source};
use crate::report::{self, ReportJson};
use crate::units::human_size;
use crate::verbs::{OdpJson, Verbs, odp_json};

#[derive(Serialize)]
struct ProbeJson {
    schema: u32,
    command: &'static str,
    device: String,
    libibverbs: String,
    odp_caps: Option<OdpJson>,
    region: RegionJson,
    access: AccessJson,
    verdict: &'static str,
    #[serde(flatten)]
    outcome: Outcome,
    report: ReportJson,
}

/// The kernel's answer beside daxguard's prediction, and what that means.
#[derive(Serialize)]
struct Outcome {
    prediction: Answer,
    kernel: Answer,
    /// agree | disagree | inconclusive (the kernel refused for a reason that is not DAX).
    agreement: &'static str,
    message: String,
    /// The shim's explanation of the kernel's refusal (null when it registered).
    explain: Option<String>,
    exit_code: u8,
}

#[derive(Serialize)]
struct RegionJson {
    source: Source,
    path: Option<String>,
    offset: u64,
    addr: String,
    len: u64,
    writable: bool,
}

#[derive(Serialize)]
struct AccessJson {
    value: u32,
    flags: Vec<String>,
}

/// A registration outcome: `registered`, or `refused` with an errno.
#[derive(Serialize)]
struct Answer {
    result: &'static str,
    errno: Option<i32>,
    error: Option<String>,
    lkey: Option<u32>,
    rkey: Option<u32>,
}

impl Answer {
    fn registers() -> Self {
        Answer { result: "registered", errno: None, error: None, lkey: None, rkey: None }
    }

    fn refused(errno: i32) -> Self {
        Answer { result: "refused", errno: Some(errno), error: Some(errno_name(errno)), lkey: None, rkey: None }
    }

    fn text(&self) -> String {
        match (self.result, self.errno) {
            ("refused", Some(e)) => format!("refused: {} ({})", errno_name(e), errno_text(e)),
            _ => match (self.lkey, self.rkey) {
                (Some(l), Some(r)) => format!("registered (lkey {l:#x}, rkey {r:#x}; deregistered)"),
                _ => "registers".to_string(),
            },
        }
    }
}

pub fn run(args: &ProbeArgs, json_out: bool) -> anyhow::Result<Done> {
    let access = args.access.unwrap_or(access::RW) | if args.odp { v::IBV_ACCESS_ON_DEMAND } else { 0 };
    // A pin for writing needs a writable mapping.
    let writable = ib_access_writable(access);
    let region = match &args.path {
        Some(p) => region::map_path(p, args.offset, args.len, writable)?,
        None => region::map_anon(args.len.unwrap_or_else(region::page_size))?,
    };
    let verbs = Verbs::load()?;
    let dev = verbs.open(&args.device)?;
    let odp = dev.odp_caps().as_ref().map(odp_json);
    let report = classify_with(region.start, region.len, Options::default()).context("cannot classify the region")?;
    let kernel = match dev.register(region.start, region.len, access)? {
        Ok(r) => Answer { lkey: Some(r.lkey), rkey: Some(r.rkey), ..Answer::registers() },
        Err(errno) => Answer::refused(errno),
    };
    let outcome = outcome(&report, &region, access, odp.as_ref(), kernel);
    let j = ProbeJson {
        schema: SCHEMA,
        command: "probe",
        device: args.device.clone(),
        libibverbs: verbs.path.clone(),
        odp_caps: odp,
        region: RegionJson {
            source: region.source,
            path: args.path.as_ref().map(|p| p.display().to_string()),
            offset: region.offset,
            addr: hex(region.start),
            len: region.len,
            writable,
        },
        access: AccessJson { value: access, flags: flag_names(access) },
        verdict: report.verdict().name(),
        outcome,
        report: report::report_json(&report),
    };
    let out = if json_out { json(&j)? } else { text(&j, &report, Style::detect(json_out)) };
    Ok(Done::new(out, j.outcome.exit_code))
}

/// What `probe` concludes: the prediction, the kernel's answer against it,
/// the explanation of a refusal, and the exit status.
fn outcome(report: &Report, region: &Region, access: u32, odp: Option<&OdpJson>, kernel: Answer) -> Outcome {
    let prediction = predict(report.verdict(), access);
    let (agreement, message) = compare(&prediction, &kernel, access, odp, report);
    // The same words the shim prints when a forwarded registration fails.
    let explain = kernel.errno.map(|e| {
        let line = daxguard::explain::failure(
            "ibv_reg_mr",
            region.start,
            region.len,
            daxguard::verbs::pin(access),
            e,
            Some(report),
        );
        line.strip_prefix("daxguard: ").unwrap_or(&line).to_string()
    });
    let exit_code = if agreement == "disagree" { EXIT_DISAGREE } else { EXIT_OK };
    Outcome { prediction, kernel, agreement, message, explain, exit_code }
}

/// What the shim would do: refuse fs-DAX and unverifiable memory, and
/// forward ODP registrations unchecked (they are not pinned).
fn predict(verdict: Verdict, access: u32) -> Answer {
    match verdict {
        _ if access & v::IBV_ACCESS_ON_DEMAND != 0 => Answer::registers(),
        Verdict::FsDax { .. } | Verdict::Unverified { .. } => Answer::refused(libc::EOPNOTSUPP),
        Verdict::Allow => Answer::registers(),
    }
}

/// `agree`, `disagree` or `inconclusive` (the kernel refused for a reason
/// that is not DAX), and the sentence that says why.
fn compare(
    prediction: &Answer,
    kernel: &Answer,
    access: u32,
    odp: Option<&OdpJson>,
    report: &Report,
) -> (&'static str, String) {
    let odp_requested = access & v::IBV_ACCESS_ON_DEMAND != 0;
    let no_odp = odp.is_some_and(|o| !o.supported);
    // Linux 6.5+ refuses a writable long-term pin of a shared file mapping, DAX or not.
    let writable = ib_access_writable(access);
    let file_rule =
        report.verdict() == Verdict::Allow && report.pieces.iter().any(|p| !writable_file_mapping_allowed(writable, p));
    let predicts_refusal = prediction.errno.is_some();
    match (predicts_refusal, kernel.errno) {
        (false, None) => ("agree", "the kernel registered it, as daxguard predicted".to_string()),
        (true, Some(libc::EOPNOTSUPP)) => {
            ("agree", "the kernel refused it with EOPNOTSUPP, as daxguard predicted".to_string())
        }
        (true, None) => ("disagree", "the kernel registered memory daxguard would refuse".to_string()),
        (_, Some(libc::EOPNOTSUPP)) if odp_requested && no_odp => {
            ("inconclusive", "kernel refused for another reason: the device does not support ODP".to_string())
        }
        (_, Some(libc::EOPNOTSUPP)) => {
            ("disagree", "the kernel refused with EOPNOTSUPP memory daxguard would let through".to_string())
        }
        (_, Some(libc::EFAULT)) if file_rule => (
            "inconclusive",
            "kernel refused for another reason: Linux 6.5+ refuses long-term pins of writable shared \
             file mappings (EFAULT), DAX or not; try --access ro"
                .to_string(),
        ),
        (_, Some(e)) => {
            ("inconclusive", format!("kernel refused for another reason: {} ({})", errno_name(e), errno_text(e)))
        }
    }
}

/// The human output: what was registered, both answers, the agreement,
/// then the report's pieces.
fn text(j: &ProbeJson, report: &Report, style: Style) -> String {
    let mut out = String::new();
    let odp = match &j.odp_caps {
        Some(o) if o.supported => "ODP supported",
        Some(_) => "no ODP",
        None => "ODP unknown",
    };
    let _ = writeln!(out, "device:   {} ({odp}; {})", j.device, j.libibverbs);
    let r = &j.region;
    let what = r.path.as_ref().map_or_else(|| "anonymous memory".to_string(), |p| format!("{p}, offset {}", r.offset));
    let prot = if r.writable { "read-write" } else { "read-only" };
    let _ = writeln!(out, "region:   {what}, {} at {} ({prot})", human_size(r.len), r.addr);
    let _ = writeln!(out, "access:   {} ({:#x})", j.access.flags.join(","), j.access.value);
    let why = if j.access.value & v::IBV_ACCESS_ON_DEMAND != 0 { " (ODP: forwarded unchecked)" } else { "" };
    let o = &j.outcome;
    let _ = writeln!(out, "daxguard: {}{why}  [{}]", o.prediction.text(), j.verdict);
    let _ = writeln!(out, "kernel:   {}", o.kernel.text());
    let head = match o.agreement {
        "agree" => style.green("AGREE"),
        "disagree" => style.red("DISAGREE"),
        _ => style.yellow("INCONCLUSIVE"),
    };
    let _ = writeln!(out, "{head}: {}", o.message);
    if let Some(e) = &o.explain {
        let _ = writeln!(out, "why:      {e}");
    }
    for (p, pj) in report.pieces.iter().zip(&j.report.pieces) {
        report::piece_lines(p, pj, style, &mut out);
    }
    out
}
