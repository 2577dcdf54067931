//! A route's traffic split between upstreams (canary releases, blue/green): by weight, unless a
//! header or cookie names a side (testers on the canary), and sticky by a hash of the client when
//! asked, so one user stays on one version.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Upstream;
use super::balance::{HashSource, hash_of, smooth_weighted_order};
use crate::config::{ForceBy, HashOn};

#[derive(Debug)]
pub struct Split {
    sides: Vec<(Arc<Upstream>, u32)>,
    /// Smooth weighted order of side indexes, walked by `next`.
    order: Vec<u32>,
    next: AtomicUsize,
    total: u64,
    force: Option<ForceBy>,
    sticky: Option<HashOn>,
}

impl Split {
    pub fn new(
        sides: Vec<(Arc<Upstream>, u32)>,
        force: Option<ForceBy>,
        sticky: Option<HashOn>,
    ) -> Self {
        let weights: Vec<u32> = sides.iter().map(|(_, w)| *w).collect();
        Split {
            order: smooth_weighted_order(&weights),
            total: weights.iter().map(|&w| u64::from(w)).sum(),
            sides,
            next: AtomicUsize::new(0),
            force,
            sticky,
        }
    }

    /// The upstream for a request.
    pub fn choose(&self, req: &dyn HashSource) -> Option<&Arc<Upstream>> {
        if let Some(named) = self.forced(req) {
            return Some(named);
        }
        if let Some(key) = self.sticky.as_ref().and_then(|on| sticky_key(on, req))
            && self.total > 0
        {
            // A point on the line of cumulative weights: a weight change moves only the users
            // near the boundary it shifts.
            let mut point = key % self.total;
            for (up, w) in &self.sides {
                if point < u64::from(*w) {
                    return Some(up);
                }
                point -= u64::from(*w);
            }
        }
        if self.order.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.order.len();
        self.sides.get(self.order[i] as usize).map(|(up, _)| up)
    }

    fn forced(&self, req: &dyn HashSource) -> Option<&Arc<Upstream>> {
        let value = match self.force.as_ref()? {
            ForceBy::Header(h) => req.header(h.as_str())?,
            ForceBy::Cookie(c) => req.cookie(c)?,
        };
        self.sides
            .iter()
            .find(|(up, _)| up.name.as_bytes() == value)
            .map(|(up, _)| up)
    }
}

fn sticky_key(on: &HashOn, req: &dyn HashSource) -> Option<u64> {
    match on {
        HashOn::ClientIp => req.client_ip().map(|ip| hash_of(&ip)),
        HashOn::Header(h) => req.header(h.as_str()).map(hash_of),
        HashOn::Cookie(c) => req.cookie(c).map(hash_of),
    }
}

/// A route's shadow upstream: a share of its requests is copied there.
#[derive(Debug)]
pub struct Mirror {
    pub upstream: Arc<Upstream>,
    percent: u64,
    pub max_body: usize,
    count: std::sync::atomic::AtomicU64,
}

impl Mirror {
    pub fn new(upstream: Arc<Upstream>, percent: u32, max_body: usize) -> Self {
        Mirror {
            upstream,
            percent: u64::from(percent.min(100)),
            max_body,
            count: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether this request is copied: exactly `percent` of every hundred, spread evenly.
    pub fn sample(&self) -> bool {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        (n + 1) * self.percent / 100 != n * self.percent / 100
    }
}
