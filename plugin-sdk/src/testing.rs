//! A native test host: run a plugin's phases under `cargo test`, with no gateway and no Wasm.
//!
//! ```ignore
//! use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};
//!
//! let host = TestHost::<AddHeader>::new(r#"{"name": "x-a", "value": "1"}"#).unwrap();
//! let req = TestRequest::get("/hello");
//! assert_eq!(host.request_headers(&req), Action::Continue);
//! assert_eq!(req.header("x-a").as_deref(), Some("1"));
//! ```
//!
//! Capabilities are faked per thread (each test runs on its own): a key-value map, a clock you
//! set ([`set_clock_ms`]), captured logs and metrics, and HTTP answers you register
//! ([`mock_http`]).

#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::bindings::wasmgate::plugin::http_client::{Error as HttpError, Incoming, Outgoing};
use crate::bindings::wasmgate::plugin::kv::Error as KvError;
use crate::bindings::wasmgate::plugin::log::Level;
use crate::{Action, Phases, Plugin, Request, Response};

/// A plugin built from a JSON config, ready to have its phases called.
pub struct TestHost<P: Plugin> {
    plugin: P,
}

impl<P: Plugin> TestHost<P> {
    /// Builds the plugin as the gateway's `init` would; `Err` is what the gateway would report.
    pub fn new(config_json: &str) -> Result<Self, String> {
        let config: P::Config = crate::config::parse(config_json)?;
        Ok(TestHost {
            plugin: P::new(config)?,
        })
    }

    /// The phases the gateway would call.
    pub fn phases(&self) -> Phases {
        crate::adapter::phases(&self.plugin)
    }

    /// The plugin itself.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// Runs the request-headers phase.
    pub fn request_headers(&self, req: &TestRequest) -> Action {
        self.plugin.on_request_headers(&Request::test(&req.0))
    }

    /// Runs the request-body phase (set the body with [`TestRequest::body`]); like the
    /// gateway, not when the request-headers phase said `skip_body`.
    pub fn request_body(&self, req: &TestRequest) -> Action {
        if req.body_skipped() {
            return Action::Continue;
        }
        self.plugin.on_request_body(&Request::test(&req.0))
    }

    /// Runs the response-headers phase.
    pub fn response_headers(&self, req: &TestRequest, resp: &TestResponse) -> Action {
        self.plugin
            .on_response_headers(&Request::test(&req.0), &Response::test(&resp.0))
    }

    /// Runs the response-body phase; like the gateway, not when the response-headers phase
    /// said `skip_body`.
    pub fn response_body(&self, req: &TestRequest, resp: &TestResponse) -> Action {
        if resp.body_skipped() {
            return Action::Continue;
        }
        self.plugin
            .on_response_body(&Request::test(&req.0), &Response::test(&resp.0))
    }

    /// Runs the log phase.
    pub fn log(&self, entry: &crate::LogEntry) {
        self.plugin.on_log(entry)
    }
}

use crate::rules::{header_name as valid_name, header_value as valid_value};

/// Headers as the host keeps them: case-insensitive names, several values per name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Headers(Vec<(String, String)>);

#[allow(missing_docs)]
impl Headers {
    pub fn header(&self, name: &str) -> Option<String> {
        let n = name.to_ascii_lowercase();
        self.0.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
    }
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let n = name.to_ascii_lowercase();
        self.0
            .iter()
            .filter(|(k, _)| *k == n)
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (k, _) in &self.0 {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
        names
    }
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        let n = valid_name(name)?;
        valid_value(value)?;
        self.0.retain(|(k, _)| *k != n);
        self.0.push((n, value.to_string()));
        Ok(())
    }
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        let n = valid_name(name)?;
        valid_value(value)?;
        self.0.push((n, value.to_string()));
        Ok(())
    }
    pub fn remove_header(&mut self, name: &str) {
        let n = name.to_ascii_lowercase();
        self.0.retain(|(k, _)| *k != n);
    }
}

/// The request state behind a test [`Request`].
#[derive(Debug, Clone)]
pub(crate) struct ReqState {
    method: String,
    path: String,
    query: Option<String>,
    authority: String,
    scheme: String,
    client_ip: String,
    route: String,
    params: Vec<(String, String)>,
    pub(crate) headers: Headers,
    body: Option<Vec<u8>>,
    skip_body: bool,
    context: Vec<(String, String)>,
    upstream: Option<(String, Option<String>)>,
}

