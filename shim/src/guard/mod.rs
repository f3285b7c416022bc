//! The guard around one registration, shared by every interposed entry point.
//!
//! Order of work: re-entry check (libibverbs' own `ibv_reg_mr` calls
//! `ibv_reg_mr_iova2` through the PLT and lands here again: one check, one
//! record), decide (under `catch_unwind`: a bug here forwards the call), call
//! the real function, then explain a failure and write the record (also under
//! `catch_unwind`). errno is restored to what the provider set before
//! returning, so the caller sees exactly the provider's answer.

mod setup;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use self::setup::{DECIDE_NS, FORWARDED, REFUSED, REWRITTEN, SEEN, Setup, say_once, setup};
use crate::audit::Record;
use crate::error::Error;
use crate::judge::{Options, classify_with, judge};
use crate::policy::{Action, Decision, Rule, decide};
use crate::report::{FileInfo, Report, Verdict};
use crate::settings::Mode;
use crate::sys::{Errno, stderr_line};
use crate::types::Pin;
use crate::{explain, fsdax};

static SAID_NO_PROC: AtomicBool = AtomicBool::new(false);
static SAID_ODP: AtomicBool = AtomicBool::new(false);

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

/// One call that asks for a long-term pin, as every consumer's entry point
/// describes it.
pub(crate) struct Call<'a> {
    /// The function called, as the program named it (`ibv_reg_mr_iova2`).
    pub entry: &'static str,
    pub addr: u64,
    pub len: u64,
    /// The consumer's own flags, recorded as they are (verbs access flags).
    pub access: u32,
    pub pin: Pin,
    /// Whether the device could take this pin on demand instead (`odp` mode);
    /// asked only for fs-DAX ranges, and only in that mode.
    pub device_odp: &'a dyn Fn() -> bool,
}

/// What was decided before the real call.
struct Pre {
    decision: Decision,
    /// The verdict's name, or `unchecked` / `error` when there is none.
    verdict: &'static str,
    /// The full report, when the audit record or a failure needs one.
    report: Option<Report>,
    decide_ns: u64,
}

/// What the caller gets, and how the record tells it.
struct Outcome<R> {
    result: R,
    /// 0 on success, else the errno the caller sees.
    errno: i32,
    /// `refused`, `forwarded` or `rewritten_odp`.
    action: &'static str,
}

/// Says `line` once per process (per `flag`), unless the settings keep the
/// shim quiet (`DAXGUARD_QUIET=1`, or the `audit` and `off` modes). For
/// lines said outside a registration (the `dlsym` wrapper, a consumer's
/// own notes); reads the settings if nothing has yet.
pub(crate) fn say_once_unless_quiet(flag: &AtomicBool, line: impl FnOnce() -> String) {
    if flag.load(Ordering::Relaxed) {
        return;
    }
    let quiet =
        catch_unwind(setup).is_ok_and(|s| s.settings.quiet || matches!(s.settings.mode, Mode::Audit | Mode::Off));
    say_once(flag, quiet, line);
}

/// Guards one call. `forward(on_demand)` makes the real call (asking for an
/// on-demand pin instead when `on_demand`), `failed` tells a failed result,
/// `refused` is what to return when refusing (errno is set to EOPNOTSUPP,
/// what the kernel itself answers for fs-DAX).
pub(crate) fn guard<R: Copy>(call: Call, forward: impl Fn(bool) -> R, failed: impl Fn(R) -> bool, refused: R) -> R {
    let Some(_inside) = Inside::enter() else {
        return forward(false); // libibverbs calling itself through the PLT: already checked
    };
    let Ok(s) = catch_unwind(setup) else { return forward(false) };
    if s.settings.mode == Mode::Off {
        return forward(false);
    }
    let mut pre = catch_unwind(AssertUnwindSafe(|| before(s, &call))).unwrap_or_else(|_| Pre::unjudged());
    SEEN.fetch_add(1, Ordering::Relaxed);
    DECIDE_NS.fetch_add(pre.decide_ns, Ordering::Relaxed);
    let call_with = |on_demand: bool, action| {
        let result = forward(on_demand);
        Outcome { result, errno: if failed(result) { Errno::last().raw() } else { 0 }, action }
    };
    let mut out = match pre.decision.action {
        Action::Refuse => Outcome { result: refused, errno: libc::EOPNOTSUPP, action: "refused" },
        Action::RewriteOdp => call_with(true, "rewritten_odp"),
        Action::Forward => call_with(false, "forwarded"),
    };
    if out.errno != 0 && pre.decision.action != Action::Refuse {
        let retry = catch_unwind(AssertUnwindSafe(|| after_failure(s, &call, &mut pre, out.errno)));
        if matches!(retry, Ok(true)) {
            out = call_with(true, "rewritten_odp");
        }
    }
    count(&out);
    let _ = catch_unwind(AssertUnwindSafe(|| record(s, &call, &pre, &out)));
    if out.errno != 0 {
        Errno::from_raw(out.errno).set();
    }
    out.result
}

impl Pre {
    /// After a panic while deciding: forward, as if nothing could be inspected.
    fn unjudged() -> Pre {
        let decision = Decision { action: Action::Forward, rule: Rule::CannotInspect };
        Pre { decision, verdict: "error", report: None, decide_ns: 0 }
    }
}

