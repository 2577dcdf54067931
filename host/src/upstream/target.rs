//! One target of an upstream: its address, its load, whether it is in rotation, and a request's
//! lease on it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use http::uri::Authority;

use hyper::client::conn::http1;

use super::Body;
use super::breaker::Breaker;
use super::pool::TargetPool;
use crate::telemetry::targets::TargetStats;

#[derive(Debug)]
pub struct Target {
    /// `host:port` as written (or as DNS named it): the `Host` and TLS name it is reached by.
    pub authority: Authority,
    /// The address DNS resolved the name to; `None` connects to `authority` itself.
    pub addr: Option<std::net::SocketAddr>,
    pub weight: u32,
    pub(super) pool: TargetPool,
    in_flight: AtomicUsize,
    /// Passive health: failures open it and take the target out of rotation.
    pub breaker: Breaker,
    /// Set by the active checker.
    check_failed: AtomicBool,
    /// Its tries' metrics, resolved at the first try (the upstream's name is needed).
    stats: OnceLock<TargetStats>,
}

impl Target {
    pub fn new(authority: Authority, weight: u32, breaker: Breaker) -> Self {
        Target {
            authority,
            addr: None,
            weight,
            pool: TargetPool::default(),
            in_flight: AtomicUsize::new(0),
            breaker,
            check_failed: AtomicBool::new(false),
            stats: OnceLock::new(),
        }
    }

    pub fn stats(&self, upstream: &str) -> &TargetStats {
        self.stats
            .get_or_init(|| TargetStats::new(upstream, self.authority.as_str()))
    }

    /// Idle pooled connections (HTTP/1.1; an HTTP/2 connection counts as busy while shared).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// The same target reached at one resolved address.
    pub fn at(mut self, addr: std::net::SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// How it is shown: `host:port`, with the resolved address when there is one.
    pub fn label(&self) -> String {
        match self.addr {
            Some(a) if a.to_string() != self.authority.as_str() => {
                format!("{} ({a})", self.authority)
            }
            _ => self.authority.to_string(),
        }
    }

    /// In rotation: its active check (if any) passes and its breaker lets requests through.
    pub fn healthy(&self) -> bool {
        !self.check_failed.load(Ordering::Relaxed) && self.breaker.admits()
    }

    /// Failing its active health check.
    pub fn check_failed(&self) -> bool {
        self.check_failed.load(Ordering::Relaxed)
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

    /// A passing check also closes the breaker: the target is back.
    pub fn set_check_result(&self, ok: bool) {
        self.check_failed.store(!ok, Ordering::Relaxed);
        if ok && !self.breaker.is_closed() {
            self.breaker.reset();
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
