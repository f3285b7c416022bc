//! `dl_iterate_phdr` + the dynamic symbol table - a symbol's default-version
//! address in one loaded library, found without `dlsym`.
//!
//! daxguard wraps `dlsym` and `dlvsym` ([`super::dlsym`]), so it cannot ask
//! them where the real ones are; glibc 2.34 also dropped `__libc_dlsym`. The
//! dynamic linker keeps everything needed in memory: `dl_iterate_phdr(3)`
//! names each loaded object and its program headers, `PT_DYNAMIC` leads to
//! the symbol table (`DT_SYMTAB`, `DT_STRTAB`, `DT_STRSZ`), its hash table
//! (`DT_GNU_HASH`, else `DT_HASH`) and the version tables (`DT_VERSYM`,
//! `DT_VERDEF`). A name may be defined once per version (glibc's `dlsym`
//! is `dlsym@@GLIBC_2.34` and `dlsym@GLIBC_2.2.5`); the default one is the
//! definition whose `DT_VERSYM` entry lacks the hidden bit, as `ld.so`
//! picks it for an unversioned reference.
//!
//! Every address read is first checked to lie, whole and aligned, inside one
//! of the object's `PT_LOAD` segments; counts and string offsets are checked
//! against the table sizes, and hash chains are walked a bounded number of
//! steps. A table that does not add up is "not found", never a crash.
//! Nothing here allocates: it may run inside the first `dlsym` call of a
//! `malloc` replacement.
//!
//! # References
//! - [dl_iterate_phdr(3)](https://man7.org/linux/man-pages/man3/dl_iterate_phdr.3.html),
//!   [elf(5)](https://man7.org/linux/man-pages/man5/elf.5.html)
//! - System V gABI, "Dynamic Section" and "Hash Table"; the GNU hash table and
//!   symbol versioning as glibc's `elf/dl-lookup.c` and `elf/dl-version.c`
//!   read them
//!
//! # Safety
//! - Memory is read only at addresses checked against the object's `PT_LOAD`
//!   segments, as `dl_iterate_phdr` reported them, for the size and alignment
//!   of the type read.
//! - The reads happen inside the `dl_iterate_phdr` callback, while glibc holds
//!   the lock that keeps objects from being unloaded.
//! - An address returned is used after the walk: callers only ask for
//!   libraries that are never unloaded (libc, libdl, which the shim itself
//!   needs).
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::{align_of, size_of, size_of_val};
use std::panic::{AssertUnwindSafe, catch_unwind};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;

const DT_NULL: i64 = 0;
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_STRSZ: i64 = 10;
const DT_SYMENT: i64 = 11;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const DT_VERSYM: i64 = 0x6fff_fff0;
const DT_VERDEF: i64 = 0x6fff_fffc;
const DT_VERDEFNUM: i64 = 0x6fff_fffd;

const STT_FUNC: u8 = 2;
const SHN_UNDEF: u16 = 0;
/// `VERSYM_HIDDEN`: a non-default version (`name@VER`, not `name@@VER`).
const VERSYM_HIDDEN: u16 = 0x8000;
/// `VER_NDX_LOCAL`: not visible outside the object.
const VER_NDX_LOCAL: u16 = 0;
/// `VER_NDX_GLOBAL`: the unversioned base definition.
const VER_NDX_GLOBAL: u16 = 1;

/// At most this many steps along one hash chain or version list.
const MAX_STEPS: usize = 1 << 20;
/// At most this many program headers, dynamic entries and load segments.
const MAX_PHDRS: usize = 256;
const MAX_DYN: usize = 1024;
const MAX_LOADS: usize = 16;
/// Longest symbol or version name compared.
const MAX_NAME: usize = 4096;

/// `Elf64_Dyn`
#[repr(C)]
#[derive(Clone, Copy)]
struct Dyn {
    tag: i64,
    val: u64,
}

/// `Elf64_Sym`
#[repr(C)]
#[derive(Clone, Copy)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// `Elf64_Verdef`
#[repr(C)]
#[derive(Clone, Copy)]
struct Verdef {
    version: u16,
    flags: u16,
    ndx: u16,
    cnt: u16,
    hash: u32,
    aux: u32,
    next: u32,
}