/// One registration, one category: an EFAULT retried with ODP ends up
/// rewritten, not forwarded.
fn count<R>(out: &Outcome<R>) {
    let counter = match out.action {
        "refused" => &REFUSED,
        "rewritten_odp" => &REWRITTEN,
        _ => &FORWARDED,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Looks, decides, and says what it decided.
fn before(s: &Setup, call: &Call) -> Pre {
    let settings = &s.settings;
    // Clock reads only when someone reads the time: without a TSC the vDSO
    // falls back to a syscall (under emulation, an expensive one).
    let t0 = (settings.stats || s.sink.is_some()).then(Instant::now);
    let (judged, report, culprit) = look(s, call);
    let quiet = settings.quiet || settings.mode == Mode::Audit;
    if let Some(Err(e @ (Error::ProcOpen { .. } | Error::Proc { .. }))) = &judged {
        say_once(&SAID_NO_PROC, quiet, || {
            format!(
                "daxguard: cannot inspect mappings ({e}); forwarding registrations unchecked, the kernel remains the backstop"
            )
        });
    }
    let decision = decide(settings, call.pin, judged.as_ref(), call.device_odp);
    let decide_ns = t0.map_or(0, |t| t.elapsed().as_nanos() as u64);
    say(call, decision.rule, culprit.as_ref(), quiet);
    let verdict = match &judged {
        None => "unchecked",
        Some(Err(_)) => "error",
        Some(Ok(v)) => v.name(),
    };
    Pre { decision, verdict, report, decide_ns }
}

/// The verdict, and the report or culprit that explains it. ODP pins
/// nothing (the kernel allows it on fs-DAX): no lookup at all. With an audit
/// sink the record names the file and mount of every registration: the full
/// report; otherwise `judge`, which allocates nothing on anonymous memory.
fn look(s: &Setup, call: &Call) -> (Option<Result<Verdict, Error>>, Option<Report>, Option<FileInfo>) {
    if call.pin.on_demand {
        return (None, None, None);
    }
    let lookup = s.settings.lookup;
    if s.sink.is_some() {
        return match classify_with(call.addr, call.len, Options { target: None, lookup }) {
            Ok(r) => {
                let culprit = r.culprit().cloned();
                (Some(Ok(r.verdict())), Some(r), culprit)
            }
            Err(e) => (Some(Err(e)), None, None),
        };
    }
    match judge(call.addr, call.len, lookup) {
        Ok(j) => (Some(Ok(j.verdict)), None, j.culprit),
        Err(e) => (Some(Err(e)), None, None),
    }
}

/// The line a decision prints: a refusal, a warning, or (once) the ODP rewrite.
fn say(call: &Call, rule: Rule, culprit: Option<&FileInfo>, quiet: bool) {
    match rule {
        Rule::FsDax | Rule::Unverified if !quiet => {
            stderr_line(&explain::refusal(call.entry, call.addr, call.len, culprit, rule))
        }
        Rule::Warned if !quiet => stderr_line(&explain::warning(call.entry, call.addr, call.len, culprit, Rule::FsDax)),
        Rule::OdpRewrite => say_once(&SAID_ODP, quiet, || {
            format!(
                "daxguard: {}({:#x}, {}) is on filesystem-DAX: registering it with IBV_ACCESS_ON_DEMAND (DAXGUARD_MODE=odp; said once)",
                call.entry, call.addr, call.len
            )
        }),
        _ => {}
    }
}

/// Explains a failed forwarded registration; returns whether to retry with ODP
/// (`odp` mode, EFAULT on a writable shared page-cache file mapping, device with ODP).
fn after_failure(s: &Setup, call: &Call, pre: &mut Pre, errno: i32) -> bool {
    let settings = &s.settings;
    if pre.report.is_none() {
        pre.report = classify_with(call.addr, call.len, Options { target: None, lookup: settings.lookup }).ok();
    }
    let shared_file = pre
        .report
        .as_ref()
        .is_some_and(|r| r.pieces.iter().any(|p| !fsdax::writable_file_mapping_allowed(call.pin.write, p)));
    let retry = settings.mode == Mode::Odp
        && errno == libc::EFAULT
        && shared_file
        && !call.pin.on_demand
        && (call.device_odp)();
    if retry {
        say_once(&SAID_ODP, settings.quiet, || {
            format!(
                "daxguard: {}({:#x}, {}) got EFAULT (writable pin of a shared file mapping): registering it with IBV_ACCESS_ON_DEMAND (DAXGUARD_MODE=odp; said once)",
                call.entry, call.addr, call.len
            )
        });
    } else if !settings.quiet && settings.mode != Mode::Audit {
        stderr_line(&explain::failure(call.entry, call.addr, call.len, call.pin, errno, pre.report.as_ref()));
    }
    retry
}

/// The audit record, if a sink is set.
fn record<R>(s: &Setup, call: &Call, pre: &Pre, out: &Outcome<R>) {
    let Some(sink) = &s.sink else { return };
    // The culprit, or for an allowed range the first file in it.
    let file = pre.report.as_ref().and_then(|r| match r.verdict() {
        Verdict::Allow => r.pieces.iter().find_map(|p| p.kind.file_info()),
        _ => r.culprit(),
    });
    let explain = (out.errno != 0 && pre.decision.action != Action::Refuse)
        .then(|| explain::failure(call.entry, call.addr, call.len, call.pin, out.errno, pre.report.as_ref()));
    let rec = Record {
        entry: call.entry,
        addr: call.addr,
        len: call.len,
        access: call.access,
        verdict: pre.verdict,
        reason: pre.decision.rule.name(),
        file: file.map(|f| f.path.as_path()),
        mount: file.map(explain::mount_words),
        action: out.action,
        errno: out.errno,
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
