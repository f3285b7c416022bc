//! `daxguard run [--mode MODE] [--log DEST] -- CMD [ARGS...]`: exec CMD with
//! libdaxguard.so appended to LD_PRELOAD and the shim's settings in the environment.

use std::ffi::{OsStr, OsString};
use std::fmt::Write;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cli::{Mode, RunArgs, Unknown};
use crate::output::{Done, EXIT_OK, Exit, SCHEMA, json};

/// Where the shim was found, and which rule found it.
pub struct Shim {
    pub path: PathBuf,
    pub how: &'static str,
}

/// The places searched after --lib and $DAXGUARD_LIB, in order.
pub fn search_path() -> Vec<(PathBuf, &'static str)> {
    let mut v = Vec::new();
    // current_exe resolves symlinks: a /usr/local/bin link finds the real install.
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        v.push((dir.join("libdaxguard.so"), "beside the daxguard binary"));
        v.push((dir.join("../lib/libdaxguard.so"), "in the install's lib directory"));
    }
    v.push((PathBuf::from("/usr/local/lib/libdaxguard.so"), "in /usr/local/lib"));
    v.push((PathBuf::from("/usr/lib/libdaxguard.so"), "in /usr/lib"));
    v
}

/// Finds libdaxguard.so. An explicit choice (--lib, $DAXGUARD_LIB) must be
/// usable; it is an error rather than a silent fall-through to another copy.
pub fn find_shim(lib: Option<&Path>) -> anyhow::Result<Shim> {
    let env = std::env::var_os("DAXGUARD_LIB").filter(|v| !v.is_empty()).map(PathBuf::from);
    let explicit = match (lib, env) {
        (Some(p), _) => Some((p.to_path_buf(), "--lib")),
        (None, Some(p)) => Some((p, "$DAXGUARD_LIB")),
        (None, None) => None,
    };
    if let Some((p, how)) = explicit {
        check_elf(&p).with_context(|| format!("{how} {}", p.display()))?;
        return Ok(Shim { path: absolute(&p)?, how });
    }
    for (p, how) in search_path() {
        if p.is_file() {
            check_elf(&p).with_context(|| format!("{}", p.display()))?;
            return Ok(Shim { path: absolute(&p)?, how });
        }
    }
    let tried: Vec<_> = search_path().iter().map(|(p, _)| p.display().to_string()).collect();
    bail!("libdaxguard.so not found (looked in {}); give --lib PATH or set DAXGUARD_LIB", tried.join(", "))
}

/// The dynamic loader skips a preload it cannot load, with only a warning:
/// catch a wrong file here instead.
fn check_elf(p: &Path) -> anyhow::Result<()> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(p)
        .map_err(|e| anyhow::anyhow!("{}", crate::output::errno_text(e.raw_os_error().unwrap_or(0))))?;
    if f.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
        bail!("is not a shared library");
    }
    Ok(())
}

/// LD_PRELOAD paths are resolved at exec, in CMD's working directory, and
/// split at spaces and colons: make ours absolute and refuse what cannot be said.
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))?;
    if abs.as_os_str().as_bytes().iter().any(|&b| b == b' ' || b == b':') {
        bail!("{}: LD_PRELOAD cannot hold a path with a space or colon; copy the library elsewhere", abs.display());
    }
    Ok(abs)
}

/// `existing` with `shim` appended: the user's preloads stay as they are,
/// and first (they keep their precedence); nothing changes if it is there already.
pub fn ld_preload(existing: Option<&OsStr>, shim: &Path) -> OsString {
    let existing = existing.map(OsStr::as_bytes).unwrap_or_default();
    let mut words = existing.split(|&b| b == b' ' || b == b':').filter(|w| !w.is_empty());
    if words.any(|w| Path::new(OsStr::from_bytes(w)) == shim) {
        return OsStr::from_bytes(existing).to_os_string();
    }
    let mut out = existing.trim_ascii().to_vec();
    if !out.is_empty() {
        out.push(b' ');
    }
    out.extend_from_slice(shim.as_os_str().as_bytes());
    OsString::from_vec(out)
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Warn => "warn",
        Mode::Audit => "audit",
        Mode::Off => "off",
        Mode::Odp => "odp",
    }
}

