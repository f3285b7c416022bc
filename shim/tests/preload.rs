//! libdaxguard.so preloaded into real programs on a host with no RDMA device
//! and no pmem: forwarding, entry-point coverage, settings, no crashes.
//!
//! The provider is `libdaxspy.so` (tests/c) with `DAXSPY_STUB=1`: it logs
//! each call it receives and fails it with ENODEV, so a spy line proves the
//! shim forwarded and the ENODEV proves the provider's errno reached the
//! caller. Refusals of real fs-DAX are proven in the guest (tests/guest).
//! Each test runs the C programs as children with a cleared environment
//! (PATH plus the variables under test) and its own temp dir.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use daxguard::audit::RECORD_KEYS;
use serde_json::Value;

mod common;

/// Every entrypoints ENTRY the host can run with a fake pd.
const ALL_ENTRIES: [&str; 7] = ["macro", "const", "iova", "iova2", "rereg", "dlopen", "dmabuf"];

/// The symbol each of ALL_ENTRIES reaches (tests/c/README.md). With
/// DAXSPY_STUB the spy's `ibv_reg_mr`/`ibv_reg_mr_iova` return before
/// libibverbs' inner `ibv_reg_mr_iova2` call, so one line each. `dlopen`'s
/// `dlvsym(ibv_reg_mr)` pointer is the shim's export (the dlsym wrapper),
/// which forwards to the spy's `ibv_reg_mr`.
const SPY_SEES: [&str; 7] = [
    "ibv_reg_mr_iova2",
    "ibv_reg_mr",
    "ibv_reg_mr_iova",
    "ibv_reg_mr_iova2",
    "ibv_rereg_mr",
    "ibv_reg_mr",
    "ibv_reg_dmabuf_mr",
];

/// What the shim sees of ALL_ENTRIES: the same minus dmabuf (not interposed).
const SHIM_SEES: [&str; 6] =
    ["ibv_reg_mr_iova2", "ibv_reg_mr", "ibv_reg_mr_iova", "ibv_reg_mr_iova2", "ibv_rereg_mr", "ibv_reg_mr"];

use common::built;

/// `LD_PRELOAD` for the shim with the stubbing spy behind it.
fn shim_and_spy() -> &'static str {
    static PRELOAD: OnceLock<String> = OnceLock::new();
    PRELOAD.get_or_init(|| format!("{}:{}", built().shim.display(), built().c.join("libdaxspy.so").display()))
}

fn prog(name: &str) -> PathBuf {
    built().c.join(name)
}

struct Out {
    pid: u32,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs `program args` with only PATH and `env` set.
fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    Out {
        pid,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The environment of a stubbed run: shim + spy, spy log and stub, plus `more`.
fn spy_env<'a>(spy_log: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("LD_PRELOAD", shim_and_spy()), ("DAXSPY_LOG", spy_log), ("DAXSPY_STUB", "1")];
    env.extend_from_slice(more);
    env
}

/// `(entry, addr, len, access)` per spy line; no file means no call reached it.
fn spy_lines(path: &Path) -> Vec<(String, String, u64, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut w = l.split(' ');
            let entry = w.next().unwrap().to_string();
            let mut field =
                |k: &str| w.next().and_then(|f| f.strip_prefix(k)).unwrap_or_else(|| panic!("{l}")).to_string();
            let addr = field("addr=");
            let len = field("len=").parse().unwrap();
            let access = field("access=");
            (entry, addr, len, access)
        })
        .collect()
}

fn spy_entries(path: &Path) -> Vec<String> {
    spy_lines(path).into_iter().map(|l| l.0).collect()
}

/// Every record of a JSON-lines audit log, each checked for all keys.
fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l:?}: {e}"));
            for k in RECORD_KEYS {
                assert!(v.get(k).is_some(), "key {k} missing in {l}");
            }
            v
        })
        .collect()
}

fn entries_of(recs: &[Value]) -> Vec<&str> {
    recs.iter().map(|r| r["entry"].as_str().unwrap()).collect()
}

/// `(addr, len)` from entrypoints' `REGION kind=.. addr=0x.. len=.. access=..` line.
fn region(stdout: &str) -> (String, u64) {
    let line = stdout.lines().find(|l| l.starts_with("REGION ")).unwrap_or_else(|| panic!("no REGION in {stdout}"));
    let get = |k: &str| line.split(' ').find_map(|w| w.strip_prefix(k)).unwrap().to_string();
    (get("addr="), get("len=").parse().unwrap())
}

