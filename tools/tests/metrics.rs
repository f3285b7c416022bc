//! `daxguard metrics` on audit logs the preload library really wrote: the
//! shim preloaded into tests/c/entrypoints, with the stubbing spy behind
//! it (this host has no RDMA device: every registration is forwarded and
//! fails with ENODEV, one record each). Refusals and warnings of real
//! fs-DAX are counted in the guest (tests/scenarios/journal.sh); the
//! counting itself is unit-tested in src/metrics.rs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::*;

/// The shim (next to the daxguard binary) and the C programs, built once.
fn built() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let target_dir = bin_dir.parent().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut c = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        c.args(["build", "--quiet", "-p", "daxguard", "--lib", "--manifest-path"]).arg(root.join("Cargo.toml"));
        c.env("CARGO_TARGET_DIR", target_dir);
        if bin_dir.file_name().unwrap() == "release" {
            c.arg("--release");
        }
        assert!(c.status().expect("run cargo").success(), "cargo build -p daxguard failed");
        let out = target_dir.join("c");
        let made = Command::new("make")
            .arg("-C")
            .arg(root.join("tests/c"))
            .arg(format!("OUT={}", out.display()))
            .args([out.join("entrypoints"), out.join("libdaxspy.so")])
            .output()
            .unwrap();
        assert!(made.status.success(), "make: {}", String::from_utf8_lossy(&made.stderr));
        (bin_dir.join("libdaxguard.so"), out)
    })
}

/// Two registrations of entrypoints under the shim, recorded in `log`.
fn register(log: &Path, env: &[(&str, &str)]) {
    let (shim, c) = built();
    let out = Command::new(c.join("entrypoints"))
        .args(["--fake-pd", "--anon", "iova2", "macro"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LD_PRELOAD", format!("{}:{}", shim.display(), c.join("libdaxspy.so").display()))
        .env("DAXSPY_STUB", "1")
        .env("DAXGUARD_CONFIG", "")
        .env("DAXGUARD_LOG", log)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_textfile_from_real_audit_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (log, old, prom) =
        (dir.path().join("audit.jsonl"), dir.path().join("audit.jsonl.1"), dir.path().join("daxguard.prom"));
    register(&old, &[]);
    register(&log, &[("DAXGUARD_MODE", "warn"), ("OMPI_COMM_WORLD_RANK", "1")]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);

    let r = daxguard(&["metrics", "--textfile", prom.to_str().unwrap(), log.to_str().unwrap(), old.to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (Some(0), "", ""));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains(
            "daxguard_audit_records_total{program=\"entrypoints\",consumer=\"rdma\",action=\"forwarded\"} 4\n"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE daxguard_refusals_total counter\n# HELP daxguard_warnings_total"), "none: {text}");
    assert!(text.contains("daxguard_audit_unreadable_lines_total 0\n"), "{text}");
    assert!(text.contains("daxguard_audit_last_record_timestamp_seconds 1"), "{text}");
    assert_eq!(std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777, 0o644, "node_exporter reads it");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 3, "no temporary file left: {left:?}");

    // Standard input, with a torn line: the same counts, on stdout.
    let mut all = std::fs::read(&log).unwrap();
    all.extend(std::fs::read(&old).unwrap());
    all.extend_from_slice(b"{\"time\":1,\"pid\":");
    let mut c = cmd(&["metrics"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &all).unwrap();
    let r = ran(child.wait_with_output().unwrap());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("action=\"forwarded\"} 4\n") && r.stdout.contains("unreadable_lines_total 1\n"),
        "{}",
        r.stdout
    );

    let (v, code) = daxguard_json(&["metrics", log.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(
        (v["schema"].as_u64(), v["records"].as_u64(), v["unreadable"].as_u64()),
        (Some(1), Some(2), Some(0)),
        "{v}"
    );
    assert_eq!(v["refusals"], serde_json::json!([]));
}

#[test]
fn metrics_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.jsonl");
    assert_one_line_error(&daxguard(&["metrics", none.to_str().unwrap()]), "cannot read");
    let log = dir.path().join("a.jsonl");
    std::fs::write(&log, "").unwrap();
    let bad = dir.path().join("no/such/dir/daxguard.prom");
    assert_one_line_error(
        &daxguard(&["metrics", "--textfile", bad.to_str().unwrap(), log.to_str().unwrap()]),
        "cannot write the textfile",
    );
}
