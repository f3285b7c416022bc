//! The rule for pointers the `dlsym` wrapper sees: a guarded function comes
//! back as our export, but only when our export would call exactly that
//! function.
//!
//! Each consumer lists what it guards as [`Guarded`] entries (the export and
//! the [`Real`] it forwards to): `crate::verbs::guarded()`. When `dlsym` or
//! `dlvsym` on a handle answers `p` for one of those names:
//!
//! - `p` is what our export forwards to (the same library copy, the same
//!   version), or the definition in that library behind another
//!   interposer our export forwards to (as a PLT call would pass through
//!   it): the program gets our export, and its calls are judged as PLT
//!   calls are;
//! - the lookup comes from the object the wrapper itself is in (code linked
//!   with daxguard, such as the CLI's `probe`, asking a library's own handle
//!   on purpose): the program gets `p`, silently;
//! - `p` is anything else (a `dlmopen` copy in another namespace, an older
//!   version such as `ibv_reg_mr@IBVERBS_1.0` whose `ibv_pd` differs, a
//!   library our export does not forward to): the program gets `p`
//!   unchanged, since our export would call another function, and one line
//!   says, once per name, that those registrations are not checked.

use std::ffi::{CStr, c_void};
use std::sync::atomic::AtomicBool;

use super::dlsym::Asked;
use super::resolve::Real;

/// One function a consumer guards.
pub(crate) struct Guarded {
    /// The exported function the program should call instead.
    pub ours: fn() -> *const c_void,
    /// What that export forwards to.
    pub real: &'static Real,
    /// Said that a pointer to another copy is not checked.
    pub said: AtomicBool,
}

impl Guarded {
    pub(crate) const fn new(ours: fn() -> *const c_void, real: &'static Real) -> Guarded {
        Guarded { ours, real, said: AtomicBool::new(false) }
    }
}

/// Our export in place of `p`, the answer to a lookup of `name`, or `p`.
pub(crate) fn substitute(name: &CStr, p: *mut c_void, asked: &Asked) -> *mut c_void {
    let Some(g) = crate::verbs::guarded().find(|g| g.real.name() == name) else { return p };
    let ours = (g.ours)();
    if p.cast_const() == ours || asked.by_daxguard_itself() {
        return p;
    }
    // Our export calls p, or an interposer in front of p (as a PLT call
    // would): either way the call ends in the copy the program asked.
    if g.real.get(ours) == Some(p) || g.real.in_library() == Some(p) {
        return ours.cast_mut();
    }
    crate::guard::say_once_unless_quiet(&g.said, || {
        let whose = match asked.namespace() {
            Some(0) => "another version or another library than the one daxguard forwards to".to_string(),
            Some(n) => format!("a copy in link-map namespace {n} (dlmopen), not the one daxguard forwards to"),
            None => "not the one daxguard forwards to".to_string(),
        };
        format!(
            "daxguard: {} at {:p} in {} is {whose} ({}@{}): registrations through this pointer are not checked (said once)",
            name.to_string_lossy(),
            p,
            object_of(p),
            g.real.name().to_string_lossy(),
            g.real.version().to_string_lossy(),
        )
    });
    p
}

/// The file name of the object containing `p`, for messages.
fn object_of(p: *mut c_void) -> String {
    crate::sys::object_name(p).unwrap_or_else(|| "an unnamed object".into())
}
