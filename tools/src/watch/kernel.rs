//! Can `watch` run on this kernel, and with which values? Everything here is
//! read, never loaded: the release, the kernel's BTF (the hooked functions,
//! the `FOLL_*` flags), the lockdown mode and our capabilities. `watch`
//! stops with the first reason it finds (one line, exit 2); `doctor` prints it.

use std::fmt;
use std::path::Path;

use libbpf_rs::btf::{Btf, ReferencesType, types};

use crate::uname;

/// The GUP entry points watch.bpf.c hooks, in its `enum watch_hook` order.
/// The first two are needed (RDMA, V4L2, io_uring); the others are hooked
/// where this kernel can. Each gets fexit where a BPF trampoline can take
/// it; pin_user_pages_remote() (VFIO, iommufd) takes 7 arguments before
/// 6.5, and x86's trampolines take at most 6 before 6.6, so on 6.1 it gets
/// the kprobe and kretprobe pair watch.bpf.c has for it ([`KPROBE_FALLBACK`]).
pub const HOOKS: [&str; 4] =
    ["pin_user_pages_fast", "pin_user_pages", "pin_user_pages_remote", "pin_user_pages_unlocked"];
const REQUIRED_HOOKS: usize = 2;
/// The hooks watch.bpf.c also has as a kprobe and kretprobe pair.
pub const KPROBE_FALLBACK: [&str; 1] = ["pin_user_pages_remote"];

/// The most arguments a BPF trampoline takes: 6 on x86 before 6.6, 12 since.
fn trampoline_max_args(version: (u32, u32)) -> usize {
    if version >= (6, 6) { 12 } else { 6 }
}

/// `bpf_find_vma()`, `bpf_get_func_arg()` and `bpf_get_func_ret()` came in 5.17.
const MIN_VERSION: (u32, u32) = (5, 17);

/// FOLL_* became an enum (in BTF) in 6.3; before, they were #defines with
/// these values (include/linux/mm.h, 5.2 to 6.2).
const OLD_FOLL_LONGTERM: u32 = 0x10000;
const OLD_FOLL_WRITE: u32 = 0x01;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYSLOG: u32 = 34;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Why `watch` cannot run here: one line, shown as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

fn unsupported<T>(msg: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(msg.into()))
}

