//! `daxguard enable` and `daxguard disable`: the commands around [`crate::activate`].

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::activate::{self, HostEnabled};
use crate::cli::{DisableArgs, EnableArgs};
use crate::output::{Done, EXIT_OK, SCHEMA, json};
use crate::shim::find_shim;

#[derive(Serialize)]
struct Change {
    /// `unit` or `host`.
    scope: &'static str,
    /// The unit, for scope `unit`.
    unit: Option<String>,
    /// The file written or removed.
    path: String,
    /// The library it names.
    lib: Option<String>,
    /// false: it was so already (enable) or there was nothing to remove (disable).
    changed: bool,
}

#[derive(Serialize)]
struct Changes {
    schema: u32,
    command: &'static str,
    changes: Vec<Change>,
}

/// The library to name: on the running system the one `run` would use; under
/// another root, --lib as that system sees it.
fn library(root: &Path, lib: Option<&Path>) -> anyhow::Result<PathBuf> {
    if root == Path::new("/") {
        return Ok(find_shim(lib)?.path);
    }
    let Some(lib) = lib else { bail!("--root {} needs --lib: the library's path inside it", root.display()) };
    let inside = lib.strip_prefix("/").map_err(|_| anyhow::anyhow!("--lib {} must be absolute", lib.display()))?;
    if !root.join(inside).is_file() {
        bail!("--lib {}: no such file under {}", lib.display(), root.display());
    }
    Ok(lib.to_path_buf())
}

/// A library in /etc/ld.so.preload is loaded by every process: make sure it
/// loads without a word before putting it there.
fn loads_cleanly(lib: &Path) -> anyhow::Result<()> {
    // This very binary: it exists wherever daxguard runs (/bin/true need not, in a minimal image).
    let exe = std::env::current_exe().context("cannot find the daxguard binary to try the library")?;
    let out = std::process::Command::new(&exe)
        .arg("--version")
        .env("LD_PRELOAD", lib)
        .output()
        .with_context(|| format!("cannot run {} to try the library", exe.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !err.trim().is_empty() {
        bail!("{} does not load cleanly ({}): {}", lib.display(), out.status, err.trim());
    }
    Ok(())
}

fn done(command: &'static str, text: String, changes: Vec<Change>, json_out: bool) -> anyhow::Result<Done> {
    let stdout = if json_out { json(&Changes { schema: SCHEMA, command, changes })? } else { text };
    Ok(Done::new(stdout, EXIT_OK))
}

pub fn enable(a: &EnableArgs, json_out: bool) -> anyhow::Result<Done> {
    let lib = library(&a.root, a.lib.as_deref())?;
    let mut text = String::new();
    let change = if let Some(name) = &a.unit {
        let unit = activate::unit_name(name)?;
        let path = activate::enable_unit(&a.root, &unit, &lib, a.mode)?;
        let mode = a.mode.map(|m| format!(" and DAXGUARD_MODE={}", m.name())).unwrap_or_default();
        let _ = writeln!(text, "wrote {}: {unit} runs with LD_PRELOAD={}{mode}", path.display(), lib.display());
        let _ = writeln!(text, "next: systemctl daemon-reload && systemctl restart {unit}");
        Change {
            scope: "unit",
            unit: Some(unit),
            path: path.display().to_string(),
            lib: Some(lib.display().to_string()),
            changed: true,
        }
    } else {
        if a.root == Path::new("/") {
            loads_cleanly(&lib)?;
        }
        eprintln!(
            "daxguard: warning: /etc/ld.so.preload applies to every process on this host, setuid programs \
             included (with the default settings: they ignore the environment); `daxguard disable --host` undoes it"
        );
        let path = a.root.join("etc/ld.so.preload");
        let changed = activate::enable_host(&a.root, &lib)? == HostEnabled::Added;
        let _ = if changed {
            writeln!(text, "added {} to {}: every process started from now on loads it", lib.display(), path.display())
        } else {
            writeln!(text, "{} is in {} already", lib.display(), path.display())
        };
        Change {
            scope: "host",
            unit: None,
            path: path.display().to_string(),
            lib: Some(lib.display().to_string()),
            changed,
        }
    };
    done("enable", text, vec![change], json_out)
}

pub fn disable(a: &DisableArgs, json_out: bool) -> anyhow::Result<Done> {
    let mut text = String::new();
    let mut changes = Vec::new();
    let mut units: Vec<String> = Vec::new();
    if let Some(name) = &a.unit {
        units.push(activate::unit_name(name)?);
    }
    if a.all {
        units.extend(activate::enabled_units(&a.root)?);
    }
    for unit in units {
        let removed = activate::disable_unit(&a.root, &unit)?;
        let path = activate::dropin_path(&a.root, &unit);
        let _ = match &removed {
            Some(p) => {
                writeln!(text, "removed {}\nnext: systemctl daemon-reload && systemctl restart {unit}", p.display())
            }
            None => writeln!(text, "{unit} has no daxguard drop-in ({})", path.display()),
        };
        changes.push(Change {
            scope: "unit",
            unit: Some(unit),
            path: path.display().to_string(),
            lib: None,
            changed: removed.is_some(),
        });
    }
    if a.host || a.all {
        // Without enable's record, the line to take out is the library `run` would use.
        let fallback = if a.root == Path::new("/") { find_shim(None).ok().map(|s| s.path) } else { None };
        let path = a.root.join("etc/ld.so.preload");
        let removed = activate::disable_host(&a.root, fallback.as_deref())?;
        let _ = match &removed {
            Some(lib) => writeln!(text, "removed {} from {}", lib.display(), path.display()),
            None => writeln!(text, "{} has no daxguard line", path.display()),
        };
        changes.push(Change {
            scope: "host",
            unit: None,
            path: path.display().to_string(),
            lib: removed.as_ref().map(|l| l.display().to_string()),
            changed: removed.is_some(),
        });
    }
    done("disable", text, changes, json_out)
}
