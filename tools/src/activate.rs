//! `daxguard enable` and `disable`: the preload for one systemd service (a
//! drop-in), or for every process of the host (`/etc/ld.so.preload`), and
//! off again. Every path is taken under a root directory (`--root`, default
//! `/`), so images, chroots and the tests use the same code.
//!
//! `/etc/ld.so.preload` is left byte for byte as it was before `enable
//! --host`: `disable --host` takes out exactly the line daxguard appended,
//! the newline it had to add before it (a file not ending in one), and the
//! file itself if daxguard created it. What `enable` did is kept in
//! `/var/lib/daxguard/ld.so.preload`, so `disable` needs no guessing.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use daxguard::policy::Mode;

/// The first line of every drop-in daxguard writes; `disable` removes only such files.
const DROPIN_MARK: &str = "# Written by `daxguard enable --unit";
const DROPIN_FILE: &str = "daxguard.conf";
const UNIT_DIR: &str = "etc/systemd/system";
const PRELOAD: &str = "etc/ld.so.preload";
const STATE: &str = "var/lib/daxguard/ld.so.preload";

/// `nginx` -> `nginx.service`; a name with a unit suffix is kept. Refuses
/// what systemd would not take as a unit name (and anything with a `/`).
pub fn unit_name(name: &str) -> anyhow::Result<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c);
    if name.is_empty() || name.starts_with('.') || !name.chars().all(ok) || name.len() > 255 {
        bail!("'{name}' is not a systemd unit name");
    }
    const SUFFIXES: [&str; 4] = [".service", ".socket", ".mount", ".scope"];
    Ok(if SUFFIXES.iter().any(|s| name.ends_with(s)) { name.to_string() } else { format!("{name}.service") })
}

/// `<root>/etc/systemd/system/<unit>.d/daxguard.conf`.
pub fn dropin_path(root: &Path, unit: &str) -> PathBuf {
    root.join(UNIT_DIR).join(format!("{unit}.d")).join(DROPIN_FILE)
}

/// The drop-in: the preload and, if given, the mode. `Environment=` set here
/// replaces an `LD_PRELOAD` the unit sets itself (the later assignment wins).
pub fn dropin_text(unit: &str, lib: &Path, mode: Option<Mode>) -> String {
    let mut s = format!(
        "{DROPIN_MARK} {unit}`; `daxguard disable --unit {unit}` removes it.\n\
         [Service]\nEnvironment=LD_PRELOAD={}\n",
        lib.display()
    );
    if let Some(m) = mode {
        s.push_str(&format!("Environment=DAXGUARD_MODE={}\n", m.name()));
    }
    s
}

/// Writes the drop-in for `unit` (a name from [`unit_name`]). Replaces one
/// daxguard wrote before; refuses to overwrite anyone else's file.
pub fn enable_unit(root: &Path, unit: &str, lib: &Path, mode: Option<Mode>) -> anyhow::Result<PathBuf> {
    let path = dropin_path(root, unit);
    if let Some(old) = read_optional(&path)?
        && !old.starts_with(DROPIN_MARK.as_bytes())
    {
        bail!("{} exists and was not written by daxguard; not touching it", path.display());
    }
    let dir = path.parent().expect("a drop-in has a directory");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(&path, dropin_text(unit, lib, mode).as_bytes())?;
    Ok(path)
}

/// Removes the drop-in daxguard wrote for `unit`, and its directory if that
/// is empty then. `Ok(None)` if there was none.
pub fn disable_unit(root: &Path, unit: &str) -> anyhow::Result<Option<PathBuf>> {
    let path = dropin_path(root, unit);
    match read_optional(&path)? {
        None => Ok(None),
        Some(old) if !old.starts_with(DROPIN_MARK.as_bytes()) => {
            bail!("{} was not written by daxguard; not removing it", path.display())
        }
        Some(_) => {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            let _ = fs::remove_dir(path.parent().expect("a drop-in has a directory")); // only if empty
            Ok(Some(path))
        }
    }
}

