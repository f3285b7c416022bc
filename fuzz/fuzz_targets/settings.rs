//! `policy::Settings::parse` with fuzzed values for every `DAXGUARD_*` variable.
//!
//! The input is the six values in order, NUL-separated (an environment value
//! cannot hold a NUL); a value that is not UTF-8 reads as unset, as
//! `std::env::var(..).ok()` does in the shim. Invariants: never panics; a
//! valid value sets its field; an invalid one leaves the default and yields
//! exactly one complaint naming the variable.
#![no_main]

use daxguard::LookupChoice;
use daxguard::policy::{LogDest, Mode, Settings};
use libfuzzer_sys::fuzz_target;

const VARS: [&str; 6] =
    ["DAXGUARD_MODE", "DAXGUARD_UNKNOWN", "DAXGUARD_LOG", "DAXGUARD_QUIET", "DAXGUARD_STATS", "DAXGUARD_LOOKUP"];

fuzz_target!(|data: &[u8]| {
    let vals: Vec<Option<String>> =
        data.split(|&b| b == 0).map(|s| std::str::from_utf8(s).ok().map(str::to_owned)).collect();
    let val = |i: usize| vals.get(i).cloned().flatten();
    let (s, complaints) = Settings::parse(|k| VARS.iter().position(|v| *v == k).and_then(val));

    // The expected settings, written from the documented values, not from the parser.
    let d = Settings::default();
    let mut bad = Vec::new();
    let modes = [
        ("enforce", Mode::Enforce),
        ("warn", Mode::Warn),
        ("audit", Mode::Audit),
        ("off", Mode::Off),
        ("odp", Mode::Odp),
    ];
    let mode = choose(val(0), &modes, d.mode, 0, &mut bad);
    let allow_unverified = choose(val(1), &[("refuse", false), ("allow", true)], d.allow_unverified, 1, &mut bad);
    let log = match val(2).as_deref() {
        None | Some("") => LogDest::None,
        Some("syslog") => LogDest::Syslog,
        Some("journal") => LogDest::Journal,
        Some(p) if p.starts_with('/') => LogDest::File(p.into()),
        Some(_) => {
            bad.push(VARS[2]);
            LogDest::None
        }
    };
    let flag = [("", false), ("0", false), ("1", true)];
    let quiet = choose(val(3), &flag, d.quiet, 3, &mut bad);
    let stats = choose(val(4), &flag, d.stats, 4, &mut bad);
    let lookups = [
        ("auto", LookupChoice::Auto),
        ("query", LookupChoice::ProcmapQuery),
        ("maps", LookupChoice::MapsText),
        ("events", LookupChoice::MmapEvents),
        ("mmap_events", LookupChoice::MmapEvents),
    ];
    let lookup = choose(val(5), &lookups, d.lookup, 5, &mut bad);

    assert_eq!(s, Settings { mode, allow_unverified, log, quiet, stats, lookup }, "{vals:?}");
    assert_eq!(complaints.len(), bad.len(), "{complaints:?}");
    for (c, var) in complaints.iter().zip(&bad) {
        assert!(c.starts_with(&format!("ignoring {var}=")), "{c}");
    }
});

/// The table's value for `v`; unset keeps `default`, anything else is noted as bad.
fn choose<T: Copy>(v: Option<String>, table: &[(&str, T)], default: T, var: usize, bad: &mut Vec<&str>) -> T {
    let Some(v) = v else { return default };
    table.iter().find(|(name, _)| *name == v).map(|&(_, t)| t).unwrap_or_else(|| {
        bad.push(VARS[var]);
        default
    })
}
