//! `kv`: the shared store, with keys namespaced by plugin name so two plugins never collide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use crate::plugin::bindings::kv::{Error, Host};
use crate::plugin::instance::HostState;
use crate::store::{MemoryStore, StoreError};
use crate::telemetry::{self, kv::Op, metrics::counting_requests};

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

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, Error> {
        let k = self.key(&key)?;
        self.env
            .store
            .compare_and_swap(&k, expected.as_deref(), new, ttl(ttl_ms))
            .await
            .map_err(err)
    }

    async fn local_incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> i64 {
        local_incr(&self.env.local, &self.namespaced(&key), delta, ttl_ms)
    }
}

fn local_incr(local: &MemoryStore, k: &str, delta: i64, ttl_ms: Option<u64>) -> i64 {
    // Only a counter that holds text can fail here; start it over.
    local.incr(k, delta, ttl(ttl_ms)).unwrap_or_else(|_| {
        local.set(k, delta.to_string().into_bytes(), ttl(ttl_ms));
        delta
    })
}

/// Runs one in-process operation, counted in the kv metrics like the store's own (`Store`).
fn counted<T>(op: Op, run: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    if !counting_requests() {
        return run();
    }
    let started = Instant::now();
    let r = run();
    let outcome = match &r {
        Ok(_) => 0,
        Err(Error::Unavailable(_)) => 2,
        Err(_) => 1,
    };
    telemetry::kv::MEMORY.record(op, outcome, started.elapsed());
    r
}

/// With the in-process store nothing waits, so `kv` is linked as plain functions over it: a
/// plugin using `kv` is still called directly (see `wasi.rs`). Same keys and errors as above.
pub fn add_in_process(l: &mut Linker<HostState>, m: &Arc<MemoryStore>) -> wasmtime::Result<()> {
    type Cx<'a> = StoreContextMut<'a, HostState>;
    l.allow_shadowing(true);
    let mut kv = l.instance(KV)?;
    let store = m.clone();
    kv.func_wrap("get", move |c: Cx<'_>, (key,): (String,)| {
        Ok((counted(Op::Get, || {
            c.data().key(&key).map(|k| store.get(&k))
        }),))
    })?;
    let store = m.clone();
    kv.func_wrap(
        "set",
        move |c: Cx<'_>, (key, value, ttl_ms): (String, Vec<u8>, Option<u64>)| {
            Ok((counted(Op::Set, || {
                c.data()
                    .key(&key)
                    .map(|k| store.set(&k, value, ttl(ttl_ms)))
            }),))
        },
    )?;
    let store = m.clone();
    kv.func_wrap("delete", move |c: Cx<'_>, (key,): (String,)| {
        Ok((counted(Op::Delete, || {
            c.data().key(&key).map(|k| store.delete(&k))
        }),))
    })?;
    let store = m.clone();
    kv.func_wrap(
        "incr",
        move |c: Cx<'_>, (key, delta, ttl_ms): (String, i64, Option<u64>)| {
            let r = counted(Op::Incr, || {
                c.data()
                    .key(&key)
                    .and_then(|k| store.incr(&k, delta, ttl(ttl_ms)).map_err(err))
            });
            Ok((r,))
        },
    )?;
    let store = m.clone();
    kv.func_wrap(
        "compare-and-swap",
        move |c: Cx<'_>,
              (key, expected, new, ttl_ms): (String, Option<Vec<u8>>, Vec<u8>, Option<u64>)| {
            let r = counted(Op::CompareAndSwap, || {
                c.data().key(&key).map(|k| {
                    store.compare_and_swap(&k, expected.as_deref(), new, ttl(ttl_ms))
                })
            });
            Ok((r,))
        },
    )?;
    kv.func_wrap(
        "local-incr",
        move |c: Cx<'_>, (key, delta, ttl_ms): (String, i64, Option<u64>)| {
            let s = c.data();
            Ok((local_incr(&s.env.local, &s.namespaced(&key), delta, ttl_ms),))
        },
    )?;
    l.allow_shadowing(false);
    Ok(())
}

/// The `kv` interface as components import it.
const KV: &str = "wasmgate:plugin/kv@0.2.0";
