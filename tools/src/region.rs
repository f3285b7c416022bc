//! The memory `check` and `probe` look at: a file, a device-DAX node or
//! `/dev/zero` mapped shared (as an RDMA program maps them), or anonymous
//! memory. Bad input is caught here, each case with its own one-line message.
//!
//! # Safety
//! `mmap`/`munmap` of mappings this module creates and owns, and `sysconf`.
#![allow(unsafe_code)]

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{Context, bail};
use daxguard::{Dev, sysfs};
use serde::Serialize;

use crate::output::errno_text;
use crate::units::human_size;

/// Where the memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File,
    BlockDevice,
    DeviceDax,
    /// `/dev/zero` mapped shared: shared anonymous memory.
    DevZero,
    Anonymous,
}

/// A mapping we own; unmapped on drop.
pub struct Region {
    base: *mut libc::c_void,
    map_len: usize,
    /// The requested range inside the mapping.
    pub start: u64,
    pub len: u64,
    pub offset: u64,
    pub source: Source,
    /// Mapping granularity: the page size, or the device-DAX alignment.
    pub align: u64,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly what mmap returned to us.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf with a valid name.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

/// The device number a device node stands for (`st_rdev`).
pub fn rdev(meta: &Metadata) -> Dev {
    Dev { major: libc::major(meta.rdev()), minor: libc::minor(meta.rdev()) }
}

/// Device-DAX mappings must be aligned to this when sysfs does not say (the default `align`).
const DEVDAX_DEFAULT_ALIGN: u64 = 2 << 20;

fn io_text(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(|| e.to_string(), errno_text)
}

/// What `path` is, its size, and its mapping granularity.
struct Target {
    source: Source,
    size: Option<u64>,
    align: u64,
}

fn examine(path: &Path, file: &File) -> anyhow::Result<Target> {
    let shown = path.display();
    let meta = file.metadata().with_context(|| format!("cannot examine {shown}"))?;
    let ft = meta.file_type();
    let page = page_size();
    if ft.is_file() {
        return Ok(Target { source: Source::File, size: Some(meta.len()), align: page });
    }
    if ft.is_block_device() {
        // Block devices report st_size 0; their size is where SEEK_END lands.
        let size = (&*file).seek(SeekFrom::End(0)).with_context(|| format!("cannot size {shown}"))?;
        return Ok(Target { source: Source::BlockDevice, size: Some(size), align: page });
    }
    // Only called for character devices (see map_path).
    let rdev = rdev(&meta);
    if sysfs::char_device_is_dax(rdev) {
        let size = sysfs::dax_device_size(rdev)
            .with_context(|| format!("cannot read the size of {shown} from /sys/dev/char/{rdev}/size"))?;
        let align =
            sysfs::dax_device_align(rdev).filter(|a| a.is_power_of_two() && *a >= page).unwrap_or(DEVDAX_DEFAULT_ALIGN);
        return Ok(Target { source: Source::DeviceDax, size: Some(size), align });
    }
    Ok(Target { source: Source::DevZero, size: None, align: page })
}

/// Maps `[offset, offset + len)` of `path` shared (read-only unless `writable`).
/// `len` defaults to the rest of the file, one alignment unit for
/// device-DAX, one page for `/dev/zero`.
pub fn map_path(path: &Path, offset: Option<u64>, len: Option<u64>, writable: bool) -> anyhow::Result<Region> {
    look_before_opening(path)?;
    let file = OpenOptions::new().read(true).write(writable).open(path).map_err(|e| {
        let how = if writable { "reading and writing" } else { "reading" };
        anyhow::anyhow!("cannot open {} for {how}: {}", path.display(), io_text(&e))
    })?;
    let t = examine(path, &file)?;
    let offset = offset.unwrap_or(0);
    let len = t.len_at(path, offset, len)?;
    map_shared(path, &file, &t, offset, len, writable)
}

/// Opening a FIFO blocks, and opening an arbitrary character device (a
/// watchdog, a tty) has side effects: refuse those from `stat` alone.
fn look_before_opening(path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{shown}: {}", io_text(&e)))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        bail!("{shown} is a directory: give a file or a device-DAX node (/dev/daxX.Y)");
    }
    if ft.is_char_device() {
        let rdev = rdev(&meta);
        let zero = Dev { major: 1, minor: 5 };
        if rdev != zero && !sysfs::char_device_is_dax(rdev) {
            bail!("{shown} is a character device that is not device-DAX: give a file or /dev/daxX.Y");
        }
    } else if !ft.is_file() && !ft.is_block_device() {
        bail!("{shown} is not a regular file or a device (a FIFO or socket cannot be mapped)");
    }
    Ok(())
}

impl Target {
    /// The length to map at `offset`: `len`, else the default, checked
    /// against the size when there is one.
    fn len_at(&self, path: &Path, offset: u64, len: Option<u64>) -> anyhow::Result<u64> {
        let shown = path.display();
        let len = match (self.size, len) {
            (Some(0), _) => bail!("{shown} is empty: there is nothing to map"),
            (Some(size), _) if offset >= size => {
                bail!("offset {offset} is past the end of {shown} ({size} bytes, {})", human_size(size))
            }
            (_, Some(len)) => len,
            (Some(size), None) if self.source == Source::DeviceDax => self.align.min(size - offset),
            (Some(size), None) => size - offset,
            (None, None) => self.align,
        };
        let end = offset.checked_add(len).context("offset + length overflows")?;
        if let Some(size) = self.size.filter(|&s| end > s) {
            bail!("offset {offset} + length {len} runs past the end of {shown} ({size} bytes, {})", human_size(size));
        }
        Ok(len)
    }
}

/// `mmap(MAP_SHARED)` of `[offset, offset + len)` of `file` (`len_at` has
/// checked that the end does not overflow).
fn map_shared(path: &Path, file: &File, t: &Target, offset: u64, len: u64, writable: bool) -> anyhow::Result<Region> {
    // mmap wants offset (and, for device-DAX, length) in whole alignment units.
    let map_off = offset & !(t.align - 1);
    let map_end = (offset + len).checked_next_multiple_of(t.align).context("offset + length overflows")?;
    let map_len = usize::try_from(map_end - map_off).context("range too large")?;
    let map_off_t = libc::off_t::try_from(map_off).context("offset too large")?;
    let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
    // SAFETY: a fresh shared mapping of our own descriptor; no existing memory is touched.
    let base =
        unsafe { libc::mmap(std::ptr::null_mut(), map_len, prot, libc::MAP_SHARED, file.as_raw_fd(), map_off_t) };
    if base == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        let shown = path.display();
        bail!("cannot map {shown} ({} at offset {map_off}): {}", human_size(map_len as u64), io_text(&e));
    }
    // The mapping keeps the file alive; the descriptor can go.
    let start = base as u64 + (offset - map_off);
    Ok(Region { base, map_len, start, len, offset, source: t.source, align: t.align })
}

/// Private anonymous memory, read-write, as a buffer from malloc would be.
pub fn map_anon(len: u64) -> anyhow::Result<Region> {
    let page = page_size();
    let map_len =
        len.checked_next_multiple_of(page).and_then(|l| usize::try_from(l).ok()).context("length too large")?;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: a fresh anonymous mapping; no existing memory is touched.
    let base = unsafe { libc::mmap(std::ptr::null_mut(), map_len, prot, flags, -1, 0) };
    if base == libc::MAP_FAILED {
        bail!("cannot map {} of anonymous memory: {}", human_size(len), io_text(&std::io::Error::last_os_error()));
    }
    Ok(Region { base, map_len, start: base as u64, len, offset: 0, source: Source::Anonymous, align: page })
}
