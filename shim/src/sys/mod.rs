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
