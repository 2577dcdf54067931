//! The recent reloads, applied or refused with their errors, for the admin (`GET /reloads`)
//! and the reload metrics.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many reloads are kept.
const KEPT: usize = 20;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Reload {
    /// Unix time, in milliseconds.
    pub at_ms: u64,
    pub applied: bool,
    /// The generation serving afterwards (unchanged when refused).
    pub generation: u64,
    pub errors: Vec<String>,
}

#[derive(Default)]
pub struct History {
    recent: Mutex<VecDeque<Reload>>,
}

impl History {
    /// Records a reload tried: kept for the admin, counted in the metrics.
    pub fn record(&self, generation: u64, errors: Vec<String>) {
        let applied = errors.is_empty();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let result = if applied { "success" } else { "failure" };
        metrics::counter!("wasmgate_config_reloads_total", "result" => result).increment(1);
        metrics::gauge!("wasmgate_config_last_reload_timestamp_seconds").set(now.as_secs_f64());
        metrics::gauge!("wasmgate_config_last_reload_success").set(f64::from(u8::from(applied)));
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back(Reload {
                at_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
                applied,
                generation,
                errors,
            });
        }
    }

    /// The kept reloads, newest first.
    pub fn list(&self) -> Vec<Reload> {
        self.recent
            .lock()
            .map(|r| r.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}
