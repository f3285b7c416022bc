//! `config::parse`, the /etc/daxguard/daxguard.conf parser, over any bytes.
//!
//! Invariants: never panics; an error points at a line of the input (or at
//! the file as a whole, line 0, only for one over `MAX_SIZE`); a file that
//! parses applies to any process without panicking, and applying it twice
//! gives the same settings (no state kept between processes' worth of calls).
#![no_main]

use daxguard::config::{MAX_SIZE, Subject, parse};
use daxguard::identity::Identity;
use daxguard::settings::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Err(e) if e.line == 0 => assert!(data.len() > MAX_SIZE, "{e:?}"),
        Err(e) => assert!(e.line <= data.iter().filter(|&&b| b == b'\n').count() + 1, "{e:?}"),
        Ok(c) => {
            let names = ["ib_write_bw".to_string(), "python3".to_string()];
            for identity in [
                Identity::default(),
                Identity { rank: Some(3), job: Some("42".into()), step: Some("0".into()) },
            ] {
                let who = Subject { names: &names, identity: &identity };
                let (mut a, mut b) = (Settings::default(), Settings::default());
                c.apply(&who, &mut a);
                c.apply(&who, &mut b);
                assert_eq!(a, b);
            }
        }
    }
});
