//! A circuit breaker: closed → open after a run of failures (or a failure ratio over a window),
//! open for a while, then half-open, letting a few probe requests through; their successes close
//! it, a failure opens it again. One guards each target (an open one is out of rotation: outlier
//! ejection) and, when configured, one the upstream as a whole.
//!
//! The closed state with no recent failure is the hot path: a success there is two relaxed loads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::clock::now_ms;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Consecutive failures that open it; 0 never opens on a run.
    pub failures: u32,
    /// Open when at least `min_requests` results in `window` had this share of failures.
    pub ratio: Option<Ratio>,
    pub open_for: Duration,
    /// Probe requests let through when half-open; this many successes close it.
    pub probes: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    pub share: f64,
    pub window: Duration,
    pub min_requests: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    /// Refusing requests until the deadline (milliseconds on the gateway's clock).
    Open {
        until: u64,
    },
    HalfOpen,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open { .. } => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Probes let through since the breaker went half-open, and how many came back fine.
    probes_started: u32,
    probes_ok: u32,
    half_open_since: u64,
}

#[derive(Debug)]
pub struct Breaker {
    policy: Policy,
    /// `true` while closed: what the hot path reads.
    closed: AtomicBool,
    consecutive: AtomicU32,
    window: Window,
    inner: Mutex<Inner>,
}

/// What a recorded result did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Opened,
    Closed,
}

impl Breaker {
    pub fn new(policy: Policy) -> Self {
        Breaker {
            policy,
            closed: AtomicBool::new(true),
            consecutive: AtomicU32::new(0),
            window: Window::default(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                probes_started: 0,
                probes_ok: 0,
                half_open_since: 0,
            }),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a few integers, consistent after any panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The state, moving an open breaker whose time is up to half-open.
    pub fn state(&self) -> State {
        if self.closed.load(Ordering::Relaxed) {
            return State::Closed;
        }
        let mut inner = self.lock();
        self.tick(&mut inner, now_ms());
        inner.state
    }

    fn tick(&self, inner: &mut Inner, now: u64) {
        match inner.state {
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen;
                inner.probes_started = 0;
                inner.probes_ok = 0;
                inner.half_open_since = now;
            }
            // A probe whose answer never came (its client went away) must not hold the
            // breaker half-open for ever: after another `open_for` (10 s at least), probing
            // starts over.
            State::HalfOpen
                if now.saturating_sub(inner.half_open_since)
                    >= (self.policy.open_for.as_millis() as u64).max(10_000) =>
            {
                inner.probes_started = 0;
                inner.probes_ok = 0;
                inner.half_open_since = now;
            }
            _ => {}
        }
    }

    /// Would a request be let through now? Does not take a probe slot (see `begin`).
    pub fn admits(&self) -> bool {
        self.let_through(false)
    }

    /// A request is on its way: when half-open it takes a probe slot. `false` when none is left
    /// (another request took the last one since `admits`).
    pub fn begin(&self) -> bool {
        self.let_through(true)
    }

    fn let_through(&self, take_probe: bool) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return true;
        }
        let mut inner = self.lock();
        self.tick(&mut inner, now_ms());
        match inner.state {
            State::Closed => true,
            State::Open { .. } => false,
            State::HalfOpen if inner.probes_started < self.policy.probes => {
                if take_probe {
                    inner.probes_started += 1;
                }
                true
            }
            State::HalfOpen => false,
        }
    }

    /// Milliseconds until an open breaker lets probes through; `None` unless open.
    pub fn retry_in(&self) -> Option<u64> {
        match self.state() {
            State::Open { until } => Some(until.saturating_sub(now_ms())),
            _ => None,
        }
    }

    pub fn success(&self) -> Change {
        if self.policy.ratio.is_some() {
            self.window.record(false, self.window_ms());
        }
        if self.closed.load(Ordering::Relaxed) {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            return Change::None;
        }
        let mut inner = self.lock();
        if inner.state == State::HalfOpen {
            inner.probes_ok += 1;
            if inner.probes_ok >= self.policy.probes.max(1) {
                inner.state = State::Closed;
                self.consecutive.store(0, Ordering::Relaxed);
                self.window.reset(now_ms());
                self.closed.store(true, Ordering::Relaxed);
                return Change::Closed;
            }
        }
        Change::None
    }

    /// A failed request. `may_open` is asked before the breaker opens from closed (the
    /// upstream's cap on ejected targets); when it says no, the run starts over.
    pub fn failure(&self, may_open: impl FnOnce() -> bool) -> Change {
        let ratio_tripped = match &self.policy.ratio {
            Some(r) => {
                let (total, failed) = self.window.record(true, self.window_ms());
                total >= r.min_requests && f64::from(failed) >= r.share * f64::from(total)
            }
            None => false,
        };
        let now = now_ms();
        if self.closed.load(Ordering::Relaxed) {
            let run = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
            let run_tripped = self.policy.failures > 0 && run >= self.policy.failures;
            if !(run_tripped || ratio_tripped) {
                return Change::None;
            }
            let mut inner = self.lock();
            if inner.state != State::Closed {
                return Change::None;
            }
            self.consecutive.store(0, Ordering::Relaxed);
            if !may_open() {
                return Change::None;
            }
            self.open(&mut inner, now);
            return Change::Opened;
        }
        let mut inner = self.lock();
        self.tick(&mut inner, now);
        if inner.state == State::HalfOpen {
            self.open(&mut inner, now);
            return Change::Opened;
        }
        Change::None
    }

    fn open(&self, inner: &mut Inner, now: u64) {
        inner.state = State::Open {
            until: now + self.policy.open_for.as_millis() as u64,
        };
        self.window.reset(now);
        self.closed.store(false, Ordering::Relaxed);
    }

    /// Closes it outright (an active health check saw the target recover).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.state = State::Closed;
        self.consecutive.store(0, Ordering::Relaxed);
        self.closed.store(true, Ordering::Relaxed);
    }

    fn window_ms(&self) -> u64 {
        self.policy
            .ratio
            .as_ref()
            .map_or(0, |r| r.window.as_millis() as u64)
    }
}

