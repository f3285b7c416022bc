//! daxguard: refuse long-term pins (RDMA registrations first) of
//! filesystem-DAX memory before the provider is called, and say which file
//! and mount caused it.
//!
//! Linux refuses long-term pins (`FOLL_LONGTERM`, what `ibv_reg_mr` does) of
//! fs-DAX memory with `EOPNOTSUPP`, because the pages are the file's blocks
//! and the filesystem must be free to reuse them. This crate answers the same
//! question in userspace:
//!
//! - [`judge`] walks the VMAs that `[addr, addr + len)` spans and returns the
//!   [`Verdict`] and the culprit file, without allocating on anonymous
//!   memory: the hot path. [`classify`] returns the full [`Report`] of every
//!   piece: anonymous, fs-DAX, device-DAX, other file, special, or hole.
//! - [`fsdax::examine`] is the predicate behind each file, `vma_is_fsdax()`'s twin.
//! - [`check`] is the one-call API for Rust programs; [`register`] wraps a
//!   guarded `ibv_reg_mr` over a raw `ibv_pd` from any binding.
//! - With the `interpose` feature (on by default), the crate exports
//!   `ibv_reg_mr` and friends: `libdaxguard.so` for `LD_PRELOAD`, or linked
//!   into a Rust program to guard its own registrations.
//!
//! Lookups use `ioctl(PROCMAP_QUERY)` (Linux 6.11+) or stream `/proc/self/maps`
//! ([`lookup`]); files are judged by `statx(STATX_ATTR_DAX)`, then
//! `map_files`, then the mount's options and the block device's `queue/dax`.
//! `docs/design.md` has the map of the modules.
#![deny(unsafe_code)]

// The shared types and the system layer: they import nothing above them.
mod abi;
mod error;
mod sys;
mod types;

// Kernel interfaces: one module per file or call.
pub mod maps;
pub mod mountinfo;
pub mod perf_event;
pub mod procmap_query;
pub mod statx;
pub mod sysfs;

// Looking, judging, deciding, saying.
pub mod audit;
mod cache;
pub mod config;
pub mod explain;
pub mod fsdax;
pub mod identity;
pub mod journal;
mod judge;
pub mod lookup;
pub mod policy;
mod report;
pub mod settings;

// Interception and the consumers.
mod capi;
#[cfg(feature = "interpose")]
mod guard;
pub mod intercept;
pub mod io_uring;
pub mod v4l2;
pub mod verbs;

pub use capi::{DAXGUARD_ERROR, DAXGUARD_FSDAX, DAXGUARD_OK, DAXGUARD_UNVERIFIED, daxguard_check};
pub use error::Error;
pub use judge::{Judgement, Options, classify, classify_with, judge, page_range};
pub use report::{Evidence, FileInfo, FileKind, Finding, Kind, MountInfo, Piece, Prot, Report, Verdict, Via};
pub use sys::{Errno, fork_detection};
pub use types::{Buffer, Consumer, Dev, Lookup, LookupChoice, Pin, Target, Vma};
pub use verbs::register::{CheckError, RegisterError, check, register};
