//! Metrics of the plugins' key-value operations, by backend and operation.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::Counter;

use super::histogram::{self, Histogram};

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Get,
    Set,
    Delete,
    Incr,
    CompareAndSwap,
}

const OPS: [&str; 5] = ["get", "set", "delete", "incr", "compare_and_swap"];
const RESULTS: [&str; 3] = ["ok", "error", "unavailable"];

pub struct KvStats {
    backend: &'static str,
    /// By operation and result.
    ops: [[OnceLock<Counter>; 3]; 5],
    durations: [OnceLock<Arc<Histogram>>; 5],
}

impl KvStats {
    const fn new(backend: &'static str) -> Self {
        KvStats {
            backend,
            ops: [const { [const { OnceLock::new() }; 3] }; 5],
            durations: [const { OnceLock::new() }; 5],
        }
    }

    /// `result`: 0 ok, 1 refused as invalid, 2 the backend unavailable.
    pub fn record(&self, op: Op, result: usize, took: Duration) {
        let o = op as usize;
        let r = result.min(2);
        self.ops[o][r]
            .get_or_init(|| {
                metrics::counter!("wasmgate_kv_operations_total", "backend" => self.backend, "op" => OPS[o], "result" => RESULTS[r])
            })
            .increment(1);
        self.durations[o]
            .get_or_init(|| {
                histogram::get(
                    "wasmgate_kv_operation_duration_seconds",
                    vec![
                        ("backend", self.backend.to_string()),
                        ("op", OPS[o].to_string()),
                    ],
                )
            })
            .record(took);
    }
}

pub static MEMORY: KvStats = KvStats::new("memory");
pub static REDIS: KvStats = KvStats::new("redis");
