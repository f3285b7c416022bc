//! What the `ioctl` and `syscall` exports add to calls they do not judge
//! (issue 13's target: <= 5 ns each): `ioctl(pipe, FIONREAD)` and
//! `syscall(SYS_getpid)` through the exports (this binary links the crate
//! with `interpose`, so its own calls bind to them) against the same calls
//! through libc's functions, found with `dlsym(RTLD_NEXT)`.
//!
//! The system call itself costs 100-300 ns and wanders with the host's load,
//! so the two sides are measured paired: alternating batches, and the median
//! of the per-round differences is the added cost. Prints a table (not a
//! criterion bench): `cargo bench -p daxguard --bench interposers`.

use std::ffi::{c_int, c_long, c_ulong, c_void};
use std::hint::black_box;
use std::time::Instant;

// The crate must be linked for its exports to be the program's `ioctl` and `syscall`.
use daxguard as _;

type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int;
type SyscallFn = unsafe extern "C" fn(c_long, ...) -> c_long;

const ROUNDS: usize = 201;
const BATCH: u32 = 20_000;

fn real<T>(name: &std::ffi::CStr) -> T {
    // SAFETY: RTLD_NEXT from the executable finds libc's definition.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    assert!(!p.is_null(), "{name:?} not found");
    // SAFETY: T is the function-pointer type of `name`.
    unsafe { std::mem::transmute_copy(&p) }
}

/// Nanoseconds per call of `f`, over one batch.
fn per_call(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..BATCH {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(BATCH)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ns per call of each side, and the median paired difference.
fn paired(mut libc_side: impl FnMut(), mut shim_side: impl FnMut()) -> (f64, f64, f64) {
    let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which side goes first, so neither always follows the other.
        let (x, y) = if round % 2 == 0 {
            let x = per_call(&mut libc_side);
            (x, per_call(&mut shim_side))
        } else {
            let y = per_call(&mut shim_side);
            (per_call(&mut libc_side), y)
        };
        a.push(x);
        b.push(y);
        d.push(y - x);
    }
    (median(a), median(b), median(d))
}

fn main() {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let real_ioctl: IoctlFn = real(c"ioctl");
    let real_syscall: SyscallFn = real(c"syscall");
    let ours = libc::ioctl as unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
    assert_ne!(ours as usize, real_ioctl as usize, "the export is not the program's ioctl");
    let mut n: c_int = 0;
    let arg = std::ptr::from_mut(&mut n).cast::<c_void>();
    let fd = fds[0];
    println!(
        "| call ({ROUNDS} paired rounds of {BATCH}) | libc ns | through the export ns | added (median of pairs) |"
    );
    println!("|---|---:|---:|---:|");
    let (a, b, d) = paired(
        // SAFETY: FIONREAD on our own pipe with a valid int pointer.
        || unsafe {
            black_box(real_ioctl(black_box(fd), libc::FIONREAD, arg));
        },
        // SAFETY: the same, through the export.
        || unsafe {
            black_box(libc::ioctl(black_box(fd), libc::FIONREAD, arg));
        },
    );
    println!("| ioctl(pipe, FIONREAD) | {a:.1} | {b:.1} | {d:.1} |");
    let (a, b, d) = paired(
        // SAFETY: getpid takes no arguments.
        || unsafe {
            black_box(real_syscall(black_box(libc::SYS_getpid)));
        },
        // SAFETY: the same, through the export.
        || unsafe {
            black_box(libc::syscall(black_box(libc::SYS_getpid)));
        },
    );
    println!("| syscall(SYS_getpid) | {a:.1} | {b:.1} | {d:.1} |");
}
