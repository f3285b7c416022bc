//! What `DAXGUARD_MODE=off` costs per registration: the shim's exported
//! `ibv_reg_mr_iova2` forwarding to a do-nothing stub, against calling the
//! stub directly through a function pointer (as the shim itself does).
//!
//! Its own process: the shim reads DAXGUARD_MODE once, at the first call.

#[path = "support/stub.rs"]
mod stub;

fn main() {
    // SAFETY: single-threaded, before anything else reads the environment.
    unsafe { std::env::set_var("DAXGUARD_MODE", "off") };
    stub::export_against_direct("mode-off", "shim-export-off");
}
