//! The key-value store behind the plugins' `kv` capability. The embedded in-process store is the
//! default and needs nothing else; instances that must share state use a networked backend.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryStore;
pub use redis::RedisStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached now.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The operation does not fit the stored value (e.g. `incr` on text).
    #[error("{0}")]
    Invalid(String),
}

/// A store backend. Cloning shares the same data.
#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

impl Default for Store {
    fn default() -> Self {
        Store::Memory(Default::default())
    }
}

impl Store {
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.get(key)),
            Store::Redis(r) => r.get(key).await,
        }
    }

    pub async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.set(key, value, ttl);
                Ok(())
            }
            Store::Redis(r) => r.set(key, value, ttl).await,
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.delete(key);
                Ok(())
            }
            Store::Redis(r) => r.delete(key).await,
        }
    }

    /// Adds `delta` and returns the new value; a new key starts at 0 and gets `ttl`.
    pub async fn incr(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StoreError> {
        match self {
            Store::Memory(m) => m.incr(key, delta, ttl),
            Store::Redis(r) => r.incr(key, delta, ttl).await,
        }
    }

    /// Sets `key` to `new` if it holds `expected` (`None`: if it is missing); whether it did.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.compare_and_swap(key, expected, new, ttl)),
            Store::Redis(r) => r.compare_and_swap(key, expected, new, ttl).await,
        }
    }
}
