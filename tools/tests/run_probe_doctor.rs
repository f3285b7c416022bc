//! `run` (really preloading the shim into a child), `probe` and `doctor` on a
//! host without RDMA devices, and the conventions every command shares.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// Builds the cdylib (`cargo build -p daxguard`) next to the daxguard binary,
/// where `run` looks first, once per test binary.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let target_dir = bin_dir.parent().unwrap();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut c = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        c.args(["build", "--quiet", "-p", "daxguard", "--lib", "--manifest-path"]).arg(&manifest);
        c.env("CARGO_TARGET_DIR", target_dir);
        if bin_dir.file_name().unwrap() == "release" {
            c.arg("--release");
        }
        let st = c.status().expect("run cargo");
        assert!(st.success(), "cargo build -p daxguard failed");
        let so = bin_dir.join("libdaxguard.so");
        assert!(so.is_file(), "{} was not built", so.display());
        so
    })
}

#[test]
fn run_preloads_the_shim_after_existing_preloads() {
    let shim = shim();
    let script = r#"echo "LD_PRELOAD=$LD_PRELOAD"; env | grep -E '^DAXGUARD_(MODE|LOG|UNKNOWN|QUIET|STATS|LOOKUP)=' | sort; grep -c libdaxguard.so /proc/$$/maps; grep '^SigIgn' /proc/$$/status"#;
    let out = cmd(&["run", "--mode", "warn", "--unknown", "allow", "--quiet", "--stats", "--", "sh", "-c", script])
        .env("LD_PRELOAD", "libm.so.6")
        .output()
        .unwrap();
    let r = ran(out);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], format!("LD_PRELOAD=libm.so.6 {}", shim.display()), "kept first, shim appended");
    assert_eq!(&lines[1..5], ["DAXGUARD_MODE=warn", "DAXGUARD_QUIET=1", "DAXGUARD_STATS=1", "DAXGUARD_UNKNOWN=allow"]);
    assert_ne!(lines[5], "0", "libdaxguard.so is mapped in the child: {}", r.stdout);
    let ignored = u64::from_str_radix(lines[6].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "the child does not inherit Rust's ignored SIGPIPE");
}

#[test]
fn run_without_an_existing_preload_and_a_relative_log() {
    let shim = shim();
    let dir = fresh(&target_tmp(), "logdir");
    std::fs::create_dir(&dir).unwrap();
    let out = cmd(&["run", "--log", "audit.jsonl", "--", "sh", "-c", "echo $LD_PRELOAD; echo $DAXGUARD_LOG"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let r = ran(out);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], shim.display().to_string());
    assert_eq!(lines[1], dir.join("audit.jsonl").display().to_string(), "made absolute");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_returns_the_commands_status() {
    shim();
    assert_eq!(cmd(&["run", "--", "sh", "-c", "exit 7"]).status().unwrap().code(), Some(7));
    let st = cmd(&["run", "--", "sh", "-c", "kill -TERM $$"]).status().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGTERM), "killed by the signal, as the command was: {st:?}");
    let r = daxguard(&["run", "--", "daxguard-test-no-such-command"]);
    assert_eq!(r.code, Some(127));
    assert_eq!(r.stderr, "daxguard: daxguard-test-no-such-command: command not found\n");
    let r = daxguard(&["run", "--", "/dev/null"]);
    assert_eq!(r.code, Some(126), "{}", r.stderr);
}

