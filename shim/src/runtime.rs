//! The guard around one registration, shared by every interposed entry point.
//!
//! Order of work: re-entry check (libibverbs' own `ibv_reg_mr` calls
//! `ibv_reg_mr_iova2` through the PLT and lands here again: one check, one
//! record), decide (under `catch_unwind`: a bug here forwards the call), call
//! the real function, then explain a failure and write the record (also under
//! `catch_unwind`). errno is restored to what the provider set before
//! returning, so the caller sees exactly the provider's answer.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use verbs_sys::{IBV_ACCESS_ON_DEMAND, ibv_pd};

use crate::audit::{Record, Sink};
use crate::classify::{Report, Verdict, classify_with, judge};
use crate::error::Error;
use crate::policy::{Action, Decision, LogDest, Mode, Rule, Settings, decide};
use crate::{Options, explain, odp, sys};

/// Settings and the log, set up at the first registration.
pub(crate) struct Runtime {
    pub(crate) settings: Settings,
    sink: Option<Sink>,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        // In a setuid program the environment is the invoker's: ignore it,
        // and so never open a path named there.
        let (settings, complaints) = if sys::secure_execution() {
            (Settings::default(), Vec::new())
        } else {
            Settings::parse(|k| std::env::var(k).ok())
        };
        let quiet = settings.quiet;
        let say = |line: String| {
            if !quiet {
                stderr_line(&line)
            }
        };
        complaints.into_iter().for_each(|c| say(format!("daxguard: {c}")));
        let sink = match &settings.log {
            LogDest::None => None,
            LogDest::Syslog => Some(Sink::Syslog),
            LogDest::File(p) => Sink::open_file(p)
                .map_err(|e| {
                    say(format!(
                        "daxguard: cannot open DAXGUARD_LOG {}: {}",
                        p.display(),
                        std::io::Error::from_raw_os_error(e)
                    ))
                })
                .ok(),
        };
        if settings.stats {
            // SAFETY: registering a plain extern "C" fn with no arguments.
            #[allow(unsafe_code)]
            unsafe {
                libc::atexit(print_stats);
            }
        }
        Runtime { settings, sink }
    })
}

/// One line on stderr with a single write; errors are ignored (stderr may be closed).
pub(crate) fn stderr_line(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    // SAFETY: writing our own buffer to fd 2.
    #[allow(unsafe_code)]
    unsafe {
        libc::write(2, buf.as_ptr().cast(), buf.len())
    };
}

fn say_once(flag: &AtomicBool, quiet: bool, line: impl FnOnce() -> String) {
    if !quiet && !flag.swap(true, Ordering::Relaxed) {
        stderr_line(&line());
    }
}

static SAID_NO_PROC: AtomicBool = AtomicBool::new(false);
static SAID_ODP: AtomicBool = AtomicBool::new(false);

/// Counters for `DAXGUARD_STATS=1`.
static SEEN: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static FORWARDED: AtomicU64 = AtomicU64::new(0);
static REWRITTEN: AtomicU64 = AtomicU64::new(0);
static DECIDE_NS: AtomicU64 = AtomicU64::new(0);

extern "C" fn print_stats() {
    let _ = catch_unwind(|| {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        stderr_line(&format!(
            "daxguard: stats: {} registrations seen, {} refused, {} forwarded, {} rewritten to ODP, {:.3} ms deciding",
            ld(&SEEN),
            ld(&REFUSED),
            ld(&FORWARDED),
            ld(&REWRITTEN),
            ld(&DECIDE_NS) as f64 / 1e6
        ));
    });
}

thread_local! {
    /// Set while this thread is inside a guarded registration.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

struct Inside;

impl Inside {
    /// `None` if this thread is already inside a guarded call.
    fn enter() -> Option<Inside> {
        // `then`, not `then_some`: an eagerly built `Inside` that is not
        // returned is dropped, and its Drop would clear the outer call's flag.
        INSIDE.with(|c| (!c.replace(true)).then(|| Inside))
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.with(|c| c.set(false));
    }
}

/// The arguments every registration entry point shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub entry: &'static str,
    pub pd: *mut ibv_pd,
    pub addr: u64,
    pub len: u64,
    pub access: u32,
}

/// What was decided before the real call.
struct Pre {
    decision: Decision,
    verdict: &'static str,
    report: Option<Report>,
    decide_ns: u64,
}

