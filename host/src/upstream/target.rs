//! One target of an upstream: its address, its load, and whether it is in rotation.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::Authority;

use super::pool::TargetPool;

#[derive(Debug)]
pub struct Target {
    pub authority: Authority,
    pub weight: u32,
    pub(super) pool: TargetPool,
    in_flight: AtomicUsize,
    fails: AtomicU32,
    /// Milliseconds since `epoch()` until which passive health keeps the target out.
    down_until: AtomicU64,
    /// Set by the active checker.
    check_failed: AtomicBool,
}

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Target {
    pub fn new(authority: Authority, weight: u32) -> Self {
        Target {
            authority,
            weight,
            pool: TargetPool::default(),
            in_flight: AtomicUsize::new(0),
            fails: AtomicU32::new(0),
            down_until: AtomicU64::new(0),
            check_failed: AtomicBool::new(false),
        }
    }

    pub fn healthy(&self) -> bool {
        !self.check_failed.load(Ordering::Relaxed)
            && self.down_until.load(Ordering::Relaxed) <= now_ms()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(super) fn add_in_flight(&self, delta: isize) {
        if delta >= 0 {
            self.in_flight.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.in_flight
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// A connection failed: after `max_fails` in a row, the target sits out `fail_timeout`.
    pub fn record_failure(&self, max_fails: u32, fail_timeout: Duration) {
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        if max_fails > 0 && fails >= max_fails {
            self.fails.store(0, Ordering::Relaxed);
            self.down_until.store(
                now_ms() + fail_timeout.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }

    pub fn record_success(&self) {
        if self.fails.load(Ordering::Relaxed) != 0 {
            self.fails.store(0, Ordering::Relaxed);
        }
    }

    pub fn set_check_result(&self, ok: bool) {
        self.check_failed.store(!ok, Ordering::Relaxed);
        if ok {
            self.down_until.store(0, Ordering::Relaxed);
        }
    }
}
