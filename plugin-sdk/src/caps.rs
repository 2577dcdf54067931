//! The host's capabilities. In the gateway each call goes to the host; in a native build (unit
//! tests) it goes to the [`crate::testing`] host of the current thread.

use crate::bindings::wasmgate::plugin as wit;

#[cfg(not(target_arch = "wasm32"))]
use crate::testing::with_host;

/// Logs that appear in the gateway's log, tagged with the plugin's name.
pub mod log {
    use super::*;
    pub use wit::log::Level;

    /// Logs `message` at `level`.
    pub fn log(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        wit::log::log(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.logs.push((level, message.to_string())));
    }

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// Clocks.
pub mod clock {
    #[allow(unused_imports)]
    use super::*;

    /// Nanoseconds from an arbitrary start; only differences mean something.
    pub fn monotonic_ns() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return wit::clock::monotonic_ns();
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.now_ms.saturating_mul(1_000_000))
    }

    /// Milliseconds since the Unix epoch.
    pub fn wall_ms() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return wit::clock::wall_ms();
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.now_ms)
    }
}

/// The gateway's shared key-value store (in-process, or Redis when configured). Keys are private
/// to the plugin. Every call can fail with [`kv::Error::Unavailable`] when the backend is down:
/// decide what your policy does then.
pub mod kv {
    #[allow(unused_imports)]
    use super::*;
    use std::time::Duration;
    pub use wit::kv::Error;

    fn ms(ttl: Option<Duration>) -> Option<u64> {
        ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
    }

    /// The value of `key`, if set and not expired.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::kv::get(key);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.kv_get(key))
    }

    /// Sets `key`, expiring after `ttl` if given.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::kv::set(key, value, ms(ttl));
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.kv_set(key, value, ms(ttl)))
    }

    /// Removes `key`.
    pub fn delete(key: &str) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::kv::delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.kv_delete(key))
    }

    /// Adds `delta` atomically and returns the new value. A missing key counts as 0 and gets
    /// `ttl` when created, so `incr(k, 1, Some(window))` counts per window.
    pub fn incr(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::kv::incr(key, delta, ms(ttl));
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.kv_incr(key, delta, ms(ttl)))
    }

    /// Sets `key` to `new` only if it holds `expected` now (`None`: only if it is missing),
    /// atomically for every gateway sharing the backend; `Ok(false)` when another request
    /// changed it first: read it again and retry. For state a counter cannot hold.
    pub fn compare_and_swap(
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::kv::compare_and_swap(key, expected, new, ms(ttl));
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.kv_compare_and_swap(key, expected, new, ms(ttl)))
    }

    /// [`incr`] on the gateway's own in-process store, whatever the shared backend is: a
    /// fallback when that backend is unavailable (counts are then per gateway instance). The
    /// test host keeps these counters apart from the shared ones.
    pub fn local_incr(key: &str, delta: i64, ttl: Option<Duration>) -> i64 {
        #[cfg(target_arch = "wasm32")]
        return wit::kv::local_incr(key, delta, ms(ttl));
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.local_incr(key, delta, ms(ttl)))
    }
}

/// Metrics shown on the gateway's `/metrics` as `wasmgate_plugin_<name>{plugin="..."}`.
pub mod metrics {
    #[allow(unused_imports)]
    use super::*;

    fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Adds to a counter.
    pub fn counter_add(name: &str, value: u64, labels: &[(&str, &str)]) {
        #[cfg(target_arch = "wasm32")]
        wit::metrics::counter_add(name, value, &owned(labels));
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| {
            h.metrics
                .push((name.to_string(), value as f64, owned(labels)))
        });
    }

    /// Records a value in a histogram.
    pub fn histogram_record(name: &str, value: f64, labels: &[(&str, &str)]) {
        #[cfg(target_arch = "wasm32")]
        wit::metrics::histogram_record(name, value, &owned(labels));
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.metrics.push((name.to_string(), value, owned(labels))));
    }
}

/// Outbound HTTP to the upstreams listed in the plugin's `http` setting.
pub mod http {
    #[allow(unused_imports)]
    use super::*;
    pub use wit::http_client::{Error, Incoming, Outgoing};

    impl Outgoing {
        /// A GET of `url` (`http://UPSTREAM/path`, UPSTREAM a configured upstream's name).
        pub fn get(url: &str) -> Outgoing {
            Outgoing {
                method: "GET".into(),
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout_ms: None,
            }
        }

        /// A POST of `body` to `url`.
        pub fn post(url: &str, content_type: &str, body: Vec<u8>) -> Outgoing {
            Outgoing {
                method: "POST".into(),
                url: url.into(),
                headers: vec![("content-type".into(), content_type.into())],
                body,
                timeout_ms: None,
            }
        }

        /// Gives up after `ms` milliseconds ([`Error::Timeout`]).
        pub fn timeout_ms(mut self, ms: u32) -> Outgoing {
            self.timeout_ms = Some(ms);
            self
        }
    }

    /// A GET of `url` (`http://UPSTREAM/path`, where UPSTREAM is a configured upstream's name).
    pub fn get(url: &str) -> Result<Incoming, Error> {
        send(&Outgoing::get(url))
    }

    /// Sends a request and waits for the whole response.
    pub fn send(req: &Outgoing) -> Result<Incoming, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::http_client::send(req);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| h.http_send(req))
    }

    /// Sends all requests at once and waits for all: the call takes as long as the slowest.
    /// Results are in the order of `reqs`.
    pub fn send_all(reqs: &[Outgoing]) -> Vec<Result<Incoming, Error>> {
        #[cfg(target_arch = "wasm32")]
        return wit::http_client::send_all(reqs);
        #[cfg(not(target_arch = "wasm32"))]
        with_host(|h| reqs.iter().map(|r| h.http_send(r)).collect())
    }
}
