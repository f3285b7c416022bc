//! `daxguard watch`: every long-term pin the kernel refuses, from any
//! process, as it happens, with no preload.
//!
//! The pieces, in the order a refusal travels:
//! - `watch.bpf.c` (with `watch.h`, the record, and `kernel.h`, the CO-RE
//!   kernel types): fexit on the GUP entry points; filters out every
//!   successful pin at once, describes a refusal (who, the stack, the VMA,
//!   the file's path walked in the kernel) and sends it through a ring
//!   buffer, counting what does not fit;
//! - [`kernel`]: whether this kernel can run it, and the `FOLL_*` values it needs;
//! - this file: loads and attaches the skeleton ([`skel`]), polls the ring
//!   buffer, reads the counters, stops on `--count`, `--duration` or a signal;
//! - [`decode`]: a record into a [`decode::Refusal`]; [`symbols`]: its stack
//!   into the consumer and caller;
//! - [`show`] (text and JSON), [`journal`] (`--journal`) and [`metrics`]
//!   (`--metrics-file`): where it goes.
//!
//! How a refusal is caught and how the path is resolved: docs/design.md.

mod decode;
mod journal;
pub mod kernel;
mod metrics;
mod show;
mod skel;
mod symbols;
mod sys;

use std::cell::RefCell;
use std::io::{BufWriter, Stdout, Write};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, PrintLevel, RingBufferBuilder};

use self::decode::Refusal;
use self::journal::Journal;
use self::kernel::{HOOKS, Kernel, Unsupported};
use self::metrics::Metrics;
use self::show::{Clock, Counts};
use self::skel::{WatchSkel, WatchSkelBuilder};
use self::symbols::Symbols;
use crate::cli::WatchArgs;
use crate::output::{Done, EXIT_OK, EXIT_REFUSED};

/// watch.h's `enum watch_stat`: the per-CPU counters.
const STAT_SENT: u32 = 0;
const STAT_DROPPED: u32 = 1;
const STAT_UNRESOLVED: u32 = 2;
const STAT_CALLS: u32 = 3;

/// How long one ring-buffer poll waits: the bound on noticing a signal,
/// the end of `--duration`, or new drops.
const POLL: Duration = Duration::from_millis(200);
/// How often the counters are read and the metrics file rewritten.
const TICK: Duration = Duration::from_secs(1);

/// What the BPF program filters on (0 or empty: anything).
#[derive(Default)]
struct Filters {
    pid: u32,
    errno: i32,
    comm: Option<String>,
    count_calls: bool,
}

/// libbpf's messages while loading (the verifier's log on failure), kept
/// so a failure is one line, and all of them with `DAXGUARD_BPF_LOG=1`.
static LIBBPF_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn keep_libbpf_message(_: PrintLevel, msg: String) {
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        if log.len() >= 4000 {
            log.remove(0);
        }
        log.push(msg.trim_end().to_string());
    }
}

/// The load or attach failure in one line, naming the kernel feature it
/// points at when there is one.
fn failure(what: &str, e: &libbpf_rs::Error) -> Unsupported {
    let log = LIBBPF_LOG.lock().map(|l| l.clone()).unwrap_or_default();
    if std::env::var_os("DAXGUARD_BPF_LOG").is_some() {
        for line in &log {
            eprintln!("libbpf: {line}");
        }
    }
    let text = e.to_string();
    // ENOTSUPP (524): the kernel has no BPF trampoline for this architecture or configuration.
    if what == "attach" && (text.contains("524") || text.contains("not supported")) {
        return Unsupported(format!(
            "this kernel cannot attach fexit programs (no BPF trampolines: CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS): {text}"
        ));
    }
    // EPERM after privileges() passed: something above the capabilities says no
    // (the verifier's own rejections are EACCES).
    if text.contains("Operation not permitted") {
        return Unsupported(format!(
            "the kernel refused to {what} watch's BPF program ({text}) although this process has the \
             capabilities: a seccomp filter, a container or an LSM forbids bpf() here"
        ));
    }
    let last =
        log.iter().rev().find(|l| !l.is_empty() && !l.starts_with("libbpf: failed to")).cloned().unwrap_or_default();
    let said = if last.is_empty() { String::new() } else { format!("; libbpf: {last}") };
    Unsupported(format!("cannot {what} watch's BPF program: {text}{said} (DAXGUARD_BPF_LOG=1 shows the whole log)"))
}

