//! Interception mechanisms: how a call meant for another library reaches
//! daxguard, and how daxguard finds the real function behind it.
//!
//! - [`resolve`]: the real function behind one of our exports
//!   (`dlvsym(RTLD_NEXT)`, then the already-loaded library by name).
//! - `libc`: `ioctl` and `syscall`, for the consumers that reach the kernel
//!   through them (V4L2, io_uring).
//!
//! The library-specific exports belong to each consumer (`crate::verbs`,
//! `crate::io_uring`); this
//! folder holds what every consumer shares (`docs/design.md` has the map).

#[cfg(feature = "interpose")]
pub(crate) mod libc;
pub mod resolve;
