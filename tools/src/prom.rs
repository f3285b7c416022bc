//! The Prometheus text exposition format, as node_exporter's textfile
//! collector reads it: `# HELP` and `# TYPE` before each family, label
//! values escaped, the file replaced whole (a scrape never reads half of
//! it). Used by `daxguard metrics` and `daxguard watch --metrics-file`.
//!
//! # References
//! - [Exposition formats](https://prometheus.io/docs/instrumenting/exposition_formats/)
//! - [node_exporter: textfile collector](https://github.com/prometheus/node_exporter#textfile-collector)

use std::fmt::Write as _;
use std::path::Path;

/// `# HELP` and `# TYPE` lines for one metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample: `name{k="v",...} value`.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value: `\`, `"` and newline escaped, as the format asks.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Replaces the textfile at `path`, mode 0644 (node_exporter runs as
/// another user); the error names the path.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    crate::atomic::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_escapes() {
        let mut s = String::new();
        family(&mut s, "x_total", "counter", "Things.");
        sample(&mut s, "x_total", &[("file", "/a\"b\\c\nd"), ("mode", "warn")], 3);
        sample(&mut s, "y", &[], 1.5);
        assert_eq!(
            s,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{file=\"/a\\\"b\\\\c\\nd\",mode=\"warn\"} 3\ny 1.5\n"
        );
    }
}