/// The DAXGUARD_* variables to set; the rest are inherited as they are.
fn settings(args: &RunArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut env = Vec::new();
    if let Some(m) = args.mode {
        env.push(("DAXGUARD_MODE", mode_name(m).to_string()));
    }
    if let Some(dest) = &args.log {
        env.push(("DAXGUARD_LOG", log_dest(dest)?));
    }
    if let Some(u) = args.unknown {
        env.push(("DAXGUARD_UNKNOWN", if u == Unknown::Refuse { "refuse" } else { "allow" }.to_string()));
    }
    if args.quiet {
        env.push(("DAXGUARD_QUIET", "1".to_string()));
    }
    if args.stats {
        env.push(("DAXGUARD_STATS", "1".to_string()));
    }
    Ok(env)
}

/// `syslog`, or a file path made absolute (CMD may change directory before
/// the shim opens it). The file itself is the shim's to create.
fn log_dest(dest: &str) -> anyhow::Result<String> {
    if dest == "syslog" {
        return Ok(dest.to_string());
    }
    if dest.is_empty() {
        bail!("--log needs a file path or `syslog`");
    }
    let p = std::path::absolute(dest).with_context(|| format!("--log {dest}"))?;
    if p.is_dir() {
        bail!("--log {dest} is a directory: give a file path");
    }
    let dir = p.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        bail!("--log {dest}: directory {} does not exist", dir.display());
    }
    p.to_str().map(str::to_string).context("--log path is not valid UTF-8")
}

#[derive(Serialize)]
struct DryRunJson {
    schema: u32,
    command: &'static str,
    shim: String,
    found: &'static str,
    ld_preload: String,
    env: std::collections::BTreeMap<&'static str, String>,
    argv: Vec<String>,
}

pub fn run(args: &RunArgs, json_out: bool) -> anyhow::Result<Done> {
    let shim = find_shim(args.lib.as_deref())?;
    let env = settings(args)?;
    let preload = ld_preload(std::env::var_os("LD_PRELOAD").as_deref(), &shim.path);
    let (cmd, rest) = args.cmd.split_first().context("no command given")?;
    if args.dry_run {
        let show = |s: &OsStr| s.to_string_lossy().into_owned();
        if json_out {
            let j = DryRunJson {
                schema: SCHEMA,
                command: "run",
                shim: show(shim.path.as_os_str()),
                found: shim.how,
                ld_preload: show(&preload),
                env: env.iter().cloned().collect(),
                argv: args.cmd.iter().map(|a| show(a)).collect(),
            };
            return Ok(Done::new(json(&j)?, EXIT_OK));
        }
        let mut out = String::new();
        let _ = writeln!(out, "shim: {} ({})", shim.path.display(), shim.how);
        let _ = writeln!(out, "LD_PRELOAD={}", show(&preload));
        for (k, v) in &env {
            let _ = writeln!(out, "{k}={v}");
        }
        let argv: Vec<_> = args.cmd.iter().map(|a| show(a)).collect();
        let _ = writeln!(out, "exec: {}", argv.join(" "));
        return Ok(Done::new(out, EXIT_OK));
    }
    let mut c = std::process::Command::new(cmd);
    c.args(rest).env("LD_PRELOAD", &preload);
    for (k, v) in &env {
        c.env(k, v);
    }
    // Only returns on failure; on success CMD's status and signals are its own.
    let e = c.exec();
    let name = cmd.to_string_lossy();
    Err(match e.raw_os_error() {
        Some(libc::ENOENT) if !name.contains('/') => Exit { code: 127, msg: format!("{name}: command not found") },
        Some(libc::ENOENT) => Exit { code: 127, msg: format!("{name}: no such file") },
        Some(errno) => Exit { code: 126, msg: format!("cannot run {name}: {}", crate::output::errno_text(errno)) },
        None => Exit { code: 126, msg: format!("cannot run {name}: {e}") },
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_is_appended_and_not_doubled() {
        let shim = Path::new("/x/libdaxguard.so");
        assert_eq!(ld_preload(None, shim), "/x/libdaxguard.so");
        assert_eq!(ld_preload(Some(OsStr::new("")), shim), "/x/libdaxguard.so");
        assert_eq!(ld_preload(Some(OsStr::new("/a.so")), shim), "/a.so /x/libdaxguard.so");
        assert_eq!(ld_preload(Some(OsStr::new("/a.so:/b.so ")), shim), "/a.so:/b.so /x/libdaxguard.so");
        assert_eq!(ld_preload(Some(OsStr::new("/x/libdaxguard.so:/a.so")), shim), "/x/libdaxguard.so:/a.so");
    }
}
