//! The request and response a phase works on. In the gateway they are handles to the host's own
//! objects (reading a header copies that header only); under [`crate::testing`] they are plain
//! values, so the same plugin code runs in both.

use crate::bindings::wasmgate::plugin::types as wit;
use crate::testing::{ReqState, RespState};
use std::cell::RefCell;

#[derive(Clone, Copy)]
enum Req<'a> {
    Host(&'a wit::Request),
    Test(&'a RefCell<ReqState>),
}

#[derive(Clone, Copy)]
enum Resp<'a> {
    Host(&'a wit::Response),
    Test(&'a RefCell<RespState>),
}

/// The request as it will be sent upstream.
pub struct Request<'a>(Req<'a>);

/// The response on its way back to the client.
pub struct Response<'a>(Resp<'a>);

impl<'a> Request<'a> {
    pub(crate) fn host(r: &'a wit::Request) -> Self {
        Request(Req::Host(r))
    }

    pub(crate) fn test(r: &'a RefCell<ReqState>) -> Self {
        Request(Req::Test(r))
    }
}

impl<'a> Response<'a> {
    pub(crate) fn host(r: &'a wit::Response) -> Self {
        Response(Resp::Host(r))
    }

    pub(crate) fn test(r: &'a RefCell<RespState>) -> Self {
        Response(Resp::Test(r))
    }
}

/// Calls the host's method, or the test state's method of the same name.
macro_rules! both {
    ($self:ident, $kind:ident, $m:ident ( $($arg:expr),* )) => {
        match $self.0 {
            $kind::Host(h) => h.$m($($arg),*),
            $kind::Test(t) => t.borrow_mut().$m($($arg),*),
        }
    };
}

/// The same for header methods, which the test state keeps in its `headers`.
macro_rules! headers {
    ($self:ident, $kind:ident, $m:ident ( $($arg:expr),* )) => {
        match $self.0 {
            $kind::Host(h) => h.$m($($arg),*),
            $kind::Test(t) => t.borrow_mut().headers.$m($($arg),*),
        }
    };
}

impl Request<'_> {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> String {
        both!(self, Req, method())
    }

    /// The path as it will be forwarded (after the route's rewrite), without the query.
    pub fn path(&self) -> String {
        both!(self, Req, path())
    }

    /// Forwards to another path (starting with `/`, no query).
    pub fn set_path(&self, path: &str) -> Result<(), String> {
        both!(self, Req, set_path(path))
    }

    /// The query string, without `?`.
    pub fn query(&self) -> Option<String> {
        both!(self, Req, query())
    }

    /// Replaces the query string (`None` removes it).
    pub fn set_query(&self, query: Option<&str>) -> Result<(), String> {
        both!(self, Req, set_query(query))
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query()?;
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
    }

    /// Every value of query parameter `name` (`?tag=a&tag=b`), percent-decoded, in order.
    pub fn query_params(&self, name: &str) -> Vec<String> {
        let Some(q) = self.query() else {
            return Vec::new();
        };
        q.split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k) == name).then(|| decode(v))
            })
            .collect()
    }

    /// The value of cookie `name` (the first, across `Cookie` headers), quotes removed.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header_all("cookie").iter().find_map(|h| {
            h.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
            })
        })
    }

    /// The host the client asked for.
    pub fn authority(&self) -> String {
        both!(self, Req, authority())
    }

    /// `http` or `https`, as the client connected.
    pub fn scheme(&self) -> String {
        both!(self, Req, scheme())
    }

    /// The client's IP address as the gateway saw the connection.
    pub fn client_ip(&self) -> String {
        both!(self, Req, client_ip())
    }

    /// The name of the matched route.
    pub fn route_name(&self) -> String {
        both!(self, Req, route_name())
    }

    /// A `{name}` segment of the matched route pattern.
    pub fn path_param(&self, name: &str) -> Option<String> {
        both!(self, Req, path_param(name))
    }

    /// The first value of a header (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        headers!(self, Req, header(name))
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        headers!(self, Req, header_all(name))
    }

    /// The names of all headers present.
    pub fn header_names(&self) -> Vec<String> {
        headers!(self, Req, header_names())
    }

    /// Sets a header, replacing any values it had.
    pub fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        headers!(self, Req, set_header(name, value))
    }

    /// Adds a value to a header.
    pub fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        headers!(self, Req, append_header(name, value))
    }

    /// Removes a header.
    pub fn remove_header(&self, name: &str) {
        headers!(self, Req, remove_header(name))
    }

    /// The whole body, in the request-body phase.
    pub fn body(&self) -> Option<Vec<u8>> {
        both!(self, Req, body())
    }

    /// Replaces the body (Content-Length follows).
    pub fn set_body(&self, body: &[u8]) {
        both!(self, Req, set_body(body))
    }

    /// In the request-headers phase: this plugin does not need this request's body. Its
    /// request-body phase is not called, and when no plugin needs the body it streams
    /// upstream unread.
    pub fn skip_body(&self) {
        both!(self, Req, skip_body())
    }

    /// Sends the request to this named upstream, and optionally this one of its targets
    /// (`"host:port"`), instead of the route's.
    pub fn set_upstream(&self, upstream: &str, target: Option<&str>) -> Result<(), String> {
        both!(self, Req, set_upstream(upstream, target))
    }

    /// A value another plugin (or phase) put in this request's context.
    pub fn context_get(&self, key: &str) -> Option<String> {
        both!(self, Req, context_get(key))
    }

    /// Puts a value in this request's context, for later plugins and phases.
    pub fn context_set(&self, key: &str, value: &str) {
        both!(self, Req, context_set(key, value))
    }

    /// Keeps a typed value with this request under `key` (in the request context, as JSON), for
    /// this plugin's later phases, later plugins and the log phase: e.g. a decision made in the
    /// request phase that the response phase turns into headers.
    pub fn state_set<T: serde::Serialize>(&self, key: &str, value: &T) {
        if let Ok(json) = serde_json::to_string(value) {
            self.context_set(key, &json);
        }
    }

    /// The value [`Request::state_set`] kept under `key`; `None` when there is none or it is not
    /// a `T`.
    pub fn state_get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_str(&self.context_get(key)?).ok()
    }
}

impl Response<'_> {
    /// The status code.
    pub fn status(&self) -> u16 {
        both!(self, Resp, status())
    }

    /// Changes the status code (a final status, 200–999).
    pub fn set_status(&self, status: u16) -> Result<(), String> {
        both!(self, Resp, set_status(status))
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        headers!(self, Resp, header(name))
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        headers!(self, Resp, header_all(name))
    }

    /// The names of all headers present.
    pub fn header_names(&self) -> Vec<String> {
        headers!(self, Resp, header_names())
    }

    /// Sets a header, replacing any values it had.
    pub fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        headers!(self, Resp, set_header(name, value))
    }

    /// Adds a value to a header.
    pub fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        headers!(self, Resp, append_header(name, value))
    }

    /// Removes a header.
    pub fn remove_header(&self, name: &str) {
        headers!(self, Resp, remove_header(name))
    }

    /// The whole body, in the response-body phase.
    pub fn body(&self) -> Option<Vec<u8>> {
        both!(self, Resp, body())
    }

    /// Replaces the body (Content-Length follows).
    pub fn set_body(&self, body: &[u8]) {
        both!(self, Resp, set_body(body))
    }

    /// In the response-headers phase: this plugin does not need this response's body. Its
    /// response-body phase is not called, and when no plugin needs the body it streams back
    /// unread.
    pub fn skip_body(&self) {
        both!(self, Resp, skip_body())
    }
}

/// Percent-decoding for query parameters (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