/// Every unit with a drop-in daxguard wrote, sorted.
pub fn enabled_units(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join(UNIT_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut units = Vec::new();
    for e in entries {
        let name = e?.file_name();
        let Some(unit) = name.to_str().and_then(|n| n.strip_suffix(".d")) else { continue };
        if read_optional(&dropin_path(root, unit))?.is_some_and(|t| t.starts_with(DROPIN_MARK.as_bytes())) {
            units.push(unit.to_string());
        }
    }
    units.sort();
    Ok(units)
}

/// What `enable --host` found.
#[derive(Debug, PartialEq, Eq)]
pub enum HostEnabled {
    Added,
    AlreadyThere,
}

/// What `enable --host` did, for `disable --host` to undo exactly.
#[derive(Debug, Default, PartialEq, Eq)]
struct HostState {
    line: Vec<u8>,
    /// The file did not exist: remove it when nothing else is left in it.
    created: bool,
    /// The file did not end in a newline: one was added before the line.
    newline: bool,
}

impl HostState {
    fn render(&self) -> Vec<u8> {
        let mut s = b"line=".to_vec();
        s.extend_from_slice(&self.line);
        s.extend_from_slice(format!("\ncreated={}\nnewline={}\n", self.created as u8, self.newline as u8).as_bytes());
        s
    }

    fn parse(text: &[u8]) -> Option<HostState> {
        let mut st = HostState::default();
        for l in text.split(|&b| b == b'\n') {
            match l.iter().position(|&b| b == b'=').map(|i| (&l[..i], &l[i + 1..])) {
                Some((b"line", v)) => st.line = v.to_vec(),
                Some((b"created", v)) => st.created = v == b"1",
                Some((b"newline", v)) => st.newline = v == b"1",
                _ => {}
            }
        }
        (!st.line.is_empty()).then_some(st)
    }
}

/// The preload list's words: ld.so splits `/etc/ld.so.preload` at white space and colons.
fn preload_words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| b.is_ascii_whitespace() || *b == b':').filter(|w| !w.is_empty())
}

/// Appends `lib` to `<root>/etc/ld.so.preload` if it is not there. Refuses
/// when another libdaxguard.so is preloaded already (two copies would judge
/// every call twice).
pub fn enable_host(root: &Path, lib: &Path) -> anyhow::Result<HostEnabled> {
    let path = root.join(PRELOAD);
    let old = read_optional(&path)?;
    let text = old.as_deref().unwrap_or_default();
    let ours = lib.as_os_str().as_bytes();
    if preload_words(text).any(|w| w == ours) {
        return Ok(HostEnabled::AlreadyThere);
    }
    if let Some(other) = preload_words(text).find(|w| w.ends_with(b"/libdaxguard.so") || *w == b"libdaxguard.so") {
        bail!(
            "{} already preloads {}; remove that line first",
            path.display(),
            Path::new(OsStr::from_bytes(other)).display()
        );
    }
    let state =
        HostState { line: ours.to_vec(), created: old.is_none(), newline: !text.is_empty() && !text.ends_with(b"\n") };
    let mut new = text.to_vec();
    if state.newline {
        new.push(b'\n');
    }
    new.extend_from_slice(ours);
    new.push(b'\n');
    // The record first: a crash between the two leaves a record and no line,
    // which `disable` handles; the other order would leave a line it cannot undo exactly.
    let state_path = root.join(STATE);
    fs::create_dir_all(state_path.parent().expect("has a parent"))
        .with_context(|| format!("cannot create {}", state_path.parent().expect("has a parent").display()))?;
    write_atomic(&state_path, &state.render())?;
    write_atomic(&path, &new)?;
    Ok(HostEnabled::Added)
}

