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
    /// dax_mounts, devdax, libibverbs, rdma, shim.
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

fn check(id: &'static str, status: Status, detail: impl Into<String>, hint: Option<&str>) -> Check {
    Check { id, status, detail: detail.into(), hint: hint.map(str::to_string) }
}

/// `6.12.3-amd64` -> (6, 12).
fn version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub fn run(json_out: bool) -> anyhow::Result<Done> {
    let style = Style::detect(json_out);
    let mut facts = Facts::default();
    let mut checks = Vec::new();

    let release = kernel_release();
    facts.kernel_release = release.clone();
    checks.push(check("kernel", Status::Ok, format!("Linux {release}"), None));

    // get_user_pages_longterm() (4.15) made long-term pins of fs-DAX fail;
    // later kernels keep the rule as FOLL_LONGTERM + vma_is_fsdax().
    facts.kernel_enforces_fsdax_rule = version(&release).map(|v| v >= (4, 15));
    checks.push(match facts.kernel_enforces_fsdax_rule {
        Some(true) => {
            check("fsdax_rule", Status::Ok, "the kernel refuses long-term pins of fs-DAX (EOPNOTSUPP, 4.15+)", None)
        }
        Some(false) => check(
            "fsdax_rule",
            Status::Warn,
            "this kernel (before 4.15) lets RDMA pin fs-DAX memory",
            Some("daxguard's refusal is the only protection here: run RDMA programs with `daxguard run`"),
        ),
        None => check("fsdax_rule", Status::Warn, format!("cannot parse kernel release '{release}'"), None),
    });

    facts.procmap_query = daxguard::vma::procmap_query_supported();
    checks.push(if facts.procmap_query {
        check("procmap_query", Status::Ok, "PROCMAP_QUERY supported: one ioctl per VMA", None)
    } else {
        check(
            "procmap_query",
            Status::Warn,
            "PROCMAP_QUERY not available: /proc/PID/maps is read as text (slower in big processes)",
            Some("Linux 6.11+ has PROCMAP_QUERY"),
        )
    });

    // The kernel sets STATX_ATTR_DAX in stx_attributes_mask for every file (5.8+).
    facts.statx_dax = daxguard::statx::statx(c"/").ok().map(|st| st.dax.is_some());
    checks.push(match facts.statx_dax {
        Some(true) => {
            check("statx_dax", Status::Ok, "statx reports STATX_ATTR_DAX: each file's DAX flag is visible", None)
        }
        _ => check(
            "statx_dax",
            Status::Warn,
            "statx does not report STATX_ATTR_DAX: DAX is judged from mount options",
            Some("Linux 5.8+ reports the per-file DAX flag; files on dax=inode mounts may show as unverified"),
        ),
    });

    facts.dax_mounts = dax_mounts();
    let list: Vec<String> = facts
        .dax_mounts
        .iter()
        .map(|m| format!("{} ({} on {}, dax={})", m.mount_point, m.fstype, m.source, m.dax))
        .collect();
    checks.push(if list.is_empty() {
        check("dax_mounts", Status::Ok, "no DAX-capable mounts: no file here can be fs-DAX", None)
    } else {
        check("dax_mounts", Status::Ok, format!("DAX-capable mounts: {}", list.join(", ")), None)
    });

    facts.devdax = devdax_nodes();
    let list: Vec<String> = facts
        .devdax
        .iter()
        .map(|d| {
            let size = d.size.map_or("size unknown".into(), human_size);
            let align = d.align.map_or(String::new(), |a| format!(", align {}", human_size(a)));
            format!("{} ({size}{align})", d.path)
        })
        .collect();
    checks.push(if list.is_empty() {
        check("devdax", Status::Ok, "no device-DAX nodes", None)
    } else {
        check("devdax", Status::Ok, format!("device-DAX (registrable): {}", list.join(", ")), None)
    });

    let verbs = Verbs::load();
    checks.push(match &verbs {
        Ok(v) => {
            facts.libibverbs = Some(v.path.clone());
            check("libibverbs", Status::Ok, format!("libibverbs: {}", v.path), None)
        }
        Err(e) => check(
            "libibverbs",
            Status::Warn,
            format!("{e:#}"),
            Some(&format!("`daxguard probe` needs {}; everything else works without it", library_name())),
        ),
    });

    facts.rdma_devices = rdma_devices(verbs.as_ref().ok());
    if facts.rdma_devices.is_empty() {
        checks.push(check(
            "rdma",
            Status::Warn,
            "no RDMA devices in /sys/class/infiniband",
            Some("load the driver, or for a test: rdma link add rxe0 type rxe netdev eth0"),
        ));
    }
    for d in &facts.rdma_devices {
        let odp = match &d.odp {
            Some(o) if o.supported => {
                format!(
                    "ODP supported (implicit: {}; RC caps {:#x})",
                    if o.implicit { "yes" } else { "no" },
                    o.rc_odp_caps
                )
            }
            Some(_) => "no ODP: IBV_ACCESS_ON_DEMAND is not a way around the fs-DAX refusal here".to_string(),
            None => "ODP unknown".to_string(),
        };
        checks.push(check("rdma", Status::Ok, format!("RDMA device {}: {odp}", d.name), None));
    }

    checks.push(match find_shim(None) {
        Ok(s) => {
            facts.shim = Some(s.path.display().to_string());
            check("shim", Status::Ok, format!("libdaxguard.so: {} ({}); `daxguard run` will use it", s.path.display(), s.how), None)
        }
        Err(e) => check(
            "shim",
            Status::Fail,
            format!("{e:#}"),
            Some("`daxguard run` cannot work: install libdaxguard.so beside daxguard or in /usr/local/lib, or set DAXGUARD_LIB"),
        ),
    });

    let code = if checks.iter().any(|c| c.status == Status::Fail) { EXIT_REFUSED } else { EXIT_OK };
    if json_out {
        return Ok(Done::new(
            json(&DoctorJson { schema: SCHEMA, command: "doctor", checks, facts, exit_code: code })?,
            code,
        ));
    }
    let mut out = String::new();
    for c in &checks {
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
    Ok(Done::new(out, code))
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