/// Opens, configures, loads and attaches the program: after this, every
/// refused long-term pin lands in the ring buffer. Dropping the skeleton
/// detaches it.
fn load<'obj>(k: &Kernel, f: &Filters, obj: &'obj mut MaybeUninit<OpenObject>) -> Result<Attached<'obj>, Unsupported> {
    libbpf_rs::set_print(Some((PrintLevel::Debug, keep_libbpf_message)));
    let mut open = WatchSkelBuilder::default().open(obj).map_err(|e| failure("open", &e))?;
    let ro = open.maps.rodata_data.as_deref_mut().ok_or_else(|| Unsupported("the BPF object has no .rodata".into()))?;
    ro.foll_longterm = k.foll_longterm;
    ro.foll_write = k.foll_write;
    ro.targ_tgid = f.pid;
    ro.targ_errno = f.errno;
    ro.count_calls = f.count_calls;
    if let Some(comm) = &f.comm {
        ro.filter_comm = true;
        for (dst, b) in ro.targ_comm.iter_mut().zip(comm.bytes().take(15)) {
            *dst = b as i8;
        }
    }
    // Each hook's fexit, or (KPROBE_FALLBACK) its kprobe and kretprobe pair.
    let remote = HOOKS[2];
    let fexit = |f: &str| k.hooks.contains(&f) && !k.kprobe(f);
    open.progs.watch_fast.set_autoload(fexit(HOOKS[0]));
    open.progs.watch_pin.set_autoload(fexit(HOOKS[1]));
    open.progs.watch_remote.set_autoload(fexit(remote));
    open.progs.watch_unlocked.set_autoload(fexit(HOOKS[3]));
    open.progs.watch_remote_entry.set_autoload(k.kprobe(remote));
    open.progs.watch_remote_return.set_autoload(k.kprobe(remote));
    let skel = open.load().map_err(|e| failure("load", &e))?;
    let p = &skel.progs;
    let fexits =
        [(&p.watch_fast, HOOKS[0]), (&p.watch_pin, HOOKS[1]), (&p.watch_remote, remote), (&p.watch_unlocked, HOOKS[3])];
    let mut progs: Vec<_> = fexits.into_iter().filter(|(_, f)| fexit(f)).map(|(prog, _)| prog).collect();
    if k.kprobe(remote) {
        progs.extend([&p.watch_remote_entry, &p.watch_remote_return]);
    }
    let mut links = Vec::new();
    for prog in progs {
        links.push(prog.attach().map_err(|e| failure("attach", &e))?);
    }
    Ok(Attached { skel, _links: links })
}

/// The loaded program and its links: dropping it detaches everything.
struct Attached<'obj> {
    skel: WatchSkel<'obj>,
    _links: Vec<libbpf_rs::Link>,
}

/// Whether `watch` can run here, for `doctor`: the kernel's side, then our
/// privileges, then a real load and attach (detached again at once).
pub enum Readiness {
    Ready(Kernel),
    NotPermitted(Kernel, Unsupported),
    Unsupported(Unsupported),
}

pub fn readiness() -> Readiness {
    let k = match kernel::examine() {
        Ok(k) => k,
        Err(e) => return Readiness::Unsupported(e),
    };
    if let Err(e) = kernel::privileges() {
        return Readiness::NotPermitted(k, e);
    }
    let mut obj = MaybeUninit::uninit();
    match load(&k, &Filters::default(), &mut obj) {
        Ok(_attached) => Readiness::Ready(k),
        Err(e) => Readiness::Unsupported(e),
    }
}

/// The sum of a per-CPU counter.
fn stat(skel: &WatchSkel<'_>, index: u32) -> u64 {
    let per_cpu = skel.maps.stats.lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY).ok().flatten().unwrap_or_default();
    per_cpu.iter().filter_map(|v| v.get(..8)).map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes"))).sum()
}