/// `Elf64_Verdaux`
#[repr(C)]
#[derive(Clone, Copy)]
struct Verdaux {
    name: u32,
    next: u32,
}

/// A symbol found: its address and the version it is the default of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub addr: usize,
    /// `GLIBC_2.34`; `None` for an unversioned definition.
    pub version: Option<&'static CStr>,
}

/// The mapped image of one object: where its segments are, and its load bias.
pub(crate) struct Image {
    base: usize,
    loads: [(usize, usize); MAX_LOADS],
    nloads: usize,
}

impl Image {
    /// An image of `base` plus the `[start, end)` ranges given (tests build
    /// one over a buffer of their own).
    pub(crate) fn new(base: usize, ranges: &[(usize, usize)]) -> Image {
        let mut img = Image { base, loads: [(0, 0); MAX_LOADS], nloads: 0 };
        for &r in ranges.iter().take(MAX_LOADS) {
            img.loads[img.nloads] = r;
            img.nloads += 1;
        }
        img
    }

    /// Whether `[addr, addr + len)` lies inside one segment.
    fn contains(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        self.loads[..self.nloads].iter().any(|&(s, e)| s <= addr && end <= e)
    }

    /// The `index`th `T` of the array at `addr`, if it is inside the image.
    fn get<T: Copy>(&self, addr: usize, index: usize) -> Option<T> {
        let at = index.checked_mul(size_of::<T>()).and_then(|off| addr.checked_add(off))?;
        if at % align_of::<T>() != 0 || !self.contains(at, size_of::<T>()) {
            return None;
        }
        // SAFETY: inside a mapped segment of the image, aligned for T (module doc).
        Some(unsafe { std::ptr::read(at as *const T) })
    }

    /// A dynamic-section address: glibc relocates them on x86_64, some
    /// ports leave the link-time value, which the base turns into an address.
    fn ptr(&self, val: u64) -> usize {
        let v = val as usize;
        if v < self.base { self.base.wrapping_add(v) } else { v }
    }

    /// Whether the NUL-terminated string at `addr` equals `want`, reading at
    /// most up to `limit` (the end of the string table).
    fn str_eq(&self, addr: usize, limit: usize, want: &[u8]) -> bool {
        self.str_at(addr, limit).is_some_and(|s| s.to_bytes() == want)
    }

    /// The NUL-terminated string at `addr`, if it ends before `limit`.
    fn str_at(&self, addr: usize, limit: usize) -> Option<&'static CStr> {
        let max = limit.checked_sub(addr)?.min(MAX_NAME);
        if !self.contains(addr, max.min(1)) {
            return None;
        }
        for i in 0..max {
            // Checked one byte at a time: the string may end a segment.
            let b: u8 = self.get(addr, i)?;
            if b == 0 {
                // SAFETY: [addr, addr + i] is inside the image and ends with its NUL.
                return Some(unsafe { CStr::from_ptr(addr as *const c_char) });
            }
        }
        None
    }
}

/// The tables `PT_DYNAMIC` points at.
struct Tables {
    strtab: usize,
    strsz: usize,
    symtab: usize,
    gnu_hash: Option<usize>,
    hash: Option<usize>,
    versym: Option<usize>,
    verdef: Option<(usize, usize)>,
}

impl Tables {
    /// Reads up to `count` dynamic entries at `dynamic`.
    fn read(img: &Image, dynamic: usize, count: usize) -> Option<Tables> {
        let (mut strtab, mut strsz, mut symtab, mut syment) = (None, None, None, None);
        let mut t = Tables { strtab: 0, strsz: 0, symtab: 0, gnu_hash: None, hash: None, versym: None, verdef: None };
        let (mut verdef, mut verdefnum) = (None, None);
        for i in 0..count.min(MAX_DYN) {
            let d: Dyn = img.get(dynamic, i)?;
            match d.tag {
                DT_NULL => break,
                DT_STRTAB => strtab = Some(img.ptr(d.val)),
                DT_STRSZ => strsz = Some(d.val as usize),
                DT_SYMTAB => symtab = Some(img.ptr(d.val)),
                DT_SYMENT => syment = Some(d.val as usize),
                DT_GNU_HASH => t.gnu_hash = Some(img.ptr(d.val)),
                DT_HASH => t.hash = Some(img.ptr(d.val)),
                DT_VERSYM => t.versym = Some(img.ptr(d.val)),
                DT_VERDEF => verdef = Some(img.ptr(d.val)),
                DT_VERDEFNUM => verdefnum = Some(d.val as usize),
                _ => {}
            }
        }
        if syment.is_some_and(|s| s != size_of::<Sym>()) {
            return None;
        }
        t.strtab = strtab?;
        t.strsz = strsz?;
        t.symtab = symtab?;
        if !img.contains(t.strtab, t.strsz) {
            return None;
        }
        t.verdef = verdef.zip(verdefnum);
        Some(t)
    }

