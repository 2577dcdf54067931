//! A retry budget: a token bucket each request fills by the budget's share and each retry
//! empties by one, so over time retries add at most that share of load, plus a small reserve
//! for quiet upstreams. When an upstream fails as a whole, retries stop amplifying it.

use std::sync::atomic::{AtomicI64, Ordering};

/// Tokens are counted in thousandths.
const UNIT: i64 = 1000;

#[derive(Debug)]
pub struct RetryBudget {
    tokens: AtomicI64,
    per_request: i64,
    cap: i64,
}

impl RetryBudget {
    /// `share`: retries per request allowed over time (0.2 = 20% extra load); `reserve`: retries
    /// allowed in a burst, and what the bucket starts with.
    pub fn new(share: f64, reserve: u32) -> Self {
        let cap = i64::from(reserve) * UNIT;
        RetryBudget {
            tokens: AtomicI64::new(cap),
            per_request: (share * UNIT as f64).round() as i64,
            cap,
        }
    }

    /// A first attempt was made.
    pub fn deposit(&self) {
        if self.tokens.load(Ordering::Relaxed) >= self.cap {
            return;
        }
        let t = self.tokens.fetch_add(self.per_request, Ordering::Relaxed) + self.per_request;
        if t > self.cap {
            // A racing deposit may overshoot; trim back (losing a fraction is harmless).
            let _ = self
                .tokens
                .compare_exchange(t, self.cap, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Takes one retry's worth, if there is one.
    pub fn withdraw(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t >= UNIT).then_some(t - UNIT)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_by_the_share_and_the_reserve() {
        let b = RetryBudget::new(0.2, 3);
        let mut retries = 0;
        for _ in 0..100 {
            b.deposit();
            if b.withdraw() {
                retries += 1;
            }
        }
        // 3 from the reserve, then one per five requests.
        assert!((20..=23).contains(&retries), "{retries}");
    }

    #[test]
    fn a_quiet_upstream_fills_to_the_reserve_only() {
        let b = RetryBudget::new(0.5, 2);
        for _ in 0..1000 {
            b.deposit();
        }
        assert!(b.withdraw());
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }
}