#[test]
fn run_dry_run_json() {
    let shim = shim();
    let (v, code) = daxguard_json(&["run", "--dry-run", "--mode", "audit", "--log", "syslog", "--", "ls", "-l"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["schema"], 1);
    assert_eq!(v["command"], "run");
    assert_eq!(v["shim"], shim.to_str().unwrap());
    assert_eq!(v["found"], "beside the daxguard binary");
    assert_eq!(v["ld_preload"], shim.to_str().unwrap());
    assert_eq!(v["env"]["DAXGUARD_MODE"], "audit");
    assert_eq!(v["env"]["DAXGUARD_LOG"], "syslog");
    assert_eq!(v["argv"], serde_json::json!(["ls", "-l"]));
}

#[test]
fn run_shim_choices_that_cannot_work() {
    let r = ran(cmd(&["run", "--", "true"]).env("DAXGUARD_LIB", "/etc/hostname").output().unwrap());
    assert_one_line_error(&r, "is not a shared library");
    assert_one_line_error(&daxguard(&["run", "--lib", "/nonexistent/libdaxguard.so", "--", "true"]), "--lib");
    assert_one_line_error(&daxguard(&["run", "--log", "/nonexistent/dir/log", "--", "true"]), "does not exist");
    assert_one_line_error(&daxguard(&["run", "--mode", "loud", "--", "true"]), "invalid value 'loud'");
    assert_one_line_error(&daxguard(&["run"]), "required");
}

#[test]
fn probe_without_libibverbs() {
    let out = cmd(&["probe", "--device", "rxe0", "--anon"])
        .env("DAXGUARD_IBVERBS", "libibverbs-daxguard-test-missing.so.1")
        .output()
        .unwrap();
    assert_one_line_error(&ran(out), "not found: install libibverbs1 (and a provider)");
}

#[test]
fn probe_unknown_device() {
    let r = daxguard(&["probe", "--device", "daxguard-test-nodev", "--anon"]);
    // Without libibverbs on this host the loader error comes first; both are exit 2.
    let want = if r.stderr.contains("libibverbs") && r.stderr.contains("not found") {
        "install libibverbs1"
    } else {
        "no RDMA device named daxguard-test-nodev"
    };
    assert_one_line_error(&r, want);
}

#[test]
fn probe_bad_input() {
    let f = TempFile::new(&target_tmp(), "probe", 4096);
    assert_one_line_error(&daxguard(&["probe", "--device", "x"]), "required");
    assert_one_line_error(&daxguard(&["probe", "--device", "x", "--anon", f.path()]), "cannot be used with");
    assert_one_line_error(
        &daxguard(&["probe", "--device", "x", "--access", "sideways", f.path()]),
        "unknown access flag",
    );
    assert_one_line_error(&daxguard(&["probe", "--device", "x", "--len", "0", "--anon"]), "greater than 0");
    assert_one_line_error(&daxguard(&["probe", "--device", "x", "/nonexistent/f"]), "No such file");
}

#[test]
fn doctor_reports_every_line() {
    shim();
    let r = daxguard(&["doctor"]);
    assert_eq!(r.code, Some(0), "nothing fails with the shim built: {}", r.stdout);
    for line in r.stdout.lines().filter(|l| !l.starts_with(' ')) {
        assert!(["OK  ", "WARN", "FAIL"].iter().any(|t| line.starts_with(t)), "{line}");
    }
    let (v, code) = daxguard_json(&["doctor"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["schema"], 1);
    assert_eq!(v["command"], "doctor");
    let ids: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    for id in [
        "kernel",
        "fsdax_rule",
        "procmap_query",
        "statx_dax",
        "dax_mounts",
        "devdax",
        "libibverbs",
        "rdma",
        "shim",
        "interception",
        "lookup",
        "watch",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    for c in v["checks"].as_array().unwrap() {
        assert!(["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap()), "{c}");
        assert!(c["detail"].is_string() && (c["hint"].is_null() || c["hint"].is_string()));
    }
    let f = &v["facts"];
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(f["kernel_release"], release.trim());
    assert!(f["procmap_query"].is_boolean());
    assert!(f["dax_mounts"].is_array() && f["devdax"].is_array() && f["rdma_devices"].is_array());
    assert_eq!(f["shim"], shim().to_str().unwrap());
    // Ready here or not, watch says which: a reason exactly when not ready.
    assert_eq!(f["watch"]["ready"].as_bool().unwrap(), f["watch"]["why_not"].is_null(), "{}", f["watch"]);
    assert!(f["interception"].is_null(), "no daxguard preloaded into a plain doctor: {f}");
    let want = if f["procmap_query"] == true { "procmap_query" } else { "maps" };
    assert_eq!(f["lookup"], want, "{f}");
}

#[test]
fn doctor_under_run_names_the_preloaded_interception() {
    let lib = shim().to_str().unwrap();
    let r =
        ran(cmd(&["run", "--lib", lib, "--", env!("CARGO_BIN_EXE_daxguard"), "--json", "doctor"]).output().unwrap());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    let want = if cfg!(target_arch = "x86_64") { "plt+dlsym" } else { "plt" };
    assert_eq!(v["facts"]["interception"], want, "{}", r.stdout);
    let want = if v["facts"]["procmap_query"] == true { "procmap_query" } else { "maps" };
    assert_eq!(v["facts"]["lookup"], want, "{}", r.stdout);
    // DAXGUARD_LOOKUP reaches the preloaded copy, whose answer doctor shows.
    let r = ran(cmd(&["run", "--lib", lib, "--", env!("CARGO_BIN_EXE_daxguard"), "--json", "doctor"])
        .env("DAXGUARD_LOOKUP", "maps")
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(v["facts"]["lookup"], "maps", "{}", r.stdout);
}

#[test]
fn doctor_fails_when_the_shim_cannot_be_found() {
    let r = ran(cmd(&["doctor"]).env("DAXGUARD_LIB", "/nonexistent/libdaxguard.so").output().unwrap());
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("/nonexistent/libdaxguard.so")),
        "{}",
        r.stdout
    );
}

#[test]
fn help_has_examples_and_version_works() {
    for sub in ["check", "scan", "run", "probe", "doctor", "watch"] {
        let r = daxguard(&[sub, "--help"]);
        assert_eq!(r.code, Some(0));
        assert!(r.stdout.contains("Examples:"), "{sub} --help");
        assert!(r.stdout.contains(&format!("daxguard {sub}")), "{sub} --help");
    }
    let r = daxguard(&["--version"]);
    assert_eq!(r.code, Some(0));
    assert_eq!(r.stdout, format!("daxguard {}\n", env!("CARGO_PKG_VERSION")));
    assert!(daxguard(&["probe", "--help"]).stdout.contains("without libibverbs"));
}

#[test]
fn no_colours_with_no_color_or_a_pipe() {
    let f = TempFile::new(&shm(), "colour", 4096);
    for no_color in [false, true] {
        let mut c = cmd(&["check", f.path()]);
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let r = ran(c.output().unwrap());
        assert!(!r.stdout.contains('\x1b'), "{:?}", r.stdout);
    }
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: our own read end: every write to the pipe now fails with EPIPE.
    unsafe { libc::close(fds[0]) };
    // SAFETY: the write end is ours and handed over to the child.
    let stdout = unsafe { <std::process::Stdio as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    let out = cmd(&["scan"]).stdout(stdout).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// JSON output of each command is one object with the documented top-level fields and types.
#[test]
fn json_schema_top_level_fields() {
    let f = TempFile::new(&shm(), "schema", 4096);
    let (v, _) = daxguard_json(&["check", f.path()]);
    type Is = fn(&Value) -> bool;
    let want: &[(&str, Is)] = &[
        ("schema", Value::is_u64),
        ("command", Value::is_string),
        ("target", Value::is_object),
        ("registrable", Value::is_boolean),
        ("exit_code", Value::is_u64),
        ("message", Value::is_string),
        ("hint", |v| v.is_null() || v.is_string()),
        ("lookup", |v| v == "procmap_query" || v == "events" || v == "maps"),
        ("start", |v| v.as_str().is_some_and(|s| s.starts_with("0x"))),
        ("end", |v| v.as_str().is_some_and(|s| s.starts_with("0x"))),
        ("verdict", |v| ["allow", "fsdax", "unverified"].contains(&v.as_str().unwrap_or(""))),
        ("piece", |v| v.is_null() || v.is_u64()),
        ("unmapped_bytes", Value::is_u64),
        ("pieces", Value::is_array),
    ];
    for (k, ok) in want {
        assert!(ok(&v[k]), "check .{k} = {}", v[k]);
    }
    let p = &v["pieces"][0];
    for k in ["start", "end", "len", "kind", "label", "file"] {
        assert!(p.get(k).is_some(), "piece .{k}");
    }
    for k in ["path", "dev", "inode", "evidence", "via", "statx_dax", "mount", "block_device_dax", "device_dax"] {
        assert!(p["file"].get(k).is_some(), "file .{k}");
    }
    for k in ["mount_point", "fstype", "source", "options"] {
        assert!(p["file"]["mount"][k].is_string(), "mount .{k}");
    }
    let (v, _) = daxguard_json(&["scan"]);
    for k in ["schema", "command", "pid", "lookup", "only_dax", "vmas", "summary", "exit_code"] {
        assert!(v.get(k).is_some(), "scan .{k}");
    }
    for k in [
        "vmas",
        "bytes",
        "fsdax_vmas",
        "fsdax_bytes",
        "unverified_vmas",
        "unverified_bytes",
        "devdax_vmas",
        "devdax_bytes",
    ] {
        assert!(v["summary"][k].is_u64(), "summary .{k}");
    }
}

/// The binary must start without libibverbs and must not interpose on itself.
#[test]
fn binary_neither_needs_libibverbs_nor_exports_verbs() {
    let Ok(out) = Command::new("readelf").args(["--dynamic", "--dyn-syms", "-W", BIN]).output() else {
        eprintln!("readelf not installed: skipped");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(NEEDED)"), "readelf worked: {text}");
    assert!(!text.contains("libibverbs"), "no DT_NEEDED on libibverbs");
    let exports_verbs = text.lines().any(|l| l.contains(" ibv_") && !l.contains(" UND "));
    assert!(!exports_verbs, "the CLI must not define ibv_* symbols (interpose feature off)");
}

#[test]
fn watch_runs_or_says_why_not_in_one_line() {
    // Where watch cannot run (no BTF, no privileges, bpf() forbidden by a
    // sandbox), one line and exit 2; where it can, a summary after --duration.
    let r = daxguard(&["watch", "--json", "--duration", "1"]);
    if r.code == Some(2) {
        assert_one_line_error(&r, "");
        return;
    }
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    let last: serde_json::Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((last["type"].as_str(), last["why"].as_str()), (Some("summary"), Some("duration")));
}

#[test]
fn watch_rejects_bad_input() {
    assert_one_line_error(&daxguard(&["watch", "--errno", "EINVAL"]), "EOPNOTSUPP or EFAULT");
    assert_one_line_error(&daxguard(&["watch", "--comm", "a-name-of-16-byt"]), "at most 15");
    assert_one_line_error(&daxguard(&["watch", "--duration", "0"]), "cannot be 0");
    assert_one_line_error(&daxguard(&["watch", "--count", "0"]), "--count");
    assert_one_line_error(&daxguard(&["watch", "--json", "--journal"]), "--journal");
}

#[test]
fn doctor_checks_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("daxguard.conf");
    std::fs::write(&conf, "mode = warn\n[match program=daxguard]\nlog = journal\n").unwrap();
    let config = |v: &Value| v["checks"].as_array().unwrap().iter().find(|c| c["id"] == "config").cloned().unwrap();
    let r = ran(cmd(&["--json", "doctor"]).env("DAXGUARD_CONFIG", &conf).output().unwrap());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let c = config(&v);
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["detail"], format!("{} parses; here: mode warn, log to the journal", conf.display()));
    assert_eq!(v["facts"]["config"], conf.to_str().unwrap());
    std::fs::write(&conf, "mode = warn\nmod = x\n").unwrap();
    let r = ran(cmd(&["--json", "doctor"]).env("DAXGUARD_CONFIG", &conf).output().unwrap());
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let c = config(&v);
    assert_eq!(c["status"], "warn", "{c}");
    assert!(
        c["detail"].as_str().unwrap().starts_with(&format!("{}:2: unknown setting \"mod\"", conf.display())),
        "{c}"
    );
    assert!(v["facts"]["config"].is_null());
}