    /// Every symbol index the hash table lists for `name`, to `each` until it
    /// returns `Some`.
    fn candidates<R>(&self, img: &Image, name: &[u8], mut each: impl FnMut(usize) -> Option<R>) -> Option<R> {
        if let Some(gh) = self.gnu_hash {
            return gnu_hash_walk(img, gh, name, &mut each);
        }
        sysv_hash_walk(img, self.hash?, name, &mut each)
    }

    /// The version name of version index `ndx`, from `DT_VERDEF`.
    fn version_name(&self, img: &Image, ndx: u16) -> Option<&'static CStr> {
        let (mut at, num) = self.verdef?;
        for _ in 0..num.min(MAX_STEPS) {
            let vd: Verdef = img.get(at, 0)?;
            if vd.ndx == ndx {
                let aux: Verdaux = img.get(at.checked_add(vd.aux as usize)?, 0)?;
                return self.string(img, aux.name);
            }
            if vd.next == 0 {
                return None;
            }
            at = at.checked_add(vd.next as usize)?;
        }
        None
    }

    fn string(&self, img: &Image, off: u32) -> Option<&'static CStr> {
        if off as usize >= self.strsz {
            return None;
        }
        img.str_at(self.strtab.checked_add(off as usize)?, self.strtab + self.strsz)
    }

    /// The default-version function definition of `name`.
    fn lookup(&self, img: &Image, name: &[u8]) -> Option<Symbol> {
        let end = self.strtab + self.strsz;
        self.candidates(img, name, |i| {
            let s: Sym = img.get(self.symtab, i)?;
            if s.shndx == SHN_UNDEF || s.info & 0xf != STT_FUNC || s.value == 0 {
                return None;
            }
            if s.name as usize >= self.strsz || !img.str_eq(self.strtab + s.name as usize, end, name) {
                return None;
            }
            let Some(vs) = self.versym else {
                return Some(Symbol { addr: img.base.wrapping_add(s.value as usize), version: None });
            };
            let v: u16 = img.get(vs, i)?;
            let ndx = v & !VERSYM_HIDDEN;
            if v & VERSYM_HIDDEN != 0 || ndx == VER_NDX_LOCAL {
                return None; // name@VER, not the default
            }
            let version = if ndx == VER_NDX_GLOBAL { None } else { self.version_name(img, ndx) };
            Some(Symbol { addr: img.base.wrapping_add(s.value as usize), version })
        })
    }
}

