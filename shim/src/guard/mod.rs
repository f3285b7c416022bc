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
use crate::explain::{self, Site};
use crate::fsdax;
use crate::judge::{Judgement, Options, classify_with, judge};
use crate::lookup::preferred_lookup;
use crate::policy::{Action, Decision, Rule, decide};
use crate::report::{FileInfo, Report, Verdict};
use crate::settings::Mode;
use crate::sys::{Errno, stderr_line};
pub(crate) use crate::types::Buffer;
use crate::types::Lookup;
use crate::types::{Consumer, Pin};

static SAID_NO_PROC: AtomicBool = AtomicBool::new(false);
static SAID_ODP: AtomicBool = AtomicBool::new(false);
static SAID_ODP_NA: AtomicBool = AtomicBool::new(false);
static SAID_JOURNAL: AtomicBool = AtomicBool::new(false);

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

/// How an API answers: what a refusal returns, how a failure shows.
pub(crate) struct Answer<R> {
    /// What to return when refusing.
    pub refused: R,
    /// The errno behind a failed result (`None`: it succeeded).
    pub failed: fn(R) -> Option<Errno>,
    /// Whether the API reports failure in `errno` (libibverbs, libc) or only
    /// in its return value (liburing's `-errno`): a refusal sets errno only
    /// for the former.
    pub sets_errno: bool,
}

/// One call that asks for a long-term pin, as every consumer's entry point
/// describes it.
pub(crate) struct Call<'a> {
    pub consumer: Consumer,
    /// The function or request, as the program named it (`ibv_reg_mr_iova2`, `VIDIOC_QBUF`).
    pub entry: &'static str,
    /// The buffers it pins: one for a registration, one per plane or iovec.
    pub buffers: &'a [Buffer],
    /// What names buffer `i` in a message (device, index, plane), if anything.
    pub detail: &'a dyn Fn(usize) -> Option<String>,
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
    /// Which buffer the verdict is about (the culprit's, else the first).
    index: usize,
    /// The full report, when the audit record or a failure needs one.
    report: Option<Report>,
    /// The path that answered the verdict (`None`: no lookup answered).
    lookup: Option<Lookup>,
    decide_ns: u64,
}

