//! Replacing a file whole, so no reader ever sees half of it: `ld.so` reading
//! `/etc/ld.so.preload` in every new process, systemd reading a drop-in,
//! node_exporter scraping a textfile. One helper for all of them.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a temporary file beside it (the same
/// directory, so the rename is atomic; named `NAME.tmp.PID`, which neither
/// a `*.prom` nor a `*.conf` glob takes), with exactly `mode` (no umask),
/// `fsync`ed, renamed over `path`, and the directory `fsync`ed so the
/// rename survives a crash. On failure `path` is as it was and no temporary
/// file is left. The error does not name the path: callers add it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let write = || -> io::Result<()> {
        // A leftover of a crashed run with our pid is ours to replace; O_EXCL
        // (create_new) then never follows a symlink planted at the name.
        let _ = fs::remove_file(&tmp);
        let mut f =
            fs::OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_CLOEXEC).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is in the directory: make it durable too (best effort:
        // some filesystems refuse fsync on a directory).
        let _ = fs::File::open(&dir).and_then(|d| d.sync_all());
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The mode a replacement of `path` keeps: the existing file's, else `default`.
pub fn mode_of(path: &Path, default: u32) -> u32 {
    fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daxguard.prom");
        write_atomic(&p, b"a 1\n", 0o644).unwrap();
        write_atomic(&p, b"a 2\n", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "a 2\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(mode_of(&p, 0o644), 0o600, "an existing file's mode");
        assert_eq!(mode_of(&dir.path().join("none"), 0o644), 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        assert!(write_atomic(&dir.path().join("no/such/dir.prom"), b"x", 0o644).is_err());
        // A symlink planted at the temporary name is replaced, not followed.
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("daxguard.prom.tmp.{}", std::process::id())))
            .unwrap();
        write_atomic(&p, b"a 3\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&p).unwrap(), "a 3\n");
    }

    #[test]
    fn the_mode_is_exact_whatever_the_umask() {
        // Any umask but 0 would take a bit of 0666 away from a plain create.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"x", 0o666).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o666);
    }
}