#[allow(missing_docs)]
impl ReqState {
    pub fn method(&mut self) -> String {
        self.method.clone()
    }
    pub fn path(&mut self) -> String {
        self.path.clone()
    }
    pub fn set_path(&mut self, path: &str) -> Result<(), String> {
        crate::rules::path(path)?;
        self.path = path.to_string();
        Ok(())
    }
    pub fn query(&mut self) -> Option<String> {
        self.query.clone()
    }
    pub fn set_query(&mut self, query: Option<&str>) -> Result<(), String> {
        if let Some(q) = query {
            crate::rules::query(q)?;
        }
        self.query = query.filter(|q| !q.is_empty()).map(str::to_string);
        Ok(())
    }
    pub fn authority(&mut self) -> String {
        self.authority.clone()
    }
    pub fn scheme(&mut self) -> String {
        self.scheme.clone()
    }
    pub fn client_ip(&mut self) -> String {
        self.client_ip.clone()
    }
    pub fn route_name(&mut self) -> String {
        self.route.clone()
    }
    pub fn path_param(&mut self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    pub fn body(&mut self) -> Option<Vec<u8>> {
        self.body.clone()
    }
    pub fn set_body(&mut self, body: &[u8]) {
        self.body = Some(body.to_vec());
    }
    pub fn skip_body(&mut self) {
        self.skip_body = true;
    }
    pub fn set_upstream(&mut self, upstream: &str, target: Option<&str>) -> Result<(), String> {
        let known = with_host(|h| {
            h.upstreams
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == upstream))
        });
        if !known {
            return Err(format!("no upstream is named `{upstream}`"));
        }
        self.upstream = Some((upstream.to_string(), target.map(str::to_string)));
        Ok(())
    }
    pub fn context_get(&mut self, key: &str) -> Option<String> {
        self.context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
    pub fn context_set(&mut self, key: &str, value: &str) {
        match self.context.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.context.push((key.to_string(), value.to_string())),
        }
    }
}

/// The response state behind a test [`Response`].
#[derive(Debug, Clone)]
pub(crate) struct RespState {
    status: u16,
    pub(crate) headers: Headers,
    body: Option<Vec<u8>>,
    skip_body: bool,
}

#[allow(missing_docs)]
impl RespState {
    pub fn status(&mut self) -> u16 {
        self.status
    }
    pub fn set_status(&mut self, status: u16) -> Result<(), String> {
        crate::rules::status(status)?;
        self.status = status;
        Ok(())
    }
    pub fn body(&mut self) -> Option<Vec<u8>> {
        self.body.clone()
    }
    pub fn set_body(&mut self, body: &[u8]) {
        self.body = Some(body.to_vec());
    }
    pub fn skip_body(&mut self) {
        self.skip_body = true;
    }
}

/// A request for [`TestHost`]: build it, run a phase, then read what the plugin changed.
pub struct TestRequest(RefCell<ReqState>);

impl TestRequest {
    /// A request with this method and path (`/p?query` is split).
    pub fn new(method: &str, path_and_query: &str) -> TestRequest {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_and_query, None),
        };
        TestRequest(RefCell::new(ReqState {
            method: method.to_string(),
            path: path.to_string(),
            query,
            authority: "example.test".into(),
            scheme: "http".into(),
            client_ip: "127.0.0.1".into(),
            route: "test".into(),
            params: Vec::new(),
            headers: Headers::default(),
            body: None,
            skip_body: false,
            context: Vec::new(),
            upstream: None,
        }))
    }

    /// A GET request.
    pub fn get(path_and_query: &str) -> TestRequest {
        TestRequest::new("GET", path_and_query)
    }

    /// Adds a header (panics on an invalid name: test input).
    pub fn header(self, name: &str, value: &str) -> TestRequest {
        if let Err(e) = self.0.borrow_mut().headers.append_header(name, value) {
            panic!("TestRequest::header: {e}");
        }
        self
    }

    /// Sets the body (as the request-body phase sees it).
    pub fn body(self, body: &[u8]) -> TestRequest {
        self.0.borrow_mut().body = Some(body.to_vec());
        self
    }

    /// Sets the client address.
    pub fn client_ip(self, ip: &str) -> TestRequest {
        self.0.borrow_mut().client_ip = ip.to_string();
        self
    }

    /// Sets the route name and a matched `{param}`.
    pub fn route(self, name: &str, params: &[(&str, &str)]) -> TestRequest {
        {
            let mut s = self.0.borrow_mut();
            s.route = name.to_string();
            s.params = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        self
    }

    /// Puts a value in the request context, as an earlier plugin would.
    pub fn context(self, key: &str, value: &str) -> TestRequest {
        self.0.borrow_mut().context_set(key, value);
        self
    }

    /// The request as the plugin left it.
    pub fn view(&self) -> Request<'_> {
        Request::test(&self.0)
    }

    /// The upstream (and target) the plugin picked, if any.
    pub fn picked_upstream(&self) -> Option<(String, Option<String>)> {
        self.0.borrow().upstream.clone()
    }

    /// Whether the plugin said it does not need the body (`skip_body`).
    pub fn body_skipped(&self) -> bool {
        self.0.borrow().skip_body
    }
}