/// Where refusals go and what has been seen, shared by the ring buffer's
/// callback and the loop around it.
struct Sink {
    json: bool,
    journal: Option<Journal>,
    metrics: Option<(PathBuf, Metrics)>,
    metrics_dirty: bool,
    metrics_warned: bool,
    symbols: Symbols,
    symbols_warned: bool,
    clock: Clock,
    page_size: u64,
    out: BufWriter<Stdout>,
    limit: Option<u64>,
    counts: Counts,
    /// Why output stopped early (stdout closed, the journal gone).
    broken: Option<String>,
}

impl Sink {
    /// The ring buffer's callback: one record in, one refusal out.
    fn record(&mut self, data: &[u8]) -> i32 {
        if self.full() || self.broken.is_some() {
            return 0;
        }
        let e = decode::record(data);
        let r = decode::refusal(&e, &mut self.symbols, self.page_size);
        if self.symbols.hidden && !self.symbols_warned {
            self.symbols_warned = true;
            eprintln!(
                "daxguard: /proc/kallsyms hides kernel addresses from us: consumers show as 'other' (run as root, or add CAP_SYSLOG)"
            );
        }
        self.counts.refusals += 1;
        if let Some((_, m)) = &mut self.metrics {
            m.refusal(r.consumer, r.error_name());
            self.metrics_dirty = true;
        }
        self.emit(&r);
        0
    }

    fn emit(&mut self, r: &Refusal) {
        if let Some(j) = &mut self.journal {
            if let Err(e) = j.send(&journal::refusal_fields(r, show::text(r, self.clock))) {
                self.broken = Some(format!("the journal: {e}"));
            }
            return;
        }
        let line = if self.json { show::json(r, self.clock) } else { show::text(r, self.clock) };
        self.line(&line);
    }

