//! A Rust RDMA program on the `ibverbs` crate, guarded by daxguard both ways:
//!
//! - explicit: `daxguard::check` and `daxguard::register` over a raw `*mut ibv_pd`;
//! - implicit: this binary links daxguard with the `interpose` feature, so its
//!   own `ibv_reg_mr` calls (the `ibverbs` crate's and raw `ibverbs-sys` ones)
//!   bind to daxguard's export at link time, without `LD_PRELOAD`.
//!
//! usage: guarded --device NAME (--file PATH [--len N] | --anon [--len N])
//!
//! Prints one line per step; exits 0 when the steps ran (refused or not), 2 on
//! setup errors (bad arguments, no such device, cannot map the region).
//! See examples/README.md.

use std::ffi::{CStr, CString, c_void};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use ibverbs_sys as ffi;

/// Anonymous regions default to 2 MiB, the size the testbed scenarios use.
const DEFAULT_ANON_LEN: usize = 2 << 20;
/// What `ProtectionDomain::allocate` registers: a heap buffer, always anonymous.
const ALLOCATE_LEN: usize = 64 << 10;

enum Region {
    Anon,
    File(String),
}

struct Args {
    device: String,
    region: Region,
    len: Option<usize>,
}

/// A setup error: printed, then exit status 2.
struct Setup(String);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Setup(msg)) => {
            eprintln!("guarded: {msg}");
            ExitCode::from(2)
        }
    }
}

fn usage() -> Setup {
    Setup("usage: guarded --device NAME (--file PATH [--len N] | --anon [--len N])".into())
}

/// Bytes, with an optional K/M/G suffix (powers of 1024).
fn parse_len(s: &str) -> Option<usize> {
    let (num, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<usize>().ok()?.checked_mul(1 << shift).filter(|&n| n > 0)
}

fn parse_args() -> Result<Args, Setup> {
    let mut device = None;
    let mut region = None;
    let mut len = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--device" => device = Some(it.next().ok_or_else(usage)?),
            "--file" => region = Some(Region::File(it.next().ok_or_else(usage)?)),
            "--anon" => region = Some(Region::Anon),
            "--len" => {
                let v = it.next().ok_or_else(usage)?;
                len = Some(parse_len(&v).ok_or_else(|| Setup(format!("--len: '{v}' is not a positive size")))?);
            }
            _ => return Err(usage()),
        }
    }
    match (device, region) {
        (Some(device), Some(region)) => Ok(Args { device, region, len }),
        _ => Err(usage()),
    }
}

