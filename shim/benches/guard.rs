//! The whole per-registration cost of the shim in its default mode (enforce)
//! on 4 KiB of anonymous memory: the exported `ibv_reg_mr_iova2` (re-entry
//! guard, settings, judge on the PROCMAP_QUERY path, decision, forward) into a
//! do-nothing stub, against calling the stub directly.
//!
//! Its own process: the mode is read once, and must be the default here.

#[path = "support/stub.rs"]
mod stub;

fn main() {
    for var in ["DAXGUARD_MODE", "DAXGUARD_LOG", "DAXGUARD_LOOKUP", "DAXGUARD_STATS"] {
        assert!(std::env::var_os(var).is_none(), "unset {var} for this benchmark");
    }
    stub::export_against_direct("guard", "shim-export-enforce-anon-4k");
}
