//! Interception mechanisms: how a call meant for another library reaches
//! daxguard, and how daxguard finds the real function behind it.
//!
//! - [`resolve`]: the real function behind one of our exports
//!   (`dlvsym(RTLD_NEXT)`, then the already-loaded library by name).
//!
//! The exports themselves belong to each consumer (`crate::verbs`); this
//! folder holds what every consumer shares (`docs/design.md` has the map).

pub mod resolve;
