//! The configuration file (`DAXGUARD_CONFIG`, else /etc/daxguard/daxguard.conf)
//! and the job identity (MPI rank, Slurm job), with libdaxguard.so preloaded
//! into a real program: tests/c/entrypoints, with the stubbing spy behind
//! the shim as in preload.rs (each registration is forwarded and fails
//! with ENODEV, so the shim prints a failure line and writes a record).
//! Rules by program name and rank, exclusion, the environment over the
//! file, a malformed file reported once with its line and ignored whole,
//! rank and job in records and lines. Refusals on real fs-DAX with a
//! configuration file are in tests/scenarios/config.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

use common::built;

const ENTRIES: [&str; 2] = ["iova2", "macro"];

struct Out {
    code: Option<i32>,
    stderr: String,
}

/// Runs `program --fake-pd --anon ENTRIES` under the shim and the stubbing
/// spy, with only PATH and `env` set.
fn run(program: &Path, env: &[(&str, &str)]) -> Out {
    let preload = format!("{}:{}", built().shim.display(), built().c.join("libdaxspy.so").display());
    let mut cmd = Command::new(program);
    cmd.args(["--fake-pd", "--anon"]).args(ENTRIES);
    cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("LD_PRELOAD", preload).env("DAXSPY_STUB", "1").envs(env.iter().copied());
    let out = common::output(&mut cmd).unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    Out { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn entrypoints() -> PathBuf {
    built().c.join("entrypoints")
}

/// The same program under another name (its comm, exe and argv[0] all say it).
fn renamed(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(entrypoints(), &p).unwrap();
    p
}

fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l:?}: {e}"));
            for k in daxguard::audit::RECORD_KEYS {
                assert!(v.get(k).is_some(), "key {k} missing in {l}");
            }
            v
        })
        .collect()
}

fn modes(path: &Path) -> Vec<String> {
    records(path).iter().map(|r| r["mode"].as_str().unwrap().to_string()).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The failure lines the shim prints for ENTRIES, nothing else.
fn failure_lines(stderr: &str) -> usize {
    let n = stderr.lines().filter(|l| l.starts_with("daxguard: ") && l.contains(") failed with ENODEV")).count();
    assert_eq!(n, stderr.lines().count(), "only failure lines: {stderr}");
    n
}

#[test]
fn a_rule_per_program_name() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, log) = (dir.path().join("daxguard.conf"), dir.path().join("audit.jsonl"));
    let text = format!(
        "# as an operator would write it\nlog = {}\n\n[match program=entrypoints]\nmode = audit\n\n[match program=warner,other*]\nmode = warn\n",
        log.display()
    );
    std::fs::write(&conf, text).unwrap();
    let env = [("DAXGUARD_CONFIG", s(&conf))];

    let out = run(&entrypoints(), &env);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "", "audit mode for entrypoints: nothing on stderr");
    assert_eq!(modes(&log), ["audit", "audit"], "the file's log, the file's mode");

    std::fs::remove_file(&log).unwrap();
    let out = run(&renamed(dir.path(), "warner"), &env);
    assert_eq!(failure_lines(&out.stderr), 2, "warn mode says what failed");
    let recs = records(&log);
    assert_eq!(modes(&log), ["warn", "warn"]);
    assert_eq!(recs[0]["program"], "warner");

    std::fs::remove_file(&log).unwrap();
    run(&renamed(dir.path(), "unlisted"), &env);
    assert_eq!(modes(&log), ["enforce", "enforce"], "no section matches: the top of the file and the defaults");
}

#[test]
fn excluded_programs_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, log) = (dir.path().join("daxguard.conf"), dir.path().join("audit.jsonl"));
    std::fs::write(&conf, format!("log = {}\nexclude program=entrypoints\n", log.display())).unwrap();
    let out = run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&conf))]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    assert!(records(&log).is_empty(), "mode off: no records");
    // An explicit DAXGUARD_MODE is the user's word for this process: it wins.
    let out = run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&conf)), ("DAXGUARD_MODE", "warn")]);
    assert_eq!(failure_lines(&out.stderr), 2);
    assert_eq!(modes(&log), ["warn", "warn"]);
    // include: only what matches is guarded.
    std::fs::write(&conf, format!("log = {}\ninclude program=someone_else\n", log.display())).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert_eq!(run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&conf))]).stderr, "");
    assert!(records(&log).is_empty());
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, file_log, env_log) =
        (dir.path().join("daxguard.conf"), dir.path().join("file.jsonl"), dir.path().join("env.jsonl"));
    std::fs::write(&conf, format!("mode = audit\nlog = {}\n", file_log.display())).unwrap();
    let out =
        run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&conf)), ("DAXGUARD_MODE", "warn"), ("DAXGUARD_LOG", s(&env_log))]);
    assert_eq!(failure_lines(&out.stderr), 2);
    assert_eq!(modes(&env_log), ["warn", "warn"]);
    assert!(!file_log.exists(), "the file's log is not opened when the environment names another");
    // A value the environment gets wrong keeps the file's, and says so.
    let out = run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&conf)), ("DAXGUARD_MODE", "bogus")]);
    assert_eq!(
        out.stderr,
        "daxguard: ignoring DAXGUARD_MODE=\"bogus\" (expected enforce, warn, audit, off or odp; using audit)\n"
    );
    assert_eq!(modes(&file_log), ["audit", "audit"]);
}

