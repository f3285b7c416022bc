//! `daxguard metrics`: the preload library's JSON-lines audit logs
//! (`docs/policy.md`) as a Prometheus textfile for node_exporter's textfile
//! collector ([`crate::prom`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::cli::MetricsArgs;
use crate::output::{Done, EXIT_OK, SCHEMA, json};
use crate::prom;

/// The labels of a refusal or a warning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Labels {
    pub program: String,
    pub file: String,
    pub consumer: String,
    pub mode: String,
}

/// What the logs hold.
#[derive(Debug, Default)]
pub struct Counts {
    pub refusals: BTreeMap<Labels, u64>,
    pub warnings: BTreeMap<Labels, u64>,
    /// Every record, by (program, consumer, action).
    pub records: BTreeMap<(String, String, String), u64>,
    pub unreadable: u64,
    /// The newest record's `time`.
    pub last: Option<f64>,
}

impl Counts {
    /// Counts one line of a log (its newline already taken off).
    pub fn line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Some(rec) = serde_json::from_slice::<Value>(line).ok().filter(|v| v.get("action").is_some()) else {
            self.unreadable += 1;
            return;
        };
        let text = |k: &str| rec.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let (action, reason) = (text("action"), text("reason"));
        // Records written before the mode was recorded: what the reason tells.
        let mode = match rec.get("mode").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => match (action.as_str(), reason.as_str()) {
                (_, "warned") => "warn",
                (_, "audited") => "audit",
                ("rewritten_odp", _) => "odp",
                _ => "unknown",
            }
            .to_string(),
        };
        let labels = || Labels { program: text("program"), file: text("file"), consumer: text("consumer"), mode };
        if action == "refused" {
            *self.refusals.entry(labels()).or_default() += 1;
        } else if reason == "warned" || reason == "audited" {
            *self.warnings.entry(labels()).or_default() += 1;
        }
        *self.records.entry((text("program"), text("consumer"), action)).or_default() += 1;
        if let Some(t) = rec.get("time").and_then(Value::as_f64) {
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
    }

    /// Counts every line of `r`.
    pub fn read(&mut self, r: impl Read) -> std::io::Result<()> {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            self.line(buf.strip_suffix(b"\n").unwrap_or(&buf));
        }
    }

    /// The textfile.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let labelled = |s: &mut String, name: &str, counts: &BTreeMap<Labels, u64>| {
            for (l, n) in counts {
                let labels =
                    [("program", &*l.program), ("file", &*l.file), ("consumer", &*l.consumer), ("mode", &*l.mode)];
                prom::sample(s, name, &labels, n);
            }
        };
        prom::family(
            &mut s,
            "daxguard_refusals_total",
            "counter",
            "Long-term pins daxguard refused, from its audit logs, by program, file, consumer and mode.",
        );
        labelled(&mut s, "daxguard_refusals_total", &self.refusals);
        prom::family(
            &mut s,
            "daxguard_warnings_total",
            "counter",
            "fs-DAX (or unverifiable) long-term pins daxguard let through in warn or audit mode, by program, file, consumer and mode.",
        );
        labelled(&mut s, "daxguard_warnings_total", &self.warnings);
        let records = "daxguard_audit_records_total";
        prom::family(&mut s, records, "counter", "Audit records read, by program, consumer and action.");
        for ((program, consumer, action), n) in &self.records {
            prom::sample(&mut s, records, &[("program", program), ("consumer", consumer), ("action", action)], n);
        }
        prom::family(
            &mut s,
            "daxguard_audit_unreadable_lines_total",
            "counter",
            "Lines of the audit logs that were not a record.",
        );
        prom::sample(&mut s, "daxguard_audit_unreadable_lines_total", &[], self.unreadable);
        if let Some(t) = self.last {
            prom::family(
                &mut s,
                "daxguard_audit_last_record_timestamp_seconds",
                "gauge",
                "When the newest record read was written (Unix time).",
            );
            prom::sample(&mut s, "daxguard_audit_last_record_timestamp_seconds", &[], format!("{t:.6}"));
        }
        s
    }
}

