//! daxguard: refuse RDMA registrations of filesystem-DAX memory before the
//! provider is called, and say which file and mount caused it.
//!
//! Linux refuses long-term pins (`FOLL_LONGTERM`, what `ibv_reg_mr` does) of
//! fs-DAX memory with `EOPNOTSUPP`, because the pages are the file's blocks
//! and the filesystem must be free to reuse them. This crate answers the same
//! question in userspace:
//!
//! - [`classify`] walks the VMAs that `[addr, addr + len)` spans and returns a
//!   [`Report`] of every piece: anonymous, fs-DAX, device-DAX, other file,
//!   special, or hole, with the evidence and mount for files.
//! - [`judge`] answers only the [`Verdict`], without allocating: the hot path.
//! - [`check`] is the one-call API for Rust programs; [`register`] wraps a
//!   guarded `ibv_reg_mr` over a raw `ibv_pd` from any binding.
//! - With the `interpose` feature (on by default), the crate exports
//!   `ibv_reg_mr` and friends: `libdaxguard.so` for `LD_PRELOAD`, or linked
//!   into a Rust program to guard its own registrations.
//!
//! Lookups use `ioctl(PROCMAP_QUERY)` (Linux 6.11+) or stream `/proc/self/maps`;
//! files are judged by `statx(STATX_ATTR_DAX)`, then `map_files`, then the
//! mount's options and the block device's `queue/dax`.
#![deny(unsafe_code)]

pub mod audit;
mod capi;
mod classify;
mod error;
pub mod explain;
pub mod fsdax;
pub mod maps;
pub mod mountinfo;
#[cfg(feature = "interpose")]
mod odp;
pub mod policy;
#[cfg(feature = "interpose")]
mod preload;
mod procfd;
pub mod procmap_query;
mod register;
mod resolve;
#[cfg(feature = "interpose")]
mod runtime;
mod state;
pub mod statx;
mod sys;
pub mod sysfs;
pub mod verbs;
pub mod vma;

pub use capi::{DAXGUARD_ERROR, DAXGUARD_FSDAX, DAXGUARD_OK, DAXGUARD_UNVERIFIED, daxguard_check};
pub use classify::{
    Evidence, FileInfo, FileKind, FileVerdict, Kind, MountInfo, Options, Piece, Prot, Report, Verdict, Via, classify,
    classify_with, file_verdict, judge, page_range,
};
pub use error::Error;
pub use register::{CheckError, RegisterError, check, register};
pub use vma::{Dev, Lookup, LookupChoice, Target};
