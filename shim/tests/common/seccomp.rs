//! A seccomp filter for the children of tests and benchmarks that must
//! run as on a kernel, or in a container, that refuses some calls
//! (`hostile.rs`, `benches/cold.rs`): process-wide and inherited, so only
//! ever installed in a child.

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `PROCMAP_QUERY = _IOWR('f', 17, struct procmap_query)` (104 bytes).
const PROCMAP_QUERY: u32 = 0xc068_6611;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf, k }
}

/// A seccomp filter answering EPERM to `statx`, to `ioctl(_, PROCMAP_QUERY)`
/// and/or to `perf_event_open`, allowing everything else: what a container
/// runtime's profile may do (Docker's default refuses `perf_event_open`).
pub fn install_filter(deny_ioctl: bool, deny_statx: bool, deny_perf: bool) {
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let deny = stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
    let mut f = vec![
        stmt(ld, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(ld, 0), // seccomp_data.nr
    ];
    if deny_statx {
        f.extend([jeq(libc::SYS_statx as u32, 0, 1), deny]);
    }
    if deny_perf {
        f.extend([jeq(libc::SYS_perf_event_open as u32, 0, 1), deny]);
    }
    if deny_ioctl {
        // args[1], low half (little endian): the ioctl request.
        f.extend([jeq(libc::SYS_ioctl as u32, 0, 3), stmt(ld, 24), jeq(PROCMAP_QUERY, 0, 1), deny]);
    }
    f.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    let prog = libc::sock_fprog { len: f.len() as u16, filter: f.as_mut_ptr() };
    // SAFETY: prctl with a valid, live filter program.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let r = libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _);
        assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}