    fn line(&mut self, line: &str) {
        if let Err(e) = writeln!(self.out, "{line}") {
            self.broken = Some(format!("stdout: {e}"));
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            self.broken.get_or_insert_with(|| format!("stdout: {e}"));
        }
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|n| self.counts.refusals >= n)
    }

    /// New drops and unresolved EFAULTs from the kernel's counters.
    fn counters(&mut self, dropped: u64, unresolved: u64) {
        if dropped > self.counts.dropped {
            let new = dropped - self.counts.dropped;
            let text = show::dropped(new, dropped, false);
            if let Some(j) = &mut self.journal {
                let fields = [
                    ("MESSAGE", text),
                    ("MESSAGE_ID", journal::DROPPED_MESSAGE_ID.to_string()),
                    ("PRIORITY", journal::PRIORITY_ERR.to_string()),
                    ("SYSLOG_IDENTIFIER", "daxguard-watch".to_string()),
                    ("DAXGUARD_DROPPED", new.to_string()),
                    ("DAXGUARD_DROPPED_TOTAL", dropped.to_string()),
                ];
                if let Err(e) = j.send(&fields) {
                    self.broken.get_or_insert_with(|| format!("the journal: {e}"));
                }
            } else {
                let line = show::dropped(new, dropped, self.json);
                self.line(&line);
            }
        }
        if (dropped, unresolved) != (self.counts.dropped, self.counts.unresolved) {
            self.metrics_dirty = true;
        }
        self.counts.dropped = dropped;
        self.counts.unresolved = unresolved;
        if let Some((_, m)) = &mut self.metrics {
            m.dropped = dropped;
            m.unresolved = unresolved;
        }
    }

    /// Rewrites the metrics file if something changed (or, at exit, always).
    fn write_metrics(&mut self, up: bool) {
        let Some((path, m)) = &self.metrics else { return };
        if !self.metrics_dirty && up {
            return;
        }
        match crate::prom::write_textfile(path, &m.render(up)) {
            Ok(()) => self.metrics_dirty = false,
            Err(e) if !self.metrics_warned => {
                self.metrics_warned = true;
                eprintln!("daxguard: cannot write the metrics file: {e}");
            }
            Err(_) => {}
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// The metrics file is written once before attaching: a directory that is
/// not there is bad input (exit 2), not a warning an hour later.
fn first_metrics(path: &Path) -> anyhow::Result<(PathBuf, Metrics)> {
    let m = Metrics::new(unix_now());
    crate::prom::write_textfile(path, &m.render(true)).map_err(|e| anyhow::anyhow!("--metrics-file: {e}"))?;
    Ok((path.to_path_buf(), m))
}

pub fn run(args: &WatchArgs, json: bool) -> anyhow::Result<Done> {
    let k = kernel::examine()?;
    kernel::privileges()?;
    let journal = match args.journal {
        true => Some(
            Journal::open(Path::new(journal::SOCKET))
                .map_err(|e| anyhow::anyhow!("--journal: {}: {e}", journal::SOCKET))?,
        ),
        false => None,
    };
    let metrics = args.metrics_file.as_deref().map(first_metrics).transpose()?;
    let filters = Filters {
        pid: args.pid.map_or(0, |p| p as u32),
        errno: args.errno.unwrap_or(0),
        comm: args.comm.clone(),
        count_calls: args.count_calls,
    };
    let mut obj = MaybeUninit::uninit();
    let attached = load(&k, &filters, &mut obj)?;
    let skel = &attached.skel;
    sys::catch_stop_signals()?;

    let sink = RefCell::new(Sink {
        json,
        journal,
        metrics,
        metrics_dirty: false,
        metrics_warned: false,
        symbols: Symbols::default(),
        symbols_warned: false,
        clock: Clock::now(),
        page_size: sys::page_size(),
        out: BufWriter::new(std::io::stdout()),
        limit: args.count,
        counts: Counts::default(),
        broken: None,
    });
    let mut builder = RingBufferBuilder::new();
    builder.add(&skel.maps.events, |data| sink.borrow_mut().record(data))?;
    let ring = builder.build()?;
    for (f, why) in &k.skipped {
        eprintln!("daxguard: not watching {f}(): {why}");
    }
    eprintln!(
        "daxguard: watching long-term pins ({}; FOLL_LONGTERM {:#x} from {}); SIGINT or SIGTERM stops",
        k.attachments(false),
        k.foll_longterm,
        k.foll_source
    );

    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut next_tick = Instant::now() + TICK;
    let why = loop {
        let n = ring.poll_raw(POLL);
        if n < 0 && n != -libc::EINTR {
            anyhow::bail!("polling the ring buffer failed: {}", std::io::Error::from_raw_os_error(-n));
        }
        let mut s = sink.borrow_mut();
        s.flush();
        if s.full() {
            break "count";
        }
        if let Some(b) = &s.broken {
            eprintln!("daxguard: cannot write to {b}: stopping");
            break "output closed";
        }
        if sys::stop_requested() {
            break "signal";
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break "duration";
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            s.counters(stat(skel, STAT_DROPPED), stat(skel, STAT_UNRESOLVED));
            s.write_metrics(true);
        }
    };

    // What is still in the ring buffer was refused before we stopped.
    if why != "count" {
        ring.consume_raw();
    }
    let mut s = sink.borrow_mut();
    s.counters(stat(skel, STAT_DROPPED), stat(skel, STAT_UNRESOLVED));
    if args.count_calls {
        s.counts.calls = Some(stat(skel, STAT_CALLS));
    }
    let sent = stat(skel, STAT_SENT);
    if why != "count" && sent != s.counts.refusals {
        eprintln!("daxguard: the BPF program sent {sent} refusals, {} were read", s.counts.refusals);
    }
    s.write_metrics(false);
    if s.journal.is_none() && s.broken.is_none() {
        let line = show::summary(s.counts, why, s.json);
        s.line(&line);
        s.flush();
    } else {
        eprintln!("daxguard: {}", show::summary(s.counts, why, false));
    }
    // A closed stdout (`watch | head`) is a normal end; a journal that
    // stays gone is a failure, so systemd's Restart=on-failure acts.
    let code = if why == "output closed" && s.journal.is_some() { EXIT_REFUSED } else { EXIT_OK };
    Ok(Done::new(String::new(), code))
}
