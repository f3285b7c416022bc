//! Registration functions a program fetched itself with `dlsym`/`dlvsym`
//! (NCCL's way), on this host: no RDMA device and no fs-DAX, so:
//!
//! - the memory refused is a mapping daxguard cannot verify
//!   (`unverified:`, tests/c/common.h `map_unverified`: a lazily unmounted
//!   tmpfs file, without the capabilities that open `map_files`), which the
//!   default policy refuses before the provider as it refuses fs-DAX; real
//!   fs-DAX through the same pointers is refused in the guest
//!   (tests/scenarios/pointers.sh);
//! - libibverbs' provider is the stubbing spy (`DAXSPY_STUB=1`, see
//!   preload.rs): a spy line proves daxguard forwarded;
//! - libmlx5 is a stub counting its calls (tests/c/mlx5stub.c).
//!
//! Cases that need root (a mount namespace) print "skipped" elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

use common::built;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn prog(name: &str) -> PathBuf {
    built().c.join(name)
}

fn shim() -> String {
    built().shim.display().to_string()
}

fn stub() -> String {
    built().c.join("mlx5stub/libmlx5.so.1").display().to_string()
}

/// Whether a run failed only because this host does not let us unshare a
/// mount namespace (not root, or a container without CAP_SYS_ADMIN).
fn cannot_unshare(out: &Out) -> bool {
    out.code == Some(2) && (out.stderr.contains("Operation not permitted") || out.stderr.contains("Permission denied"))
}

/// `VIA <via> result=<r> calls=<n> from=<obj>` lines of devx: (via, result, calls, from).
fn vias(stdout: &str) -> Vec<(String, String, i64, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("VIA "))
        .map(|l| {
            let (via, rest) = l.split_once(' ').unwrap();
            let (result, rest) = rest.split_once(" calls=").unwrap();
            let (calls, from) = rest.split_once(" from=").unwrap();
            (
                via.to_string(),
                result.strip_prefix("result=").unwrap().to_string(),
                calls.parse().unwrap(),
                from.to_string(),
            )
        })
        .collect()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l:?}: {e}")))
        .collect()
}

const EOPNOTSUPP: &str = "fail errno=EOPNOTSUPP (95)";

#[test]
fn devx_umem_refused_before_the_stub_through_every_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let log_s = log.to_str().unwrap();
    let stub = stub();
    let args = ["--lib", &stub, "--global", "--unverified", "reg", "reg-ex", "dlsym", "default", "dmabuf"];
    let shim = shim();
    let out = run(&prog("devx"), &args, &[("LD_PRELOAD", &shim), ("DAXGUARD_LOG", log_s)]);
    if cannot_unshare(&out) {
        println!("skipped: cannot unshare a mount namespace here: {}", out.stderr.trim());
        return;
    }
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let got = vias(&out.stdout);
    let want: Vec<(String, String, i64, String)> = [
        ("reg", EOPNOTSUPP, 0),
        ("reg-ex", EOPNOTSUPP, 0),
        ("dlsym", EOPNOTSUPP, 0),
        ("default", EOPNOTSUPP, 0),
        // a dma-buf UMEM pins no user pages: forwarded unchecked, the stub's first call
        ("dmabuf", "ok", 1),
    ]
    .iter()
    .map(|(v, r, c)| (v.to_string(), r.to_string(), *c, "libdaxguard.so".to_string()))
    .collect();
    assert_eq!(got, want, "stdout:\n{}stderr:\n{}", out.stdout, out.stderr);
    let refusals: Vec<&str> =
        out.stderr.lines().filter(|l| l.starts_with("daxguard: refused mlx5dv_devx_umem_reg")).collect();
    assert_eq!(refusals.len(), 4, "{}", out.stderr);
    assert!(refusals[1].starts_with("daxguard: refused mlx5dv_devx_umem_reg_ex("), "{}", refusals[1]);
    assert!(refusals.iter().all(|l| l.contains("could not verify")), "{}", out.stderr);
    let recs = records(&log);
    let entries: Vec<&str> = recs.iter().map(|r| r["entry"].as_str().unwrap()).collect();
    assert_eq!(
        entries,
        ["mlx5dv_devx_umem_reg", "mlx5dv_devx_umem_reg_ex", "mlx5dv_devx_umem_reg", "mlx5dv_devx_umem_reg"]
    );
    for r in &recs {
        assert_eq!(
            (&r["action"], &r["reason"], &r["errno"], &r["access"]),
            (&"refused".into(), &"unverified".into(), &95.into(), &"0x7".into()),
            "{r}"
        );
    }

    // odp mode: DevX has no on-demand registration, it refuses as enforce does.
    let out = run(&prog("devx"), &args[..5], &[("LD_PRELOAD", &shim), ("DAXGUARD_MODE", "odp")]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(vias(&out.stdout)[0], ("reg".into(), EOPNOTSUPP.into(), 0, "libdaxguard.so".into()));

    // Without daxguard every one reaches the stub.
    let out = run(&prog("devx"), &args, &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let calls: Vec<(String, i64)> = vias(&out.stdout).into_iter().map(|v| (v.1, v.2)).collect();
    assert_eq!(calls, [1, 2, 3, 4, 5].map(|n| ("ok".to_string(), n)), "{}", out.stdout);
}

#[test]
fn devx_umem_of_anonymous_memory_forwarded_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let stub = stub();
    let shim = shim();
    let env = [("LD_PRELOAD", shim.as_str()), ("DAXGUARD_LOG", log.to_str().unwrap())];
    let out = run(&prog("devx"), &["--lib", &stub, "--anon", "reg", "reg-ex", "dlsym"], &env);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let got = vias(&out.stdout);
    assert_eq!(got.len(), 3);
    for (n, (via, result, calls, from)) in got.iter().enumerate() {
        assert_eq!((result.as_str(), *calls, from.as_str()), ("ok", n as i64 + 1, "libdaxguard.so"), "{via}");
    }
    assert_eq!(out.stderr, "", "nothing to say about anonymous memory");
    let recs = records(&log);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(
            (&r["action"], &r["verdict"], &r["errno"]),
            (&"forwarded".into(), &"allow".into(), &0.into()),
            "{r}"
        );
    }
}

