//! `--metrics-file PATH`: a Prometheus text file for node_exporter's
//! textfile collector. Rewritten whole (a temporary file in the same
//! directory, then `rename`), so a scrape never reads half a file.
//!
//! # References
//! - [Exposition formats](https://prometheus.io/docs/instrumenting/exposition_formats/)
//! - [node_exporter: textfile collector](https://github.com/prometheus/node_exporter#textfile-collector)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::symbols::Consumer;

/// The counters since watch started.
#[derive(Default)]
pub struct Metrics {
    refusals: BTreeMap<(Consumer, &'static str), u64>,
    pub dropped: u64,
    pub unresolved: u64,
    start_time: f64,
}

impl Metrics {
    pub fn new(start_time: f64) -> Self {
        // Every consumer and errno from the start: a series that appears only
        // after its first refusal makes rate() miss that refusal.
        let mut refusals = BTreeMap::new();
        for c in Consumer::ALL {
            for e in ["EOPNOTSUPP", "EFAULT"] {
                refusals.insert((c, e), 0);
            }
        }
        Metrics { refusals, dropped: 0, unresolved: 0, start_time }
    }

    pub fn refusal(&mut self, consumer: Consumer, error: &'static str) {
        *self.refusals.entry((consumer, error)).or_default() += 1;
    }

    /// The file's text; `up` is 0 in the last one written, at exit.
    pub fn render(&self, up: bool) -> String {
        let mut s = String::new();
        s.push_str("# HELP daxguard_watch_refusals_total Long-term pins the kernel refused, by consumer and errno.\n");
        s.push_str("# TYPE daxguard_watch_refusals_total counter\n");
        for ((c, e), n) in &self.refusals {
            let _ = writeln!(s, "daxguard_watch_refusals_total{{consumer=\"{}\",errno=\"{e}\"}} {n}", c.name());
        }
        s.push_str(
            "# HELP daxguard_watch_dropped_total Refusals the ring buffer had no room for (counted, not reported).\n",
        );
        s.push_str("# TYPE daxguard_watch_dropped_total counter\n");
        let _ = writeln!(s, "daxguard_watch_dropped_total {}", self.dropped);
        s.push_str("# HELP daxguard_watch_unresolved_total Long-term EFAULTs whose mapping could not be examined.\n");
        s.push_str("# TYPE daxguard_watch_unresolved_total counter\n");
        let _ = writeln!(s, "daxguard_watch_unresolved_total {}", self.unresolved);
        s.push_str("# HELP daxguard_watch_up 1 while daxguard watch is attached to the kernel.\n");
        s.push_str("# TYPE daxguard_watch_up gauge\n");
        let _ = writeln!(s, "daxguard_watch_up {}", u8::from(up));
        s.push_str("# HELP daxguard_watch_start_time_seconds When this daxguard watch started (Unix time).\n");
        s.push_str("# TYPE daxguard_watch_start_time_seconds gauge\n");
        let _ = writeln!(s, "daxguard_watch_start_time_seconds {:.3}", self.start_time);
        s
    }
}

/// Writes `text` to `path` through `path.tmp.PID` and a rename.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = PathBuf::from(path);
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    tmp.set_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_there_from_the_start() {
        let mut m = Metrics::new(1700000000.5);
        m.refusal(Consumer::Rdma, "EOPNOTSUPP");
        m.refusal(Consumer::Rdma, "EOPNOTSUPP");
        m.dropped = 3;
        let t = m.render(true);
        assert!(t.contains("daxguard_watch_refusals_total{consumer=\"rdma\",errno=\"EOPNOTSUPP\"} 2\n"), "{t}");
        assert!(t.contains("daxguard_watch_refusals_total{consumer=\"vfio\",errno=\"EFAULT\"} 0\n"));
        assert!(t.contains("daxguard_watch_dropped_total 3\n") && t.contains("daxguard_watch_up 1\n"));
        assert!(m.render(false).contains("daxguard_watch_up 0\n"));
        assert_eq!(t.lines().filter(|l| l.starts_with("daxguard_watch_refusals_total")).count(), 12);
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("daxguard-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("daxguard.prom");
        write_atomically(&p, "a 1\n").unwrap();
        write_atomically(&p, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        assert!(write_atomically(&dir.join("no/such/dir.prom"), "x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
