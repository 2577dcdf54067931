//! Choosing a target. Each strategy skips targets that are out of rotation.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::target::Target;
use crate::config::{Balance, HashOn};

/// What a hash strategy may key on, taken from the request only when asked for.
pub trait HashSource {
    fn header(&self, name: &str) -> Option<&[u8]>;
    fn cookie(&self, name: &str) -> Option<&[u8]>;
    fn client_ip(&self) -> Option<std::net::IpAddr>;
}

/// A request with nothing to hash on (a plugin's outbound call, a probe): hash balancing falls
/// back to its default spread.
pub struct NoKeys;

impl HashSource for NoKeys {
    fn header(&self, _: &str) -> Option<&[u8]> {
        None
    }
    fn cookie(&self, _: &str) -> Option<&[u8]> {
        None
    }
    fn client_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
}

#[derive(Debug)]
enum Strategy {
    /// Walks a precomputed smooth weighted order (all weights 1 for plain round robin).
    Sequence(Vec<u32>),
    LeastConn,
    Hash(HashOn, Vec<u32>),
}

#[derive(Debug)]
pub struct Balancer {
    strategy: Strategy,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(balance: Balance, hash_on: Option<HashOn>, weights: &[u32]) -> Self {
        let strategy = match (balance, hash_on) {
            (Balance::Weighted, _) => Strategy::Sequence(smooth_weighted_order(weights)),
            (Balance::LeastConn, _) => Strategy::LeastConn,
            (Balance::Hash, Some(on)) => Strategy::Hash(on, (0..weights.len() as u32).collect()),
            _ => Strategy::Sequence((0..weights.len() as u32).collect()),
        };
        Balancer {
            strategy,
            next: AtomicUsize::new(0),
        }
    }

    /// The index of a healthy target, or `None` when none is.
    pub fn pick(&self, targets: &[Arc<Target>], req: &dyn HashSource) -> Option<usize> {
        match &self.strategy {
            Strategy::Sequence(order) => self.next_in(order, targets),
            Strategy::LeastConn => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let n = targets.len();
                (0..n)
                    .map(|i| (start + i) % n)
                    .filter(|&i| targets[i].healthy())
                    .min_by_key(|&i| targets[i].in_flight())
            }
            Strategy::Hash(on, order) => {
                let key = match on {
                    HashOn::ClientIp => req.client_ip().map(|ip| hash_of(&ip)),
                    HashOn::Header(h) => req.header(h.as_str()).map(hash_of),
                    HashOn::Cookie(c) => req.cookie(c).map(hash_of),
                };
                match key {
                    // Rendezvous hashing: adding or losing a target moves only its own keys.
                    Some(key) => (0..targets.len())
                        .filter(|&i| targets[i].healthy())
                        .max_by_key(|&i| hash_of(&(key, targets[i].authority.as_str()))),
                    None => self.next_in(order, targets),
                }
            }
        }
    }

    fn next_in(&self, order: &[u32], targets: &[Arc<Target>]) -> Option<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..order.len())
            .map(|i| order[(start + i) % order.len()] as usize)
            .find(|&i| targets[i].healthy())
    }
}

pub(super) fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// nginx's smooth weighted round robin, unrolled once: weights 5,1,1 give a,a,b,a,c,a,a rather than
/// five a's in a row. Weights are reduced by their common divisor to keep the order short.
pub fn smooth_weighted_order(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x / g)).collect();
    let total: u64 = w.iter().sum();
    const MAX: u64 = 1 << 16;
    if total > MAX {
        for x in &mut w {
            *x = (*x * MAX / total).max(1);
        }
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i] as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best as u32);
    }
    order
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_order_spreads_the_heavy_target() {
        assert_eq!(smooth_weighted_order(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_weighted_order(&[2, 2]), vec![0, 1]);
        assert_eq!(smooth_weighted_order(&[1, 1, 1]), vec![0, 1, 2]);
    }

    #[test]
    fn huge_weights_stay_bounded() {
        let order = smooth_weighted_order(&[u32::MAX, 1]);
        assert!(order.len() <= (1 << 16) + 1);
        assert!(order.contains(&1));
    }
}
