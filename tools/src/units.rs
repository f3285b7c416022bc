//! Numbers on the command line: addresses (`0x7f00...` or decimal), sizes
//! (`4096`, `4K`, `2M`, `1G`, binary units), PIDs, and sizes for people.

/// An address: `0x` hex (as /proc/PID/maps and debuggers print them) or decimal.
pub fn parse_addr(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    parsed.map_err(|_| format!("malformed address '{s}' (use 0x hex or decimal)"))
}

/// A size: decimal or `0x` hex bytes, or decimal with a binary unit
/// (`K`/`KiB` = 1024, `M`, `G`, `T`; case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("malformed size '{s}' (use e.g. 4096, 0x1000, 4K, 2M, 1G)");
    let t = s.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_err(|_| bad());
    }
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let num: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return Err(bad()),
    };
    num.checked_mul(1 << shift).ok_or_else(|| format!("size '{s}' is too large"))
}

/// A length to map or register: a size that is not 0 (the kernel answers
/// EINVAL for an empty registration).
pub fn parse_len(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("length must be greater than 0".into()),
        n => Ok(n),
    }
}

/// A process id: a positive decimal number.
pub fn parse_pid(s: &str) -> Result<i32, String> {
    match s.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("malformed PID '{s}' (a positive number)")),
    }
}

/// `4096` -> `4 KiB`, `3145728` -> `3 MiB`, `1536` -> `1.5 KiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && n >= 1 << (10 * (unit + 1)) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    let div = 1u64 << (10 * unit);
    if n & (div - 1) == 0 {
        format!("{} {}", n / div, UNITS[unit])
    } else {
        format!("{:.1} {}", n as f64 / div as f64, UNITS[unit])
    }
}

/// A duration: seconds (`90`), or a number with `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a duration (90, 90s, 15m, 2h, 1d)"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86400),
        _ => None,
    };
    match secs {
        Some(0) => Err("a duration cannot be 0".into()),
        Some(secs) => Ok(std::time::Duration::from_secs(secs)),
        None => Err(format!("'{s}' is not a duration (90, 90s, 15m, 2h, 1d)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("0x7f0000001000"), Ok(0x7f00_0000_1000));
        assert_eq!(parse_addr("0X10"), Ok(16));
        assert_eq!(parse_addr("4096"), Ok(4096));
        for bad in ["", "0x", "0xzz", "12k", "-1", "0x1_000", "99999999999999999999"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "K", "4X", "4KB", "1.5M", "-4K", "0x10K", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_are_not_zero() {
        assert!(parse_len("0").is_err());
        assert!(parse_len("0x0").is_err());
        assert_eq!(parse_len("1"), Ok(1));
    }

    #[test]
    fn pids() {
        assert_eq!(parse_pid("1"), Ok(1));
        for bad in ["0", "-5", "x", "", "99999999999"] {
            assert!(parse_pid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(2 << 20), "2 MiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(std::time::Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(std::time::Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(std::time::Duration::from_secs(86400)));
        for bad in ["", "0", "5x", "m", "1.5h", "-1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