/// `dl_new_hash()`: the GNU hash of a name.
fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// `_dl_elf_hash()`: the System V hash of a name.
fn sysv_hash(name: &[u8]) -> u32 {
    let mut h = 0u32;
    for &c in name {
        h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The GNU hash table: `nbuckets, symoffset, bloom_size, bloom_shift`,
/// `bloom[bloom_size]` (64-bit words), `buckets[nbuckets]`, then one chain
/// word per symbol from `symoffset` on, the last of a chain with bit 0 set.
fn gnu_hash_walk<R>(img: &Image, at: usize, name: &[u8], each: &mut impl FnMut(usize) -> Option<R>) -> Option<R> {
    let word = |i: usize| img.get::<u32>(at, i);
    let (nbuckets, symoffset, bloom_size) = (word(0)? as usize, word(1)? as usize, word(2)? as usize);
    if nbuckets == 0 {
        return None;
    }
    let buckets = at.checked_add(16)?.checked_add(bloom_size.checked_mul(8)?)?;
    let chains = buckets.checked_add(nbuckets.checked_mul(4)?)?;
    let h = gnu_hash(name);
    let first = img.get::<u32>(buckets, h as usize % nbuckets)? as usize;
    if first < symoffset {
        return None; // an empty bucket
    }
    for i in (first..).take(MAX_STEPS) {
        let ch: u32 = img.get(chains, i - symoffset)?;
        if ch | 1 == h | 1
            && let Some(r) = each(i)
        {
            return Some(r);
        }
        if ch & 1 != 0 {
            return None;
        }
    }
    None
}

/// The System V hash table: `nbucket, nchain, bucket[nbucket], chain[nchain]`,
/// chains ending at index 0.
fn sysv_hash_walk<R>(img: &Image, at: usize, name: &[u8], each: &mut impl FnMut(usize) -> Option<R>) -> Option<R> {
    let (nbucket, nchain) = (img.get::<u32>(at, 0)? as usize, img.get::<u32>(at, 1)? as usize);
    if nbucket == 0 {
        return None;
    }
    let chain = at.checked_add(8)?.checked_add(nbucket.checked_mul(4)?)?;
    let mut i = img.get::<u32>(at.checked_add(8)?, sysv_hash(name) as usize % nbucket)? as usize;
    for _ in 0..nchain.min(MAX_STEPS) {
        if i == 0 || i >= nchain {
            return None;
        }
        if let Some(r) = each(i) {
            return Some(r);
        }
        i = img.get::<u32>(chain, i)? as usize;
    }
    None
}

/// Looks `name` up in the object whose dynamic section is at `dynamic`
/// (`count` entries at most).
pub(crate) fn lookup_in(img: &Image, dynamic: usize, count: usize, name: &CStr) -> Option<Symbol> {
    Tables::read(img, dynamic, count)?.lookup(img, name.to_bytes())
}

/// Looks `name` up in an object image held in `image`, as if loaded at the
/// buffer's own address with the dynamic section `dynamic` bytes in: the
/// same walk [`find`] makes over a loaded library, over bytes a caller
/// chose (the `elf_tables` fuzz target). Returns the address found and its
/// version, copied out of the buffer.
#[doc(hidden)]
pub fn lookup_in_buffer(image: &[u64], dynamic: usize, name: &CStr) -> Option<(usize, Option<Vec<u8>>)> {
    let start = image.as_ptr() as usize;
    let img = Image::new(start, &[(start, start + size_of_val(image))]);
    let sym = lookup_in(&img, start.checked_add(dynamic)?, MAX_DYN, name)?;
    Some((sym.addr, sym.version.map(|v| v.to_bytes().to_vec())))
}

/// Which objects to search.
#[derive(Clone, Copy)]
pub enum Which<'a> {
    /// The first whose file name (last path component) is this.
    Named(&'a [u8]),
    /// Any object but the one containing this address (ourselves).
    NotContaining(usize),
}

struct Search<'a> {
    which: Which<'a>,
    name: &'a CStr,
    found: Option<Symbol>,
}

/// Finds the default-version function `name` in the loaded objects `which`
/// selects, in load order.
pub fn find(which: Which<'_>, name: &CStr) -> Option<Symbol> {
    let mut s = Search { which, name, found: None };
    // SAFETY: the callback matches dl_iterate_phdr's type and `s` outlives the walk.
    unsafe { libc::dl_iterate_phdr(Some(each_object), (&raw mut s).cast()) };
    s.found
}

unsafe extern "C" fn each_object(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
    // No unwinding into libc: a bug here is "not found in this object".
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: dl_iterate_phdr passes a valid info of `size` bytes and our `data`.
        let (info, s) = unsafe { (&*info, &mut *data.cast::<Search>()) };
        if size < std::mem::offset_of!(libc::dl_phdr_info, dlpi_phnum) + size_of::<u16>() {
            return 1; // an info this old has no program headers for us: stop
        }
        match object(info, s.which) {
            Some((img, dynamic, count)) => match lookup_in(&img, dynamic, count, s.name) {
                Some(sym) => {
                    s.found = Some(sym);
                    1
                }
                None => 0,
            },
            None => 0,
        }
    }))
    .unwrap_or(0)
}