/// A response for [`TestHost`].
pub struct TestResponse(RefCell<RespState>);

impl TestResponse {
    /// A response with this status.
    pub fn new(status: u16) -> TestResponse {
        TestResponse(RefCell::new(RespState {
            status,
            headers: Headers::default(),
            body: None,
            skip_body: false,
        }))
    }

    /// Adds a header.
    pub fn header(self, name: &str, value: &str) -> TestResponse {
        if let Err(e) = self.0.borrow_mut().headers.append_header(name, value) {
            panic!("TestResponse::header: {e}");
        }
        self
    }

    /// Sets the body.
    pub fn body(self, body: &[u8]) -> TestResponse {
        self.0.borrow_mut().body = Some(body.to_vec());
        self
    }

    /// The response as the plugin left it.
    pub fn view(&self) -> Response<'_> {
        Response::test(&self.0)
    }

    /// Whether the plugin said it does not need the body (`skip_body`).
    pub fn body_skipped(&self) -> bool {
        self.0.borrow().skip_body
    }
}

/// One metric update: name, value, labels.
pub type MetricUpdate = (String, f64, Vec<(String, String)>);

type HttpMock = Box<dyn Fn(&Outgoing) -> Result<Incoming, HttpError>>;

/// The faked capabilities of the current thread.
#[derive(Default)]
pub(crate) struct FakeHost {
    pub now_ms: u64,
    kv: BTreeMap<String, (Vec<u8>, Option<u64>)>,
    local: BTreeMap<String, (Vec<u8>, Option<u64>)>,
    pub logs: Vec<(Level, String)>,
    pub metrics: Vec<MetricUpdate>,
    http: Vec<(String, HttpMock)>,
    kv_down: bool,
    /// The upstreams `set-upstream` may name; any when unset.
    upstreams: Option<Vec<String>>,
}

impl FakeHost {
    fn live(&mut self, key: &str) -> Option<&mut (Vec<u8>, Option<u64>)> {
        let now = self.now_ms;
        if matches!(self.kv.get(key), Some((_, Some(exp))) if *exp <= now) {
            self.kv.remove(key);
        }
        self.kv.get_mut(key)
    }

    fn up(&self) -> Result<(), KvError> {
        if self.kv_down {
            Err(KvError::Unavailable("the test store is down".into()))
        } else {
            Ok(())
        }
    }

    pub fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.up()?;
        Ok(self.live(key).map(|(v, _)| v.clone()))
    }

    pub fn kv_set(&mut self, key: &str, value: &[u8], ttl: Option<u64>) -> Result<(), KvError> {
        self.up()?;
        let exp = ttl.map(|t| self.now_ms.saturating_add(t));
        self.kv.insert(key.to_string(), (value.to_vec(), exp));
        Ok(())
    }

    pub fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        self.up()?;
        self.kv.remove(key);
        Ok(())
    }

    pub fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<u64>,
    ) -> Result<bool, KvError> {
        self.up()?;
        let now = self.live(key).map(|(v, _)| v.as_slice());
        if now != expected {
            return Ok(false);
        }
        self.kv_set(key, new, ttl)?;
        Ok(true)
    }

    pub fn local_incr(&mut self, key: &str, delta: i64, ttl: Option<u64>) -> i64 {
        let down = std::mem::replace(&mut self.kv_down, false);
        let shared = std::mem::replace(&mut self.kv, std::mem::take(&mut self.local));
        let n = self.kv_incr(key, delta, ttl).unwrap_or(delta);
        self.local = std::mem::replace(&mut self.kv, shared);
        self.kv_down = down;
        n
    }

    pub fn kv_incr(&mut self, key: &str, delta: i64, ttl: Option<u64>) -> Result<i64, KvError> {
        self.up()?;
        let now = self.now_ms;
        let next = match self.live(key) {
            Some((v, _)) => {
                let cur: i64 = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| KvError::Invalid(format!("`{key}` does not hold a number")))?;
                let next = cur + delta;
                *v = next.to_string().into_bytes();
                next
            }
            None => {
                let exp = ttl.map(|t| now.saturating_add(t));
                self.kv
                    .insert(key.to_string(), (delta.to_string().into_bytes(), exp));
                delta
            }
        };
        Ok(next)
    }

    pub fn http_send(&mut self, req: &Outgoing) -> Result<Incoming, HttpError> {
        match self
            .http
            .iter()
            .find(|(prefix, _)| req.url.starts_with(prefix))
        {
            Some((_, answer)) => answer(req),
            None => Err(HttpError::NotAllowed(format!(
                "no mock_http answer for {}",
                req.url
            ))),
        }
    }
}