#[derive(Serialize)]
struct Counted<'a> {
    #[serde(flatten)]
    labels: &'a Labels,
    count: u64,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: u32,
    records: u64,
    unreadable: u64,
    refusals: Vec<Counted<'a>>,
    warnings: Vec<Counted<'a>>,
    textfile: Option<&'a Path>,
}

pub fn run(args: &MetricsArgs, as_json: bool) -> anyhow::Result<Done> {
    let mut c = Counts::default();
    let stdin_only = args.logs.is_empty() || args.logs.iter().all(|p| p.as_os_str() == "-");
    if stdin_only {
        c.read(std::io::stdin().lock()).context("cannot read standard input")?;
    }
    for p in args.logs.iter().filter(|p| p.as_os_str() != "-") {
        let f = std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
        c.read(f).with_context(|| format!("cannot read {}", p.display()))?;
    }
    let text = c.render();
    if let Some(path) = &args.textfile {
        prom::write_textfile(path, &text).context("cannot write the textfile")?;
    }
    let stdout = if as_json {
        fn list(m: &BTreeMap<Labels, u64>) -> Vec<Counted<'_>> {
            m.iter().map(|(labels, &count)| Counted { labels, count }).collect()
        }
        json(&Report {
            schema: SCHEMA,
            records: c.records.values().sum(),
            unreadable: c.unreadable,
            refusals: list(&c.refusals),
            warnings: list(&c.warnings),
            textfile: args.textfile.as_deref(),
        })?
    } else if args.textfile.is_some() {
        String::new()
    } else {
        text
    };
    Ok(Done::new(stdout, EXIT_OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"time":1700000000.5,"pid":1,"tid":1,"program":"ib_write_bw","rank":1,"job":"42","step":"0","consumer":"rdma","entry":"ibv_reg_mr_iova2","addr":"0x1000","len":4096,"access":"0x7","mode":"enforce","verdict":"fsdax","reason":"fsdax","file":"/mnt/pmem/a\"b","mount":"ext4","action":"refused","errno":95,"errno_name":"EOPNOTSUPP","explain":null,"lookup":"maps","decide_ns":1}
{"time":1700000001.25,"program":"ib_write_bw","consumer":"rdma","mode":"enforce","reason":"fsdax","file":"/mnt/pmem/a\"b","action":"refused"}
{"time":1700000002,"program":"app","consumer":"io_uring","reason":"warned","file":"/mnt/pmem/w","action":"forwarded"}
{"time":1699999999,"program":"app","consumer":"rdma","mode":"audit","reason":"not_fsdax","file":null,"action":"forwarded"}
{"torn":
not json at all

"#;

    #[test]
    fn refusals_and_warnings_are_counted_with_their_labels() {
        let mut c = Counts::default();
        c.read(LOG.as_bytes()).unwrap();
        let t = c.render();
        assert!(t.contains("# TYPE daxguard_refusals_total counter\n"), "{t}");
        assert!(
            t.contains(
                "daxguard_refusals_total{program=\"ib_write_bw\",file=\"/mnt/pmem/a\\\"b\",consumer=\"rdma\",mode=\"enforce\"} 2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "daxguard_warnings_total{program=\"app\",file=\"/mnt/pmem/w\",consumer=\"io_uring\",mode=\"warn\"} 1\n"
            ),
            "a record without a mode: the reason tells: {t}"
        );
        assert!(t.contains("daxguard_audit_records_total{program=\"app\",consumer=\"rdma\",action=\"forwarded\"} 1\n"));
        assert!(t.contains(
            "daxguard_audit_records_total{program=\"ib_write_bw\",consumer=\"rdma\",action=\"refused\"} 2\n"
        ));
        assert!(t.contains("daxguard_audit_unreadable_lines_total 2\n"), "{t}");
        assert!(t.contains("daxguard_audit_last_record_timestamp_seconds 1700000002.000000\n"), "{t}");
        // Every sample follows its family's HELP and TYPE.
        let mut declared = Vec::new();
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{l}");
            }
        }
    }

    #[test]
    fn empty_input_still_gives_a_valid_file() {
        let t = Counts::default().render();
        assert!(t.contains("daxguard_audit_unreadable_lines_total 0\n"));
        assert!(!t.contains("last_record"));
    }
}
