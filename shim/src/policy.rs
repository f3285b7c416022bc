//! Settings (read once from the environment) and the decision for one registration.
//!
//! [`decide`] is a flat run of one-condition early returns, the most absolute
//! first, in the manner of `check_vma_flags()` in `mm/gup.c`: the result says
//! which rule fired, so logs and messages can name it.

use crate::classify::Verdict;
use crate::error::Error;
use crate::vma::LookupChoice;

/// `DAXGUARD_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Refuse fs-DAX ranges (the default).
    #[default]
    Enforce,
    /// Say what would have been refused, forward anyway.
    Warn,
    /// Forward everything; write only the audit record.
    Audit,
    /// Forward with no lookups at all.
    Off,
    /// Re-register fs-DAX ranges with `IBV_ACCESS_ON_DEMAND` where the device can.
    Odp,
}

impl Mode {
    /// Every mode, in the order the docs list them.
    pub const ALL: [Mode; 5] = [Mode::Enforce, Mode::Warn, Mode::Audit, Mode::Off, Mode::Odp];

    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "enforce" => Mode::Enforce,
            "warn" => Mode::Warn,
            "audit" => Mode::Audit,
            "off" => Mode::Off,
            "odp" => Mode::Odp,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
            Mode::Off => "off",
            Mode::Odp => "odp",
        }
    }
}

/// Where audit records go (`DAXGUARD_LOG`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogDest {
    #[default]
    None,
    File(std::path::PathBuf),
    Syslog,
}

/// Everything configurable, with the defaults a user gets without settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub mode: Mode,
    /// `DAXGUARD_UNKNOWN=allow`: forward ranges that may be fs-DAX but could not be verified.
    pub allow_unverified: bool,
    pub log: LogDest,
    /// `DAXGUARD_QUIET=1`: nothing on stderr.
    pub quiet: bool,
    /// `DAXGUARD_STATS=1`: one summary line at exit.
    pub stats: bool,
    /// `DAXGUARD_LOOKUP=auto|query|maps`: force a lookup path (tests, benchmarks).
    pub lookup: LookupChoice,
}

impl Settings {
    /// Reads the `DAXGUARD_*` variables through `get`. Invalid values keep the
    /// default and yield one complaint each; a typo never stops the program.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut complaints = Vec::new();
        let mut bad = |var: &str, val: &str, allowed: &str| {
            complaints.push(format!("ignoring {var}={val:?} (expected {allowed})"));
        };
        if let Some(v) = get("DAXGUARD_MODE") {
            match Mode::parse(&v) {
                Some(m) => s.mode = m,
                None => bad("DAXGUARD_MODE", &v, "enforce, warn, audit, off or odp; using enforce"),
            }
        }
        if let Some(v) = get("DAXGUARD_UNKNOWN") {
            match v.as_str() {
                "refuse" => s.allow_unverified = false,
                "allow" => s.allow_unverified = true,
                _ => bad("DAXGUARD_UNKNOWN", &v, "refuse or allow; using refuse"),
            }
        }
        match get("DAXGUARD_LOG").as_deref() {
            None | Some("") => {}
            Some("syslog") => s.log = LogDest::Syslog,
            Some(p) if p.starts_with('/') => s.log = LogDest::File(p.into()),
            Some(p) => bad("DAXGUARD_LOG", p, "an absolute path or syslog; not logging"),
        }
        for (var, flag) in [("DAXGUARD_QUIET", &mut s.quiet), ("DAXGUARD_STATS", &mut s.stats)] {
            match get(var).as_deref() {
                None | Some("" | "0") => {}
                Some("1") => *flag = true,
                Some(v) => bad(var, v, "0 or 1"),
            }
        }
        if let Some(v) = get("DAXGUARD_LOOKUP") {
            match v.as_str() {
                "auto" => s.lookup = LookupChoice::Auto,
                "query" => s.lookup = LookupChoice::ProcmapQuery,
                "maps" => s.lookup = LookupChoice::MapsText,
                _ => bad("DAXGUARD_LOOKUP", &v, "auto, query or maps; using auto"),
            }
        }
        (s, complaints)
    }
}

/// What to do with one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    Refuse,
    /// Forward with `IBV_ACCESS_ON_DEMAND` added.
    RewriteOdp,
}

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `DAXGUARD_MODE=off`.
    Off,
    /// The registration asks for ODP: nothing is pinned.
    OnDemand,
    /// Nothing to look at (`len == 0`) or a range the kernel rejects itself (overflow).
    KernelJudges,
    /// Mappings could not be inspected (no `/proc`): the kernel stays the backstop.
    CannotInspect,
    /// No piece is fs-DAX.
    NotFsDax,
    /// Could not verify, and `DAXGUARD_UNKNOWN=allow`.
    UnverifiedAllowed,
    /// fs-DAX (or unverified) seen in `audit` mode.
    Audited,
    /// fs-DAX (or unverified) seen in `warn` mode.
    Warned,
    /// fs-DAX in `odp` mode, and the device supports ODP.
    OdpRewrite,
    /// fs-DAX: refused.
    FsDax,
    /// May be fs-DAX and could not be verified: refused.
    Unverified,
}

impl Rule {
    /// A short stable name, used in the audit record (`reason`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Off => "off",
            Rule::OnDemand => "on_demand",
            Rule::KernelJudges => "kernel_judges",
            Rule::CannotInspect => "cannot_inspect",
            Rule::NotFsDax => "not_fsdax",
            Rule::UnverifiedAllowed => "unverified_allowed",
            Rule::Audited => "audited",
            Rule::Warned => "warned",
            Rule::OdpRewrite => "odp_rewrite",
            Rule::FsDax => "fsdax",
            Rule::Unverified => "unverified",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub rule: Rule,
}

