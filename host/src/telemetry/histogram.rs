//! Latency histograms with fixed buckets: a record is two atomic adds. The recorder's own
//! histograms keep every sample until a scrape or its upkeep folds them (a timestamp and a
//! buffer slot per request), which cost the plain path several percent; these are folded as
//! they go. Rendered in the Prometheus text format next to the recorder's families.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds, in seconds: 0.5 ms to 10 s (then +Inf).
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative), the last one +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.partition_point(|b| *b < secs);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

type Labels = Vec<(&'static str, String)>;
/// Every histogram, by family name, then by labels.
type Families = BTreeMap<&'static str, BTreeMap<Labels, Arc<Histogram>>>;

static ALL: LazyLock<Mutex<Families>> = LazyLock::new(Default::default);

/// The histogram of `name` with `labels`, made at its first use; the same one afterwards (so
/// a config reload carries the counts on).
pub fn get(name: &'static str, labels: Labels) -> Arc<Histogram> {
    let Ok(mut all) = ALL.lock() else {
        return Arc::default();
    };
    all.entry(name)
        .or_default()
        .entry(labels)
        .or_default()
        .clone()
}

/// Writes every histogram with its HELP (`help` of the family's name).
pub fn render(out: &mut String, help: impl Fn(&str) -> &'static str) {
    let Ok(all) = ALL.lock() else { return };
    for (name, series) in all.iter() {
        let _ = writeln!(out, "# HELP {name} {}", help(name));
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (labels, h) in series {
            let mut cumulative = 0;
            for (i, count) in h.counts.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                out.push_str(name);
                out.push_str("_bucket");
                write_labels(out, labels.iter().map(|(k, v)| (*k, v.as_str())), Some(&le));
                let _ = writeln!(out, " {cumulative}");
            }
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            out.push_str(name);
            out.push_str("_sum");
            write_labels(out, labels.iter().map(|(k, v)| (*k, v.as_str())), None);
            let _ = writeln!(out, " {sum}");
            out.push_str(name);
            out.push_str("_count");
            write_labels(out, labels.iter().map(|(k, v)| (*k, v.as_str())), None);
            let _ = writeln!(out, " {cumulative}");
        }
    }
}

/// `{k="v",...}` with values escaped (and `le` last, for buckets); nothing without labels.
pub fn write_labels<'a>(
    out: &mut String,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    le: Option<&'a str>,
) {
    let mut first = true;
    for (k, v) in labels.chain(le.map(|le| ("le", le))) {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = get("test_seconds", vec![("route", "a\"b".into())]);
        h.record(Duration::from_micros(500));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let mut out = String::new();
        render(&mut out, |_| "help");
        assert!(
            out.contains("test_seconds_bucket{route=\"a\\\"b\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 3\n"), "{out}");
        assert!(
            out.contains("test_seconds_count{route=\"a\\\"b\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("test_seconds_sum{route=\"a\\\"b\"} 60.0035\n"),
            "{out}"
        );
    }
}