thread_local! {
    static HOST: RefCell<FakeHost> = RefCell::new(FakeHost::default());
}

pub(crate) fn with_host<R>(f: impl FnOnce(&mut FakeHost) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// Sets the fake clock (both `wall_ms` and `monotonic_ns` follow it).
pub fn set_clock_ms(ms: u64) {
    with_host(|h| h.now_ms = ms);
}

/// Makes every `kv` call fail with `Unavailable` (or work again), to test a plugin's fail mode.
pub fn set_kv_down(down: bool) {
    with_host(|h| h.kv_down = down);
}

/// Answers outbound requests whose URL starts with `url_prefix`.
pub fn mock_http(
    url_prefix: &str,
    answer: impl Fn(&Outgoing) -> Result<Incoming, HttpError> + 'static,
) {
    with_host(|h| h.http.push((url_prefix.to_string(), Box::new(answer))));
}

/// The log lines written so far on this thread, as (level, message).
pub fn logs() -> Vec<(Level, String)> {
    with_host(|h| h.logs.clone())
}

/// The metric updates so far on this thread, as (name, value, labels).
pub fn metrics() -> Vec<MetricUpdate> {
    with_host(|h| h.metrics.clone())
}

/// The upstreams the gateway would have: `set_upstream` refuses any other name, as the gateway
/// does (by default the test host accepts every name).
pub fn set_upstreams(names: &[&str]) {
    with_host(|h| h.upstreams = Some(names.iter().map(|n| n.to_string()).collect()));
}

/// Forgets the fake store, logs, metrics, HTTP mocks, upstreams and clock.
pub fn reset() {
    with_host(|h| *h = FakeHost::default());
}

/// The status a client would get from `action` alone: 200 for `Continue` (the upstream's, in a
/// test), else the answer's.
pub fn status(action: &Action) -> u16 {
    match action {
        Action::Continue => 200,
        Action::Respond(a) => a.status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_repeated_query_parameters() {
        let req = TestRequest::get("/?tag=a&tag=b%20c")
            .header("cookie", "a=1; lang=\"de\"")
            .header("cookie", "lang=fr");
        let view = req.view();
        assert_eq!(view.cookie("lang").as_deref(), Some("de"), "the first one");
        assert_eq!(view.cookie("a").as_deref(), Some("1"));
        assert_eq!(view.cookie("nope"), None);
        assert_eq!(view.query_params("tag"), ["a", "b c"]);
    }

    /// The test host refuses exactly what the gateway refuses (the gateway runs the same table).
    #[test]
    fn contract_cases_match_the_gateway() {
        set_upstreams(&["known"]);
        for (op, input, accepted) in crate::rules::contract_cases() {
            let req = TestRequest::get("/");
            let resp = TestResponse::new(200);
            let mut r = req.0.borrow_mut();
            let result = match op.as_str() {
                "header-name" => r.headers.set_header(&input, "v"),
                "header-value" => r.headers.set_header("x-v", &input),
                "set-path" => r.set_path(&input),
                "set-query" => r.set_query(Some(&input)),
                "set-status" => match input.parse() {
                    Ok(s) => resp.0.borrow_mut().set_status(s),
                    Err(_) => Err("not a number".into()),
                },
                "set-upstream" => r.set_upstream(&input, None),
                other => panic!("unknown operation `{other}`"),
            };
            assert_eq!(result.is_ok(), accepted, "{op} {input:?}: {result:?}");
        }
        reset();
    }
}