/// Guards one registration. `forward(access)` makes the real call, `failed`
/// tells a failed result, `refused` is what to return when refusing (errno is
/// set to EOPNOTSUPP, what the kernel itself answers for fs-DAX).
pub(crate) fn guard<R: Copy>(call: Call, forward: impl Fn(u32) -> R, failed: impl Fn(R) -> bool, refused: R) -> R {
    let Some(_inside) = Inside::enter() else {
        return forward(call.access); // libibverbs calling itself through the PLT: already checked
    };
    let rt = match catch_unwind(runtime) {
        Ok(rt) => rt,
        Err(_) => return forward(call.access),
    };
    if rt.settings.mode == Mode::Off {
        return forward(call.access);
    }
    let pre = catch_unwind(AssertUnwindSafe(|| before(rt, &call))).unwrap_or(Pre {
        decision: Decision { action: Action::Forward, rule: Rule::CannotInspect },
        verdict: "error",
        report: None,
        decide_ns: 0,
    });
    SEEN.fetch_add(1, Ordering::Relaxed);
    DECIDE_NS.fetch_add(pre.decide_ns, Ordering::Relaxed);
    let (result, errno, action) = match pre.decision.action {
        Action::Refuse => {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            (refused, libc::EOPNOTSUPP, "refused")
        }
        Action::RewriteOdp => {
            let r = forward(call.access | IBV_ACCESS_ON_DEMAND);
            REWRITTEN.fetch_add(1, Ordering::Relaxed);
            (r, if failed(r) { sys::errno() } else { 0 }, "rewritten_odp")
        }
        Action::Forward => {
            let r = forward(call.access);
            FORWARDED.fetch_add(1, Ordering::Relaxed);
            (r, if failed(r) { sys::errno() } else { 0 }, "forwarded")
        }
    };
    let mut pre = pre;
    let mut out = (result, errno, action);
    if errno != 0 && pre.decision.action != Action::Refuse {
        let retry = catch_unwind(AssertUnwindSafe(|| after_failure(rt, &call, &mut pre, errno)));
        if let Ok(true) = retry {
            let r = forward(call.access | IBV_ACCESS_ON_DEMAND);
            // One registration, one category: it ends up rewritten, not forwarded.
            FORWARDED.fetch_sub(1, Ordering::Relaxed);
            REWRITTEN.fetch_add(1, Ordering::Relaxed);
            out = (r, if failed(r) { sys::errno() } else { 0 }, "rewritten_odp");
        }
    }
    let _ = catch_unwind(AssertUnwindSafe(|| record(rt, &call, &pre, out.2, out.1)));
    if out.1 != 0 {
        sys::set_errno(out.1);
    }
    out.0
}

fn before(rt: &Runtime, call: &Call) -> Pre {
    let s = &rt.settings;
    // Clock reads only when someone reads the time: without a TSC the vDSO
    // falls back to a syscall (under emulation, an expensive one).
    let t0 = (s.stats || rt.sink.is_some()).then(Instant::now);
    let quiet = s.quiet || s.mode == Mode::Audit;
    let mut report = None;
    let judged: Option<Result<Verdict, Error>> = if call.access & IBV_ACCESS_ON_DEMAND != 0 {
        None // ODP pins nothing: the kernel allows it on fs-DAX; no lookup at all
    } else if rt.sink.is_some() {
        // The record names the file and mount: take the full report.
        let r = classify_with(call.addr, call.len, Options { target: None, lookup: s.lookup });
        Some(r.map(|r| report.insert(r).verdict()))
    } else {
        Some(judge(call.addr, call.len, s.lookup).map(|(v, _)| v))
    };
    if let Some(Err(e @ (Error::ProcOpen { .. } | Error::Proc { .. }))) = &judged {
        say_once(&SAID_NO_PROC, quiet, || {
            format!(
                "daxguard: cannot inspect mappings ({e}); forwarding registrations unchecked, the kernel remains the backstop"
            )
        });
    }
    // SAFETY: `pd` was handed to a registration call; libibverbs dereferences it too.
    #[allow(unsafe_code)]
    let decision = decide(s, call.access, judged.as_ref(), || unsafe { odp::supported(call.pd) });
    let decide_ns = t0.map_or(0, |t| t.elapsed().as_nanos() as u64);
    let verdict = match &judged {
        None => "unchecked",
        Some(Err(_)) => "error",
        Some(Ok(v)) => v.name(),
    };
    let speak = matches!(decision.rule, Rule::FsDax | Rule::Unverified | Rule::Warned | Rule::OdpRewrite);
    if speak && report.is_none() {
        report = classify_with(call.addr, call.len, Options { target: None, lookup: s.lookup }).ok();
    }
    match decision.rule {
        Rule::FsDax | Rule::Unverified if !quiet => {
            stderr_line(&explain::refusal(call.entry, call.addr, call.len, report.as_ref(), decision.rule))
        }
        Rule::Warned if !quiet => {
            stderr_line(&explain::warning(call.entry, call.addr, call.len, report.as_ref(), Rule::FsDax))
        }
        Rule::OdpRewrite => say_once(&SAID_ODP, quiet, || {
            format!(
                "daxguard: {}({:#x}, {}) is on filesystem-DAX: registering it with IBV_ACCESS_ON_DEMAND (DAXGUARD_MODE=odp; said once)",
                call.entry, call.addr, call.len
            )
        }),
        _ => {}
    }
    Pre { decision, verdict, report, decide_ns }
}