/// Takes out of `<root>/etc/ld.so.preload` the line `enable --host` appended
/// (or, with no record of it, the line that is exactly `fallback`), and what
/// `enable` added with it. Returns the line removed, `None` if there was none.
pub fn disable_host(root: &Path, fallback: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let path = root.join(PRELOAD);
    let state_path = root.join(STATE);
    let state = read_optional(&state_path)?.and_then(|t| HostState::parse(&t));
    let state = match (state, fallback) {
        (Some(s), _) => s,
        (None, Some(lib)) => HostState { line: lib.as_os_str().as_bytes().to_vec(), ..HostState::default() },
        (None, None) => return Ok(None),
    };
    let forget = || match fs::remove_file(&state_path) {
        Ok(()) => {
            let _ = fs::remove_dir(state_path.parent().expect("has a parent")); // only if empty
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", state_path.display())),
    };
    let Some(text) = read_optional(&path)? else {
        forget()?;
        return Ok(None);
    };
    // Lines with their terminators; ours is the one that is exactly the path.
    let mut lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let Some(i) = lines.iter().position(|l| l.strip_suffix(b"\n").unwrap_or(l) == state.line.as_slice()) else {
        forget()?;
        return Ok(None);
    };
    let last = i + 1 == lines.len();
    lines.remove(i);
    let mut new = lines.concat();
    if state.newline && last && new.ends_with(b"\n") {
        new.pop();
    }
    if state.created && new.is_empty() {
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    } else {
        write_atomic(&path, &new)?;
    }
    forget()?;
    Ok(Some(PathBuf::from(OsStr::from_bytes(&state.line))))
}

fn read_optional(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replaces `path` whole ([`crate::atomic::write_atomic`]), so no reader
/// (ld.so in every new process) ever sees half a file. Keeps an existing
/// file's mode; new files are 0644.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::atomic::write_atomic(path, bytes, crate::atomic::mode_of(path, 0o644))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    const LIB: &str = "/usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so";

    fn preload(root: &Path) -> Option<Vec<u8>> {
        fs::read(root.join(PRELOAD)).ok()
    }

    /// enable then disable leaves `before` (None: no file) exactly as it was.
    fn round_trip(before: Option<&[u8]>) {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        if let Some(b) = before {
            fs::write(root.path().join(PRELOAD), b).unwrap();
        }
        assert_eq!(enable_host(root.path(), Path::new(LIB)).unwrap(), HostEnabled::Added);
        let during = preload(root.path()).unwrap();
        assert!(during.ends_with(format!("{LIB}\n").as_bytes()), "{during:?}");
        assert_eq!(preload_words(&during).filter(|w| *w == LIB.as_bytes()).count(), 1);
        assert_eq!(enable_host(root.path(), Path::new(LIB)).unwrap(), HostEnabled::AlreadyThere);
        assert_eq!(preload(root.path()).unwrap(), during, "a second enable changes nothing");
        assert_eq!(disable_host(root.path(), None).unwrap(), Some(PathBuf::from(LIB)));
        assert_eq!(preload(root.path()).as_deref(), before, "byte for byte as before");
        assert!(!root.path().join("var/lib/daxguard").exists(), "the record goes too");
        assert_eq!(disable_host(root.path(), None).unwrap(), None, "nothing left to disable");
    }

    #[test]
    fn host_round_trips_leave_the_file_as_it_was() {
        round_trip(None);
        round_trip(Some(b""));
        round_trip(Some(b"/usr/lib/libother.so\n"));
        round_trip(Some(b"/usr/lib/libother.so")); // no final newline
        round_trip(Some(b"# comment\n/lib/a.so /lib/b.so\n\n"));
    }

    #[test]
    fn host_disable_keeps_lines_added_after_enable() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join(PRELOAD), b"/lib/a.so").unwrap();
        enable_host(root.path(), Path::new(LIB)).unwrap();
        let mut f = fs::OpenOptions::new().append(true).open(root.path().join(PRELOAD)).unwrap();
        f.write_all(b"/lib/z.so\n").unwrap();
        disable_host(root.path(), None).unwrap();
        assert_eq!(preload(root.path()).unwrap(), b"/lib/a.so\n/lib/z.so\n");
    }

    #[test]
    fn host_refuses_a_second_copy_and_keeps_the_mode() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        let p = root.path().join(PRELOAD);
        fs::write(&p, b"/usr/local/lib/libdaxguard.so\n").unwrap();
        let e = enable_host(root.path(), Path::new(LIB)).unwrap_err();
        assert!(format!("{e:#}").contains("already preloads /usr/local/lib/libdaxguard.so"), "{e:#}");
        fs::write(&p, b"/lib/a.so\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        enable_host(root.path(), Path::new(LIB)).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn host_disable_without_a_record_takes_out_the_exact_line() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join(PRELOAD), format!("/lib/a.so\n{LIB}\n/lib/b.so\n")).unwrap();
        assert_eq!(disable_host(root.path(), None).unwrap(), None, "no record, no fallback: nothing");
        assert_eq!(disable_host(root.path(), Some(Path::new(LIB))).unwrap(), Some(PathBuf::from(LIB)));
        assert_eq!(preload(root.path()).unwrap(), b"/lib/a.so\n/lib/b.so\n");
    }

    #[test]
    fn unit_dropins() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(unit_name("nginx").unwrap(), "nginx.service");
        assert_eq!(unit_name("app@1.service").unwrap(), "app@1.service");
        for bad in ["", "../etc", "a/b", ".hidden", "a b"] {
            assert!(unit_name(bad).is_err(), "{bad:?}");
        }
        let p = enable_unit(root.path(), "db.service", Path::new(LIB), Some(Mode::Warn)).unwrap();
        assert_eq!(p, root.path().join("etc/systemd/system/db.service.d/daxguard.conf"));
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains(&format!("\n[Service]\nEnvironment=LD_PRELOAD={LIB}\nEnvironment=DAXGUARD_MODE=warn\n")));
        // Again without a mode: replaced, not appended to.
        enable_unit(root.path(), "db.service", Path::new(LIB), None).unwrap();
        assert!(!fs::read_to_string(&p).unwrap().contains("DAXGUARD_MODE"));
        assert_eq!(enabled_units(root.path()).unwrap(), ["db.service"]);
        assert_eq!(disable_unit(root.path(), "db.service").unwrap(), Some(p.clone()));
        assert!(!p.parent().unwrap().exists(), "the empty .d directory goes too");
        assert_eq!(disable_unit(root.path(), "db.service").unwrap(), None);
        assert!(enabled_units(root.path()).unwrap().is_empty());
    }

    #[test]
    fn unit_files_of_others_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let p = dropin_path(root.path(), "db.service");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "[Service]\nEnvironment=X=1\n").unwrap();
        fs::write(p.with_file_name("other.conf"), "[Service]\n").unwrap();
        assert!(enable_unit(root.path(), "db.service", Path::new(LIB), None).is_err());
        assert!(disable_unit(root.path(), "db.service").is_err());
        assert!(enabled_units(root.path()).unwrap().is_empty());
        assert_eq!(fs::read_to_string(&p).unwrap(), "[Service]\nEnvironment=X=1\n");
    }
}