/// Results in the current window: a tumbling window, restarted when its time is up.
#[derive(Debug, Default)]
struct Window {
    start: AtomicU64,
    total: AtomicU32,
    failed: AtomicU32,
}

impl Window {
    /// Counts one result; gives the window's (total, failed) after it. Only a failure reads
    /// the clock and starts a new window when the last one is over, so successes cost two
    /// atomic operations; a window thus starts with a failure, and the successes since the last
    /// one are dropped with it.
    fn record(&self, failed: bool, window_ms: u64) -> (u32, u32) {
        if !failed {
            let total = self.total.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            return (total, self.failed.load(Ordering::Relaxed));
        }
        let now = now_ms();
        let start = self.start.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= window_ms
            && self
                .start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.total.store(0, Ordering::Relaxed);
            self.failed.store(0, Ordering::Relaxed);
        }
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let f = if failed {
            self.failed.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.failed.load(Ordering::Relaxed)
        };
        (total, f)
    }

    fn reset(&self, now: u64) {
        self.start.store(now, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(failures: u32, open_ms: u64, probes: u32) -> Policy {
        Policy {
            failures,
            ratio: None,
            open_for: Duration::from_millis(open_ms),
            probes,
        }
    }

    #[test]
    fn a_run_of_failures_opens_and_a_success_resets_the_run() {
        let b = Breaker::new(policy(3, 60_000, 1));
        assert_eq!(b.failure(|| true), Change::None);
        assert_eq!(b.failure(|| true), Change::None);
        b.success();
        assert_eq!(b.failure(|| true), Change::None);
        assert_eq!(b.failure(|| true), Change::None);
        assert_eq!(b.failure(|| true), Change::Opened);
        assert!(!b.admits());
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(b.retry_in().is_some_and(|ms| ms > 59_000));
    }

    #[test]
    fn half_open_lets_the_probes_through_and_their_successes_close_it() {
        let b = Breaker::new(policy(1, 0, 2));
        assert_eq!(b.failure(|| true), Change::Opened);
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.begin());
        assert!(b.begin());
        assert!(!b.begin(), "a third request while two probes are out");
        assert_eq!(b.success(), Change::None);
        assert_eq!(b.success(), Change::Closed);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let b = Breaker::new(policy(1, 0, 1));
        b.failure(|| true);
        assert!(b.begin());
        assert_eq!(b.failure(|| true), Change::Opened);
    }

    #[test]
    fn the_cap_keeps_it_closed_and_restarts_the_run() {
        let b = Breaker::new(policy(2, 60_000, 1));
        b.failure(|| false);
        assert_eq!(b.failure(|| false), Change::None);
        assert!(b.admits());
        assert_eq!(b.failure(|| true), Change::None, "the run started over");
        assert_eq!(b.failure(|| true), Change::Opened);
    }

    #[test]
    fn a_failure_ratio_over_the_window_opens_it() {
        let b = Breaker::new(Policy {
            failures: 0,
            ratio: Some(Ratio {
                share: 0.5,
                window: Duration::from_secs(60),
                min_requests: 10,
            }),
            open_for: Duration::from_secs(60),
            probes: 1,
        });
        for _ in 0..4 {
            b.success();
            assert_eq!(b.failure(|| true), Change::None, "too few requests yet");
        }
        b.success();
        assert_eq!(b.failure(|| true), Change::Opened);
        assert!(matches!(b.state(), State::Open { .. }), "5 of 10 failed");
    }
}
