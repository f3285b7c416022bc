//! The system layer: the few libc calls the library makes outside the
//! kernel-interface modules, `errno`, the lock helper, and our own `/proc`
//! descriptors.
//!
//! # Safety
//! Each call below has no preconditions beyond valid arguments, which are
//! constants or locals here.
#![allow(unsafe_code)]

pub mod errno;
pub(crate) mod lock;
pub(crate) mod procfd;

pub use errno::Errno;

/// The page size, asked once.
pub(crate) fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf with a valid name.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 { n as u64 } else { 4096 }
    })
}

pub(crate) fn pid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() }
}

pub(crate) fn tid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

/// `getauxval(AT_SECURE)`: set for setuid/setgid/capability-gaining execs,
/// where the environment is the caller's to forge.
#[cfg(feature = "interpose")]
pub(crate) fn secure_execution() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Copies `out.len()` bytes of our own memory at `addr` into `out`, as the
/// kernel's `copy_from_user` would read them: an address the kernel could
/// not read is an `EFAULT` here too, never a crash.
pub(crate) fn read_own_memory(addr: u64, out: &mut [u8]) -> Result<(), Errno> {
    let local = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: out.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: out.len() };
    // SAFETY: `local` is our buffer, writable for its length; the kernel
    // checks `remote` and fails with EFAULT rather than fault.
    let n = unsafe { libc::process_vm_readv(pid(), &local, 1, &remote, 1, 0) };
    match n {
        n if n as usize == out.len() => Ok(()),
        n if n < 0 => {
            let e = Errno::last();
            if e != Errno::EFAULT {
                OWN_MEMORY_UNREADABLE.store(e.raw(), std::sync::atomic::Ordering::Relaxed);
            }
            Err(e)
        }
        _ => Err(Errno::EFAULT), // a partial read: the rest is unmapped
    }
}

/// The errno with which `process_vm_readv` of our own memory was refused
/// for a reason other than a bad address (seccomp: `EPERM`, `ENOSYS`); 0 if never.
pub(crate) static OWN_MEMORY_UNREADABLE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// `getrlimit(resource)`: (soft, hard), or `None` if it fails.
pub(crate) fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(libc::rlim_t, libc::rlim_t)> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills a local struct.
    (unsafe { libc::getrlimit(resource, &mut rl) } == 0).then_some((rl.rlim_cur, rl.rlim_max))
}

/// The device a descriptor stands for, if it is a character device.
pub(crate) fn char_device_of(fd: i32) -> Option<crate::types::Dev> {
    // SAFETY: plain data filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; a bad fd is EBADF.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    (ok && st.st_mode & libc::S_IFMT == libc::S_IFCHR)
        .then(|| crate::types::Dev { major: libc::major(st.st_rdev), minor: libc::minor(st.st_rdev) })
}

/// `ioctl(fd, request, arg)`: 0 or -1 (errno set).
pub(crate) fn ioctl(fd: i32, request: u32, arg: *mut libc::c_void) -> i32 {
    // SAFETY: the caller gives an `arg` valid for `request`.
    unsafe { libc::ioctl(fd, request as _, arg) }
}

/// One line on stderr with a single write; errors are ignored (stderr may be closed).
#[cfg(feature = "interpose")]
pub(crate) fn stderr_line(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    // SAFETY: writing our own buffer to fd 2.
    unsafe { libc::write(2, buf.as_ptr().cast(), buf.len()) };
}

/// The file name of the loaded object containing `addr` (`dladdr(3)`).
#[cfg(all(feature = "interpose", target_arch = "x86_64"))]
pub(crate) fn object_name(addr: *mut std::ffi::c_void) -> Option<String> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr fills `info`; dli_fname, when set, is a NUL-terminated name.
    unsafe {
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned())
    }
}
