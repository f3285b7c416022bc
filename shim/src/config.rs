//! `/etc/daxguard/daxguard.conf`: settings per program, MPI rank and Slurm
//! job, beside the environment (which wins), in the manner of VMA's
//! `/etc/libvma.conf` rules and Darshan's include/exclude lists.
//!
//! ```text
//! # Comments are whole lines. Settings before any section apply to every process.
//! mode = enforce
//! log = journal
//!
//! # Which processes daxguard looks at; an excluded one runs as with mode = off.
//! exclude program=sshd,cron
//! include rank=0-15           # with include lines, a process must match one
//!
//! # A section applies to the processes that match every condition in it.
//! [match program=ib_write_bw,ib_read_bw]
//! mode = warn
//!
//! [match program=trainer job=4242 rank=0]
//! log = /var/log/daxguard.jsonl
//! ```
//!
//! The file is read top to bottom: the settings before the first section,
//! then each section that matches, in order, each value replacing the one
//! before; then, if the process is excluded, `mode = off`; then the
//! `DAXGUARD_*` variables, one by one. Keys and values are the variables'
//! ([`crate::settings::Key`]). Conditions are `program=`, `rank=` and
//! `job=`, each a comma-separated list of alternatives: program names and
//! job ids may use `*` and `?`; ranks are `N`, `N-M` or `N-`. A program
//! matches by any of its names: `/proc/self/comm`, the last component of
//! `/proc/self/exe`, and of `argv[0]`.
//!
//! A file that does not parse is reported once, with its line, and ignored
//! whole: never half applied. The parser takes bytes and never panics
//! (property-tested); it allocates a few strings per line, once per process.

use std::path::{Path, PathBuf};

use crate::identity::Identity;
use crate::settings::{Key, Mode, Settings};

/// Where the file is; [`CONFIG_VAR`] names another (empty: none).
pub const DEFAULT_PATH: &str = "/etc/daxguard/daxguard.conf";
pub const CONFIG_VAR: &str = "DAXGUARD_CONFIG";
/// A bigger file is refused whole: this is a few rules, not a database.
pub const MAX_SIZE: usize = 64 * 1024;

/// A parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `(section, key, value)` in file order; section `None` is the top.
    settings: Vec<(Option<usize>, Key, String)>,
    /// Each `[match ...]` section's conditions.
    sections: Vec<Vec<Cond>>,
    include: Vec<Vec<Cond>>,
    exclude: Vec<Vec<Cond>>,
}

/// One condition: any of its alternatives matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    Program(Vec<String>),
    Rank(Vec<(u32, u32)>),
    Job(Vec<String>),
}

/// What is wrong, and where (`line` 0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub what: String,
}

/// What the conditions are matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The program's names (comm, exe's and argv[0]'s last components).
    pub names: &'a [String],
    pub identity: &'a Identity,
}

impl Config {
    /// Whether any condition asks for the program's name (so it need not be
    /// read otherwise).
    pub fn names_program(&self) -> bool {
        let lists = self.sections.iter().chain(&self.include).chain(&self.exclude);
        lists.flatten().any(|c| matches!(c, Cond::Program(_)))
    }

    /// Whether `who` is excluded: it matches an `exclude` line, or there are
    /// `include` lines and it matches none.
    pub fn excluded(&self, who: &Subject) -> bool {
        let any = |lines: &[Vec<Cond>]| lines.iter().any(|conds| all_hold(conds, who));
        any(&self.exclude) || (!self.include.is_empty() && !any(&self.include))
    }

    /// Applies the file to `s` for `who` (the defaults, normally).
    pub fn apply(&self, who: &Subject, s: &mut Settings) {
        let held: Vec<bool> = self.sections.iter().map(|conds| all_hold(conds, who)).collect();
        for (section, key, value) in &self.settings {
            if section.is_none_or(|i| held[i]) {
                // Checked when parsed: cannot fail.
                let _ = s.set(*key, value);
            }
        }
        if self.excluded(who) {
            s.mode = Mode::Off;
        }
    }
}

