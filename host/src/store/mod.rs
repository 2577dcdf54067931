//! The key-value store behind the plugins' `kv` capability. The embedded in-process store is the
//! default and needs nothing else; instances that must share state use a networked backend.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::telemetry::kv::{self, Op};
use crate::telemetry::metrics::counting_requests;

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
    /// The backend's name, as in metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Whether the backend answers now (the embedded store always does).
    pub fn available(&self) -> bool {
        match self {
            Store::Memory(_) => true,
            Store::Redis(r) => r.available(),
        }
    }

    /// Runs one operation, counted in the kv metrics.
    async fn counted<T>(
        &self,
        op: Op,
        run: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if !counting_requests() {
            return run.await;
        }
        let started = Instant::now();
        let result = run.await;
        let stats = match self {
            Store::Memory(_) => &kv::MEMORY,
            Store::Redis(_) => &kv::REDIS,
        };
        let outcome = match &result {
            Ok(_) => 0,
            Err(StoreError::Invalid(_)) => 1,
            Err(StoreError::Unavailable(_)) => 2,
        };
        stats.record(op, outcome, started.elapsed());
        result
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.counted(Op::Get, async {
            match self {
                Store::Memory(m) => Ok(m.get(key)),
                Store::Redis(r) => r.get(key).await,
            }
        })
        .await
    }

    pub async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.counted(Op::Set, async {
            match self {
                Store::Memory(m) => {
                    m.set(key, value, ttl);
                    Ok(())
                }
                Store::Redis(r) => r.set(key, value, ttl).await,
            }
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.counted(Op::Delete, async {
            match self {
                Store::Memory(m) => {
                    m.delete(key);
                    Ok(())
                }
                Store::Redis(r) => r.delete(key).await,
            }
        })
        .await
    }

    /// Adds `delta` and returns the new value; a new key starts at 0 and gets `ttl`.
    pub async fn incr(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StoreError> {
        self.counted(Op::Incr, async {
            match self {
                Store::Memory(m) => m.incr(key, delta, ttl),
                Store::Redis(r) => r.incr(key, delta, ttl).await,
            }
        })
        .await
    }

    /// Sets `key` to `new` if it holds `expected` (`None`: if it is missing); whether it did.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.counted(Op::CompareAndSwap, async {
            match self {
                Store::Memory(m) => Ok(m.compare_and_swap(key, expected, new, ttl)),
                Store::Redis(r) => r.compare_and_swap(key, expected, new, ttl).await,
            }
        })
        .await
    }
}
