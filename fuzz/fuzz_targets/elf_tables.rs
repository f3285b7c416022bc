//! `intercept::elf`: the walk over a loaded object's dynamic section, symbol,
//! hash (GNU and System V) and version tables by which the `dlsym` wrapper
//! finds glibc's own `dlsym` without calling it.
//!
//! The input: the dynamic section's offset (u16, little-endian), a name
//! selector (one byte), then the object's image, which is placed in an
//! 8-byte-aligned heap buffer "loaded" at its own address: table addresses
//! below the buffer's address are offsets from it, as glibc treats
//! unrelocated dynamic entries.
//! Invariants: never panics; no read outside the buffer (AddressSanitizer:
//! the buffer is its own heap allocation); a symbol found comes from the
//! image: its name, and its version name when it has one, stand
//! NUL-terminated in the buffer, and the version is at most 4096 bytes.
#![no_main]

use std::ffi::CStr;

use daxguard::intercept::lookup_in_buffer;
use libfuzzer_sys::fuzz_target;

const NAMES: [&CStr; 4] = [c"dlsym", c"dlvsym", c"ibv_reg_mr", c"x"];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let dynamic = u16::from_le_bytes([data[0], data[1]]) as usize;
    let name = NAMES[data[2] as usize % NAMES.len()];
    let bytes = &data[3..];
    let mut image = vec![0u64; bytes.len().div_ceil(8)];
    for (w, c) in image.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        *w = u64::from_ne_bytes(b);
    }
    let Some((_addr, version)) = lookup_in_buffer(&image, dynamic, name) else { return };
    // The buffer as the walk saw it: the input, zero-padded to whole words.
    let seen: Vec<u8> = image.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let holds = |s: &[u8]| {
        let mut needle = s.to_vec();
        needle.push(0);
        seen.windows(needle.len()).any(|w| w == needle.as_slice())
    };
    assert!(holds(name.to_bytes()), "found {name:?}, whose name the image does not hold");
    if let Some(v) = version {
        assert!(v.len() <= 4096, "a version name of {} bytes", v.len());
        assert!(holds(&v), "a version name the image does not hold: {v:?}");
    }
});