/// What the BPF program needs to know about this kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub foll_longterm: u32,
    pub foll_write: u32,
    /// `btf` (read from the kernel's enum) or `pre-6.3` (the old #define values).
    pub foll_source: &'static str,
    /// [`HOOKS`] this kernel has and watch attaches (the required ones always).
    pub hooks: Vec<&'static str>,
    /// Of those, the ones no trampoline can take here, attached with a
    /// kprobe and kretprobe pair instead, each with why; fexit for the rest.
    pub kprobed: Vec<(&'static str, String)>,
    /// The others, each with why not.
    pub skipped: Vec<(&'static str, String)>,
}

/// The kernel side, checked in the order a reader would: version, BTF, the
/// functions, the flags, lockdown. Privileges are [`privileges`].
pub fn examine() -> Result<Kernel, Unsupported> {
    let release = uname::kernel_release();
    match uname::version(&release) {
        Some(v) if v < MIN_VERSION => {
            return unsupported(format!(
                "Linux {release} is too old for watch: it needs 5.17+ (bpf_find_vma, bpf_get_func_ret)"
            ));
        }
        None => return unsupported(format!("cannot parse the kernel release '{release}'")),
        Some(_) => {}
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return unsupported("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing: CONFIG_DEBUG_INFO_BTF)");
    }
    let btf = match Btf::from_vmlinux() {
        Ok(b) => b,
        Err(e) => return unsupported(format!("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): {e}")),
    };
    let version = uname::version(&release).unwrap_or_default();
    let (mut hooks, mut kprobed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (i, f) in HOOKS.iter().copied().enumerate() {
        let why_not = match arguments(&btf, f) {
            None => format!("this kernel has no {f}() in its BTF"),
            Some(n) if n > trampoline_max_args(version) => {
                let why = format!(
                    "{f}() takes {n} arguments and this kernel's BPF trampolines at most {}",
                    trampoline_max_args(version)
                );
                if KPROBE_FALLBACK.contains(&f) {
                    hooks.push(f);
                    kprobed.push((f, why));
                    continue;
                }
                why
            }
            Some(_) => {
                hooks.push(f);
                continue;
            }
        };
        if i < REQUIRED_HOOKS {
            return unsupported(format!("{why_not}: watch cannot hook it"));
        }
        skipped.push((f, why_not));
    }
    let (foll_longterm, foll_write, foll_source) =
        match (enumerator(&btf, "FOLL_LONGTERM"), enumerator(&btf, "FOLL_WRITE")) {
            (Some(l), Some(w)) => (l, w, "btf"),
            // 5.17 to 6.2: #defines, not in BTF.
            (None, None) if uname::version(&release) < Some((6, 3)) => (OLD_FOLL_LONGTERM, OLD_FOLL_WRITE, "pre-6.3"),
            _ => return unsupported("cannot find FOLL_LONGTERM and FOLL_WRITE in the kernel's BTF"),
        };
    if lockdown_confidentiality() {
        return unsupported("kernel lockdown is 'confidentiality': BPF may not read kernel memory (VMAs, paths)");
    }
    Ok(Kernel { foll_longterm, foll_write, foll_source, hooks, kprobed, skipped })
}

impl Kernel {
    /// Whether `function` is attached with a kprobe and kretprobe pair (else fexit).
    pub fn kprobe(&self, function: &str) -> bool {
        self.kprobed.iter().any(|(f, _)| *f == function)
    }

    /// How each hook is attached, for doctor and watch's first line:
    /// `fexit on a(), b(); kprobe+kretprobe on c()`, with why for the
    /// kprobes when `why` is set.
    pub fn attachments(&self, why: bool) -> String {
        let (kprobes, fexits): (Vec<&str>, Vec<&str>) = self.hooks.iter().partition(|f| self.kprobe(f));
        let list = |fs: &[&str]| fs.iter().map(|f| format!("{f}()")).collect::<Vec<_>>().join(", ");
        let mut text = format!("fexit on {}", list(&fexits));
        if !kprobes.is_empty() {
            text += &format!("; kprobe+kretprobe on {}", list(&kprobes));
            if why {
                let whys: Vec<&str> = self.kprobed.iter().map(|(_, w)| w.as_str()).collect();
                text += &format!(" ({})", whys.join("; "));
            }
        }
        text
    }
}

/// How many arguments the kernel function `name` takes, if BTF has it.
fn arguments(btf: &Btf<'_>, name: &str) -> Option<usize> {
    let f = btf.type_by_name::<types::Func<'_>>(name)?;
    let proto = btf.type_by_id::<types::FuncProto<'_>>(f.referenced_type_id())?;
    Some(proto.len())
}

/// The value of an enumerator named `name` in any enum of `btf` (the FOLL_*
/// enum is anonymous, so CO-RE's enum relocations cannot name it).
fn enumerator(btf: &Btf<'_>, name: &str) -> Option<u32> {
    btf.type_by_kind::<types::Enum<'_>>()
        .find_map(|e| e.iter().find(|m| m.name.is_some_and(|n| n == name)).map(|m| m.value as u32))
}

/// `/sys/kernel/security/lockdown` shows `[confidentiality]`.
fn lockdown_confidentiality() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lockdown").is_ok_and(|s| s.contains("[confidentiality]"))
}

/// Our effective capabilities (`CapEff` in /proc/self/status).
fn effective_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// Loading and attaching tracing programs needs CAP_BPF and CAP_PERFMON
/// (or CAP_SYS_ADMIN, which implies both).
pub fn privileges() -> Result<(), Unsupported> {
    let caps = effective_caps();
    if has_cap(caps, CAP_SYS_ADMIN) || (has_cap(caps, CAP_BPF) && has_cap(caps, CAP_PERFMON)) {
        return Ok(());
    }
    unsupported("watch needs root, or CAP_BPF and CAP_PERFMON, to load its BPF program")
}

/// Whether /proc/kallsyms will show us addresses (the consumer is named
/// from them): CAP_SYSLOG, or kptr_restrict 0 with perf_event_paranoid <= 1.
pub fn kallsyms_visible() -> bool {
    if has_cap(effective_caps(), CAP_SYSLOG) {
        return true;
    }
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<i32>().ok());
    read("/proc/sys/kernel/kptr_restrict") == Some(0)
        && read("/proc/sys/kernel/perf_event_paranoid").is_some_and(|v| v <= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(kprobed: &[&'static str]) -> Kernel {
        Kernel {
            foll_longterm: OLD_FOLL_LONGTERM,
            foll_write: OLD_FOLL_WRITE,
            foll_source: "pre-6.3",
            hooks: HOOKS.to_vec(),
            kprobed: kprobed.iter().map(|f| (*f, format!("{f}() takes 7 arguments"))).collect(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn attachments_say_which_function_got_which() {
        let all = "pin_user_pages_fast(), pin_user_pages(), pin_user_pages_remote(), pin_user_pages_unlocked()";
        assert_eq!(kernel(&[]).attachments(true), format!("fexit on {all}"));
        let k = kernel(&["pin_user_pages_remote"]);
        assert!(k.kprobe("pin_user_pages_remote") && !k.kprobe("pin_user_pages_fast"));
        assert_eq!(
            k.attachments(false),
            "fexit on pin_user_pages_fast(), pin_user_pages(), pin_user_pages_unlocked(); \
             kprobe+kretprobe on pin_user_pages_remote()"
        );
        assert!(
            k.attachments(true).ends_with("on pin_user_pages_remote() (pin_user_pages_remote() takes 7 arguments)")
        );
    }

    #[test]
    fn trampolines_take_more_arguments_from_6_6() {
        assert_eq!(trampoline_max_args((6, 1)), 6);
        assert_eq!(trampoline_max_args((6, 6)), 12);
    }
}
