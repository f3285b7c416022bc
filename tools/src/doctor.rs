//! `daxguard doctor`: what this kernel and machine can do, one line each.

use std::fmt::Write;
use std::path::Path;

use daxguard::mountinfo::{DaxOption, MountTable};
use daxguard::sysfs;
use serde::Serialize;

use crate::output::{Done, EXIT_OK, EXIT_REFUSED, SCHEMA, Style, json};
use crate::region::rdev;
use crate::shim::find_shim;
use crate::uname::kernel_release;
use crate::units::human_size;
use crate::verbs::{OdpJson, Verbs, library_name, odp_json};
use crate::watch::{self, Readiness};

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Serialize)]
struct Check {
    /// A stable identifier: kernel, fsdax_rule, procmap_query, statx_dax,
    /// dax_mounts, devdax, libibverbs, rdma, shim, interception, lookup, config, watch.
    id: &'static str,
    status: Status,
    detail: String,
    hint: Option<String>,
}

#[derive(Serialize, Default)]
struct Facts {
    kernel_release: String,
    kernel_enforces_fsdax_rule: Option<bool>,
    procmap_query: bool,
    statx_dax: Option<bool>,
    dax_mounts: Vec<DaxMount>,
    devdax: Vec<DevDax>,
    libibverbs: Option<String>,
    rdma_devices: Vec<RdmaDevice>,
    shim: Option<String>,
    /// `none`, `plt` or `plt+dlsym` from a preloaded daxguard; null without one.
    interception: Option<String>,
    /// How a guarded process here finds its VMAs: `procmap_query` or `maps`
    /// (the preloaded daxguard's answer under `daxguard run`).
    lookup: &'static str,
    /// The configuration file a guarded process here applies (null: none).
    config: Option<String>,
    watch: WatchFacts,
}

#[derive(Serialize, Default)]
struct WatchFacts {
    /// `daxguard watch` loaded and attached its program here (and detached it).
    ready: bool,
    /// The GUP functions it hooks on this kernel.
    hooks: Vec<&'static str>,
    /// Of those, the ones attached with a kprobe and kretprobe pair (no
    /// trampoline can take them here); fexit for the rest.
    kprobes: Vec<&'static str>,
    foll_longterm: Option<u32>,
    /// Why not, in one line (null when ready).
    why_not: Option<String>,
}

impl WatchFacts {
    /// What the kernel's side says (not ready until the load and attach worked).
    fn of(k: &watch::kernel::Kernel) -> Self {
        WatchFacts {
            ready: false,
            hooks: k.hooks.clone(),
            kprobes: k.kprobed.iter().map(|(f, _)| *f).collect(),
            foll_longterm: Some(k.foll_longterm),
            why_not: None,
        }
    }
}

#[derive(Serialize)]
struct DaxMount {
    mount_point: String,
    fstype: String,
    source: String,
    /// always (every file is DAX) or inode (per-file, on a DAX-capable block device).
    dax: &'static str,
}

#[derive(Serialize)]
struct DevDax {
    name: String,
    path: String,
    size: Option<u64>,
    align: Option<u64>,
}

#[derive(Serialize)]
struct RdmaDevice {
    name: String,
    /// null when libibverbs is missing or the provider cannot say.
    odp: Option<OdpJson>,
}

#[derive(Serialize)]
struct DoctorJson {
    schema: u32,
    command: &'static str,
    checks: Vec<Check>,
    facts: Facts,
    exit_code: u8,
}

/// An OK line. `warn` and `fail` are the same with their status, and
/// [`Check::hint`] adds the hint printed below the line.
fn ok(id: &'static str, detail: impl Into<String>) -> Check {
    Check { id, status: Status::Ok, detail: detail.into(), hint: None }
}

fn warn(id: &'static str, detail: impl Into<String>) -> Check {
    Check { status: Status::Warn, ..ok(id, detail) }
}

fn fail(id: &'static str, detail: impl Into<String>) -> Check {
    Check { status: Status::Fail, ..ok(id, detail) }
}

impl Check {
    fn hint(self, hint: impl Into<String>) -> Check {
        Check { hint: Some(hint.into()), ..self }
    }
}