#[test]
fn a_malformed_file_is_reported_once_and_the_defaults_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, log) = (dir.path().join("daxguard.conf"), dir.path().join("audit.jsonl"));
    std::fs::write(&conf, "mode = audit\n\n[match program=entrypoints\nmode = off\n").unwrap();
    let out = run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&conf)), ("DAXGUARD_LOG", s(&log))]);
    let want = format!(
        "daxguard: {}:3: a section header without its closing ]; the file is ignored, the defaults apply",
        conf.display()
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.iter().filter(|l| l.contains("the file is ignored")).count(), 1, "once: {}", out.stderr);
    assert_eq!(lines[0], want);
    assert_eq!(lines.len(), 3, "then the two failure lines of enforce mode: {}", out.stderr);
    assert_eq!(modes(&log), ["enforce", "enforce"], "not half applied: line 1's audit is not taken");
    // A file named in DAXGUARD_CONFIG that is not there is reported too; an
    // empty DAXGUARD_CONFIG reads none.
    let none = dir.path().join("none.conf");
    let out = run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&none)), ("DAXGUARD_QUIET", "0")]);
    assert!(out.stderr.starts_with(&format!("daxguard: cannot read {}: ", none.display())), "{}", out.stderr);
    let out = run(&entrypoints(), &[("DAXGUARD_CONFIG", "")]);
    assert_eq!(failure_lines(&out.stderr), 2);
}

#[test]
fn rank_and_job_in_records_lines_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, log) = (dir.path().join("daxguard.conf"), dir.path().join("audit.jsonl"));
    std::fs::write(&conf, format!("log = {}\n[match rank=1-3 job=42]\nmode = audit\n", log.display())).unwrap();
    let job = [("DAXGUARD_CONFIG", s(&conf)), ("SLURM_JOB_ID", "42"), ("SLURM_STEP_ID", "0")];

    let mut env = job.to_vec();
    env.push(("OMPI_COMM_WORLD_RANK", "0"));
    let out = run(&entrypoints(), &env);
    assert_eq!(failure_lines(&out.stderr), 2, "rank 0 is not in 1-3");
    for l in out.stderr.lines() {
        assert!(l.ends_with(" failed with ENODEV (rank 0, Slurm job 42 step 0)"), "{l}");
    }
    let recs = records(&log);
    assert_eq!(
        (recs[0]["rank"].as_u64(), recs[0]["job"].as_str(), recs[0]["step"].as_str()),
        (Some(0), Some("42"), Some("0"))
    );
    assert_eq!(recs[0]["mode"], "enforce");

    std::fs::remove_file(&log).unwrap();
    let mut env = job.to_vec();
    env.push(("PMI_RANK", "2"));
    let out = run(&entrypoints(), &env);
    assert_eq!(out.stderr, "", "rank 2 of job 42: audit");
    assert_eq!(records(&log)[1]["rank"], 2);

    // Outside a job: no keys set, lines as they always were.
    std::fs::remove_file(&log).unwrap();
    let out = run(&entrypoints(), &[("DAXGUARD_CONFIG", s(&conf))]);
    for l in out.stderr.lines() {
        assert!(l.ends_with(" failed with ENODEV"), "{l}");
    }
    let r = &records(&log)[0];
    assert!(r["rank"].is_null() && r["job"].is_null() && r["step"].is_null(), "{r}");
}

#[test]
fn an_unreachable_journal_is_said_once() {
    if Path::new(daxguard::journal::SOCKET).exists() {
        // This host runs journald: the records would go to its journal.
        // The real journald is exercised in tests/scenarios/journal.sh.
        println!("{} exists: not sending test records to this host's journal", daxguard::journal::SOCKET);
        return;
    }
    let out = run(&entrypoints(), &[("DAXGUARD_LOG", "journal"), ("DAXGUARD_CONFIG", "")]);
    let said: Vec<&str> = out.stderr.lines().filter(|l| l.contains("journal")).collect();
    assert_eq!(said.len(), 1, "{}", out.stderr);
    assert!(
        said[0].starts_with(&format!(
            "daxguard: cannot send audit records to the journal ({}: No such file or directory",
            daxguard::journal::SOCKET
        )),
        "{}",
        said[0]
    );
}

#[test]
fn the_shipped_file_and_its_examples_parse() {
    let text = std::fs::read_to_string(built().root.join("tools/dist/daxguard.conf")).unwrap();
    let c = daxguard::config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c, daxguard::config::Config::default(), "every line a comment: installing changes nothing");
    // The commented examples, uncommented, are a valid file too.
    let examples: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with(|ch: char| ch.is_ascii_lowercase() || ch == '['))
        .collect();
    assert!(examples.len() >= 8, "{examples:?}");
    daxguard::config::parse(examples.join("\n").as_bytes()).unwrap_or_else(|e| panic!("{e:?} in {examples:#?}"));
}
