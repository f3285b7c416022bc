//! `/proc/PID/mountinfo`: `MountTable::parse`, `Mount::dax_option`, `MountTable::best_for`,
//! `mountinfo::unescape`.
//!
//! Invariants: never panics; at most one mount per line; `best_for` on a
//! mount's own device always answers with a mount of that device; `unescape`
//! undoes the kernel's `mangle()` exactly and never grows its input; a line
//! printed the way `show_mountinfo()` prints it parses back to its fields.
#![no_main]

use daxguard::mountinfo::{MountTable, parse_line, unescape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t = MountTable::parse(data);
    assert!(t.mounts.len() <= data.split(|&b| b == b'\n').count());
    for m in &t.mounts {
        let _ = m.dax_option();
        for path in [&m.mount_point[..], &m.root, b"/", b""] {
            let best = t.best_for(m.dev, path).expect("a mount of this device exists");
            assert_eq!(best.dev, m.dev);
        }
    }

    assert!(unescape(data).len() <= data.len());
    assert_eq!(unescape(&mangle(data)), data, "mangle then unescape is the identity");
    round_trip_line(data);
});

/// `mangle()` in fs/proc_namespace.c: `seq_escape(m, s, " \t\n\\#")`, each such byte as `\ooo`.
fn mangle(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        if b" \t\n\\#".contains(&b) {
            out.extend_from_slice(format!("\\{b:03o}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// Fields taken from the input (NUL-separated), mangled into a well-formed
/// line with optional fields, must come back unchanged.
fn round_trip_line(data: &[u8]) {
    let mut parts = data.splitn(4, |&b| b == 0);
    let (Some(root), Some(mp), Some(fstype), Some(source)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    // The kernel never prints an empty field, and a space-split parser cannot see one.
    if [root, mp, fstype, source].iter().any(|f| f.is_empty()) {
        return;
    }
    let mut line = b"36 35 98:0 ".to_vec();
    for f in [root, mp] {
        line.extend_from_slice(&mangle(f));
        line.push(b' ');
    }
    line.extend_from_slice(b"rw,noatime shared:1 master:2 propagate_from:3 - ");
    for f in [fstype, source] {
        line.extend_from_slice(&mangle(f));
        line.push(b' ');
    }
    line.extend_from_slice(b"rw,dax=always");
    let m =
        parse_line(&line).unwrap_or_else(|| panic!("well-formed line rejected: {:?}", String::from_utf8_lossy(&line)));
    assert_eq!((m.id, m.parent, m.dev.major, m.dev.minor), (36, 35, 98, 0));
    assert_eq!((&m.root[..], &m.mount_point[..], &m.source[..]), (root, mp, source));
    assert_eq!(m.fstype, String::from_utf8_lossy(fstype));
    assert_eq!((m.options.as_str(), m.super_options.as_str()), ("rw,noatime", "rw,dax=always"));
}