/// The decision for a registration with `access` flags whose range was judged
/// `judged` (`None` when no lookup was made because of the mode or ODP).
/// `device_odp` is asked only in `odp` mode, and only for fs-DAX ranges.
pub fn decide(
    settings: &Settings,
    access: u32,
    judged: Option<&Result<Verdict, Error>>,
    device_odp: impl FnOnce() -> bool,
) -> Decision {
    let d = |action, rule| Decision { action, rule };
    if settings.mode == Mode::Off {
        return d(Action::Forward, Rule::Off);
    }
    if access & verbs_sys::IBV_ACCESS_ON_DEMAND != 0 {
        return d(Action::Forward, Rule::OnDemand);
    }
    let verdict = match judged {
        None | Some(Err(Error::InvalidRange { .. })) => return d(Action::Forward, Rule::KernelJudges),
        Some(Err(_)) => return d(Action::Forward, Rule::CannotInspect),
        Some(Ok(v)) => *v,
    };
    let fsdax = match verdict {
        Verdict::Allow => return d(Action::Forward, Rule::NotFsDax),
        Verdict::Unverified { .. } if settings.allow_unverified => return d(Action::Forward, Rule::UnverifiedAllowed),
        Verdict::Unverified { .. } => false,
        Verdict::FsDax { .. } => true,
    };
    match settings.mode {
        Mode::Audit => d(Action::Forward, Rule::Audited),
        Mode::Warn => d(Action::Forward, Rule::Warned),
        // Only a verified fs-DAX range is rewritten: an unverified one may be
        // ordinary memory that deserves its pinned, faster registration.
        Mode::Odp if fsdax && device_odp() => d(Action::RewriteOdp, Rule::OdpRewrite),
        _ if fsdax => d(Action::Refuse, Rule::FsDax),
        _ => d(Action::Refuse, Rule::Unverified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_without_settings() {
        let (s, c) = Settings::parse(env(&[]));
        assert_eq!(s, Settings::default());
        assert_eq!(s.mode, Mode::Enforce);
        assert!(!s.allow_unverified && c.is_empty());
    }

    #[test]
    fn every_setting() {
        let (s, c) = Settings::parse(env(&[
            ("DAXGUARD_MODE", "odp"),
            ("DAXGUARD_UNKNOWN", "allow"),
            ("DAXGUARD_LOG", "/var/log/dg.jsonl"),
            ("DAXGUARD_QUIET", "1"),
            ("DAXGUARD_STATS", "1"),
            ("DAXGUARD_LOOKUP", "maps"),
        ]));
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(s.mode, Mode::Odp);
        assert!(s.allow_unverified && s.quiet && s.stats);
        assert_eq!(s.log, LogDest::File("/var/log/dg.jsonl".into()));
        assert_eq!(s.lookup, LookupChoice::MapsText);
        assert_eq!(Settings::parse(env(&[("DAXGUARD_LOG", "syslog")])).0.log, LogDest::Syslog);
    }

    #[test]
    fn typos_keep_defaults_and_complain_once_each() {
        let (s, c) = Settings::parse(env(&[
            ("DAXGUARD_MODE", "enforcing"),
            ("DAXGUARD_UNKNOWN", "yes"),
            ("DAXGUARD_LOG", "relative.log"),
            ("DAXGUARD_QUIET", "true"),
        ]));
        assert_eq!(s, Settings::default());
        assert_eq!(c.len(), 4);
        assert!(c[0].contains("DAXGUARD_MODE=\"enforcing\""), "{}", c[0]);
    }

    #[test]
    fn decisions() {
        let with = |mode| Settings { mode, ..Default::default() };
        let fsdax: Result<Verdict, Error> = Ok(Verdict::FsDax { piece: 0 });
        let unver: Result<Verdict, Error> = Ok(Verdict::Unverified { piece: 0 });
        let allow: Result<Verdict, Error> = Ok(Verdict::Allow);
        let noproc: Result<Verdict, Error> = Err(Error::ProcOpen { pid: 0, errno: libc::ENOENT });
        let odp = verbs_sys::IBV_ACCESS_ON_DEMAND;
        let dec = |s: &Settings, a, j: &Result<Verdict, Error>, dev| decide(s, a, Some(j), || dev);
        let e = with(Mode::Enforce);
        assert_eq!(dec(&e, 1, &fsdax, false).rule, Rule::FsDax);
        assert_eq!(dec(&e, 1, &fsdax, false).action, Action::Refuse);
        assert_eq!(dec(&e, 1 | odp, &fsdax, false).rule, Rule::OnDemand);
        assert_eq!(dec(&e, 1, &allow, false).rule, Rule::NotFsDax);
        assert_eq!(dec(&e, 1, &unver, false).rule, Rule::Unverified);
        assert_eq!(dec(&e, 1, &noproc, false), Decision { action: Action::Forward, rule: Rule::CannotInspect });
        let lax = Settings { allow_unverified: true, ..Default::default() };
        assert_eq!(dec(&lax, 1, &unver, false).rule, Rule::UnverifiedAllowed);
        assert_eq!(dec(&with(Mode::Warn), 1, &fsdax, false).action, Action::Forward);
        assert_eq!(dec(&with(Mode::Audit), 1, &fsdax, false).rule, Rule::Audited);
        assert_eq!(dec(&with(Mode::Odp), 1, &fsdax, true).action, Action::RewriteOdp);
        assert_eq!(dec(&with(Mode::Odp), 1, &fsdax, false).action, Action::Refuse);
        assert_eq!(dec(&with(Mode::Odp), 1, &unver, true).action, Action::Refuse);
        assert_eq!(decide(&with(Mode::Off), 1, None, || true).rule, Rule::Off);
    }
}