/// A mapping that lives until the end of `run`; MRs are deregistered before it is dropped.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(region: &Region, len: Option<usize>) -> Result<Mapping, Setup> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let (addr, len) = match region {
            Region::Anon => {
                let len = len.unwrap_or(DEFAULT_ANON_LEN);
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
                // SAFETY: a fresh anonymous mapping; no existing memory is touched.
                (unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) }, len)
            }
            Region::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| Setup(format!("cannot open {path}: {e}")))?;
                let size = file.metadata().map_err(|e| Setup(format!("cannot stat {path}: {e}")))?.len() as usize;
                let len = len.unwrap_or(size);
                if len == 0 || len > size {
                    return Err(Setup(format!("{path} is {size} bytes; cannot map {len}")));
                }
                // MAP_SHARED: the file's own pages (on fs-DAX, its blocks), what an
                // RDMA program on pmem registers. The fd may close after mmap.
                let flags = libc::MAP_SHARED;
                // SAFETY: a fresh mapping of an open file.
                (unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, file.as_raw_fd(), 0) }, len)
            }
        };
        if addr == libc::MAP_FAILED {
            return Err(Setup(format!("mmap of {len} bytes failed: {}", std::io::Error::last_os_error())));
        }
        Ok(Mapping { addr: addr.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping; every MR on it was deregistered before.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// The same device opened through `ibverbs-sys`: `ibverbs` 0.9 keeps its
/// `ibv_pd` private, and `daxguard::register` needs the raw pointer.
struct RawPd {
    ctx: *mut ffi::ibv_context,
    pd: *mut ffi::ibv_pd,
}

impl RawPd {
    fn open(name: &str) -> Result<RawPd, Setup> {
        let want = CString::new(name).map_err(|_| usage())?;
        let mut n = 0;
        // SAFETY: plain libibverbs calls; the list is freed before returning
        // (an opened context stays valid after ibv_free_device_list).
        unsafe {
            let list = ffi::ibv_get_device_list(&mut n);
            if list.is_null() {
                return Err(Setup(format!("ibv_get_device_list: {}", std::io::Error::last_os_error())));
            }
            let devs = std::slice::from_raw_parts(list, n.max(0) as usize);
            let dev = devs.iter().copied().find(|&d| CStr::from_ptr(ffi::ibv_get_device_name(d)) == want.as_c_str());
            let ctx = dev.map_or(std::ptr::null_mut(), |d| ffi::ibv_open_device(d));
            ffi::ibv_free_device_list(list);
            if ctx.is_null() {
                return Err(Setup(format!("ibv_open_device({name}) failed: {}", std::io::Error::last_os_error())));
            }
            let pd = ffi::ibv_alloc_pd(ctx);
            if pd.is_null() {
                let e = std::io::Error::last_os_error();
                ffi::ibv_close_device(ctx);
                return Err(Setup(format!("ibv_alloc_pd on {name} failed: {e}")));
            }
            Ok(RawPd { ctx, pd })
        }
    }
}

impl Drop for RawPd {
    fn drop(&mut self) {
        // SAFETY: ours, and every MR on the pd was deregistered before.
        unsafe {
            ffi::ibv_dealloc_pd(self.pd);
            ffi::ibv_close_device(self.ctx);
        }
    }
}

fn errno_line(e: &std::io::Error) -> String {
    let n = e.raw_os_error().unwrap_or(0);
    format!("errno={} ({e})", daxguard::explain::errno_name(n))
}

fn run() -> Result<(), Setup> {
    let args = parse_args()?;

    // The device through the `ibverbs` crate, as a program built on it does.
    // ENOSYS here means no RDMA in this kernel at all: also "not found".
    let list = ibverbs::devices()
        .map_err(|e| Setup(format!("RDMA device '{}' not found (cannot list RDMA devices: {e})", args.device)))?;
    let names: Vec<String> = list.iter().filter_map(|d| d.name().map(|n| n.to_string_lossy().into_owned())).collect();
    let dev = list.iter().find(|d| d.name().is_some_and(|n| n.to_bytes() == args.device.as_bytes()));
    let Some(dev) = dev else {
        let have = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        return Err(Setup(format!("RDMA device '{}' not found (devices: {have})", args.device)));
    };
    let ctx = dev.open().map_err(|e| Setup(format!("cannot open {}: {e}", args.device)))?;
    let pd = ctx.alloc_pd().map_err(|e| Setup(format!("cannot allocate a PD on {}: {e}", args.device)))?;
    let raw = RawPd::open(&args.device)?;

    let map = Mapping::new(&args.region, args.len)?;
    let access = (ffi::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE
        | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
        | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_READ)
        .0;
    println!("region: {:p}, {} bytes", map.addr, map.len);

    // (a) explicit: ask, then register through daxguard's guarded helper.
    match daxguard::check(map.addr, map.len) {
        Ok(r) => {
            let kinds: Vec<&str> = r.pieces.iter().map(|p| p.kind.name()).collect();
            println!("explicit: check: allows ({})", kinds.join(", "));
        }
        Err(e) => println!("explicit: check: refuses ({e})"),
    }
    // SAFETY: `raw.pd` is live; the region outlives the MR, deregistered right after.
    match unsafe { daxguard::register(raw.pd.cast::<c_void>(), map.addr, map.len, access) } {
        Ok(mr) => {
            println!("explicit: registered");
            // SAFETY: the MR just returned; verbs_sys and ibverbs-sys describe the same struct.
            unsafe { ffi::ibv_dereg_mr(mr.cast()) };
        }
        Err(daxguard::RegisterError::Refused(e)) => println!("explicit: refused ({e})"),
        Err(daxguard::RegisterError::RegisterMemoryRegion(e)) => println!("explicit: failed {}", errno_line(&e)),
        Err(e) => println!("explicit: failed ({e})"),
    }

    // (b) implicit: a plain ibverbs-sys ibv_reg_mr, as the `ibverbs` crate
    // itself calls it. No daxguard in sight here: the symbol is daxguard's.
    // SAFETY: as above.
    let mr = unsafe { ffi::ibv_reg_mr(raw.pd, map.addr.cast(), map.len, access as i32) };
    if mr.is_null() {
        let e = std::io::Error::last_os_error();
        let word = if e.raw_os_error() == Some(libc::EOPNOTSUPP) { "refused" } else { "failed" };
        println!("implicit: {word} {}", errno_line(&e));
    } else {
        println!("implicit: registered");
        // SAFETY: the MR just returned.
        unsafe { ffi::ibv_dereg_mr(mr) };
    }

    // The `ibverbs` crate's safe API registers only buffers it allocates
    // itself (a heap Vec), so it cannot take the region above; its
    // ibv_reg_mr call is guarded all the same (see DAXGUARD_LOG).
    match pd.allocate::<u8>(ALLOCATE_LEN) {
        Ok(mr) => {
            println!("ibverbs allocate: registered ({} bytes)", mr.len());
            drop(mr);
        }
        Err(e) => println!("ibverbs allocate: failed {}", errno_line(&e)),
    }
    drop(map);
    Ok(())
}
