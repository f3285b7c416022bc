//! `/sys/dev/{block,char}/M:m`: is a block device DAX-capable, is a character
//! device a device-DAX instance.
//!
//! # References
//! - Documentation/ABI/stable/sysfs-block (`queue/dax`)
//! - Documentation/ABI/testing/sysfs-bus-dax (the `dax` subsystem)

use crate::types::Dev;

/// `/sys/dev/block/M:m/queue/dax` (or the parent disk's, for a partition):
/// `Some(false)` means no file on this device can be DAX.
pub fn block_device_dax(dev: Dev) -> Option<bool> {
    let base = format!("/sys/dev/block/{}:{}", dev.major, dev.minor);
    [format!("{base}/queue/dax"), format!("{base}/../queue/dax")]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .map(|v| v.first() == Some(&b'1'))
}

/// Whether the character device `rdev` belongs to the `dax` subsystem (`/dev/daxX.Y`).
pub fn char_device_is_dax(rdev: Dev) -> bool {
    std::fs::read_link(format!("/sys/dev/char/{}:{}/subsystem", rdev.major, rdev.minor))
        .is_ok_and(|p| p.file_name().is_some_and(|n| n == "dax"))
}

/// `/sys/dev/char/M:m/size` of the device-DAX instance `rdev`: its total size
/// in bytes. `/sys/dev/char/M:m` and `/sys/bus/dax/devices/daxX.Y` name the
/// same device directory.
///
/// # References
/// - Documentation/ABI/testing/sysfs-bus-dax (`/sys/bus/dax/devices/daxX.Y/size`)
pub fn dax_device_size(rdev: Dev) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/dev/char/{}:{}/size", rdev.major, rdev.minor)).ok()?.trim().parse().ok()
}

/// `/sys/dev/char/M:m/align` of the device-DAX instance `rdev`: the unit its
/// mappings must be aligned to. Absent before Linux 5.10.
///
/// # References
/// - Documentation/ABI/testing/sysfs-bus-dax (`/sys/bus/dax/devices/daxX.Y/align`)
pub fn dax_device_align(rdev: Dev) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/dev/char/{}:{}/align", rdev.major, rdev.minor)).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_is_not_device_dax() {
        assert!(!char_device_is_dax(Dev { major: 1, minor: 3 }));
    }

    #[test]
    fn unknown_block_device_has_no_answer() {
        assert_eq!(block_device_dax(Dev { major: 4095, minor: 4095 }), None);
    }
}
