//! Another process, through `/proc/PID`: classify a range of it, name it,
//! and turn a failed open into one clear line (gone, a zombie, not ours).

use anyhow::bail;
use daxguard::{Options, Report, Target, classify_with};

use crate::output::{errno_text, hex};

/// Classifies a range of another process, with a clear error when the
/// process is gone or not ours to read.
pub fn classify_pid(pid: i32, addr: u64, len: u64) -> anyhow::Result<Report> {
    ensure_alive(pid)?;
    let opts = Options { target: Some(Target::Pid(pid)), ..Options::default() };
    classify_with(addr, len, opts).map_err(|e| match e {
        daxguard::Error::InvalidRange { .. } => anyhow::anyhow!("{} + {len} overflows the address space", hex(addr)),
        daxguard::Error::ProcOpen { errno, .. } => proc_error(pid, errno.raw()),
        other => anyhow::anyhow!("cannot read the mappings of process {pid}: {other}"),
    })
}

/// The one-line message for a failed open of `/proc/PID/...`.
pub fn proc_error(pid: i32, errno: i32) -> anyhow::Error {
    match errno {
        libc::ESRCH | libc::ENOENT => anyhow::anyhow!("process {pid} does not exist (it may have exited)"),
        libc::EACCES | libc::EPERM => {
            anyhow::anyhow!("cannot read /proc/{pid}/maps: permission denied (run as the process's owner, or as root)")
        }
        e => anyhow::anyhow!("cannot read /proc/{pid}/maps: {}", errno_text(e)),
    }
}

/// A zombie still has a /proc entry but no memory: say so instead of
/// reporting its whole range as unmapped.
fn ensure_alive(pid: i32) -> anyhow::Result<()> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) => return Err(proc_error(pid, e.raw_os_error().unwrap_or(libc::ENOENT))),
    };
    // The state follows the last ')' (the command name may contain anything).
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    if state == Some("Z") || state == Some("X") {
        bail!("process {pid} has exited (a zombie its parent has not reaped yet)");
    }
    Ok(())
}

/// ` (name)` from /proc/PID/comm, or nothing.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| format!(" ({})", c.trim_end())).unwrap_or_default()
}
