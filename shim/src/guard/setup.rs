//! What the guard reads once, at the first registration: the settings (the
//! configuration file, then the environment), who this process is in a job,
//! the audit sink, and the counters behind `DAXGUARD_STATS=1`.
//!
//! # Safety
//! `atexit` with a plain `extern "C"` function that takes no arguments.
#![allow(unsafe_code)]

use std::panic::catch_unwind;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::audit::Sink;
use crate::config::{self, Resolved};
use crate::identity::Identity;
use crate::settings::{LogDest, Settings};
use crate::sys::{self, stderr_line};

/// Settings and the log, set up at the first registration.
pub(crate) struct Setup {
    pub(crate) settings: Settings,
    pub(crate) identity: Identity,
    /// What per-call lines end with: ` (rank 1, Slurm job 42)`, or nothing.
    pub(crate) suffix: String,
    pub(crate) sink: Option<Sink>,
}

static SETUP: OnceLock<Setup> = OnceLock::new();

pub(crate) fn setup() -> &'static Setup {
    SETUP.get_or_init(|| {
        // In a setuid program the environment is the invoker's: ignore it,
        // and so never open a path named there. The configuration file in
        // /etc is root's and still applies.
        let secure = sys::secure_execution();
        let env = |k: &str| if secure { None } else { std::env::var(k).ok() };
        let Resolved { settings, identity, complaints, file } = config::resolve(env);
        let say = |line: String| {
            if !settings.quiet {
                stderr_line(&line)
            }
        };
        complaints.into_iter().for_each(|c| say(format!("daxguard: {c}")));
        let sink = match &settings.log {
            LogDest::None => None,
            LogDest::Syslog => Some(Sink::Syslog),
            LogDest::Journal => Sink::open_journal()
                .map_err(|e| say(format!("daxguard: cannot open a socket for the journal: {e}")))
                .ok(),
            LogDest::File(p) => Sink::open_file(p)
                .map_err(|e| {
                    let from_env = env("DAXGUARD_LOG").is_some_and(|v| !v.is_empty());
                    say(match (&file, from_env) {
                        (Some(f), false) => format!(
                            "daxguard: cannot open the log {} (log = in {}): {e}",
                            crate::explain::shown(p),
                            crate::explain::shown(f)
                        ),
                        _ => format!("daxguard: cannot open DAXGUARD_LOG {}: {e}", p.display()),
                    })
                })
                .ok(),
        };
        if settings.stats {
            // SAFETY: registering a plain extern "C" fn with no arguments.
            unsafe { libc::atexit(print_stats) };
        }
        let suffix = identity.suffix();
        Setup { settings, identity, suffix, sink }
    })
}

/// Says `line` once per process (per `flag`), unless quiet.
pub(crate) fn say_once(flag: &AtomicBool, quiet: bool, line: impl FnOnce() -> String) {
    if !quiet && !flag.swap(true, Ordering::Relaxed) {
        stderr_line(&line());
    }
}

/// Counters for `DAXGUARD_STATS=1`.
pub(crate) static SEEN: AtomicU64 = AtomicU64::new(0);
pub(crate) static REFUSED: AtomicU64 = AtomicU64::new(0);
pub(crate) static FORWARDED: AtomicU64 = AtomicU64::new(0);
pub(crate) static REWRITTEN: AtomicU64 = AtomicU64::new(0);
pub(crate) static DECIDE_NS: AtomicU64 = AtomicU64::new(0);

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
