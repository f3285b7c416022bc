//! Interception mechanisms: how a call meant for another library reaches
//! daxguard, and how daxguard finds the real function behind it.
//!
//! - PLT exports (each consumer's, e.g. `crate::verbs`): the dynamic linker
//!   binds the program's calls to them because the shim is preloaded (or
//!   linked into the program).
//! - `dlsym`: `dlsym`/`dlvsym` wrapped (x86_64 only), so a pointer a program
//!   fetches from a library handle is our export too (`pointers` holds the
//!   rule); `elf` finds glibc's own `dlsym` without asking `dlsym`.
//! - `resolve`: the real function behind one of our exports
//!   (`dlvsym(RTLD_NEXT)`, then the already-loaded library by name).
//! - `libc`: `ioctl` and `syscall`, for the consumers that reach the kernel
//!   through them (V4L2, io_uring).
//!
//! The library-specific exports belong to each consumer (`crate::verbs`,
//! `crate::io_uring`); this folder holds what every consumer shares.
//! [`active`] says which of these run in this process (`docs/design.md` has
//! the map).

#[cfg(all(feature = "interpose", target_arch = "x86_64"))]
mod dlsym;
// Built without `interpose` too: the fuzz target reaches its table walk.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(not(feature = "interpose"), allow(dead_code))]
mod elf;
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub use elf::lookup_in_buffer;
#[cfg(feature = "interpose")]
pub(crate) mod libc;
#[cfg(all(feature = "interpose", target_arch = "x86_64"))]
pub(crate) mod pointers;
pub(crate) mod resolve;

/// The interception at work in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Active {
    /// Built without the `interpose` feature (the CLI's own copy): nothing
    /// is intercepted by this copy of the library.
    None,
    /// PLT exports only: calls through pointers a program fetched with
    /// `dlsym`/`dlvsym` from a library handle are not seen. `why` says why
    /// the wrapper is not at work.
    PltOnly { why: &'static str },
    /// PLT exports, and `dlsym`/`dlvsym` wrapped: pointers to the guarded
    /// functions are our exports. `real_in` names where glibc's `dlsym` was
    /// found (`libc.so.6`, `libdl.so.2`).
    PltAndDlsym { real_in: &'static str },
}

impl Active {
    /// A short stable token: `none`, `plt`, `plt+dlsym`.
    pub fn name(self) -> &'static str {
        match self {
            Active::None => "none",
            Active::PltOnly { .. } => "plt",
            Active::PltAndDlsym { .. } => "plt+dlsym",
        }
    }

    /// One line for people (`daxguard doctor`).
    pub fn describe(self) -> String {
        match self {
            Active::None => "none: this copy of daxguard is built without the interpose feature".into(),
            Active::PltOnly { why } => format!("PLT exports only ({why}): dlsym/dlvsym pointers are not checked"),
            Active::PltAndDlsym { real_in } => format!(
                "PLT exports and dlsym/dlvsym results (glibc's dlsym from {real_in}); no code is patched, so MemoryDenyWriteExecute changes nothing"
            ),
        }
    }
}

/// Which interception this copy of the library runs. In a program started
/// by `daxguard run` the copy that counts is the preloaded one: ask it for
/// `daxguard_interception` (a C function returning [`Active::name`]) with
/// `dlsym(RTLD_NEXT, ..)` from a binary that links daxguard itself (the
/// CLI: `RTLD_NEXT` skips the binary's own copy), `RTLD_DEFAULT` elsewhere.
pub fn active() -> Active {
    #[cfg(not(feature = "interpose"))]
    {
        Active::None
    }
    #[cfg(all(feature = "interpose", not(target_arch = "x86_64")))]
    {
        Active::PltOnly { why: "the dlsym wrapper is x86_64-only" }
    }
    #[cfg(all(feature = "interpose", target_arch = "x86_64"))]
    {
        match dlsym::found_in() {
            Some(real_in) => Active::PltAndDlsym { real_in },
            None => Active::PltOnly { why: "glibc's dlsym was not found" },
        }
    }
}
