//! Finding libdaxguard.so (the shim), for `run` to preload and `doctor` to report.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::output::errno_text;

/// Where the shim was found, and which rule found it.
pub struct Shim {
    pub path: PathBuf,
    pub how: &'static str,
}

/// Debian's multiarch tuple of this build (`x86_64-linux-gnu`), from build.rs.
pub const MULTIARCH: &str = env!("DAXGUARD_MULTIARCH");

/// Where the Debian package puts the library: a private directory of the
/// multiarch libdir, off the loader's search path (like faketime's and
/// rdma-core's rsocket preloads), relative to the install prefix.
pub fn private_dir() -> PathBuf {
    PathBuf::from(format!("lib/{MULTIARCH}/daxguard"))
}

/// The places searched after --lib and $DAXGUARD_LIB, in order.
pub fn search_path() -> Vec<(PathBuf, &'static str)> {
    let mut v = Vec::new();
    // current_exe resolves symlinks: a /usr/local/bin link finds the real install.
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        v.push((dir.join("libdaxguard.so"), "beside the daxguard binary"));
        v.push((dir.join("..").join(private_dir()).join("libdaxguard.so"), "in the install's private lib directory"));
        v.push((dir.join("../lib/libdaxguard.so"), "in the install's lib directory"));
    }
    v.push((PathBuf::from("/usr/local/lib/libdaxguard.so"), "in /usr/local/lib"));
    v.push((Path::new("/usr").join(private_dir()).join("libdaxguard.so"), "in the package's private directory"));
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
    let mut f = std::fs::File::open(p).map_err(|e| anyhow::anyhow!("{}", errno_text(e.raw_os_error().unwrap_or(0))))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_directory_is_searched() {
        if cfg!(all(target_arch = "x86_64", target_env = "gnu")) && std::env::var_os("DEB_HOST_MULTIARCH").is_none() {
            assert_eq!(MULTIARCH, "x86_64-linux-gnu");
        }
        let want = PathBuf::from(format!("/usr/lib/{MULTIARCH}/daxguard/libdaxguard.so"));
        let paths: Vec<PathBuf> = search_path().into_iter().map(|(p, _)| p).collect();
        assert!(paths.contains(&want), "{paths:?}");
        // /usr/bin/daxguard finds the package's copy through <exe dir>/../lib/<tuple>/daxguard.
        let rel = Path::new("/usr/bin/..").join(private_dir()).join("libdaxguard.so");
        assert_eq!(rel, Path::new(&format!("/usr/bin/../lib/{MULTIARCH}/daxguard/libdaxguard.so")));
    }
}