/// What the caller gets, and how the record tells it.
struct Outcome<R> {
    result: R,
    /// 0 on success, else the errno the caller sees.
    errno: i32,
    /// errno as the caller will see it on return.
    errno_after: Errno,
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
/// on-demand pin instead when `on_demand`); `answer` says how the API
/// reports a refusal (`EOPNOTSUPP`, what the kernel itself answers for
/// fs-DAX) and a failure. errno on return is exactly what the provider left,
/// or the refusal's: the lookups' own errnos never leak to the caller.
pub(crate) fn guard<R: Copy>(call: Call, forward: impl Fn(bool) -> R, answer: Answer<R>) -> R {
    // Saved before anything else: the first call's setup opens the log and
    // may complain on stderr, and neither may change what the provider sees.
    let caller_errno = Errno::last();
    let Some(_inside) = Inside::enter() else {
        return forward(false); // libibverbs calling itself through the PLT: already checked
    };
    let unguarded = || {
        caller_errno.set();
        forward(false)
    };
    let Ok(s) = catch_unwind(setup) else { return unguarded() };
    if s.settings.mode == Mode::Off {
        return unguarded();
    }
    let mut pre = catch_unwind(AssertUnwindSafe(|| before(s, &call))).unwrap_or_else(|_| Pre::unjudged());
    SEEN.fetch_add(1, Ordering::Relaxed);
    DECIDE_NS.fetch_add(pre.decide_ns, Ordering::Relaxed);
    let call_with = |on_demand: bool, action| {
        caller_errno.set(); // the provider starts from the caller's errno, as without us
        let result = forward(on_demand);
        let errno_after = Errno::last();
        let errno = (answer.failed)(result).map_or(0, Errno::raw);
        Outcome { result, errno, errno_after, action }
    };
    let mut out = match pre.decision.action {
        Action::Refuse => {
            let errno_after = if answer.sets_errno { Errno::EOPNOTSUPP } else { caller_errno };
            Outcome { result: answer.refused, errno: libc::EOPNOTSUPP, errno_after, action: "refused" }
        }
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
    // Where PROCMAP_QUERY is missing, the mmap-events map is set up after a
    // call, never before it (lookup/events.rs, `at`); elsewhere a load.
    let _ = catch_unwind(crate::lookup::set_up_mmap_events_pending);
    out.errno_after.set();
    out.result
}

impl Pre {
    /// After a panic while deciding: forward, as if nothing could be inspected.
    fn unjudged() -> Pre {
        let decision = Decision { action: Action::Forward, rule: Rule::CannotInspect };
        Pre { decision, verdict: "error", index: 0, report: None, lookup: None, decide_ns: 0 }
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
    let looked = look(s, call);
    let quiet = settings.quiet || settings.mode == Mode::Audit;
    if let Some(Err(e @ (Error::ProcOpen { .. } | Error::Proc { .. }))) = &looked.judged {
        say_once(&SAID_NO_PROC, quiet, || {
            format!(
                "daxguard: cannot inspect mappings ({e}); forwarding registrations unchecked, the kernel remains the backstop"
            )
        });
    }
    let device_odp = || call.consumer == Consumer::Rdma && (call.device_odp)();
    let decision = decide(settings, call.pin, looked.judged.as_ref(), device_odp);
    let decide_ns = t0.map_or(0, |t| t.elapsed().as_nanos() as u64);
    say(call, looked.index, decision.rule, looked.culprit.as_deref(), settings.mode, quiet, &s.suffix);
    let verdict = match &looked.judged {
        None => "unchecked",
        Some(Err(_)) => "error",
        Some(Ok(v)) => v.name(),
    };
    Pre { decision, verdict, index: looked.index, report: looked.report, lookup: looked.lookup, decide_ns }
}

/// What [`look`] found.
struct Looked {
    judged: Option<Result<Verdict, Error>>,
    /// The buffer the verdict is about.
    index: usize,
    /// Its full report (with an audit sink), and its culprit file (boxed:
    /// every registration moves a `Looked`, few have a culprit).
    report: Option<Report>,
    culprit: Option<Box<FileInfo>>,
    /// The path that answered.
    lookup: Option<Lookup>,
}

impl Looked {
    /// What a verdict's walk (`judge`) found, or why it could not look.
    fn from_judge(judged: Result<Judgement, Error>, index: usize) -> Looked {
        match judged {
            Ok(j) => {
                Looked { judged: Some(Ok(j.verdict)), index, report: None, culprit: j.culprit, lookup: Some(j.lookup) }
            }
            Err(e) => Looked { judged: Some(Err(e)), index, report: None, culprit: None, lookup: None },
        }
    }
}

/// The verdict over every buffer (fs-DAX anywhere wins, then unverifiable,
/// then a lookup error), and what explains it. An on-demand pin pins
/// nothing (the kernel allows it on fs-DAX): no lookup at all. With an audit
/// sink the record names the file and mount of every call: the full report;
/// otherwise `judge`, which allocates nothing on anonymous memory.
fn look(s: &Setup, call: &Call) -> Looked {
    let mut best = Looked { judged: None, index: 0, report: None, culprit: None, lookup: None };
    if call.pin.on_demand {
        return best;
    }
    let rank = |j: &Option<Result<Verdict, Error>>| match j {
        Some(Ok(Verdict::FsDax { .. })) => 3,
        Some(Ok(Verdict::Unverified { .. })) => 2,
        Some(Err(_)) => 1,
        _ => 0,
    };
    for (index, b) in call.buffers.iter().enumerate() {
        let found = look_at(s, *b, index);
        if best.judged.is_none() || rank(&found.judged) > rank(&best.judged) {
            best = found;
        }
        if rank(&best.judged) == 3 {
            break;
        }
    }
    best
}

fn look_at(s: &Setup, b: Buffer, index: usize) -> Looked {
    let lookup = s.settings.lookup;
    if s.sink.is_some() {
        // Without PROCMAP_QUERY a full report reads maps text (it needs
        // names), the walk the mmap-events map spares a verdict. Memory
        // without a file needs no name, and its record names no file: the
        // verdict's walk serves the record then. Nothing changes where the
        // query works, nor where the map cannot be had or maps text is asked
        // for (the verdict's walk would be maps text too, and a file range
        // would read it twice).
        if lookup != crate::types::LookupChoice::MapsText
            && !crate::lookup::procmap_query_supported()
            && !crate::lookup::mmap_events_known_unavailable()
            && let Ok(j) = judge(b.addr, b.len, lookup)
            && j.verdict == Verdict::Allow
            && j.unnamed
        {
            return Looked::from_judge(Ok(j), index);
        }
        return match classify_with(b.addr, b.len, Options { target: None, lookup }) {
            Ok(r) => {
                let culprit = r.culprit().cloned().map(Box::new);
                Looked { judged: Some(Ok(r.verdict())), index, lookup: Some(r.lookup), report: Some(r), culprit }
            }
            Err(e) => Looked::from_judge(Err(e), index),
        };
    }
    Looked::from_judge(judge(b.addr, b.len, lookup), index)
}

/// Buffer `index` of the call, as messages name it.
fn site_of<'d>(call: &Call, index: usize, detail: &'d Option<String>) -> Site<'d> {
    let b = call.buffers.get(index).copied().unwrap_or(Buffer { addr: 0, len: 0 });
    Site { consumer: call.consumer, entry: call.entry, detail: detail.as_deref(), addr: b.addr, len: b.len }
}

/// The refusal or warning line for `rule` (without the job suffix), if it has one.
fn decision_line(site: &Site<'_>, culprit: Option<&FileInfo>, rule: Rule) -> Option<String> {
    match rule {
        Rule::FsDax | Rule::Unverified => Some(explain::refusal_at(site, culprit, rule)),
        Rule::Warned => Some(explain::warning_at(site, culprit, Rule::FsDax)),
        _ => None,
    }
}

/// The line a decision prints: a refusal, a warning, or (once) the ODP
/// rewrite; each ends with `suffix`, the rank and job when there are any.
fn say(call: &Call, index: usize, rule: Rule, culprit: Option<&FileInfo>, mode: Mode, quiet: bool, suffix: &str) {
    let detail = (call.detail)(index);
    let site = site_of(call, index, &detail);
    if rule == Rule::OdpRewrite {
        say_once(&SAID_ODP, quiet, || {
            format!(
                "daxguard: {site} is on filesystem-DAX: registering it with IBV_ACCESS_ON_DEMAND (DAXGUARD_MODE=odp; said once){suffix}"
            )
        });
    } else if !quiet && let Some(line) = decision_line(&site, culprit, rule) {
        stderr_line(&(line + suffix));
    }
    if mode == Mode::Odp && call.consumer != Consumer::Rdma && matches!(rule, Rule::FsDax | Rule::Unverified) {
        say_once(&SAID_ODP_NA, quiet, || {
            format!(
                "daxguard: DAXGUARD_MODE=odp does not apply to {} pins (no on-demand paging there): refusing as enforce does (said once)",
                call.consumer.name()
            )
        });
    }
}

/// Said once when a V4L2 or io_uring call's arguments cannot be read.
pub(crate) fn say_cannot_read(errno: Errno) {
    static SAID: AtomicBool = AtomicBool::new(false);
    let quiet = catch_unwind(setup).map_or(true, |s| s.settings.quiet || s.settings.mode == Mode::Audit);
    say_once(&SAID, quiet, || {
        format!(
            "daxguard: cannot read the arguments of V4L2 and io_uring calls (process_vm_readv: {errno}); forwarding them unchecked, the kernel remains the backstop"
        )
    });
}

/// Every buffer's pieces, as one report for explaining a failure.
fn report_of_all(call: &Call, lookup: crate::types::LookupChoice) -> Option<Report> {
    let mut all: Option<Report> = None;
    for b in call.buffers {
        let r = classify_with(b.addr, b.len, Options { target: None, lookup }).ok()?;
        match &mut all {
            None => all = Some(r),
            Some(a) => a.pieces.extend(r.pieces),
        }
    }
    all
}

/// Explains a failed forwarded registration; returns whether to retry with ODP
/// (`odp` mode, EFAULT on a writable shared page-cache file mapping, device with ODP).
fn after_failure(s: &Setup, call: &Call, pre: &mut Pre, errno: i32) -> bool {
    let settings = &s.settings;
    if pre.report.is_none() || call.buffers.len() > 1 {
        pre.report = report_of_all(call, settings.lookup);
    }
    let shared_file = pre
        .report
        .as_ref()
        .is_some_and(|r| r.pieces.iter().any(|p| !fsdax::writable_file_mapping_allowed(call.pin.write, p)));
    let retry = settings.mode == Mode::Odp
        && call.consumer == Consumer::Rdma
        && errno == libc::EFAULT
        && shared_file
        && !call.pin.on_demand
        && (call.device_odp)();
    let detail = (call.detail)(pre.index);
    let site = site_of(call, pre.index, &detail);
    if retry {
        say_once(&SAID_ODP, settings.quiet, || {
            format!(
                "daxguard: {site} got EFAULT (writable pin of a shared file mapping): registering it with IBV_ACCESS_ON_DEMAND (DAXGUARD_MODE=odp; said once){}",
                s.suffix
            )
        });
    } else if !settings.quiet && settings.mode != Mode::Audit {
        stderr_line(&(explain::failure_at(&site, call.pin, errno, pre.report.as_ref()) + &s.suffix));
    }
    retry
}

/// The `DAXGUARD_LOOKUP` the guard runs with (reads the settings if no
/// registration has yet).
pub(crate) fn lookup_choice() -> crate::types::LookupChoice {
    setup().settings.lookup
}

/// The audit record, if a sink is set.
fn record<R>(s: &Setup, call: &Call, pre: &Pre, out: &Outcome<R>) {
    let Some(sink) = &s.sink else { return };
    // The culprit, or for an allowed range the first file in it.
    let file = pre.report.as_ref().and_then(|r| match r.verdict() {
        Verdict::Allow => r.pieces.iter().find_map(|p| p.kind.file_info()),
        _ => r.culprit(),
    });
    let detail = (call.detail)(pre.index);
    let site = site_of(call, pre.index, &detail);
    let explain = (out.errno != 0 && pre.decision.action != Action::Refuse).then(|| {
        // A verdict that needed no report (memory without a file) gets one
        // now, for the words: failures are rare.
        let late = pre.report.is_none().then(|| report_of_all(call, s.settings.lookup)).flatten();
        explain::failure_at(&site, call.pin, out.errno, pre.report.as_ref().or(late.as_ref()))
    });
    // The journal's MESSAGE: the line a person would have read on stderr.
    let message = sink
        .wants_message()
        .then(|| {
            let line = decision_line(&site, file, pre.decision.rule).or_else(|| explain.clone());
            line.map(|l| l + &s.suffix)
        })
        .flatten();
    let id = &s.identity;
    let rec = Record {
        rank: id.rank,
        job: id.job.as_deref(),
        step: id.step.as_deref(),
        mode: s.settings.mode.name(),
        consumer: call.consumer.name(),
        entry: call.entry,
        addr: site.addr,
        len: site.len,
        access: call.access,
        verdict: pre.verdict,
        reason: pre.decision.rule.name(),
        file: file.map(|f| f.path.as_path()),
        mount: file.map(explain::mount_words),
        action: out.action,
        errno: out.errno,
        explain: explain.as_deref(),
        // The path that answered, or (the lookup failed, or an on-demand pin
        // needed none) the one this process takes.
        lookup: pre.lookup.unwrap_or_else(|| preferred_lookup(s.settings.lookup)).name(),
        decide_ns: pre.decide_ns,
        message: message.as_deref(),
    };
    if let Err(e) = sink.write(&rec) {
        let quiet = s.settings.quiet || s.settings.mode == Mode::Audit;
        say_once(&SAID_JOURNAL, quiet, || {
            format!(
                "daxguard: cannot send audit records to the journal ({}: {e}); they are lost while it is unreachable (said once)",
                crate::journal::SOCKET
            )
        });
    }
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
