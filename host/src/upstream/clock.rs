//! One monotonic clock in milliseconds, cheap to store in atomics.

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the first call in this process.
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}
