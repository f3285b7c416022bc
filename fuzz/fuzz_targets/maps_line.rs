//! `/proc/PID/maps` lines: `maps::parse_line`, `MapsLine::to_vma`, `maps::unescape_into`.
//!
//! Invariants: never panics; a parsed line has start <= end and its name is a
//! suffix of the input; the name in the VMA is the unescaped name, cut to the
//! buffer, and nothing past the buffer is touched; printing a parsed line the
//! way the kernel does and parsing it again gives the same line.
#![no_main]

use daxguard::maps::{MapsLine, parse_line, unescape_into};
use libfuzzer_sys::fuzz_target;

/// Buffer sizes for the VMA name: none, tiny, odd, and the shim's own `NAME_MAX`.
const CAPS: [usize; 5] = [0, 1, 3, 64, 4096 + 16];
const SENTINEL: u8 = 0xa5;

fuzz_target!(|data: &[u8]| {
    check_unescape(data);
    let Some(l) = parse_line(data) else { return };
    assert!(l.start <= l.end, "{l:?}");
    assert!(data.ends_with(l.name), "the name is the tail of the line");
    assert!(l.name.first() != Some(&b' '), "padding is not part of the name");
    let full = reference_unescape(l.name);
    for cap in CAPS {
        let mut buf = vec![SENTINEL; cap];
        let v = l.to_vma(&mut buf);
        assert_eq!(v.name, &full[..cap.min(full.len())]);
        assert_eq!((v.start, v.end, v.dev, v.inode), (l.start, l.end, l.dev, l.inode));
        assert_eq!((v.readable, v.writable, v.executable, v.shared), (l.readable, l.writable, l.executable, l.shared));
    }
    let again = render(&l);
    assert_eq!(parse_line(&again), Some(l), "re-rendered: {:?}", String::from_utf8_lossy(&again));
});

/// `unescape_into` on the raw bytes, into a window of a larger buffer: the
/// bytes around the window must keep their sentinel value.
fn check_unescape(data: &[u8]) {
    let full = reference_unescape(data);
    for cap in CAPS {
        let mut buf = vec![SENTINEL; cap + 16];
        let n = unescape_into(data, &mut buf[8..8 + cap]);
        assert!(n <= cap);
        assert_eq!(&buf[8..8 + n], &full[..n]);
        assert_eq!(n, cap.min(full.len()), "stops only when the buffer or the input ends");
        assert!(buf[..8].iter().chain(&buf[8 + cap..]).all(|&b| b == SENTINEL), "wrote outside the window");
    }
}

/// The one escape maps applies, undone by a different method: split on `\012`.
fn reference_unescape(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = name;
    while let Some(i) = rest.windows(4).position(|w| w == b"\\012") {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\n');
        rest = &rest[i + 4..];
    }
    out.extend_from_slice(rest);
    out
}

/// The line as `show_map_vma()` prints it (name already escaped).
fn render(l: &MapsLine<'_>) -> Vec<u8> {
    let flag = |on: bool, c: char| if on { c } else { '-' };
    let perms =
        [flag(l.readable, 'r'), flag(l.writable, 'w'), flag(l.executable, 'x'), if l.shared { 's' } else { 'p' }];
    let perms: String = perms.iter().collect();
    let head = format!(
        "{:08x}-{:08x} {perms} {:08x} {:02x}:{:02x} {:<26}",
        l.start, l.end, l.offset, l.dev.major, l.dev.minor, l.inode
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(l.name);
    out
}