/// Each `check_*` computes one line (`check_rdma`: one per device) and
/// records what it found in `facts`, in the order the lines are printed.
pub fn run(json_out: bool) -> anyhow::Result<Done> {
    let mut facts = Facts::default();
    let mut checks = vec![
        check_kernel(&mut facts),
        check_fsdax_rule(&mut facts),
        check_procmap_query(&mut facts),
        check_statx_dax(&mut facts),
        check_dax_mounts(&mut facts),
        check_devdax(&mut facts),
    ];
    let verbs = Verbs::load();
    checks.push(check_libibverbs(&mut facts, &verbs));
    checks.extend(check_rdma(&mut facts, verbs.as_ref().ok()));
    checks.push(check_shim(&mut facts));
    checks.push(check_interception(&mut facts));
    checks.push(check_lookup(&mut facts));
    checks.push(check_config(&mut facts));
    checks.push(check_watch(&mut facts));
    let code = if checks.iter().any(|c| c.status == Status::Fail) { EXIT_REFUSED } else { EXIT_OK };
    if json_out {
        let j = DoctorJson { schema: SCHEMA, command: "doctor", checks, facts, exit_code: code };
        return Ok(Done::new(json(&j)?, code));
    }
    Ok(Done::new(text(&checks, Style::detect(json_out)), code))
}

/// `OK  `, `WARN` or `FAIL` and the detail; the hint, if any, below it.
fn text(checks: &[Check], style: Style) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => style.green("OK  "),
            Status::Warn => style.yellow("WARN"),
            Status::Fail => style.red("FAIL"),
        };
        let _ = writeln!(out, "{tag}  {}", c.detail);
        if let Some(h) = &c.hint {
            let _ = writeln!(out, "      hint: {h}");
        }
    }
    out
}

fn check_kernel(facts: &mut Facts) -> Check {
    facts.kernel_release = kernel_release();
    ok("kernel", format!("Linux {}", facts.kernel_release))
}

fn check_fsdax_rule(facts: &mut Facts) -> Check {
    let release = &facts.kernel_release;
    // get_user_pages_longterm() (4.15) made long-term pins of fs-DAX fail;
    // later kernels keep the rule as FOLL_LONGTERM + vma_is_fsdax().
    facts.kernel_enforces_fsdax_rule = crate::uname::version(release).map(|v| v >= (4, 15));
    match facts.kernel_enforces_fsdax_rule {
        Some(true) => ok("fsdax_rule", "the kernel refuses long-term pins of fs-DAX (EOPNOTSUPP, 4.15+)"),
        Some(false) => warn("fsdax_rule", "this kernel (before 4.15) lets RDMA pin fs-DAX memory")
            .hint("daxguard's refusal is the only protection here: run RDMA programs with `daxguard run`"),
        None => warn("fsdax_rule", format!("cannot parse kernel release '{release}'")),
    }
}

fn check_procmap_query(facts: &mut Facts) -> Check {
    facts.procmap_query = daxguard::lookup::procmap_query_supported();
    if facts.procmap_query {
        return ok("procmap_query", "PROCMAP_QUERY supported: one ioctl per VMA");
    }
    warn("procmap_query", "PROCMAP_QUERY not available: /proc/PID/maps is read as text (slower in big processes)")
        .hint("Linux 6.11+ has PROCMAP_QUERY")
}

fn check_statx_dax(facts: &mut Facts) -> Check {
    // The kernel sets STATX_ATTR_DAX in stx_attributes_mask for every file (5.8+).
    facts.statx_dax = daxguard::statx::statx(c"/").ok().map(|st| st.dax.is_some());
    if facts.statx_dax == Some(true) {
        return ok("statx_dax", "statx reports STATX_ATTR_DAX: each file's DAX flag is visible");
    }
    warn("statx_dax", "statx does not report STATX_ATTR_DAX: DAX is judged from mount options")
        .hint("Linux 5.8+ reports the per-file DAX flag; files on dax=inode mounts may show as unverified")
}

fn check_dax_mounts(facts: &mut Facts) -> Check {
    facts.dax_mounts = dax_mounts();
    if facts.dax_mounts.is_empty() {
        return ok("dax_mounts", "no DAX-capable mounts: no file here can be fs-DAX");
    }
    let list: Vec<String> = facts
        .dax_mounts
        .iter()
        .map(|m| format!("{} ({} on {}, dax={})", m.mount_point, m.fstype, m.source, m.dax))
        .collect();
    ok("dax_mounts", format!("DAX-capable mounts: {}", list.join(", ")))
}

fn check_devdax(facts: &mut Facts) -> Check {
    facts.devdax = devdax_nodes();
    if facts.devdax.is_empty() {
        return ok("devdax", "no device-DAX nodes");
    }
    let list: Vec<String> = facts
        .devdax
        .iter()
        .map(|d| {
            let size = d.size.map_or("size unknown".into(), human_size);
            let align = d.align.map_or(String::new(), |a| format!(", align {}", human_size(a)));
            format!("{} ({size}{align})", d.path)
        })
        .collect();
    ok("devdax", format!("device-DAX (registrable): {}", list.join(", ")))
}

