//! Settings: what the user asked for, read once from the environment.
//!
//! Every variable is `DAXGUARD_*`; an invalid value keeps the default and
//! yields one complaint, so a typo never stops the program. The decision
//! these settings feed is [`crate::policy::decide`].

use crate::types::LookupChoice;

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
    /// `DAXGUARD_LOOKUP=auto|query|maps|events`: force a lookup path (tests, benchmarks).
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
                "events" | "mmap_events" => s.lookup = LookupChoice::MmapEvents,
                _ => bad("DAXGUARD_LOOKUP", &v, "auto, query, maps or events; using auto"),
            }
        }
        (s, complaints)
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
}
