//! What the package installs beside the binary, and activation, from the
//! outside: the generated man pages render without a warning, the bash
//! completion loads, and `enable`/`disable` against a temporary root leave
//! the files as they were.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::daxguard;

#[test]
fn man_pages_render_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let r = daxguard(&["generate", "man", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let mut pages: Vec<String> =
        fs::read_dir(dir.path().join("man")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    pages.sort();
    for want in
        ["daxguard.1", "daxguard.7", "daxguard-run.1", "daxguard-doctor.1", "daxguard-enable.1", "daxguard-disable.1"]
    {
        assert!(pages.iter().any(|p| p == want), "{want} missing from {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("generate") || p.contains("help")), "{pages:?}");
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(dir.path().join("man").join(page))
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man (man-db) is installed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "man {page}: {stderr}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NAME") && text.contains("SEE ALSO"), "{page}: {text}");
    }
}

#[test]
fn completions_load_in_bash() {
    let dir = tempfile::tempdir().unwrap();
    let r = daxguard(&["generate", "completions", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for f in ["daxguard.bash", "_daxguard", "daxguard.fish"] {
        assert!(dir.path().join("completions").join(f).is_file(), "{f}");
    }
    let script = format!(
        "source {}/completions/daxguard.bash && complete -p daxguard && \
         COMP_WORDS=(daxguard en) COMP_CWORD=1 && _daxguard daxguard en daxguard && echo \"${{COMPREPLY[@]}}\"",
        dir.path().display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("-F _daxguard daxguard"), "{stdout}");
    assert!(stdout.lines().last().unwrap().split(' ').any(|w| w == "enable"), "{stdout}");
}

const LIB: &str = "/usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so";

fn root_with_lib() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let lib = root.path().join(LIB.trim_start_matches('/'));
    fs::create_dir_all(lib.parent().unwrap()).unwrap();
    fs::write(&lib, b"\x7fELF").unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    root
}

/// `daxguard VERB --root ROOT REST...`.
fn run(root: &Path, args: &[&str]) -> common::Ran {
    let mut all = vec![args[0], "--root", root.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    daxguard(&all)
}

#[test]
fn enable_and_disable_host_under_a_root() {
    let root = root_with_lib();
    let preload = root.path().join("etc/ld.so.preload");
    let before = b"/usr/lib/libother.so"; // no final newline
    fs::write(&preload, before).unwrap();

    let r = run(root.path(), &["enable", "--host", "--lib", LIB]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("applies to every process"), "the warning: {}", r.stderr);
    assert_eq!(fs::read(&preload).unwrap(), format!("/usr/lib/libother.so\n{LIB}\n").as_bytes());
    let r = run(root.path(), &["enable", "--host", "--lib", LIB]);
    assert!(r.stdout.contains("already"), "{}", r.stdout);

    let r = run(root.path(), &["disable", "--host"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(fs::read(&preload).unwrap(), before, "byte for byte");

    // A file daxguard created goes when its line goes.
    fs::remove_file(&preload).unwrap();
    run(root.path(), &["enable", "--host", "--lib", LIB]);
    assert_eq!(fs::read_to_string(&preload).unwrap(), format!("{LIB}\n"));
    run(root.path(), &["disable", "--all"]);
    assert!(!preload.exists());
}

#[test]
fn enable_and_disable_units_under_a_root() {
    let root = root_with_lib();
    let r = run(root.path(), &["enable", "--unit", "db", "--mode", "warn", "--lib", LIB]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("systemctl daemon-reload && systemctl restart db.service"), "{}", r.stdout);
    let dropin = root.path().join("etc/systemd/system/db.service.d/daxguard.conf");
    let text = fs::read_to_string(&dropin).unwrap();
    assert!(
        text.contains(&format!("[Service]\nEnvironment=LD_PRELOAD={LIB}\nEnvironment=DAXGUARD_MODE=warn\n")),
        "{text}"
    );
    run(root.path(), &["enable", "--unit", "web.service", "--lib", LIB]);

    let (v, code) = common::daxguard_json(&["disable", "--root", root.path().to_str().unwrap(), "--all"]);
    assert_eq!(code, Some(0));
    let changed: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["changed"] == true)
        .map(|c| c["unit"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["db.service", "web.service"], "{v}");
    assert!(!root.path().join("etc/systemd/system/db.service.d").exists());
    assert!(!root.path().join("etc/ld.so.preload").exists(), "--all does not create the preload file");
}

#[test]
fn enable_refuses_what_it_cannot_do() {
    let root = root_with_lib();
    let r = run(root.path(), &["enable", "--host"]);
    common::assert_one_line_error(&r, "needs --lib");
    let r = run(root.path(), &["enable", "--host", "--lib", "/nowhere/libdaxguard.so"]);
    common::assert_one_line_error(&r, "no such file under");
    let r = run(root.path(), &["enable", "--host", "--mode", "warn", "--lib", LIB]);
    common::assert_one_line_error(&r, "cannot be used with");
    let r = run(root.path(), &["enable", "--unit", "../x", "--lib", LIB]);
    common::assert_one_line_error(&r, "not a systemd unit name");
    let r = daxguard(&["enable"]);
    common::assert_one_line_error(&r, "--unit");
}
