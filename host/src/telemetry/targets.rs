//! Metrics of the tries at one upstream target, resolved when the target first takes one.

use std::sync::OnceLock;
use std::time::Duration;

use std::sync::Arc;

use metrics::Counter;

use super::histogram::{self, Histogram};

use super::metrics::{CLASSES, class_index};

/// How a try that got no response failed.
#[derive(Debug, Clone, Copy)]
pub enum TryFailure {
    Connect,
    Timeout,
    Reset,
}

impl TryFailure {
    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            TryFailure::Connect => "connect",
            TryFailure::Timeout => "timeout",
            TryFailure::Reset => "reset",
        }
    }
}

#[derive(Debug)]
pub struct TargetStats {
    upstream: String,
    target: String,
    responses: [OnceLock<Counter>; 5],
    failures: [OnceLock<Counter>; 3],
    duration: Arc<Histogram>,
}

impl TargetStats {
    pub fn new(upstream: &str, target: &str) -> Self {
        TargetStats {
            duration: histogram::get(
                "wasmgate_upstream_request_duration_seconds",
                vec![
                    ("upstream", upstream.to_string()),
                    ("target", target.to_string()),
                ],
            ),
            upstream: upstream.to_string(),
            target: target.to_string(),
            responses: Default::default(),
            failures: Default::default(),
        }
    }

    /// Counts one try: its response's status, or how it failed.
    pub fn record(&self, outcome: Result<u16, TryFailure>, took: Duration) {
        self.duration.record(took);
        let counter = match outcome {
            Ok(status) => {
                let class = class_index(status);
                self.responses[class].get_or_init(|| {
                    metrics::counter!(
                        "wasmgate_upstream_requests_total",
                        "upstream" => self.upstream.clone(),
                        "target" => self.target.clone(),
                        "status_class" => CLASSES[class],
                    )
                })
            }
            Err(kind) => self.failures[kind.index()].get_or_init(|| {
                metrics::counter!(
                    "wasmgate_upstream_failures_total",
                    "upstream" => self.upstream.clone(),
                    "target" => self.target.clone(),
                    "kind" => kind.label(),
                )
            }),
        };
        counter.increment(1);
    }
}
