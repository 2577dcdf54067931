//! `kv`: the shared store, with keys namespaced by plugin name so two plugins never collide.

use std::time::Duration;

use crate::plugin::bindings::kv::{Error, Host};
use crate::plugin::instance::HostState;
use crate::store::StoreError;

/// Keys longer than this are refused: they are almost certainly a bug in the plugin.
const MAX_KEY: usize = 1024;

impl HostState {
    fn namespaced(&self, key: &str) -> String {
        format!("{}:{key}", self.env.name)
    }

    fn key(&self, key: &str) -> Result<String, Error> {
        if key.len() > MAX_KEY {
            return Err(Error::Invalid(format!("keys are at most {MAX_KEY} bytes")));
        }
        Ok(self.namespaced(key))
    }
}

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn err(e: StoreError) -> Error {
    match e {
        StoreError::Unavailable(m) => Error::Unavailable(m),
        StoreError::Invalid(m) => Error::Invalid(m),
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        let k = self.key(&key)?;
        self.env.store.get(&k).await.map_err(err)
    }

    async fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), Error> {
        let k = self.key(&key)?;
        self.env
            .store
            .set(&k, value, ttl(ttl_ms))
            .await
            .map_err(err)
    }

    async fn delete(&mut self, key: String) -> Result<(), Error> {
        let k = self.key(&key)?;
        self.env.store.delete(&k).await.map_err(err)
    }

    async fn incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> Result<i64, Error> {
        let k = self.key(&key)?;
        self.env
            .store
            .incr(&k, delta, ttl(ttl_ms))
            .await
            .map_err(err)
    }

    async fn local_incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> i64 {
        let k = self.namespaced(&key);
        // Only a counter that holds text can fail here; start it over.
        self.env
            .local
            .incr(&k, delta, ttl(ttl_ms))
            .unwrap_or_else(|_| {
                self.env
                    .local
                    .set(&k, delta.to_string().into_bytes(), ttl(ttl_ms));
                delta
            })
    }
}
