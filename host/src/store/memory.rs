//! The embedded store: a concurrent map with per-key expiry. Values are bytes; counters are
//! stored as decimal text, as Redis does, so plugins see the same data on either backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::StoreError;

struct Slot {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Slot {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

#[derive(Default)]
pub struct MemoryStore {
    map: DashMap<String, Slot>,
    writes: AtomicU64,
}

/// Expired keys are dropped when read, and all at once every this many writes.
const SWEEP_EVERY: u64 = 4096;

impl MemoryStore {
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let found = self.map.get(key)?;
        if found.live(now) {
            return Some(found.value.clone());
        }
        drop(found);
        self.map.remove_if(key, |_, s| !s.live(now));
        None
    }

    pub fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) {
        let expires = ttl.map(|t| Instant::now() + t);
        self.map.insert(key.to_string(), Slot { value, expires });
        self.wrote();
    }

    pub fn delete(&self, key: &str) {
        self.map.remove(key);
    }

    pub fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let now = Instant::now();
        let result = match self.map.entry(key.to_string()) {
            Entry::Occupied(mut e) if e.get().live(now) => {
                let slot = e.get_mut();
                let current: i64 = std::str::from_utf8(&slot.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        StoreError::Invalid(format!("`{key}` does not hold a number"))
                    })?;
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| StoreError::Invalid(format!("`{key}` would overflow")))?;
                slot.value = next.to_string().into_bytes();
                next
            }
            Entry::Occupied(mut e) => {
                e.insert(Slot {
                    value: delta.to_string().into_bytes(),
                    expires: ttl.map(|t| now + t),
                });
                delta
            }
            Entry::Vacant(e) => {
                e.insert(Slot {
                    value: delta.to_string().into_bytes(),
                    expires: ttl.map(|t| now + t),
                });
                delta
            }
        };
        self.wrote();
        Ok(result)
    }

    /// Sets `key` to `new` if it holds `expected` (`None`: if it is missing or expired).
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> bool {
        let now = Instant::now();
        let slot = Slot {
            value: new,
            expires: ttl.map(|t| now + t),
        };
        let swapped = match self.map.entry(key.to_string()) {
            Entry::Occupied(mut e) => {
                let held = e.get().live(now).then_some(e.get().value.as_slice());
                if held != expected {
                    return false;
                }
                e.insert(slot);
                true
            }
            Entry::Vacant(e) if expected.is_none() => {
                e.insert(slot);
                true
            }
            Entry::Vacant(_) => false,
        };
        self.wrote();
        swapped
    }

    fn wrote(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            self.map.retain(|_, s| s.live(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_start_at_zero_expire_and_refuse_text() {
        let s = MemoryStore::default();
        assert_eq!(s.incr("a", 2, None).ok(), Some(2));
        assert_eq!(s.incr("a", 3, None).ok(), Some(5));
        assert_eq!(s.get("a"), Some(b"5".to_vec()));
        s.set("t", b"text".to_vec(), None);
        assert!(matches!(s.incr("t", 1, None), Err(StoreError::Invalid(_))));
        assert_eq!(
            s.incr("ttl", 1, Some(Duration::from_millis(20))).ok(),
            Some(1)
        );
        assert_eq!(
            s.incr("ttl", 1, Some(Duration::from_millis(20))).ok(),
            Some(2)
        );
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(s.get("ttl"), None);
        assert_eq!(s.incr("ttl", 1, None).ok(), Some(1));
        s.delete("a");
        assert_eq!(s.get("a"), None);
    }

    #[test]
    fn compare_and_swap_sets_only_over_the_expected_value() {
        let s = MemoryStore::default();
        assert!(s.compare_and_swap("k", None, b"1".to_vec(), None));
        assert!(!s.compare_and_swap("k", None, b"2".to_vec(), None));
        assert!(!s.compare_and_swap("k", Some(b"0"), b"2".to_vec(), None));
        assert!(s.compare_and_swap("k", Some(b"1"), b"2".to_vec(), None));
        assert_eq!(s.get("k"), Some(b"2".to_vec()));
        assert!(!s.compare_and_swap("gone", Some(b"1"), b"2".to_vec(), None));
        s.set("old", b"1".to_vec(), Some(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.compare_and_swap("old", None, b"3".to_vec(), None));
    }
}