fn all_hold(conds: &[Cond], who: &Subject) -> bool {
    conds.iter().all(|c| match c {
        Cond::Program(pats) => pats.iter().any(|p| who.names.iter().any(|n| glob(p.as_bytes(), n.as_bytes()))),
        Cond::Rank(ranges) => who.identity.rank.is_some_and(|r| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&r))),
        Cond::Job(pats) => {
            who.identity.job.as_ref().is_some_and(|j| pats.iter().any(|p| glob(p.as_bytes(), j.as_bytes())))
        }
    })
}

/// `*` any run of bytes, `?` any one byte, everything else itself.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Parses a whole file.
pub fn parse(text: &[u8]) -> Result<Config, ParseError> {
    if text.len() > MAX_SIZE {
        return Err(ParseError { line: 0, what: format!("larger than {MAX_SIZE} bytes") });
    }
    let mut c = Config::default();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let err = |what: String| ParseError { line: i + 1, what };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| err("not UTF-8".into()))?;
        if line.chars().any(|ch| ch.is_control() && ch != '\t') {
            return Err(err("a control character".into()));
        }
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let inner = rest.strip_suffix(']').ok_or_else(|| err("a section header without its closing ]".into()))?;
            let mut words = inner.split([' ', '\t']).filter(|w| !w.is_empty());
            if words.next() != Some("match") {
                return Err(err(format!("unknown section [{inner}] (expected [match CONDITION...])")));
            }
            c.sections.push(conditions(words).map_err(err)?);
            continue;
        }
        let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
        let first = words.next().unwrap_or_default();
        if first == "include" || first == "exclude" {
            if !c.sections.is_empty() {
                return Err(err(format!("{first} lines go before the first [match] section")));
            }
            let conds = conditions(words).map_err(err)?;
            if first == "include" { &mut c.include } else { &mut c.exclude }.push(conds);
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!(
                "{line:?} is not a setting (KEY = VALUE), a section ([match ...]), include or exclude"
            )));
        };
        let (key, value) = (key.trim_matches([' ', '\t']), value.trim_matches([' ', '\t']));
        let Some(k) = Key::from_name(key) else {
            let names: Vec<&str> = Key::ALL.iter().map(|k| k.name()).collect();
            return Err(err(format!("unknown setting {key:?} (expected one of {})", names.join(", "))));
        };
        if Settings::default().set(k, value).is_err() {
            return Err(err(format!("invalid {key} {value:?} (expected {})", k.expected())));
        }
        c.settings.push((c.sections.len().checked_sub(1), k, value.to_string()));
    }
    Ok(c)
}

/// The conditions of one `[match]`, `include` or `exclude` line: at least
/// one, each kind at most once.
fn conditions<'a>(words: impl Iterator<Item = &'a str>) -> Result<Vec<Cond>, String> {
    let mut conds: Vec<Cond> = Vec::new();
    for w in words {
        let (key, list) =
            w.split_once('=').ok_or_else(|| format!("{w:?} is not a condition (program=, rank= or job=)"))?;
        let items: Vec<&str> = list.split(',').collect();
        if items.iter().any(|s| s.is_empty()) {
            return Err(format!("{w:?} has an empty value"));
        }
        let cond = match key {
            "program" => Cond::Program(items.iter().map(|s| s.to_string()).collect()),
            "job" => Cond::Job(items.iter().map(|s| s.to_string()).collect()),
            "rank" => Cond::Rank(
                items
                    .iter()
                    .map(|s| rank_range(s))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("{w:?}: a rank is N, N-M (N <= M) or N-, comma-separated"))?,
            ),
            _ => return Err(format!("unknown condition {key:?} (expected program=, rank= or job=)")),
        };
        if conds.iter().any(|c| std::mem::discriminant(c) == std::mem::discriminant(&cond)) {
            return Err(format!("{key}= given twice (list the alternatives in one, comma-separated)"));
        }
        conds.push(cond);
    }
    if conds.is_empty() {
        return Err("no condition (program=, rank= or job=)".into());
    }
    Ok(conds)
}

