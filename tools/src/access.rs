//! `IBV_ACCESS_*` flags as people write them on the command line (`rw`,
//! `local,remote-write`, `0x7`) and as `probe` names them back.
//!
//! # References
//! - ibv_reg_mr(3): the access flags

use verbs_sys as v;

use crate::units::parse_size;

const FLAGS: &[(&str, u32)] = &[
    ("local-write", v::IBV_ACCESS_LOCAL_WRITE),
    ("remote-write", v::IBV_ACCESS_REMOTE_WRITE),
    ("remote-read", v::IBV_ACCESS_REMOTE_READ),
    ("remote-atomic", v::IBV_ACCESS_REMOTE_ATOMIC),
    ("mw-bind", v::IBV_ACCESS_MW_BIND),
    ("zero-based", v::IBV_ACCESS_ZERO_BASED),
    ("on-demand", v::IBV_ACCESS_ON_DEMAND),
    ("relaxed-ordering", v::IBV_ACCESS_RELAXED_ORDERING),
];

/// `rw`: what `probe` registers with when no `--access` is given.
pub const RW: u32 = v::IBV_ACCESS_LOCAL_WRITE | v::IBV_ACCESS_REMOTE_WRITE | v::IBV_ACCESS_REMOTE_READ;

/// `rw`, `ro`, `none`, a number, or names joined by commas.
pub fn parse_access(s: &str) -> Result<u32, String> {
    if s.trim().starts_with(|c: char| c.is_ascii_digit()) {
        return parse_size(s)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("malformed access flags '{s}'"));
    }
    let mut flags = 0;
    for word in s.split(',').map(|w| w.trim().to_ascii_lowercase()) {
        flags |= match word.as_str() {
            "rw" => RW,
            "ro" => v::IBV_ACCESS_REMOTE_READ,
            "none" => 0,
            "local" => v::IBV_ACCESS_LOCAL_WRITE,
            "atomic" => v::IBV_ACCESS_REMOTE_ATOMIC,
            "odp" => v::IBV_ACCESS_ON_DEMAND,
            w => match FLAGS.iter().find(|(name, _)| *name == w) {
                Some((_, bit)) => *bit,
                None => {
                    return Err(format!(
                        "unknown access flag '{w}' (use rw, ro, or e.g. local,remote-write,remote-read)"
                    ));
                }
            },
        };
    }
    Ok(flags)
}

/// The names of the flags set, and any unknown bits as one hex number.
pub fn flag_names(flags: u32) -> Vec<String> {
    let mut names: Vec<String> = FLAGS.iter().filter(|(_, b)| flags & b != 0).map(|(n, _)| n.to_string()).collect();
    let known = FLAGS.iter().fold(0, |a, (_, b)| a | b);
    if flags & !known != 0 {
        names.push(format!("{:#x}", flags & !known));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_flags() {
        assert_eq!(parse_access("rw"), Ok(7));
        assert_eq!(parse_access("ro"), Ok(v::IBV_ACCESS_REMOTE_READ));
        assert_eq!(parse_access("none"), Ok(0));
        assert_eq!(parse_access("local,remote-write, remote-read"), Ok(7));
        assert_eq!(parse_access("local-write,on-demand"), Ok(1 | 64));
        assert_eq!(parse_access("0x7"), Ok(7));
        assert_eq!(parse_access("7"), Ok(7));
        assert!(parse_access("bogus").is_err());
        assert!(parse_access("0x1ffffffff").is_err());
        assert_eq!(flag_names(7 | (1 << 31)), ["local-write", "remote-write", "remote-read", "0x80000000"]);
    }
}
