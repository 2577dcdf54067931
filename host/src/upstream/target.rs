//! One target of an upstream: its address, its load, whether it is in rotation, and a request's
//! lease on it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::uri::Authority;

use hyper::client::conn::http1;

use super::Body;
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

    fn add_in_flight(&self, delta: isize) {
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

/// One request's hold on a target: counts toward its load until dropped, and hands its HTTP/1.1
/// connection back to the pool if the exchange completed.
pub struct Lease {
    target: Arc<Target>,
    h1: Option<http1::SendRequest<Body>>,
    max_idle: usize,
    complete: bool,
}

impl Lease {
    pub(super) fn new(target: Arc<Target>, max_idle: usize) -> Lease {
        target.add_in_flight(1);
        Lease {
            target,
            h1: None,
            max_idle,
            complete: false,
        }
    }

    pub(super) fn hold(&mut self, sender: http1::SendRequest<Body>) {
        self.h1 = Some(sender);
    }

    /// The response was read to its end: the connection may serve another request.
    pub fn complete(&mut self) {
        self.complete = true;
    }

    /// The connection was taken over (protocol upgrade) and must not be pooled.
    pub fn detach(&mut self) {
        self.h1 = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.target.add_in_flight(-1);
        if let (true, Some(sender)) = (self.complete, self.h1.take()) {
            self.target.pool.put(sender, self.max_idle);
        }
    }
}