fn check_libibverbs(facts: &mut Facts, verbs: &anyhow::Result<Verbs>) -> Check {
    match verbs {
        Ok(v) => {
            facts.libibverbs = Some(v.path.clone());
            ok("libibverbs", format!("libibverbs: {}", v.path))
        }
        Err(e) => warn("libibverbs", format!("{e:#}"))
            .hint(format!("`daxguard probe` needs {}; everything else works without it", library_name())),
    }
}

/// One line per RDMA device, or one warning that there is none.
fn check_rdma(facts: &mut Facts, verbs: Option<&Verbs>) -> Vec<Check> {
    facts.rdma_devices = rdma_devices(verbs);
    if facts.rdma_devices.is_empty() {
        let hint = "load the driver, or for a test: rdma link add rxe0 type rxe netdev eth0";
        return vec![warn("rdma", "no RDMA devices in /sys/class/infiniband").hint(hint)];
    }
    let odp = |o: Option<&OdpJson>| match o {
        Some(o) if o.supported => {
            format!("ODP supported (implicit: {}; RC caps {:#x})", if o.implicit { "yes" } else { "no" }, o.rc_odp_caps)
        }
        Some(_) => "no ODP: IBV_ACCESS_ON_DEMAND is not a way around the fs-DAX refusal here".to_string(),
        None => "ODP unknown".to_string(),
    };
    facts.rdma_devices.iter().map(|d| ok("rdma", format!("RDMA device {}: {}", d.name, odp(d.odp.as_ref())))).collect()
}

fn check_shim(facts: &mut Facts) -> Check {
    match find_shim(None) {
        Ok(s) => {
            facts.shim = Some(s.path.display().to_string());
            ok("shim", format!("libdaxguard.so: {} ({}); `daxguard run` will use it", s.path.display(), s.how))
        }
        Err(e) => fail("shim", format!("{e:#}")).hint(
            "`daxguard run` cannot work: install the daxguard package, or libdaxguard.so beside daxguard or in /usr/local/lib, or set DAXGUARD_LIB",
        ),
    }
}

/// Which interception the preloaded shim runs in this process (doctor
/// started with `daxguard run -- daxguard doctor`), if one is preloaded.
fn check_interception(facts: &mut Facts) -> Check {
    facts.interception = crate::interception::preloaded();
    match facts.interception.as_deref() {
        None => {
            ok("interception", "no daxguard preloaded in this process (`daxguard run -- daxguard doctor` shows it)")
        }
        Some("plt+dlsym") => ok(
            "interception",
            "plt+dlsym: PLT exports and dlsym/dlvsym results; no code is patched, so MemoryDenyWriteExecute changes nothing",
        ),
        Some("plt") => {
            warn("interception", "plt: PLT exports only; pointers fetched with dlsym/dlvsym are not checked")
                .hint("the dlsym wrapper needs x86_64 and glibc's dlsym in libc.so.6 or libdl.so.2")
        }
        Some(other) => warn("interception", format!("{other}: this copy of daxguard intercepts nothing")),
    }
}

/// Which lookup path a guarded process uses: the preloaded copy's under
/// `daxguard run -- daxguard doctor`, else what this kernel and
/// `DAXGUARD_LOOKUP` give.
fn check_lookup(facts: &mut Facts) -> Check {
    let (name, whose) = match crate::interception::preloaded_lookup() {
        Some(name) => (
            match name.as_str() {
                "procmap_query" => "procmap_query",
                "events" => "events",
                _ => "maps",
            },
            "the preloaded daxguard",
        ),
        None => {
            let (settings, _) = daxguard::settings::Settings::parse(|k| std::env::var(k).ok());
            (daxguard::lookup::preferred_lookup(settings.lookup).name(), "a guarded process here")
        }
    };
    facts.lookup = name;
    if name == "procmap_query" {
        return ok(
            "lookup",
            format!("{whose} finds VMAs with PROCMAP_QUERY (procmap_query): one ioctl per VMA spanned"),
        );
    }
    if name == "events" {
        return ok(
            "lookup",
            format!(
                "{whose} finds VMAs in its mmap-events map (events): kept current from the kernel's \
                 PERF_RECORD_MMAP2 records, flat in the process size; refusals confirmed on /proc/self/maps"
            ),
        );
    }
    let why = match daxguard::lookup::mmap_events_status() {
        Err(why) => format!(" (mmap events unavailable: {why})"),
        Ok(()) => String::new(),
    };
    warn(
        "lookup",
        format!("{whose} reads /proc/self/maps as text (maps){why}: each registration costs a walk of the maps"),
    )
    .hint(
        "PROCMAP_QUERY needs Linux 6.11+ (and DAXGUARD_LOOKUP unset or auto); the mmap-events map needs \
         perf_event_paranoid <= 2 or CAP_PERFMON, and Linux 4.15+",
    )
}

