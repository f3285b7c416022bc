//! `/proc/PID/mountinfo`: which filesystem, mounted how, sits behind a device number.
//!
//! Mounts are looked up by `maj:min` (the VMA's device), never by path: the
//! same path can be mounted over, and one filesystem can be mounted at many
//! places. The superblock options (where `dax=` lives) are the same for every
//! mount of one filesystem, so any entry with the device answers the DAX question.
//!
//! # References
//! - [proc_pid_mountinfo(5)](https://man7.org/linux/man-pages/man5/proc_pid_mountinfo.5.html)
//! - `show_mountinfo()` and `mangle()` in the kernel's `fs/proc_namespace.c`
//! - Documentation/filesystems/dax.rst (the `dax`, `dax=always|never|inode` options)

use crate::types::Dev;

/// One mount, with octal escapes (`\040` and friends) undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent: u32,
    pub dev: Dev,
    pub root: Vec<u8>,
    pub mount_point: Vec<u8>,
    pub options: String,
    pub fstype: String,
    pub source: Vec<u8>,
    pub super_options: String,
}

/// What the mount options say about DAX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaxOption {
    /// `dax` or `dax=always`: every regular file the filesystem can do DAX on is DAX.
    Always,
    /// `dax=never`: no file is DAX.
    Never,
    /// `dax=inode`, or no option (the default since 5.8): per-file flag.
    Inode,
}

impl Mount {
    /// The `dax` setting, from the superblock options (or, defensively, the per-mount ones).
    pub fn dax_option(&self) -> DaxOption {
        let opts = self.super_options.split(',').chain(self.options.split(','));
        let mut found = DaxOption::Inode;
        for opt in opts {
            match opt {
                "dax" | "dax=always" => return DaxOption::Always,
                "dax=never" => found = DaxOption::Never,
                _ => {}
            }
        }
        found
    }
}

/// Parses one mountinfo line. `None` if it is malformed.
pub fn parse_line(line: &[u8]) -> Option<Mount> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let id = num(fields.next()?)?;
    let parent = num(fields.next()?)?;
    let dev = parse_dev(fields.next()?)?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let options = text(fields.next()?);
    // Optional fields ("shared:1", "master:2", ...) run up to a lone "-".
    fields.by_ref().find(|f| *f == b"-")?;
    let fstype = String::from_utf8_lossy(&unescape(fields.next()?)).into_owned();
    let source = unescape(fields.next()?);
    let super_options = fields.next().map(text).unwrap_or_default();
    Some(Mount { id, parent, dev, root, mount_point, options, fstype, source, super_options })
}

/// All mounts of one process's mount namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable {
    pub mounts: Vec<Mount>,
}

impl MountTable {
    /// Parses a whole mountinfo file, skipping lines that do not parse.
    pub fn parse(text: &[u8]) -> Self {
        let mounts = text.split(|&b| b == b'\n').filter_map(parse_line).collect();
        MountTable { mounts }
    }

    /// Reads `/proc/self/mountinfo` (or another process's).
    pub fn read(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read(path)?))
    }

    /// Any mount of the filesystem on `dev`; all of them carry the same superblock options.
    pub fn first_by_dev(&self, dev: Dev) -> Option<&Mount> {
        self.mounts.iter().find(|m| m.dev == dev)
    }

    /// The mount of `dev` to show a person: the one whose mount point is the
    /// longest prefix of `path`, else the first (e.g. the file was deleted).
    pub fn best_for(&self, dev: Dev, path: &[u8]) -> Option<&Mount> {
        let prefix_len = |m: &&Mount| {
            let mp = m.mount_point.as_slice();
            let under = path.starts_with(mp) && (mp == b"/" || path.get(mp.len()) == Some(&b'/'));
            if under { mp.len() } else { 0 }
        };
        let candidates = self.mounts.iter().filter(|m| m.dev == dev);
        candidates.clone().max_by_key(prefix_len).filter(|m| prefix_len(m) > 0).or_else(|| self.first_by_dev(dev))
    }
}

fn parse_dev(s: &[u8]) -> Option<Dev> {
    let colon = s.iter().position(|&b| b == b':')?;
    Some(Dev { major: num(&s[..colon])?, minor: num(&s[colon + 1..])? })
}

fn num(s: &[u8]) -> Option<u32> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn text(s: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(s)).into_owned()
}

/// Undoes the kernel's `mangle()`: `\ooo` (three octal digits) is one byte.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s.get(i + 1..i + 4).filter(|d| s[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(v as u8); // values above 0o377 cannot come from mangle(); truncation is harmless
                i += 4;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:22 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1024k
40 22 259:0 / /mnt/pmem rw,relatime shared:20 - ext4 /dev/pmem0 rw,dax=always
41 22 259:0 /sub /mnt/my\\040data rw,relatime shared:20 master:3 - ext4 /dev/pmem0 rw,dax=always
42 22 259:1 / /mnt/x rw - xfs /dev/pmem1 rw,attr2,dax=never,inode64
43 22 0:50 / /mnt/v rw - virtiofs myfs rw,dax
44 22 8:1 / /mnt/plain rw - ext4 /dev/sda1 rw
";

    #[test]
    fn parses_fields_and_optional_fields() {
        let t = MountTable::parse(SAMPLE);
        assert_eq!(t.mounts.len(), 7);
        let m = &t.mounts[3];
        assert_eq!((m.id, m.parent), (41, 22));
        assert_eq!(m.dev, Dev { major: 259, minor: 0 });
        assert_eq!(m.root, b"/sub");
        assert_eq!(m.mount_point, b"/mnt/my data");
        assert_eq!(m.fstype, "ext4");
        assert_eq!(m.source, b"/dev/pmem0");
        assert_eq!(m.super_options, "rw,dax=always");
    }

    #[test]
    fn dax_options() {
        let t = MountTable::parse(SAMPLE);
        let opt = |major, minor| t.first_by_dev(Dev { major, minor }).unwrap().dax_option();
        assert_eq!(opt(259, 0), DaxOption::Always);
        assert_eq!(opt(259, 1), DaxOption::Never);
        assert_eq!(opt(0, 50), DaxOption::Always);
        assert_eq!(opt(8, 1), DaxOption::Inode);
    }

    #[test]
    fn best_mount_by_path_prefix_not_string_prefix() {
        let t = MountTable::parse(SAMPLE);
        let dev = Dev { major: 259, minor: 0 };
        assert_eq!(t.best_for(dev, b"/mnt/my data/f").unwrap().id, 41);
        assert_eq!(t.best_for(dev, b"/mnt/pmem/f").unwrap().id, 40);
        assert_eq!(t.best_for(dev, b"/mnt/pmemx/f").unwrap().id, 40, "falls back to the first");
        assert!(t.best_for(Dev { major: 1, minor: 1 }, b"/").is_none());
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape(br"a\040b\011c\012d\134e"), b"a b\tc\nd\\e");
        assert_eq!(unescape(br"trailing\04"), br"trailing\04");
        assert_eq!(unescape(br"\9zz"), br"\9zz");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for bad in [&b""[..], b"1 2 3", b"1 2 8:1 / / rw shared:1 ext4 /dev/x rw", b"x 2 8:1 / / rw - ext4 a b"] {
            assert_eq!(parse_line(bad), None);
        }
        let t = MountTable::parse(b"garbage\n22 1 254:0 / / rw - ext4 /dev/vda rw\n");
        assert_eq!(t.mounts.len(), 1);
    }
}