fn rank_range(s: &str) -> Option<(u32, u32)> {
    let num =
        |t: &str| (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse::<u32>().ok()).flatten();
    match s.split_once('-') {
        None => num(s).map(|n| (n, n)),
        Some((lo, "")) => num(lo).map(|n| (n, u32::MAX)),
        Some((lo, hi)) => num(lo).zip(num(hi)).filter(|(a, b)| a <= b),
    }
}

/// Reads and parses the file at `path`. `Ok(None)`: there is none, and
/// none was asked for by name (`explicit`: `DAXGUARD_CONFIG`). `Err` is the
/// whole complaint, said once: where and what, and that the defaults apply.
pub fn load(path: &Path, explicit: bool) -> Result<Option<Config>, String> {
    use std::io::Read as _;
    let shown = crate::explain::shown(path);
    let text = std::fs::File::open(path).and_then(|f| {
        let mut buf = Vec::new();
        f.take(MAX_SIZE as u64 + 1).read_to_end(&mut buf).map(|_| buf)
    });
    let text = match text {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            let e = crate::sys::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
            return Err(format!("cannot read {shown}: {e}; the defaults apply"));
        }
    };
    parse(&text).map(Some).map_err(|e| match e.line {
        0 => format!("{shown}: {}; the file is ignored, the defaults apply", e.what),
        n => format!("{shown}:{n}: {}; the file is ignored, the defaults apply", e.what),
    })
}

/// What a process runs with.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub settings: Settings,
    pub identity: Identity,
    /// What to say once on stderr: a file that could not be read or
    /// parsed, values that could not be understood.
    pub complaints: Vec<String>,
    /// The file that was applied, if one was.
    pub file: Option<PathBuf>,
}

/// The settings for this process: the defaults, the configuration file
/// ([`DEFAULT_PATH`], or `DAXGUARD_CONFIG`) as it applies to this program,
/// rank and job, then the `DAXGUARD_*` variables. `get` reads the
/// environment (the caller makes it see nothing in a setuid program: the
/// default file is still read, it is root's).
pub fn resolve(get: impl Fn(&str) -> Option<String>) -> Resolved {
    let identity = Identity::from_env(&get);
    let mut r = Resolved { identity, ..Resolved::default() };
    let (path, explicit) = match get(CONFIG_VAR) {
        None => (Some(PathBuf::from(DEFAULT_PATH)), false),
        Some(p) if p.is_empty() => (None, true),
        Some(p) => (Some(PathBuf::from(p)), true),
    };
    if let Some(path) = path {
        match load(&path, explicit) {
            Ok(Some(c)) => {
                let names = if c.names_program() { program_names() } else { Vec::new() };
                c.apply(&Subject { names: &names, identity: &r.identity }, &mut r.settings);
                r.file = Some(path);
            }
            Ok(None) => {}
            Err(e) => r.complaints.push(e),
        }
    }
    r.settings.override_from_env(&get, &mut r.complaints);
    r
}

