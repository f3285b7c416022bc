//! `--metrics-file PATH`: a Prometheus text file for node_exporter's
//! textfile collector, in the format and with the writer of [`crate::prom`]
//! (rewritten whole, so a scrape never reads half a file).

use std::collections::BTreeMap;

use super::symbols::Consumer;
use crate::prom::{family, sample};

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
        let refusals = "daxguard_watch_refusals_total";
        family(&mut s, refusals, "counter", "Long-term pins the kernel refused, by consumer and errno.");
        for ((c, e), n) in &self.refusals {
            sample(&mut s, refusals, &[("consumer", c.name()), ("errno", e)], n);
        }
        let dropped = "daxguard_watch_dropped_total";
        family(&mut s, dropped, "counter", "Refusals the ring buffer had no room for (counted, not reported).");
        sample(&mut s, dropped, &[], self.dropped);
        let unresolved = "daxguard_watch_unresolved_total";
        family(&mut s, unresolved, "counter", "Long-term EFAULTs whose mapping could not be examined.");
        sample(&mut s, unresolved, &[], self.unresolved);
        family(&mut s, "daxguard_watch_up", "gauge", "1 while daxguard watch is attached to the kernel.");
        sample(&mut s, "daxguard_watch_up", &[], u8::from(up));
        let start = "daxguard_watch_start_time_seconds";
        family(&mut s, start, "gauge", "When this daxguard watch started (Unix time).");
        sample(&mut s, start, &[], format!("{:.3}", self.start_time));
        s
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
}