/// Explains a failed forwarded registration; returns whether to retry with ODP
/// (`odp` mode, EFAULT on a writable shared page-cache file mapping, device with ODP).
fn after_failure(rt: &Runtime, call: &Call, pre: &mut Pre, errno: i32) -> bool {
    let s = &rt.settings;
    if pre.report.is_none() {
        pre.report = classify_with(call.addr, call.len, Options { target: None, lookup: s.lookup }).ok();
    }
    let writable = crate::verbs::ib_access_writable(call.access);
    let shared_file = pre
        .report
        .as_ref()
        .is_some_and(|r| r.pieces.iter().any(|p| !crate::fsdax::writable_file_mapping_allowed(writable, p)));
    // SAFETY: as in `before`.
    #[allow(unsafe_code)]
    let retry = s.mode == Mode::Odp
        && errno == libc::EFAULT
        && shared_file
        && call.access & IBV_ACCESS_ON_DEMAND == 0
        && unsafe { odp::supported(call.pd) };
    if retry {
        say_once(&SAID_ODP, s.quiet, || {
            format!(
                "daxguard: {}({:#x}, {}) got EFAULT (writable pin of a shared file mapping): registering it with IBV_ACCESS_ON_DEMAND (DAXGUARD_MODE=odp; said once)",
                call.entry, call.addr, call.len
            )
        });
    } else if !s.quiet && s.mode != Mode::Audit {
        stderr_line(&explain::failure(call.entry, call.addr, call.len, call.access, errno, pre.report.as_ref()));
    }
    retry
}

fn record(rt: &Runtime, call: &Call, pre: &Pre, action: &str, errno: i32) {
    let Some(sink) = &rt.sink else { return };
    let culprit = pre.report.as_ref().and_then(|r| match r.verdict() {
        Verdict::FsDax { piece } | Verdict::Unverified { piece } => r.pieces.get(piece),
        Verdict::Allow => r.pieces.iter().find(|p| p.kind.file().is_some()),
    });
    let file = culprit.and_then(|p| p.kind.file());
    let explain = (errno != 0 && pre.decision.action != Action::Refuse)
        .then(|| explain::failure(call.entry, call.addr, call.len, call.access, errno, pre.report.as_ref()));
    let rec = Record {
        entry: call.entry,
        addr: call.addr,
        len: call.len,
        access: call.access,
        verdict: pre.verdict,
        reason: pre.decision.rule.name(),
        file: file.map(|f| f.path.as_path()),
        mount: file.map(explain::mount_words),
        action,
        errno,
        explain: explain.as_deref(),
        decide_ns: pre.decide_ns,
    };
    sink.write(&rec.to_json());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A nested entry (libibverbs' `ibv_reg_mr` calling `ibv_reg_mr_iova2`)
    /// must leave the outer call marked inside: the EFAULT retry makes a
    /// second nested call that must not be guarded (and recorded) again.
    #[test]
    fn nested_enter_keeps_the_outer_flag() {
        let outer = Inside::enter().expect("first entry");
        assert!(Inside::enter().is_none());
        assert!(Inside::enter().is_none(), "still inside after a nested entry");
        drop(outer);
        assert!(Inside::enter().is_some());
    }
}