/// The names a `program=` condition is matched against: `/proc/self/comm`,
/// and the last components of `/proc/self/exe` and `argv[0]`, without repeats.
pub fn program_names() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    if let Ok(comm) = std::fs::read_to_string("/proc/self/comm") {
        add(comm.trim_end_matches('\n').to_string());
    }
    if let Ok(exe) = std::fs::read_link("/proc/self/exe") {
        let exe = exe.to_string_lossy();
        let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
        add(exe.rsplit('/').next().unwrap_or_default().to_string());
    }
    if let Some(a) = std::env::args_os().next() {
        add(a.to_string_lossy().rsplit('/').next().unwrap_or_default().to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::LogDest;

    fn who<'a>(names: &'a [String], identity: &'a Identity) -> Subject<'a> {
        Subject { names, identity }
    }

    fn settings_for(text: &str, name: &str, identity: &Identity) -> Settings {
        let c = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
        let names = [name.to_string()];
        let mut s = Settings::default();
        c.apply(&who(&names, identity), &mut s);
        s
    }

    const RULES: &str = "\
# defaults for everyone
mode = enforce
log = journal

exclude program=sshd,cron*
[match program=ib_write_bw]
mode = warn
[match program=ib_* rank=1-]
  log = /var/log/dg.jsonl
[match job=42]
mode = audit
";

    #[test]
    fn sections_apply_in_order_and_exclusion_wins() {
        let none = Identity::default();
        let s = settings_for(RULES, "ib_write_bw", &none);
        assert_eq!((s.mode, &s.log), (Mode::Warn, &LogDest::Journal), "rank= needs a rank");
        let rank1 = Identity { rank: Some(1), ..Default::default() };
        let s = settings_for(RULES, "ib_write_bw", &rank1);
        assert_eq!((s.mode, s.log), (Mode::Warn, LogDest::File("/var/log/dg.jsonl".into())));
        let s = settings_for(RULES, "other", &none);
        assert_eq!((s.mode, s.log), (Mode::Enforce, LogDest::Journal));
        assert_eq!(settings_for(RULES, "crond", &none).mode, Mode::Off, "excluded by a glob");
        let job = Identity { job: Some("42".into()), ..rank1 };
        assert_eq!(settings_for(RULES, "ib_write_bw", &job).mode, Mode::Audit, "the later section wins");
        assert_eq!(settings_for(RULES, "sshd", &job).mode, Mode::Off, "exclusion beats any section");
    }

    #[test]
    fn include_lists_keep_everyone_else_out() {
        let text = "include program=app rank=0,2\ninclude job=7\n";
        let r = |rank, job: Option<&str>| Identity { rank, job: job.map(Into::into), step: None };
        assert_eq!(settings_for(text, "app", &r(Some(2), None)).mode, Mode::Enforce);
        assert_eq!(settings_for(text, "app", &r(Some(1), None)).mode, Mode::Off);
        assert_eq!(settings_for(text, "app", &r(None, None)).mode, Mode::Off, "no rank: rank= does not hold");
        assert_eq!(settings_for(text, "x", &r(None, Some("7"))).mode, Mode::Enforce);
        assert!(!parse(b"mode = warn\n").unwrap().names_program());
        assert!(parse(text.as_bytes()).unwrap().names_program());
    }

    #[test]
    fn any_name_of_the_program_matches() {
        let c = parse(b"[match program=regwarn]\nmode = warn\n").unwrap();
        let names = ["python3".to_string(), "regwarn".to_string()];
        let mut s = Settings::default();
        c.apply(&who(&names, &Identity::default()), &mut s);
        assert_eq!(s.mode, Mode::Warn);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("mode = warn\nmod = warn\n", 2, "unknown setting \"mod\""),
            ("mode = warm", 1, "invalid mode \"warm\" (expected enforce, warn, audit, off or odp)"),
            ("mode = warn # why", 1, "invalid mode \"warn # why\""),
            ("log = relative.log", 1, "invalid log"),
            ("\n\n[match program=a\n", 3, "without its closing ]"),
            ("[program a]", 1, "unknown section [program a]"),
            ("[match]", 1, "no condition"),
            ("[match user=root]", 1, "unknown condition \"user\""),
            ("[match rank=3-1]", 1, "a rank is N, N-M"),
            ("[match rank=x]", 1, "a rank is N"),
            ("[match program=a, b]", 1, "empty value"),
            ("[match program=a b]", 1, "\"b\" is not a condition"),
            ("[match program=a,]", 1, "empty value"),
            ("[match program=a program=b]", 1, "given twice"),
            ("[match rank=0]\nexclude program=a", 2, "before the first [match] section"),
            ("exclude", 1, "no condition"),
            ("just words", 1, "is not a setting"),
            ("mode = \u{1b}[31m", 1, "a control character"),
        ];
        for (text, line, what) in cases {
            let e = parse(text.as_bytes()).expect_err(text);
            assert_eq!(e.line, *line, "{text:?}: {e:?}");
            assert!(e.what.contains(what), "{text:?}: {e:?}");
        }
        assert_eq!(parse(b"mode = warn\n\xff\n").unwrap_err().line, 2);
        assert_eq!(parse(&vec![b'#'; MAX_SIZE + 1]).unwrap_err().line, 0);
        assert_eq!(parse(b"").unwrap(), Config::default());
        assert!(parse(b"# only\r\n\r\n\tmode\t=\twarn\t\r\nlog=\n").is_ok(), "CRLF, tabs, an empty log");
    }

    #[test]
    fn globs() {
        for (p, s, m) in [
            ("*", "", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a?c", "abc", true),
            ("a*b*c", "aXbYbc", true),
            ("ab", "abc", false),
            ("a*d", "abc", false),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob(p.as_bytes(), s.as_bytes()), m, "{p:?} {s:?}");
        }
    }

    #[test]
    fn load_reports_once_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daxguard.conf");
        assert_eq!(load(&p, false), Ok(None), "no file, none asked for: silence");
        assert!(load(&p, true).unwrap_err().starts_with(&format!("cannot read {}: ", p.display())));
        std::fs::write(&p, "mode = warn\n[match program=x\n").unwrap();
        assert_eq!(
            load(&p, false).unwrap_err(),
            format!(
                "{}:2: a section header without its closing ]; the file is ignored, the defaults apply",
                p.display()
            )
        );
        std::fs::write(&p, "mode = warn\n").unwrap();
        assert!(load(&p, false).unwrap().is_some());
        assert!(load(dir.path(), false).unwrap_err().contains("directory"), "a directory is reported");
    }

    #[test]
    fn program_names_include_this_test_binary() {
        let names = program_names();
        let exe = std::env::current_exe().unwrap();
        assert!(names.contains(&exe.file_name().unwrap().to_string_lossy().into_owned()), "{names:?}");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Lines built from the grammar's own words, so most inputs get deep
        /// into the parser rather than failing at the first byte.
        fn line() -> impl Strategy<Value = String> {
            let word = prop_oneof![
                Just("mode".to_string()),
                Just("log".to_string()),
                Just("=".to_string()),
                Just("[match".to_string()),
                Just("]".to_string()),
                Just("include".to_string()),
                Just("exclude".to_string()),
                Just("warn".to_string()),
                Just("program=a*,b".to_string()),
                Just("rank=0-3,7-".to_string()),
                Just("job=4?".to_string()),
                "[ -~]{0,12}",
            ];
            proptest::collection::vec(word, 0..6).prop_map(|w| w.join(" "))
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                if let Ok(c) = parse(&bytes) {
                    let id = Identity { rank: Some(1), job: Some("42".into()), step: None };
                    let names = ["a".to_string()];
                    c.apply(&who(&names, &id), &mut Settings::default());
                }
            }

            #[test]
            fn grammar_words_never_panic_and_errors_point_inside(lines in proptest::collection::vec(line(), 0..12)) {
                let text = lines.join("\n");
                match parse(text.as_bytes()) {
                    Ok(c) => {
                        let id = Identity { rank: Some(2), job: Some("41".into()), step: None };
                        let names = ["ab".to_string()];
                        c.apply(&who(&names, &id), &mut Settings::default());
                    }
                    Err(e) => prop_assert!(e.line >= 1 && e.line <= lines.len().max(1), "{e:?}"),
                }
            }
        }
    }
}
