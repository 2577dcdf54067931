//! Counts requests per route in the shared key-value store, in fixed windows, and reports the
//! count in a request header and as a metric. A small use of the `kv`, `clock`, `metrics` and
//! `log` capabilities; when the store is down it lets the request through and says so.

use std::time::Duration;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    #[serde(default = "x_hits")]
    header: String,
    /// Window length in seconds.
    #[serde(default = "minute")]
    window_s: u64,
}

fn x_hits() -> String {
    "x-hits".into()
}

fn minute() -> u64 {
    60
}

#[plugin]
impl Plugin for Count {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if c.window_s == 0 {
            return Err("window_s must be at least 1".into());
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let route = req.route_name();
        let window = clock::wall_ms() / 1000 / self.window_s;
        let key = format!("{route}:{window}");
        match kv::incr(&key, 1, Some(Duration::from_secs(self.window_s))) {
            Ok(n) => {
                metrics::counter_add("requests", 1, &[("route", &route)]);
                req.set_header(&self.header, &n.to_string()).into()
            }
            Err(e) => {
                log::warn(&format!("store unavailable, not counting: {e:?}"));
                Action::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest};

    #[test]
    fn counts_per_window_and_survives_a_down_store() {
        testing::reset();
        testing::set_clock_ms(1_000_000);
        let h = TestHost::<Count>::new(r#"{"window_s": 10}"#).unwrap();
        for n in 1..=3 {
            let req = TestRequest::get("/");
            h.request_headers(&req);
            assert_eq!(req.view().header("x-hits"), Some(n.to_string()));
        }
        testing::set_clock_ms(1_010_000);
        let req = TestRequest::get("/");
        h.request_headers(&req);
        assert_eq!(req.view().header("x-hits").as_deref(), Some("1"));
        assert_eq!(testing::metrics().len(), 4);
        testing::set_kv_down(true);
        let req = TestRequest::get("/");
        assert_eq!(h.request_headers(&req), Action::Continue);
        assert_eq!(req.view().header("x-hits"), None);
        assert_eq!(testing::logs().len(), 1);
    }
}