/// Asserts one `ENTRY <name> result=fail errno=ENODEV (19)` per name, in order.
fn assert_all_enodev(stdout: &str, names: &[&str]) {
    let got: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ENTRY ")).collect();
    let want: Vec<String> = names.iter().map(|n| format!("ENTRY {n} result=fail errno=ENODEV (19)")).collect();
    assert_eq!(got, want, "stdout:\n{stdout}");
}

/// The shim's `daxguard: <entry>(<addr>, <len>) failed with ENODEV` lines must
/// be exactly one per forwarded registration, in order, and nothing else.
fn assert_failure_lines(lines: &[&str], entries: &[&str], addr: &str, len: u64) {
    assert_eq!(lines.len(), entries.len(), "stderr:\n{}", lines.join("\n"));
    for (line, entry) in lines.iter().zip(entries) {
        let want = format!("daxguard: {entry}({addr}, {len}) failed with ENODEV");
        assert!(line.starts_with(&want), "{line:?} does not start with {want:?}");
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn library_exports_and_needs_no_libibverbs() {
    let shim = &built().shim;
    let out = Command::new("readelf").arg("-d").arg(shim).output().unwrap();
    assert!(out.status.success());
    let dynamic = String::from_utf8(out.stdout).unwrap();
    // "0x..01 (NEEDED)  Shared library: [libc.so.6]"
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.iter().any(|n| n.starts_with("libc.so")), "parsed no NEEDED entries from:\n{dynamic}");
    assert!(!needed.iter().any(|n| n.contains("ibverbs")), "DT_NEEDED: {needed:?}");

    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(shim).output().unwrap();
    assert!(out.status.success());
    // "00000000000584d0 T ibv_reg_mr" (a version suffix would follow '@')
    let defined: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect();
    for sym in [
        "ibv_reg_mr",
        "ibv_reg_mr_iova",
        "ibv_reg_mr_iova2",
        "ibv_rereg_mr",
        "ibv_reg_mr_ex",
        "mlx5dv_devx_umem_reg",
        "mlx5dv_devx_umem_reg_ex",
        "daxguard_check",
        "daxguard_version",
        "daxguard_interception",
        "dlsym",
        "dlvsym",
    ] {
        assert!(defined.contains(sym), "{sym} not exported");
    }
    assert!(!defined.contains("ibv_reg_dmabuf_mr"), "ibv_reg_dmabuf_mr must not be interposed");
}

#[test]
fn preload_changes_nothing_without_rdma() {
    let shim = built().shim.to_str().unwrap();
    let cases: [(&str, &[&str]); 4] =
        [("/bin/true", &[]), ("ls", &["/"]), ("python3", &["-c", "print(1)"]), ("sh", &["-c", "echo hi"])];
    for (program, args) in cases {
        let plain = run(Path::new(program), args, &[]);
        assert_eq!(plain.code, Some(0), "{program} without preload: {}", plain.stderr);
        // DAXGUARD_MODE=bogus: settings are read at the first registration, so never here.
        for extra in [None, Some(("DAXGUARD_MODE", "bogus"))] {
            let mut env = vec![("LD_PRELOAD", shim)];
            env.extend(extra);
            let pre = run(Path::new(program), args, &env);
            assert_eq!(pre.code, plain.code, "{program} {env:?}");
            assert_eq!(pre.stdout, plain.stdout, "{program} {env:?}");
            assert_eq!(pre.stderr, "", "{program} {env:?}");
        }
    }
}

#[test]
fn every_entry_point_forwarded_once_with_provider_errno() {
    let dir = tmp();
    let spy = dir.path().join("spy.log");
    let mut args = vec!["--fake-pd", "--anon"];
    args.extend(ALL_ENTRIES);
    let out = run(&prog("entrypoints"), &args, &spy_env(s(&spy), &[]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_all_enodev(&out.stdout, &ALL_ENTRIES);
    let (addr, len) = region(&out.stdout);
    let calls = spy_lines(&spy);
    assert_eq!(calls.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), SPY_SEES);
    for (entry, a, l, access) in &calls {
        assert_eq!((a, *l, access.as_str()), (&addr, len, "0x7"), "{entry}");
    }
    assert_failure_lines(&out.stderr_lines(), &SHIM_SEES, &addr, len);
}

#[test]
fn odp_registrations_forwarded_unchecked() {
    let dir = tmp();
    let (spy, log) = (dir.path().join("spy.log"), dir.path().join("audit.jsonl"));
    let mut args = vec!["--fake-pd", "--odp", "--anon"];
    args.extend(ALL_ENTRIES);
    let out = run(&prog("entrypoints"), &args, &spy_env(s(&spy), &[("DAXGUARD_LOG", s(&log))]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_all_enodev(&out.stdout, &ALL_ENTRIES);
    assert_eq!(spy_entries(&spy), SPY_SEES);
    let recs = records(&log);
    assert_eq!(entries_of(&recs), SHIM_SEES);
    for r in &recs {
        assert_eq!(r["action"], "forwarded", "{r}");
        assert_eq!(r["errno_name"], "ENODEV", "{r}");
        if r["entry"] == "ibv_rereg_mr" {
            // CHANGE_TRANSLATION without CHANGE_ACCESS: the MR keeps access
            // flags the shim cannot see, so it is judged as pinned, not ODP.
            assert_eq!(
                (&r["verdict"], &r["reason"], &r["access"]),
                (&"allow".into(), &"not_fsdax".into(), &"0x0".into())
            );
        } else {
            assert_eq!(r["verdict"], "unchecked", "{r}");
            assert_eq!(r["reason"], "on_demand", "{r}");
            assert_eq!(r["access"], "0x47", "{r}"); // rw | IBV_ACCESS_ON_DEMAND
        }
    }
}

#[test]
fn audit_log_one_record_per_registration() {
    let dir = tmp();
    let mut args = vec!["--fake-pd", "--anon"];
    args.extend(ALL_ENTRIES);
    for quiet in [false, true] {
        let (spy, log) = (dir.path().join(format!("spy{quiet}.log")), dir.path().join(format!("audit{quiet}.jsonl")));
        let mut more = vec![("DAXGUARD_LOG", s(&log))];
        if quiet {
            more.push(("DAXGUARD_QUIET", "1"));
        }
        let out = run(&prog("entrypoints"), &args, &spy_env(s(&spy), &more));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_all_enodev(&out.stdout, &ALL_ENTRIES);
        assert_eq!(spy_entries(&spy), SPY_SEES);
        let (addr, len) = region(&out.stdout);
        if quiet {
            assert_eq!(out.stderr, "", "DAXGUARD_QUIET=1");
        } else {
            assert_failure_lines(&out.stderr_lines(), &SHIM_SEES, &addr, len);
        }
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "log file mode {mode:o}");
        let recs = records(&log);
        assert_eq!(entries_of(&recs), SHIM_SEES);
        for r in &recs {
            assert_eq!(r["action"], "forwarded", "{r}");
            assert_eq!(r["errno"], 19, "{r}");
            assert_eq!(r["errno_name"], "ENODEV", "{r}");
            assert_eq!(r["verdict"], "allow", "{r}");
            assert_eq!(r["reason"], "not_fsdax", "{r}");
            assert_eq!(r["pid"], out.pid, "{r}");
            assert_eq!(r["program"], "entrypoints", "{r}");
            assert_eq!((r["addr"].as_str(), r["len"].as_u64()), (Some(addr.as_str()), Some(len)), "{r}");
            assert!(r["file"].is_null() && r["mount"].is_null(), "anonymous memory names no file: {r}");
            let explain = r["explain"].as_str().unwrap_or_else(|| panic!("no explain for a failure: {r}"));
            assert!(explain.contains("failed with ENODEV"), "{r}");
        }
    }
}

#[test]
fn mode_off_forwards_silently_without_records() {
    let dir = tmp();
    let (spy, log) = (dir.path().join("spy.log"), dir.path().join("audit.jsonl"));
    let mut args = vec!["--fake-pd", "--anon"];
    args.extend(ALL_ENTRIES);
    let more = [("DAXGUARD_MODE", "off"), ("DAXGUARD_LOG", s(&log))];
    let out = run(&prog("entrypoints"), &args, &spy_env(s(&spy), &more));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_all_enodev(&out.stdout, &ALL_ENTRIES);
    assert_eq!(spy_entries(&spy), SPY_SEES);
    assert_eq!(out.stderr, "");
    // The runtime opens (creates) the log when it reads the settings, before
    // it knows the mode; what matters is that no record is written.
    println!("DAXGUARD_MODE=off: log file exists: {}", log.exists());
    assert_eq!(records(&log).len(), 0);
}

#[test]
fn bogus_mode_complains_once_and_enforces() {
    let dir = tmp();
    let spy = dir.path().join("spy.log");
    let entries = ["macro", "iova2", "rereg"];
    let mut args = vec!["--fake-pd", "--anon"];
    args.extend(entries);
    let out = run(&prog("entrypoints"), &args, &spy_env(s(&spy), &[("DAXGUARD_MODE", "bogus")]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_all_enodev(&out.stdout, &entries);
    assert_eq!(spy_entries(&spy), ["ibv_reg_mr_iova2", "ibv_reg_mr_iova2", "ibv_rereg_mr"]);
    let (complaints, rest): (Vec<&str>, Vec<&str>) =
        out.stderr_lines().into_iter().partition(|l| l.contains("ignoring DAXGUARD_MODE=\"bogus\""));
    assert_eq!(complaints.len(), 1, "stderr:\n{}", out.stderr);
    let (addr, len) = region(&out.stdout);
    assert_failure_lines(&rest, &["ibv_reg_mr_iova2", "ibv_reg_mr_iova2", "ibv_rereg_mr"], &addr, len);
}

#[test]
fn dlopen_local_program_still_guarded() {
    let dir = tmp();
    let (spy, log) = (dir.path().join("spy.log"), dir.path().join("audit.jsonl"));
    let args = ["--fake-pd", "--anon", "dlopen"];
    let out = run(&prog("dlopen_local"), &args, &spy_env(s(&spy), &[("DAXGUARD_LOG", s(&log))]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_all_enodev(&out.stdout, &["dlopen"]);
    // The dlvsym'd pointer is the shim's export: judged as ibv_reg_mr itself.
    assert_eq!(spy_entries(&spy), ["ibv_reg_mr"]);
    let recs = records(&log);
    assert_eq!(entries_of(&recs), ["ibv_reg_mr"]);
    assert_eq!((&recs[0]["action"], &recs[0]["errno_name"]), (&"forwarded".into(), &"ENODEV".into()));
}

#[test]
fn no_proc_forwards_unchecked_and_says_so_once() {
    let dir = tmp();
    let (spy, log) = (dir.path().join("spy.log"), dir.path().join("audit.jsonl"));
    let ep = prog("entrypoints");
    // A private mount namespace: the empty /proc never reaches the host's.
    let mut args = vec![
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"mount -t tmpfs none /proc && exec "$0" "$@""#,
        s(&ep),
        "--fake-pd",
        "--anon",
    ];
    args.extend(ALL_ENTRIES);
    let out = run(Path::new("unshare"), &args, &spy_env(s(&spy), &[("DAXGUARD_LOG", s(&log))]));
    if out.code != Some(0) && out.stderr.contains("Operation not permitted") {
        println!("skipped: unshare -m not permitted here: {}", out.stderr.trim());
        return;
    }
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_all_enodev(&out.stdout, &ALL_ENTRIES);
    assert_eq!(spy_entries(&spy), SPY_SEES);
    let (said, rest): (Vec<&str>, Vec<&str>) =
        out.stderr_lines().into_iter().partition(|l| l.contains("cannot inspect mappings"));
    assert_eq!(said.len(), 1, "stderr:\n{}", out.stderr);
    let (addr, len) = region(&out.stdout);
    assert_failure_lines(&rest, &SHIM_SEES, &addr, len);
    let recs = records(&log);
    assert_eq!(entries_of(&recs), SHIM_SEES);
    for r in &recs {
        assert_eq!((&r["reason"], &r["action"]), (&"cannot_inspect".into(), &"forwarded".into()), "{r}");
    }
}

/// One `CASE` line of badargs: (name, pid, addr, len, access, result).
fn cases(stdout: &str) -> Vec<(String, u32, String, u64, String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CASE "))
        .map(|l| {
            let (name, rest) = l.split_once(' ').unwrap();
            let get = |k: &str| rest.split(' ').find_map(|w| w.strip_prefix(k)).unwrap().to_string();
            let result = rest.split_once("result=").unwrap().1.to_string();
            (
                name.to_string(),
                get("pid=").parse().unwrap(),
                get("addr="),
                get("len=").parse().unwrap(),
                get("access="),
                result,
            )
        })
        .collect()
}

#[test]
fn bad_arguments_are_forwarded_without_crashing() {
    let names = ["nullpd", "nulladdr", "len0", "overflow", "protnone", "unmapped", "absurd"];
    let dir = tmp();
    // With a log the shim takes the full report (classify_with); without, the
    // quick judge(): two lookup paths, both must survive these arguments.
    for with_log in [true, false] {
        let (spy, log) = (dir.path().join(format!("spy{with_log}.log")), dir.path().join("audit.jsonl"));
        let more: Vec<(&str, &str)> = if with_log { vec![("DAXGUARD_LOG", s(&log))] } else { vec![] };
        let out = run(&prog("badargs"), &names, &spy_env(s(&spy), &more));
        assert_eq!(out.code, Some(0), "crashed or failed (log {with_log}): {}", out.stderr);
        let got = cases(&out.stdout);
        assert_eq!(got.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), names);
        for c in &got {
            assert_eq!(c.5, "fail errno=ENODEV (19)", "{c:?}");
        }
        // Each reached the provider exactly once, unchanged.
        let calls = spy_lines(&spy);
        assert_eq!(calls.len(), names.len(), "{calls:?}");
        for (c, call) in got.iter().zip(&calls) {
            let addr = if c.2 == "(nil)" { "0x0" } else { c.2.as_str() };
            assert_eq!(
                (call.0.as_str(), call.1.as_str(), call.2, &call.3),
                ("ibv_reg_mr_iova2", addr, c.3, &c.4),
                "{c:?}"
            );
        }
        let failures = out.stderr_lines().iter().filter(|l| l.contains(") failed with ENODEV")).count();
        assert_eq!(failures, names.len(), "stderr:\n{}", out.stderr);
        if !with_log {
            continue;
        }
        let recs = records(&log);
        assert_eq!(recs.len(), names.len());
        for (name, r) in names.iter().zip(&recs) {
            assert_eq!((&r["action"], &r["errno"]), (&"forwarded".into(), &19.into()), "{name}: {r}");
            let want = match *name {
                "overflow" => ("error", "kernel_judges"), // the kernel rejects it itself
                "absurd" => ("unchecked", "on_demand"),   // 0xffffffff includes IBV_ACCESS_ON_DEMAND
                _ => ("allow", "not_fsdax"),
            };
            assert_eq!((r["verdict"].as_str().unwrap(), r["reason"].as_str().unwrap()), want, "{name}: {r}");
        }
    }
}

#[test]
fn registration_in_forked_child() {
    let dir = tmp();
    let (spy, log) = (dir.path().join("spy.log"), dir.path().join("audit.jsonl"));
    let out = run(&prog("badargs"), &["fork"], &spy_env(s(&spy), &[("DAXGUARD_LOG", s(&log))]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let got = cases(&out.stdout);
    assert_eq!(got.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["fork-parent", "fork-child"]);
    let (parent, child) = (got[0].1, got[1].1);
    assert_eq!(parent, out.pid);
    assert_ne!(child, parent);
    assert!(got.iter().all(|c| c.5 == "fail errno=ENODEV (19)"), "{got:?}");
    assert_eq!(spy_entries(&spy), ["ibv_reg_mr_iova2", "ibv_reg_mr_iova2"]);
    let recs = records(&log);
    assert_eq!(recs.len(), 2);
    for (r, pid) in recs.iter().zip([parent, child]) {
        assert_eq!((&r["pid"], &r["tid"]), (&pid.into(), &pid.into()), "{r}");
        assert_eq!(
            (&r["action"], &r["verdict"], &r["errno_name"]),
            (&"forwarded".into(), &"allow".into(), &"ENODEV".into())
        );
        assert_eq!(r["addr"].as_str(), Some(got[0].2.as_str()));
    }
}

#[test]
fn c_api_check() {
    let out = run(&prog("capi"), &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "");
    // "CHECK <name> rc=<rc> errno=<e> why=<rest of line>"
    let checks: Vec<(&str, i32, &str, &str)> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CHECK "))
        .map(|l| {
            let (head, why) = l.split_once(" why=").unwrap();
            let w: Vec<&str> = head.split(' ').collect();
            (w[0], w[1].strip_prefix("rc=").unwrap().parse().unwrap(), w[2].strip_prefix("errno=").unwrap(), why)
        })
        .collect();
    assert_eq!(checks.len(), 3, "{}", out.stdout);
    assert_eq!(checks[0], ("anon", 0, "0", ""), "anonymous memory: DAXGUARD_OK, nothing to explain");
    assert_eq!(checks[1], ("shm", 0, "0", ""), "/dev/shm (tmpfs) file: DAXGUARD_OK");
    let (name, rc, errno, why) = checks[2];
    assert_eq!((name, rc, errno), ("overflow", -1, "EINVAL"), "overflowing range: DAXGUARD_ERROR + EINVAL");
    assert!(why.starts_with("daxguard: ") && why.contains("overflow"), "{why:?}");
    let version = out.stdout.lines().find_map(|l| l.strip_prefix("VERSION ")).unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let interception = out.stdout.lines().find_map(|l| l.strip_prefix("INTERCEPTION ")).unwrap();
    let want = if cfg!(target_arch = "x86_64") { "plt+dlsym" } else { "plt" };
    assert_eq!(interception, want, "daxguard_interception()");
}
