//! Ships one JSON record per finished request to an allowed upstream, in batches: a POST of a
//! JSON array when `batch_size` records are waiting or the oldest waited `flush_ms` (checked
//! when the next record comes). It runs in the log phase, after the response was sent, so a
//! slow or failing collector never slows or fails the request it logs; a batch that cannot be
//! delivered is dropped and counted (`wasmgate_plugin_http_log_dropped`), never retried, so
//! memory stays bounded. Batches are per plugin instance.

use std::cell::RefCell;

use serde_json::{Map, Value, json};
use wasmgate_plugin_sdk::http::Outgoing;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `http://UPSTREAM/path`; the upstream must be in the plugin's `http` list.
    url: String,
    #[serde(default = "ten")]
    batch_size: usize,
    #[serde(default = "second")]
    flush_ms: u64,
    #[serde(default = "second_u32")]
    timeout_ms: u32,
}

fn ten() -> usize {
    10
}
fn second() -> u64 {
    1000
}
fn second_u32() -> u32 {
    1000
}

pub struct HttpLog {
    config: Config,
    /// Records waiting, and when the first of them came (ms since the epoch).
    batch: RefCell<(Vec<Value>, u64)>,
}

/// One finished request as the collector gets it.
pub fn record(e: &LogEntry, at_ms: u64) -> Value {
    let context: Map<String, Value> = e
        .context
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "time_ms": at_ms,
        "route": e.route,
        "method": e.method,
        "target": e.target,
        "status": e.status,
        "request_bytes": e.request_bytes,
        "response_bytes": e.response_bytes,
        "duration_us": e.duration_us,
        "upstream_us": e.upstream_us,
        "upstream": e.upstream,
        "client_ip": e.client_ip,
        "completed": e.completed,
        "context": context,
    })
}

#[plugin]
impl Plugin for HttpLog {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        if !config.url.starts_with("http://") {
            return Err(format!(
                "`url` = `{}` must be http://UPSTREAM/path",
                config.url
            ));
        }
        if config.batch_size == 0 || config.batch_size > 10_000 {
            return Err("`batch_size` must be 1..=10000".into());
        }
        if config.timeout_ms == 0 {
            return Err("`timeout_ms` must be at least 1".into());
        }
        Ok(HttpLog {
            config,
            batch: RefCell::new((Vec::new(), 0)),
        })
    }

    fn on_log(&self, entry: &LogEntry) {
        let now = clock::wall_ms();
        let ready = {
            let mut b = self.batch.borrow_mut();
            if b.0.is_empty() {
                b.1 = now;
            }
            b.0.push(record(entry, now));
            let due = b.0.len() >= self.config.batch_size
                || now.saturating_sub(b.1) >= self.config.flush_ms;
            due.then(|| std::mem::take(&mut b.0))
        };
        if let Some(records) = ready {
            self.ship(records);
        }
    }
}

impl HttpLog {
    fn ship(&self, records: Vec<Value>) {
        let n = records.len() as u64;
        let body = Value::Array(records).to_string().into_bytes();
        let req = Outgoing::post(&self.config.url, "application/json", body)
            .timeout_ms(self.config.timeout_ms);
        let failed = match http::send(&req) {
            Ok(r) if r.status < 300 => None,
            Ok(r) => Some(format!("the collector answered {}", r.status)),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            log::warn(&format!("{n} log records dropped: {why}"));
            metrics::counter_add("http_log_dropped", n, &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use wasmgate_plugin_sdk::http::{Error, Incoming};
    use wasmgate_plugin_sdk::testing::{self, TestHost};

    fn entry(status: u16) -> LogEntry {
        LogEntry {
            route: "r".into(),
            method: "GET".into(),
            target: "/a?b=1".into(),
            status,
            request_bytes: 0,
            response_bytes: 5,
            duration_us: 100,
            upstream_us: Some(50),
            upstream: Some("127.0.0.1:1".into()),
            client_ip: "127.0.0.1".into(),
            context: vec![("consumer".into(), "alice".into())],
            completed: true,
        }
    }

    #[test]
    fn ships_full_batches_and_counts_what_it_drops() {
        testing::reset();
        let posts = Rc::new(Cell::new(0));
        let seen = posts.clone();
        testing::mock_http("http://logs/", move |req| {
            let records: Vec<Value> = serde_json::from_slice(&req.body).expect("a JSON array");
            assert_eq!(records.len(), 2);
            assert_eq!(records[1]["context"]["consumer"], "alice");
            seen.set(seen.get() + 1);
            Ok(Incoming {
                status: 204,
                headers: vec![],
                body: vec![],
            })
        });
        let h = TestHost::<HttpLog>::new(
            r#"{"url": "http://logs/in", "batch_size": 2, "flush_ms": 60000}"#,
        )
        .unwrap();
        assert!(h.phases().contains(Phases::LOG));
        h.log(&entry(200));
        assert_eq!(posts.get(), 0, "one record waits");
        h.log(&entry(404));
        assert_eq!(posts.get(), 1);

        testing::mock_http("http://down/", |_| Err(Error::Timeout));
        let h = TestHost::<HttpLog>::new(r#"{"url": "http://down/", "batch_size": 1}"#).unwrap();
        h.log(&entry(200));
        assert!(
            testing::metrics()
                .iter()
                .any(|(n, v, _)| n == "http_log_dropped" && *v == 1.0)
        );
    }
}
