//! `daxguard run [--mode MODE] [--log DEST] -- CMD [ARGS...]`: exec CMD with
//! libdaxguard.so appended to LD_PRELOAD and the shim's settings in the environment.

use std::ffi::{OsStr, OsString};
use std::fmt::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cli::{RunArgs, Unknown};
use crate::output::{Done, EXIT_OK, Exit, SCHEMA, json};
use crate::shim::{Shim, find_shim};

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

/// The DAXGUARD_* variables to set; the rest are inherited as they are.
fn settings(args: &RunArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut env = Vec::new();
    if let Some(m) = args.mode {
        env.push(("DAXGUARD_MODE", m.name().to_string()));
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
        return dry_run(&shim, &preload, &env, &args.cmd, json_out);
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

/// `--dry-run`: the shim, LD_PRELOAD, the settings and the command, without running it.
fn dry_run(
    shim: &Shim,
    preload: &OsStr,
    env: &[(&'static str, String)],
    cmd: &[OsString],
    json_out: bool,
) -> anyhow::Result<Done> {
    let show = |s: &OsStr| s.to_string_lossy().into_owned();
    let argv: Vec<String> = cmd.iter().map(|a| show(a)).collect();
    if json_out {
        let j = DryRunJson {
            schema: SCHEMA,
            command: "run",
            shim: show(shim.path.as_os_str()),
            found: shim.how,
            ld_preload: show(preload),
            env: env.iter().cloned().collect(),
            argv,
        };
        return Ok(Done::new(json(&j)?, EXIT_OK));
    }
    let mut out = String::new();
    let _ = writeln!(out, "shim: {} ({})", shim.path.display(), shim.how);
    let _ = writeln!(out, "LD_PRELOAD={}", show(preload));
    for (k, v) in env {
        let _ = writeln!(out, "{k}={v}");
    }
    let _ = writeln!(out, "exec: {}", argv.join(" "));
    Ok(Done::new(out, EXIT_OK))
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
