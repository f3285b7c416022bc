//! `statx` - the per-file truth: is this inode DAX, is it a character device.
//!
//! `STATX_ATTR_DAX` (Linux 5.8+) reports the inode's `S_DAX` flag, which is
//! exactly what the kernel's `IS_DAX()` tests in `vma_is_fsdax()`. The bit
//! counts only when `stx_attributes_mask` says the kernel knows it.
//!
//! # Safety
//! `libc::statx` with a NUL-terminated path and a zeroed out-struct.
//!
//! # References
//! - [statx(2)](https://man7.org/linux/man-pages/man2/statx.2.html)
#![allow(unsafe_code)]

use std::ffi::CStr;

use crate::sys::Errno;
use crate::types::Dev;

/// `STATX_ATTR_DAX` from `<linux/stat.h>` (not in every libc binding yet).
pub const STATX_ATTR_DAX: u64 = 0x0020_0000;

/// What daxguard needs from one `statx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// The filesystem's device (`stx_dev_major:stx_dev_minor`).
    pub dev: Dev,
    pub ino: u64,
    /// `stx_mode` (file type and permissions).
    pub mode: u32,
    /// For device files, the device they stand for.
    pub rdev: Dev,
    /// `Some(flag)` when the kernel reports the DAX attribute, `None` before 5.8.
    pub dax: Option<bool>,
}

impl FileStat {
    pub fn is_char_device(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFCHR
    }
}

/// `statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_INO)`, following symlinks
/// (needed for `/proc/PID/map_files/` and `/proc/PID/root/` paths).
///
/// # Errors
/// The errno of `statx` (`ENOENT` for a deleted file, `EACCES`, `EPERM` when
/// seccomp denies it).
pub fn statx(path: &CStr) -> Result<FileStat, Errno> {
    // SAFETY: plain data, filled by the kernel.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_TYPE | libc::STATX_INO;
    // SAFETY: `path` is NUL-terminated and `stx` is a valid out-pointer.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, path.as_ptr(), 0, mask, &mut stx) };
    if rc != 0 {
        return Err(Errno::last());
    }
    let known = stx.stx_attributes_mask & STATX_ATTR_DAX != 0;
    Ok(FileStat {
        dev: Dev { major: stx.stx_dev_major, minor: stx.stx_dev_minor },
        ino: stx.stx_ino,
        mode: u32::from(stx.stx_mode),
        rdev: Dev { major: stx.stx_rdev_major, minor: stx.stx_rdev_minor },
        dax: known.then_some(stx.stx_attributes & STATX_ATTR_DAX != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_is_a_char_device() {
        let st = statx(c"/dev/null").unwrap();
        assert!(st.is_char_device());
        assert_eq!(st.rdev, Dev { major: 1, minor: 3 });
    }

    #[test]
    fn missing_file() {
        assert_eq!(statx(c"/nonexistent/daxguard"), Err(Errno::ENOENT));
    }
}
