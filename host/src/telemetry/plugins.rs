//! Metrics of one plugin's calls in one phase of one route.

use std::time::Duration;

use std::sync::Arc;

use metrics::Counter;

use super::histogram::{self, Histogram};

pub struct CallStats {
    calls: Counter,
    duration: Arc<Histogram>,
}

impl CallStats {
    pub fn new(plugin: &str, route: &str, phase: &'static str) -> Self {
        let labels = [
            ("plugin", plugin.to_string()),
            ("route", route.to_string()),
            ("phase", phase.to_string()),
        ];
        CallStats {
            calls: metrics::counter!("wasmgate_plugin_calls_total", &labels),
            duration: histogram::get(
                "wasmgate_plugin_call_duration_seconds",
                labels.iter().map(|(k, v)| (*k, v.clone())).collect(),
            ),
        }
    }

    pub fn record(&self, took: Duration) {
        self.calls.increment(1);
        self.duration.record(took);
    }
}