/// The configuration file as a guarded process with this environment would
/// read it: whether it parses (else the complaint each process prints once),
/// and what it gives a process named `daxguard` here.
fn check_config(facts: &mut Facts) -> Check {
    let r = daxguard::config::resolve(|k| std::env::var(k).ok());
    facts.config = r.file.as_ref().map(|p| p.display().to_string());
    if !r.complaints.is_empty() {
        return warn("config", r.complaints.join("; "))
            .hint("every guarded process says this once and runs with the defaults (or the valid variables)");
    }
    let log = match &r.settings.log {
        daxguard::policy::LogDest::None => "no log".to_string(),
        daxguard::policy::LogDest::File(p) => format!("log {}", p.display()),
        daxguard::policy::LogDest::Syslog => "log to syslog".to_string(),
        daxguard::policy::LogDest::Journal => "log to the journal".to_string(),
    };
    let here = format!("here: mode {}, {log}", r.settings.mode.name());
    match &r.file {
        Some(p) => ok("config", format!("{} parses; {here}", p.display())),
        None => ok("config", format!("no configuration file ({}); {here}", daxguard::config::DEFAULT_PATH)),
    }
}

/// Whether `daxguard watch` can run: the kernel (BTF, the GUP functions,
/// FOLL_* values), our privileges, then a real load and attach of its
/// program, detached at once.
fn check_watch(facts: &mut Facts) -> Check {
    let hint = "`daxguard watch` needs Linux 5.17+ with BTF and BPF trampolines (Debian's kernels have both)";
    match watch::readiness() {
        Readiness::Ready(k) => {
            facts.watch = WatchFacts { ready: true, why_not: None, ..WatchFacts::of(&k) };
            let skipped: Vec<String> = k.skipped.iter().map(|(f, why)| format!("not {f}: {why}")).collect();
            let skipped = if skipped.is_empty() { String::new() } else { format!(" ({})", skipped.join("; ")) };
            let c = ok("watch", format!("`daxguard watch` can run here, attached: {}{skipped}", k.attachments(true)));
            if watch::kernel::kallsyms_visible() {
                return c;
            }
            c.hint("/proc/kallsyms hides addresses from this user: consumers would show as 'other' (add CAP_SYSLOG)")
        }
        Readiness::NotPermitted(k, e) => {
            facts.watch = WatchFacts { why_not: Some(e.to_string()), ..WatchFacts::of(&k) };
            warn("watch", format!("the kernel can run `daxguard watch`, but {e}")).hint(
                "run it as root, or with CAP_BPF, CAP_PERFMON and CAP_SYSLOG (tools/dist/daxguard-watch.service does)",
            )
        }
        Readiness::Unsupported(e) => {
            facts.watch = WatchFacts { why_not: Some(e.to_string()), ..WatchFacts::default() };
            warn("watch", format!("`daxguard watch` cannot run here: {e}")).hint(hint)
        }
    }
}

/// Mounts where a file can be fs-DAX: `dax`/`dax=always`, or per-file DAX
/// (`dax=inode`, the default) on a block device whose `queue/dax` is 1.
fn dax_mounts() -> Vec<DaxMount> {
    let table = MountTable::read(Path::new("/proc/self/mountinfo")).unwrap_or_default();
    table
        .mounts
        .iter()
        .filter_map(|m| {
            let dax = match m.dax_option() {
                DaxOption::Always => "always",
                DaxOption::Inode if m.dev.major != 0 && sysfs::block_device_dax(m.dev) == Some(true) => "inode",
                _ => return None,
            };
            Some(DaxMount {
                mount_point: String::from_utf8_lossy(&m.mount_point).into_owned(),
                fstype: m.fstype.clone(),
                source: String::from_utf8_lossy(&m.source).into_owned(),
                dax,
            })
        })
        .collect()
}

/// `/sys/bus/dax/devices/daxX.Y` that have a `/dev/daxX.Y`, with their size and alignment.
fn devdax_nodes() -> Vec<DevDax> {
    let Ok(dir) = std::fs::read_dir("/sys/bus/dax/devices") else { return Vec::new() };
    let mut v: Vec<DevDax> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = format!("/dev/{name}");
            let rdev = rdev(&std::fs::metadata(&path).ok()?);
            Some(DevDax { size: sysfs::dax_device_size(rdev), align: sysfs::dax_device_align(rdev), name, path })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// `/sys/class/infiniband/*`, with ODP capabilities when libibverbs can ask.
fn rdma_devices(verbs: Option<&Verbs>) -> Vec<RdmaDevice> {
    let Ok(dir) = std::fs::read_dir("/sys/class/infiniband") else { return Vec::new() };
    let mut names: Vec<String> = dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let odp = verbs.and_then(|v| v.open(&name).ok()).and_then(|d| d.odp_caps()).map(|c| odp_json(&c));
            RdmaDevice { name, odp }
        })
        .collect()
}
