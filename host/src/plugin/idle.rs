//! The idle live instances of one plugin step or handler, reused across requests: at most
//! `pool_size` kept, none with `isolation = "per_request"`.

use std::sync::Mutex;

use super::settings::{Env, Isolation};

pub struct Idle<T> {
    items: Mutex<Vec<T>>,
    pooled: bool,
    cap: usize,
}

impl<T> Idle<T> {
    pub fn new(env: &Env) -> Idle<T> {
        Idle {
            items: Mutex::new(Vec::new()),
            pooled: env.isolation == Isolation::Pooled,
            cap: env.pool_size,
        }
    }

    /// How many are kept now.
    pub fn count(&self) -> usize {
        self.items.lock().map_or(0, |i| i.len())
    }

    /// An idle instance, if the pool has one.
    pub fn take(&self) -> Option<T> {
        if !self.pooled {
            return None;
        }
        self.items.lock().ok()?.pop()
    }

    /// Keeps `item` for a later request, unless the pool is full (or there is none).
    pub fn give_back(&self, item: T) {
        if !self.pooled {
            return;
        }
        if let Ok(mut items) = self.items.lock()
            && items.len() < self.cap
        {
            items.push(item);
        }
    }
}
