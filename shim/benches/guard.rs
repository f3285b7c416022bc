//! The whole per-registration cost of the shim in its default mode (enforce)
//! on 4 KiB of anonymous memory: the exported `ibv_reg_mr_iova2` (re-entry
//! guard, settings, judge on the PROCMAP_QUERY path, decision, forward) into a
//! do-nothing stub, against calling the stub directly.
//!
//! Its own process: the mode is read once, and must be the default here.
//!
//! Then the same at the VMA limit (issue 17), in a child process (this
//! binary again, `DAXBENCH_AT_LIMIT` set) that grows to `vm.max_map_count`
//! VMAs before its first registration: marking the wipe-on-fork page would
//! fail there, so it must have been marked when the library was loaded, or
//! every call pays a `getpid`. Criterion cannot run at the limit (its
//! analysis allocates with `mmap`, which fails), so the child times by hand:
//! medians of alternating rounds, and the number of pid checks.

#[path = "support/stub.rs"]
mod stub;

fn main() {
    if std::env::var_os("DAXBENCH_AT_LIMIT").is_some() {
        at_limit();
        return;
    }
    for var in ["DAXGUARD_MODE", "DAXGUARD_LOG", "DAXGUARD_LOOKUP", "DAXGUARD_STATS"] {
        assert!(std::env::var_os(var).is_none(), "unset {var} for this benchmark");
    }
    stub::export_against_direct("guard", "shim-export-enforce-anon-4k");

    let out =
        std::process::Command::new(std::env::current_exe().unwrap()).env("DAXBENCH_AT_LIMIT", "1").output().unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "at the VMA limit: {}", String::from_utf8_lossy(&out.stderr));
}

fn at_limit() {
    let stub = stub::Stub::load();
    let mut rounds = stub::Rounds::new(201, 2000);
    // DAXBENCH_SMALL: the same hand-timed rounds without growing first (the
    // test guest's 6.1, where criterion's run is too slow under emulation).
    let small = std::env::var_os("DAXBENCH_SMALL").is_some();
    assert!(small || stub::fill_to_vma_limit(), "the process did not reach its VMA limit");
    let (direct, export) = rounds.run(&stub);
    let checks = daxguard::lookup::pid_checks();
    println!(
        "guard-{}: direct-stub {direct:.1} ns, shim-export-enforce-anon-4k {export:.1} ns (medians of {} rounds of {} calls); fork check {}, {checks} getpid calls",
        if small { "small" } else { "at-vma-limit" },
        rounds.count(),
        rounds.calls(),
        daxguard::lookup::fork_check().name()
    );
    assert_eq!(checks, 0, "fork detection asked the pid at the VMA limit");
}
