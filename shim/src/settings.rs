//! Settings: what the user asked for, read once from the configuration file
//! ([`crate::config`]) and the environment, which wins.
//!
//! Every variable is `DAXGUARD_*`; an invalid value keeps the default (or
//! the file's value) and yields one complaint, so a typo never stops the
//! program. The decision these settings feed is [`crate::policy::decide`].

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
    /// The systemd journal, native protocol ([`crate::journal`]).
    Journal,
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

/// One setting, as the environment (`DAXGUARD_MODE`) and the configuration
/// file (`mode = ...`, [`crate::config`]) name it. Both take the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Mode,
    Unknown,
    Log,
    Quiet,
    Stats,
    Lookup,
}

impl Key {
    /// Every key, in the order the docs list them.
    pub const ALL: [Key; 6] = [Key::Mode, Key::Unknown, Key::Log, Key::Quiet, Key::Stats, Key::Lookup];

    /// The environment variable.
    pub fn var(self) -> &'static str {
        match self {
            Key::Mode => "DAXGUARD_MODE",
            Key::Unknown => "DAXGUARD_UNKNOWN",
            Key::Log => "DAXGUARD_LOG",
            Key::Quiet => "DAXGUARD_QUIET",
            Key::Stats => "DAXGUARD_STATS",
            Key::Lookup => "DAXGUARD_LOOKUP",
        }
    }

    /// The name in the configuration file: the variable's, lower case, without `DAXGUARD_`.
    pub fn name(self) -> &'static str {
        match self {
            Key::Mode => "mode",
            Key::Unknown => "unknown",
            Key::Log => "log",
            Key::Quiet => "quiet",
            Key::Stats => "stats",
            Key::Lookup => "lookup",
        }
    }

    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The values it takes, in words.
    pub fn expected(self) -> &'static str {
        match self {
            Key::Mode => "enforce, warn, audit, off or odp",
            Key::Unknown => "refuse or allow",
            Key::Log => "an absolute path, syslog or journal",
            Key::Quiet | Key::Stats => "0 or 1",
            Key::Lookup => "auto, query, maps or events",
        }
    }
}

/// A value a setting does not take ([`Key::expected`] says which it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidValue;

impl Settings {
    /// Sets `key` from `value` as the environment or the file writes it; an
    /// invalid value leaves the setting as it was.
    pub fn set(&mut self, key: Key, value: &str) -> Result<(), InvalidValue> {
        match key {
            Key::Mode => self.mode = Mode::parse(value).ok_or(InvalidValue)?,
            Key::Unknown => {
                self.allow_unverified = match value {
                    "refuse" => false,
                    "allow" => true,
                    _ => return Err(InvalidValue),
                }
            }
            Key::Log => {
                self.log = match value {
                    "" => LogDest::None,
                    "syslog" => LogDest::Syslog,
                    "journal" => LogDest::Journal,
                    p if p.starts_with('/') => LogDest::File(p.into()),
                    _ => return Err(InvalidValue),
                }
            }
            Key::Quiet | Key::Stats => {
                let on = match value {
                    "" | "0" => false,
                    "1" => true,
                    _ => return Err(InvalidValue),
                };
                *(if key == Key::Quiet { &mut self.quiet } else { &mut self.stats }) = on;
            }
            Key::Lookup => {
                self.lookup = match value {
                    "auto" => LookupChoice::Auto,
                    "query" => LookupChoice::ProcmapQuery,
                    "maps" => LookupChoice::MapsText,
                    "events" | "mmap_events" => LookupChoice::MmapEvents,
                    _ => return Err(InvalidValue),
                }
            }
        }
        Ok(())
    }

    /// What a complaint about `key` says is used instead: the value now in
    /// effect (the default, or the configuration file's).
    fn kept(&self, key: Key) -> String {
        match key {
            Key::Mode => format!("; using {}", self.mode.name()),
            Key::Unknown => format!("; using {}", if self.allow_unverified { "allow" } else { "refuse" }),
            Key::Log => match &self.log {
                LogDest::None => "; not logging".into(),
                LogDest::File(p) => format!("; logging to {}", p.display()),
                LogDest::Syslog => "; logging to syslog".into(),
                LogDest::Journal => "; logging to the journal".into(),
            },
            Key::Quiet | Key::Stats => String::new(),
            Key::Lookup => format!(
                "; using {}",
                match self.lookup {
                    LookupChoice::Auto => "auto",
                    LookupChoice::ProcmapQuery => "query",
                    LookupChoice::MapsText => "maps",
                    LookupChoice::MmapEvents => "events",
                }
            ),
        }
    }

    /// Reads the `DAXGUARD_*` variables through `get`. Invalid values keep the
    /// default and yield one complaint each; a typo never stops the program.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut complaints = Vec::new();
        s.override_from_env(get, &mut complaints);
        (s, complaints)
    }

    /// Overrides each setting whose variable `get` returns (the environment
    /// wins over the configuration file). An invalid value keeps what was
    /// there and adds one complaint to `complaints`.
    pub fn override_from_env(&mut self, get: impl Fn(&str) -> Option<String>, complaints: &mut Vec<String>) {
        for key in Key::ALL {
            let Some(v) = get(key.var()) else { continue };
            // An empty DAXGUARD_LOG, _QUIET or _STATS is the same as none
            // set (as it always was): what the file says stays.
            if v.is_empty() && matches!(key, Key::Log | Key::Quiet | Key::Stats) {
                continue;
            }
            if self.set(key, &v).is_err() {
                complaints.push(format!(
                    "ignoring {}={v:?} (expected {}{})",
                    key.var(),
                    key.expected(),
                    self.kept(key)
                ));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An environment of `pairs` (for the modules that read settings from one).
    pub(crate) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
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
    fn the_environment_overrides_what_is_there() {
        let mut s = Settings { mode: Mode::Warn, log: LogDest::Journal, quiet: true, ..Default::default() };
        let mut c = Vec::new();
        s.override_from_env(env(&[("DAXGUARD_MODE", "audit"), ("DAXGUARD_LOG", ""), ("DAXGUARD_QUIET", "0")]), &mut c);
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(
            (s.mode, &s.log, s.quiet),
            (Mode::Audit, &LogDest::Journal, false),
            "an empty DAXGUARD_LOG keeps the file's"
        );
        s.override_from_env(env(&[("DAXGUARD_MODE", "x"), ("DAXGUARD_LOG", "rel")]), &mut c);
        assert_eq!(s.mode, Mode::Audit, "a bad value keeps what was there");
        assert_eq!(c[0], "ignoring DAXGUARD_MODE=\"x\" (expected enforce, warn, audit, off or odp; using audit)");
        assert_eq!(
            c[1],
            "ignoring DAXGUARD_LOG=\"rel\" (expected an absolute path, syslog or journal; logging to the journal)"
        );
        assert_eq!(Settings::parse(env(&[("DAXGUARD_LOG", "journal")])).0.log, LogDest::Journal);
        for k in Key::ALL {
            assert_eq!(Key::from_name(k.name()), Some(k));
            assert_eq!(k.var(), format!("DAXGUARD_{}", k.name().to_uppercase()));
        }
    }
}