/// The NCCL-style program's `REG <step> <region> <result>` lines.
fn regs(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("REG "))
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (w[0].to_string(), w[1].to_string(), w[2].to_string())
        })
        .collect()
}

/// `SYM <what> from=<object>` lines: (what, object).
fn syms(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("SYM "))
        .map(|l| {
            let (what, from) = l.rsplit_once(" from=").unwrap();
            (what.to_string(), from.to_string())
        })
        .collect()
}

#[test]
fn nccl_style_pointers_are_the_guarded_exports() {
    let dir = tempfile::tempdir().unwrap();
    let spy = dir.path().join("spy.log");
    let shim_spy = format!("{}:{}", shim(), built().c.join("libdaxspy.so").display());
    let env = [("LD_PRELOAD", shim_spy.as_str()), ("DAXSPY_STUB", "1"), ("DAXSPY_LOG", spy.to_str().unwrap())];
    let steps = ["iova2", "reg_mr", "iova", "dlsym", "rereg", "fork", "threads", "reopen"];
    for load in ["now", "deepbind"] {
        let _ = std::fs::remove_file(&spy);
        let mut args = vec!["--fake-pd", "--load", load, "--iters", "40", "anon=anon:64K", "unv=unverified:64K", "--"];
        args.extend(steps);
        let out = run(&prog("nccl_like"), &args, &env);
        if cannot_unshare(&out) {
            println!("skipped: cannot unshare a mount namespace here: {}", out.stderr.trim());
            return;
        }
        assert_eq!(out.code, Some(0), "{load}: {}{}", out.stdout, out.stderr);
        // Every registration pointer is daxguard's export; the old ABI is not.
        for (what, from) in syms(&out.stdout) {
            let want = if what.contains("IBVERBS_1.0") { "libibverbs" } else { "libdaxguard.so" };
            assert!(from.starts_with(want), "{load}: SYM {what} from={from}");
        }
        // The unverifiable region is refused, the anonymous one reaches the
        // stubbing spy (ENODEV), in every step and every reopen round.
        let got = regs(&out.stdout);
        assert_eq!(got.len(), 2 * (5 + 1 + 3 * 2), "{load}: {}", out.stdout);
        for (step, region, result) in &got {
            let want = if region == "unv" { "EOPNOTSUPP" } else { "ENODEV" };
            assert_eq!(result, want, "{load}: {step} {region}");
        }
        assert!(out.stdout.contains("FORK child_exit=0"), "{load}: {}", out.stdout);
        assert!(out.stdout.contains("THREADS regs=40 as_alone=40 other=0"), "{load}: {}", out.stdout);
        assert!(out.stdout.contains(" changed=0\n"), "{load}: dlsym answers changed under load: {}", out.stdout);
        // Each round's dlclose leaves libibverbs loaded: daxguard holds it.
        assert_eq!(out.stdout.matches("unloaded=no").count(), 3, "{load}: {}", out.stdout);
        // No unverifiable registration reached the spy; every anonymous one did.
        let spy_lines = std::fs::read_to_string(&spy).unwrap_or_default();
        // Per region: 12 REG lines, and the threads step's 1 + 40 / 2.
        let per_region = 12 + 1 + 20;
        let unv = region_addr(&out.stdout, "unv");
        assert!(!spy_lines.contains(&format!("addr={unv} ")), "{load}: a refused range reached the provider");
        let anon = region_addr(&out.stdout, "anon");
        assert_eq!(spy_lines.matches(&format!("addr={anon} ")).count(), per_region, "{load}:\n{spy_lines}");
        let refusals = out.stderr.lines().filter(|l| l.starts_with("daxguard: refused ")).count();
        assert_eq!(refusals, per_region, "{load}: one refusal line per refused registration:\n{}", out.stderr);
    }
}

/// `REGION <name> kind=.. addr=0x.. len=..` of nccl_like: the address.
fn region_addr(stdout: &str, name: &str) -> String {
    let line = stdout.lines().find(|l| l.starts_with(&format!("REGION {name} "))).unwrap();
    line.split(' ').find_map(|w| w.strip_prefix("addr=")).unwrap().to_string()
}

#[test]
fn a_dlmopen_copy_is_returned_unchanged_and_said_once() {
    let shim = shim();
    let out =
        run(&prog("nccl_like"), &["--fake-pd", "--load", "dlmopen", "anon=anon:4K", "--"], &[("LD_PRELOAD", &shim)]);
    if out.code == Some(2) && out.stderr.contains("cannot load libibverbs") {
        println!("skipped: dlmopen of libibverbs fails here: {}", out.stderr.trim());
        return;
    }
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    for (what, from) in syms(&out.stdout) {
        assert!(from.starts_with("libibverbs"), "SYM {what} from={from}: a dlmopen copy must not be replaced");
    }
    let said: Vec<&str> =
        out.stderr.lines().filter(|l| l.contains("registrations through this pointer are not checked")).collect();
    // one line per name: ibv_reg_mr (1.1 and 1.0 share it), ibv_rereg_mr, ibv_reg_mr_iova2 (dlvsym and dlsym), ibv_reg_mr_iova
    assert_eq!(said.len(), 4, "{}", out.stderr);
    assert!(said.iter().all(|l| l.contains("link-map namespace 1 (dlmopen)")), "{}", out.stderr);
}