/// The image and dynamic section of `info`, if `which` selects it.
fn object(info: &libc::dl_phdr_info, which: Which<'_>) -> Option<(Image, usize, usize)> {
    if info.dlpi_phdr.is_null() || info.dlpi_phnum as usize > MAX_PHDRS {
        return None;
    }
    // SAFETY: dl_iterate_phdr's program headers, dlpi_phnum of them.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let base = info.dlpi_addr as usize;
    let mut img = Image::new(base, &[]);
    let mut dynamic = None;
    for ph in phdrs {
        let start = base.wrapping_add(ph.p_vaddr as usize);
        match ph.p_type {
            PT_LOAD if img.nloads < MAX_LOADS => {
                img.loads[img.nloads] = (start, start.checked_add(ph.p_memsz as usize)?);
                img.nloads += 1;
            }
            PT_DYNAMIC => dynamic = Some((start, ph.p_memsz as usize / size_of::<Dyn>())),
            _ => {}
        }
    }
    match which {
        Which::Named(want) => {
            if info.dlpi_name.is_null() {
                return None;
            }
            // SAFETY: dlpi_name is a NUL-terminated string (possibly empty).
            let path = unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes();
            let file = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            if file != want {
                return None;
            }
        }
        Which::NotContaining(addr) => {
            if img.contains(addr, 1) {
                return None;
            }
        }
    }
    let (at, count) = dynamic?;
    Some((img, at, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libc_functions_at_their_real_address() {
        let getpid = find(Which::Named(b"libc.so.6"), c"getpid").expect("getpid in libc.so.6");
        assert_eq!(getpid.addr, libc::getpid as *const () as usize);
        assert_eq!(getpid.version, Some(c"GLIBC_2.2.5"));
        // dlsym: both dlsym@GLIBC_2.2.5 and dlsym@@GLIBC_2.34 (glibc 2.34+),
        // or only libdl's: the default is the one found.
        if let Some(d) = find(Which::Named(b"libc.so.6"), c"dlsym") {
            assert_eq!(d.version, Some(c"GLIBC_2.34"));
        }
        assert!(find(Which::Named(b"libc.so.6"), c"no_such_symbol_here").is_none());
        assert!(find(Which::Named(b"libnothing.so.9"), c"getpid").is_none());
    }

    #[test]
    fn hash_functions_match_known_values() {
        // Values from the GNU hash and ELF hash definitions.
        assert_eq!(gnu_hash(b""), 5381);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(sysv_hash(b"printf"), 0x0779_05a6);
    }

    /// A synthetic object in a buffer: `dlsym` defined twice (hidden
    /// `V_OLD`, default `V_NEW`), `other` unversioned, `undef` undefined.
    struct Fake {
        buf: Vec<u64>,
    }

    const STR: &[u8] = b"\0dlsym\0other\0undef\0V_OLD\0V_NEW\0";
    // offsets into STR
    const N_DLSYM: u32 = 1;
    const N_OTHER: u32 = 7;
    const N_UNDEF: u32 = 13;
    const N_OLD: u32 = 19;
    const N_NEW: u32 = 25;

    impl Fake {
        /// `gnu`: a GNU hash table, else System V. `corrupt` edits the
        /// finished bytes (dynamic section at offset 0) before use.
        fn build(gnu: bool, corrupt: impl Fn(&mut [u8], &Layout)) -> (Fake, Layout) {
            let mut bytes = vec![0u8; 4096];
            let l = Layout::new();
            bytes[l.strtab..l.strtab + STR.len()].copy_from_slice(STR);
            let syms = [
                Sym { name: 0, info: 0, other: 0, shndx: 0, value: 0, size: 0 },
                Sym { name: N_UNDEF, info: STT_FUNC, other: 0, shndx: SHN_UNDEF, value: 0, size: 0 },
                Sym { name: N_DLSYM, info: STT_FUNC, other: 0, shndx: 5, value: 0x100, size: 8 },
                Sym { name: N_DLSYM, info: STT_FUNC, other: 0, shndx: 5, value: 0x200, size: 8 },
                Sym { name: N_OTHER, info: STT_FUNC, other: 0, shndx: 5, value: 0x300, size: 8 },
            ];
            for (i, s) in syms.iter().enumerate() {
                let at = l.symtab + i * size_of::<Sym>();
                bytes[at..at + 4].copy_from_slice(&s.name.to_ne_bytes());
                bytes[at + 4] = s.info;
                bytes[at + 6..at + 8].copy_from_slice(&s.shndx.to_ne_bytes());
                bytes[at + 8..at + 16].copy_from_slice(&s.value.to_ne_bytes());
            }
            // versym: 0 local, 1 global(undef), 2|hidden (V_OLD), 3 (V_NEW), 1 global
            for (i, v) in [0u16, 1, 2 | VERSYM_HIDDEN, 3, 1].iter().enumerate() {
                let at = l.versym + 2 * i;
                bytes[at..at + 2].copy_from_slice(&v.to_ne_bytes());
            }
            // verdef: ndx 2 -> V_OLD, ndx 3 -> V_NEW (aux right after each)
            for (k, (ndx, name)) in [(2u16, N_OLD), (3u16, N_NEW)].iter().enumerate() {
                let at = l.verdef + k * 28;
                bytes[at + 4..at + 6].copy_from_slice(&ndx.to_ne_bytes());
                bytes[at + 12..at + 16].copy_from_slice(&20u32.to_ne_bytes()); // vd_aux
                let next: u32 = if k == 0 { 28 } else { 0 };
                bytes[at + 16..at + 20].copy_from_slice(&next.to_ne_bytes());
                bytes[at + 20..at + 24].copy_from_slice(&name.to_ne_bytes());
            }
            let put32 = |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
            if gnu {
                // one bucket, symoffset 2, no bloom words: chain for symbols 2..=4
                let h = gnu_hash(b"dlsym");
                put32(&mut bytes, l.hash, 1);
                put32(&mut bytes, l.hash + 4, 2);
                put32(&mut bytes, l.hash + 8, 0);
                put32(&mut bytes, l.hash + 16, 2); // bucket[0] = 2
                put32(&mut bytes, l.hash + 20, h & !1); // sym 2
                put32(&mut bytes, l.hash + 24, h & !1); // sym 3
                put32(&mut bytes, l.hash + 28, gnu_hash(b"other") | 1); // sym 4, end
            } else {
                // one bucket, chain 4 -> 3 -> 2 -> 1 -> 0
                put32(&mut bytes, l.hash, 1);
                put32(&mut bytes, l.hash + 4, 5);
                put32(&mut bytes, l.hash + 8, 4);
                for (i, next) in [0u32, 0, 1, 2, 3].iter().enumerate() {
                    put32(&mut bytes, l.hash + 12 + 4 * i, *next);
                }
            }
            let mut buf = vec![0u64; bytes.len() / 8];
            for (w, c) in buf.iter_mut().zip(bytes.chunks(8)) {
                *w = u64::from_ne_bytes(c.try_into().unwrap());
            }
            let base = buf.as_ptr() as usize;
            let dyns = [
                (DT_STRTAB, base + l.strtab),
                (DT_STRSZ, STR.len()),
                (DT_SYMTAB, base + l.symtab),
                (DT_SYMENT, size_of::<Sym>()),
                (if gnu { DT_GNU_HASH } else { DT_HASH }, base + l.hash),
                (DT_VERSYM, base + l.versym),
                (DT_VERDEF, base + l.verdef),
                (DT_VERDEFNUM, 2),
                (DT_NULL, 0),
            ];
            for (i, (tag, val)) in dyns.iter().enumerate() {
                buf[l.dynamic / 8 + 2 * i] = *tag as u64;
                buf[l.dynamic / 8 + 2 * i + 1] = *val as u64;
            }
            // SAFETY: a byte view of our own buffer, used while nothing else borrows it.
            let view = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 8) };
            corrupt(view, &l);
            let fake = Fake { buf };
            (fake, l)
        }

        fn image(&self) -> Image {
            let start = self.buf.as_ptr() as usize;
            // base 0: every table address above is absolute already.
            Image::new(0, &[(start, start + self.buf.len() * 8)])
        }

        fn lookup(&self, l: &Layout, name: &CStr) -> Option<Symbol> {
            let dynamic = self.buf.as_ptr() as usize + l.dynamic;
            lookup_in(&self.image(), dynamic, 16, name)
        }
    }

    struct Layout {
        dynamic: usize,
        strtab: usize,
        symtab: usize,
        versym: usize,
        verdef: usize,
        hash: usize,
    }

    impl Layout {
        fn new() -> Layout {
            Layout { dynamic: 0, strtab: 512, symtab: 1024, versym: 1536, verdef: 2048, hash: 2560 }
        }
    }

    #[test]
    fn synthetic_tables_pick_the_default_version() {
        for gnu in [true, false] {
            let (f, l) = Fake::build(gnu, |_, _| {});
            let got = f.lookup(&l, c"dlsym").unwrap_or_else(|| panic!("gnu={gnu}: dlsym not found"));
            assert_eq!((got.addr, got.version), (0x200, Some(c"V_NEW")), "gnu={gnu}");
            let other = f.lookup(&l, c"other").unwrap();
            assert_eq!((other.addr, other.version), (0x300, None), "gnu={gnu}");
            assert_eq!(f.lookup(&l, c"undef"), None, "gnu={gnu}: undefined symbols are not definitions");
            assert_eq!(f.lookup(&l, c"missing"), None, "gnu={gnu}");
        }
    }

    /// The fuzz target's seeds hold real tables: the walk finds in them
    /// what it finds in the synthetic object above.
    #[test]
    fn fuzz_seeds_hold_tables_the_walk_reads() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/elf_tables/");
        for (seed, name, want) in [
            ("gnu-dlsym-versioned", c"dlsym", Some((0x200, Some(&b"V_NEW"[..])))),
            ("sysv-dlsym-versioned", c"dlsym", Some((0x200, Some(&b"V_NEW"[..])))),
            ("gnu-unversioned", c"dlsym", Some((0x100, None))),
            ("sysv-other", c"other", Some((0x300, None))),
            ("gnu-huge-bucket-count", c"dlsym", None),
        ] {
            let data = std::fs::read(format!("{dir}{seed}")).unwrap();
            let dynamic = u16::from_le_bytes([data[0], data[1]]) as usize;
            let image: Vec<u64> = data[3..].chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
            let base = image.as_ptr() as usize;
            let got = lookup_in_buffer(&image, dynamic, name).map(|(a, v)| (a - base, v));
            assert_eq!(got, want.map(|(a, v)| (a, v.map(<[u8]>::to_vec))), "{seed}");
        }
    }

    #[test]
    fn corrupt_tables_are_not_found_not_a_crash() {
        type Corrupt = fn(&mut [u8], &Layout);
        let cases: [(&str, Corrupt); 6] = [
            // dynamic entry i is bytes [16 i, 16 i + 16): tag, then value
            ("symtab far away", |b, _| b[40..48].copy_from_slice(&0x10u64.to_ne_bytes())),
            ("strsz past the image", |b, _| b[24..32].copy_from_slice(&u64::MAX.to_ne_bytes())),
            ("bucket points past the symbols", |b, l| {
                b[l.hash + 16..l.hash + 20].copy_from_slice(&u32::MAX.to_ne_bytes())
            }),
            ("name offset past strsz", |b, l| {
                for i in 2..4 {
                    let at = l.symtab + i * 24;
                    b[at..at + 4].copy_from_slice(&9999u32.to_ne_bytes());
                }
            }),
            ("verdef lacks the index", |b, l| {
                b[l.verdef + 4..l.verdef + 6].copy_from_slice(&7u16.to_ne_bytes());
                b[l.verdef + 16..l.verdef + 20].copy_from_slice(&0u32.to_ne_bytes());
            }),
            ("huge bucket count", |b, l| b[l.hash..l.hash + 4].copy_from_slice(&u32::MAX.to_ne_bytes())),
        ];
        for (what, corrupt) in cases {
            for gnu in [true, false] {
                let (f, l) = Fake::build(gnu, corrupt);
                // Whatever it answers, it answers (no crash); wrong tables
                // never produce an address outside what the table says.
                let got = f.lookup(&l, c"dlsym");
                assert!(
                    got.is_none() || matches!(got, Some(Symbol { addr: 0x200, .. })),
                    "{what} (gnu={gnu}): {got:?}"
                );
            }
        }
    }
}
