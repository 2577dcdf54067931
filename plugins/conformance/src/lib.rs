//! The conformance plugin, in Rust: the same behaviours as `plugins/python/conformance` and
//! `plugins/js/conformance`, run by one end-to-end suite for every language.
//!
//! - `deny_header` present: 403 problem+json.
//! - `request_headers` / `response_headers`: set on the way in / out.
//! - `counter` (a kv key): counted per request, the count in `x-count`, a metric and a log line.
//! - `x-raise: TEXT` fails the call (a panic: Rust's exception); `x-allocate-mb: N` keeps N MiB
//!   (the memory cap test).
//! - The response body's size in `x-body-bytes`, unless the request has `x-skip-body` (then the
//!   plugin says `skip_body` and its body phase is not called).

use std::collections::BTreeMap;
use std::sync::Mutex;

use wasmgate_plugin_sdk::prelude::*;

const LANGUAGE: &str = "rust";

/// What `x-allocate-mb` asked for, kept for the instance's life.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conformance {
    #[serde(default = "x_deny")]
    deny_header: String,
    #[serde(default)]
    request_headers: BTreeMap<String, String>,
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
    #[serde(default)]
    counter: String,
}

fn x_deny() -> String {
    "x-deny".into()
}

#[plugin]
impl Plugin for Conformance {
    type Config = Self;

    fn on_request_headers(&self, req: &Request) -> Action {
        if let Some(text) = req.header("x-raise") {
            panic!("asked to raise: {text}");
        }
        if let Some(mb) = req
            .header("x-allocate-mb")
            .and_then(|m| m.parse::<usize>().ok())
            && let Ok(mut kept) = KEPT.lock()
        {
            kept.push(vec![1u8; mb << 20]);
        }
        if req.header(&self.deny_header).is_some() {
            return Answer::problem(403, &format!("denied by the {LANGUAGE} plugin")).into();
        }
        for (name, value) in &self.request_headers {
            if let Err(e) = req.set_header(name, value) {
                return Answer::problem(500, &e).into();
            }
        }
        // The first value claimed under `claim` wins: kv.compare-and-swap from a missing key.
        if let Some(v) = req.header("x-claim") {
            let won = kv::compare_and_swap("claim", None, v.as_bytes(), None);
            req.context_set(
                "claimed",
                if matches!(won, Ok(true)) { "yes" } else { "no" },
            );
        }
        if !self.counter.is_empty() {
            match kv::incr(&self.counter, 1, None) {
                Ok(n) => {
                    req.context_set("count", &n.to_string());
                    metrics::counter_add("requests", 1, &[]);
                    log::info(&format!("request {n}"));
                }
                Err(e) => log::warn(&format!("not counted: {e:?}")),
            }
        }
        Action::Continue
    }

    fn on_response_headers(&self, req: &Request, resp: &Response) -> Action {
        let mut result = Ok(());
        for (name, value) in &self.response_headers {
            result = result.and_then(|()| resp.set_header(name, value));
        }
        if let Some(claimed) = req.context_get("claimed") {
            result = result.and_then(|()| resp.set_header("x-claimed", &claimed));
        }
        if let Some(count) = req.context_get("count") {
            result = result.and_then(|()| resp.set_header("x-count", &count));
        }
        if req.header("x-skip-body").is_some() {
            resp.skip_body();
        }
        result
            .and_then(|()| resp.set_header("x-plugin-language", LANGUAGE))
            .into()
    }

    fn on_response_body(&self, _req: &Request, resp: &Response) -> Action {
        let n = resp.body().map_or(0, |b| b.len());
        resp.set_header("x-body-bytes", &n.to_string()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest, TestResponse, status};

    #[test]
    fn denies_edits_and_counts() {
        testing::reset();
        let h = TestHost::<Conformance>::new(
            r#"{"request_headers": {"x-a": "1"}, "response_headers": {"x-b": "2"}, "counter": "hits"}"#,
        )
        .unwrap();
        assert_eq!(
            status(&h.request_headers(&TestRequest::get("/").header("x-deny", "1"))),
            403
        );
        for n in ["1", "2"] {
            let req = TestRequest::get("/");
            assert_eq!(status(&h.request_headers(&req)), 200);
            assert_eq!(req.view().header("x-a").as_deref(), Some("1"));
            let resp = TestResponse::new(200);
            h.response_headers(&req, &resp);
            assert_eq!(resp.view().header("x-count").as_deref(), Some(n));
            assert_eq!(resp.view().header("x-b").as_deref(), Some("2"));
        }
        assert!(TestHost::<Conformance>::new(r#"{"nope": 1}"#).is_err());
    }
}
