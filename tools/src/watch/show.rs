//! A [`Refusal`] for people (one text line) and for programs (one JSON
//! object); the `dropped` and summary records beside them. The schema is in
//! docs/cli.md ("watch").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::decode::{File, Refusal};
use crate::output::SCHEMA;
use crate::units::human_size;

/// Turns `bpf_ktime_get_boot_ns()` times into wall-clock times.
#[derive(Clone, Copy)]
pub struct Clock {
    /// Wall-clock time at boot, in ns since the epoch.
    boot_epoch_ns: u128,
}

impl Clock {
    pub fn now() -> Self {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        Clock { boot_epoch_ns: wall.saturating_sub(u128::from(super::sys::boot_time_ns())) }
    }

    pub fn wall(self, boot_ns: u64) -> SystemTime {
        let ns = self.boot_epoch_ns + u128::from(boot_ns);
        UNIX_EPOCH + Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32)
    }
}

/// `2025-01-31T12:34:56.789012Z` (UTC, microseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn file_words(f: &File) -> String {
    let deleted = if f.deleted { " (deleted)" } else { "" };
    format!(
        "{}{deleted} (dev {}:{}, inode {}, offset {}) on {} at {} ({})",
        f.path, f.dev_major, f.dev_minor, f.inode, f.offset, f.mount.fstype, f.mount.mount_point, f.mount.source
    )
}

/// The text line: when, who, through what, which range, why, which file.
pub fn text(r: &Refusal, clock: Clock) -> String {
    let via = r.caller.as_ref().map_or(String::new(), |c| format!(" via {c}"));
    let file = match (&r.file, r.vma) {
        (Some(f), _) => file_words(f),
        (None, v) => format!("no file seen (VMA lookup: {})", v.name()),
    };
    format!(
        "{} refused: pid {} tid {} comm {} uid {}: {}{via}, {:#x}-{:#x} ({}): {} ({}): {file}",
        rfc3339(clock.wall(r.boot_ns)),
        r.pid,
        r.tid,
        r.comm,
        r.uid,
        r.consumer.name(),
        r.start,
        r.end(),
        human_size(r.len),
        r.error_name(),
        r.reason.explain(),
    )
}

#[derive(Serialize)]
struct MountJson<'a> {
    mount_point: &'a str,
    fstype: &'a str,
    source: &'a str,
    mount_id: i32,
}

#[derive(Serialize)]
struct FileJson<'a> {
    path: &'a str,
    path_complete: bool,
    deleted: bool,
    dev: String,
    inode: u64,
    offset: u64,
    dax: bool,
    device_dax: bool,
    mount: MountJson<'a>,
}

#[derive(Serialize)]
struct RefusalJson<'a> {
    schema: u32,
    command: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    boot_ns: u64,
    pid: u32,
    tid: u32,
    comm: &'a str,
    uid: u32,
    consumer: &'static str,
    caller: Option<String>,
    stack: Vec<String>,
    hook: &'static str,
    gup_flags: String,
    start: String,
    end: String,
    len: u64,
    errno: i32,
    error: &'static str,
    reason: &'static str,
    explain: &'static str,
    vma_lookup: &'static str,
    vma_start: Option<String>,
    vma_end: Option<String>,
    file: Option<FileJson<'a>>,
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// One JSON object, one line.
pub fn json(r: &Refusal, clock: Clock) -> String {
    let file = r.file.as_ref().map(|f| FileJson {
        path: &f.path,
        path_complete: f.path_complete,
        deleted: f.deleted,
        dev: format!("{}:{}", f.dev_major, f.dev_minor),
        inode: f.inode,
        offset: f.offset,
        dax: f.dax,
        device_dax: f.char_device,
        mount: MountJson {
            mount_point: &f.mount.mount_point,
            fstype: &f.mount.fstype,
            source: &f.mount.source,
            mount_id: f.mount.mount_id,
        },
    });
    let j = RefusalJson {
        schema: SCHEMA,
        command: "watch",
        kind: "refusal",
        time: rfc3339(clock.wall(r.boot_ns)),
        boot_ns: r.boot_ns,
        pid: r.pid,
        tid: r.tid,
        comm: &r.comm,
        uid: r.uid,
        consumer: r.consumer.name(),
        caller: r.caller.as_ref().map(ToString::to_string),
        stack: r.stack.iter().map(ToString::to_string).collect(),
        hook: r.hook,
        gup_flags: format!("{:#x}", r.gup_flags),
        start: hex(r.start),
        end: hex(r.end()),
        len: r.len,
        errno: r.errno,
        error: r.error_name(),
        reason: r.reason.name(),
        explain: r.reason.explain(),
        vma_lookup: r.vma.name(),
        vma_start: r.vma_range.map(|v| hex(v.0)),
        vma_end: r.vma_range.map(|v| hex(v.1)),
        file,
    };
    serde_json::to_string(&j).expect("plain data serializes")
}

/// The counters at a point in time: what `dropped` and the summary report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Refusals printed.
    pub refusals: u64,
    /// Refusals the ring buffer had no room for.
    pub dropped: u64,
    /// Long-term EFAULTs whose VMA could not be examined (mmap lock busy).
    pub unresolved: u64,
    /// Every hooked call (only with --count-calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
}

#[derive(Serialize)]
struct DroppedJson {
    schema: u32,
    command: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    dropped: u64,
    total: u64,
}

/// `dropped N`: refusals lost since the last report, and in all.
pub fn dropped(new: u64, total: u64, json: bool) -> String {
    if json {
        let j = DroppedJson { schema: SCHEMA, command: "watch", kind: "dropped", dropped: new, total };
        return serde_json::to_string(&j).expect("plain data serializes");
    }
    format!("dropped {new} refusals: the ring buffer was full ({total} dropped in all)")
}

#[derive(Serialize)]
struct SummaryJson {
    schema: u32,
    command: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    counts: Counts,
    why: &'static str,
    exit_code: u8,
}

/// The last line: how many were reported, dropped, unresolved, and why watch stopped.
pub fn summary(c: Counts, why: &'static str, json: bool) -> String {
    if json {
        let j = SummaryJson { schema: SCHEMA, command: "watch", kind: "summary", counts: c, why, exit_code: 0 };
        return serde_json::to_string(&j).expect("plain data serializes");
    }
    let calls = c.calls.map_or(String::new(), |n| format!(", {n} hooked calls"));
    format!(
        "summary: {} refusals, dropped {}, {} unresolved EFAULTs{calls} (stopped: {why})",
        c.refusals, c.dropped, c.unresolved
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 123_456_000); // a leap year, 29 Feb
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.123456Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn summary_and_dropped_lines() {
        let c = Counts { refusals: 3, dropped: 2, unresolved: 0, calls: None };
        assert_eq!(summary(c, "count", false), "summary: 3 refusals, dropped 2, 0 unresolved EFAULTs (stopped: count)");
        let v: serde_json::Value = serde_json::from_str(&summary(c, "signal", true)).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["dropped"].as_u64(), v["exit_code"].as_u64()),
            (Some("summary"), Some(2), Some(0))
        );
        assert!(v.get("calls").is_none());
        assert!(dropped(5, 7, false).starts_with("dropped 5 "));
        let v: serde_json::Value = serde_json::from_str(&dropped(5, 7, true)).unwrap();
        assert_eq!((v["dropped"].as_u64(), v["total"].as_u64()), (Some(5), Some(7)));
    }
}
