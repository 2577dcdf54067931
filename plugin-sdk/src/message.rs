//! The request and response a phase works on. In the gateway they are handles to the host's own
//! objects (reading a header copies that header only); under [`crate::testing`] they are plain
//! values, so the same plugin code runs in both.
//!
//! Writes (headers, context) are checked here with the host's rules and sent to the host in
//! one `apply` call when the phase ends, or before a read that must see them: a plugin setting
//! six headers makes one host call, not six.

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
pub struct Request<'a>(Req<'a>, Pending);

/// The response on its way back to the client.
pub struct Response<'a>(Resp<'a>, Pending);

/// The host's `apply` of one request or response.
type HostApply<'h> = dyn Fn(&[wit::Edit]) -> Result<(), String> + 'h;

/// Writes not yet sent to the host, and the first error a send met.
#[derive(Default)]
struct Pending {
    edits: RefCell<Vec<wit::Edit>>,
    failed: RefCell<Option<String>>,
}

impl Pending {
    fn push(&self, e: wit::Edit) {
        self.edits.borrow_mut().push(e);
    }

    /// Whether a pending edit changes header `name` (any header when `None`).
    fn touches(&self, name: Option<&str>) -> bool {
        self.edits.borrow().iter().any(|e| {
            let n = match e {
                wit::Edit::SetHeader((n, _)) | wit::Edit::AppendHeader((n, _)) => n,
                wit::Edit::RemoveHeader(n) => n,
                wit::Edit::SetContext(_) => return false,
            };
            name.is_none_or(|name| n.eq_ignore_ascii_case(name))
        })
    }

    /// The value a pending edit gives context `key`.
    fn context(&self, key: &str) -> Option<String> {
        self.edits.borrow().iter().rev().find_map(|e| match e {
            wit::Edit::SetContext((k, v)) if k == key => Some(v.clone()),
            _ => None,
        })
    }

    /// Sends the pending edits through `host` (none under the test host, which applied them).
    fn flush(&self, host: Option<&HostApply>) {
        let Some(apply) = host else { return };
        let edits = std::mem::take(&mut *self.edits.borrow_mut());
        if edits.is_empty() {
            return;
        }
        if let Err(e) = apply(&edits) {
            self.failed.borrow_mut().get_or_insert(e);
        }
    }

    /// Before reading header `name` (any header when `None`): make pending writes visible.
    fn sync(&self, name: Option<&str>, host: Option<&HostApply>) {
        if self.touches(name) {
            self.flush(host);
        }
    }

    /// Sends what is pending; `Err` if the host refused an edit.
    fn finish(&self, host: Option<&HostApply>) -> Result<(), String> {
        self.flush(host);
        match self.failed.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<'a> Request<'a> {
    pub(crate) fn host(r: &'a wit::Request) -> Self {
        Request(Req::Host(r), Pending::default())
    }

    pub(crate) fn test(r: &'a RefCell<ReqState>) -> Self {
        Request(Req::Test(r), Pending::default())
    }

    /// Sends what is pending; `Err` if the host refused an edit.
    pub(crate) fn finish(&self) -> Result<(), String> {
        match self.0 {
            Req::Host(h) => self.1.finish(Some(&|e: &[wit::Edit]| h.apply(e))),
            Req::Test(_) => self.1.finish(None),
        }
    }

    fn sync(&self, name: Option<&str>) {
        match self.0 {
            Req::Host(h) => self.1.sync(name, Some(&|e: &[wit::Edit]| h.apply(e))),
            Req::Test(_) => {}
        }
    }

    /// Queues `e` in the gateway; applies it at once under the test host.
    fn edit(&self, e: wit::Edit) -> Result<(), String> {
        match self.0 {
            Req::Host(_) => {
                self.1.push(e);
                Ok(())
            }
            Req::Test(t) => t.borrow_mut().apply(e),
        }
    }
}

impl<'a> Response<'a> {
    pub(crate) fn host(r: &'a wit::Response) -> Self {
        Response(Resp::Host(r), Pending::default())
    }

    pub(crate) fn test(r: &'a RefCell<RespState>) -> Self {
        Response(Resp::Test(r), Pending::default())
    }

    /// Sends what is pending; `Err` if the host refused an edit.
    pub(crate) fn finish(&self) -> Result<(), String> {
        match self.0 {
            Resp::Host(h) => self.1.finish(Some(&|e: &[wit::Edit]| h.apply(e))),
            Resp::Test(_) => self.1.finish(None),
        }
    }

    fn sync(&self, name: Option<&str>) {
        match self.0 {
            Resp::Host(h) => self.1.sync(name, Some(&|e: &[wit::Edit]| h.apply(e))),
            Resp::Test(_) => {}
        }
    }

    /// Queues `e` in the gateway; applies it at once under the test host.
    fn edit(&self, e: wit::Edit) -> Result<(), String> {
        match self.0 {
            Resp::Host(_) => {
                self.1.push(e);
                Ok(())
            }
            Resp::Test(t) => t.borrow_mut().headers.apply(e),
        }
    }
}

/// A checked header write.
fn set(name: &str, value: &str) -> Result<(String, String), String> {
    let n = crate::rules::header_name(name)?;
    crate::rules::header_value(value)?;
    Ok((n, value.to_string()))
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
        self.sync(Some(name));
        headers!(self, Req, header(name))
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.sync(Some(name));
        headers!(self, Req, header_all(name))
    }

    /// The names of all headers present.
    pub fn header_names(&self) -> Vec<String> {
        self.sync(None);
        headers!(self, Req, header_names())
    }

    /// Sets a header, replacing any values it had.
    pub fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.edit(wit::Edit::SetHeader(set(name, value)?))
    }

    /// Adds a value to a header.
    pub fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.edit(wit::Edit::AppendHeader(set(name, value)?))
    }

    /// Removes a header.
    pub fn remove_header(&self, name: &str) {
        if let Ok(n) = crate::rules::header_name(name) {
            let _ = self.edit(wit::Edit::RemoveHeader(n));
        }
    }

    /// The whole body, in the request-body phase.
    pub fn body(&self) -> Option<Vec<u8>> {
        both!(self, Req, body())
    }

    /// Replaces the body (Content-Length follows).
    pub fn set_body(&self, body: &[u8]) {
        both!(self, Req, set_body(body))
    }

    /// Sends the request to this named upstream, and optionally this one of its targets
    /// (`"host:port"`), instead of the route's.
    pub fn set_upstream(&self, upstream: &str, target: Option<&str>) -> Result<(), String> {
        both!(self, Req, set_upstream(upstream, target))
    }

    /// A value another plugin (or phase) put in this request's context.
    pub fn context_get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.1.context(key) {
            return Some(v);
        }
        both!(self, Req, context_get(key))
    }

    /// Puts a value in this request's context, for later plugins and phases.
    pub fn context_set(&self, key: &str, value: &str) {
        let _ = self.edit(wit::Edit::SetContext((key.to_string(), value.to_string())));
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
        self.sync(Some(name));
        headers!(self, Resp, header(name))
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.sync(Some(name));
        headers!(self, Resp, header_all(name))
    }

    /// The names of all headers present.
    pub fn header_names(&self) -> Vec<String> {
        self.sync(None);
        headers!(self, Resp, header_names())
    }

    /// Sets a header, replacing any values it had.
    pub fn set_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.edit(wit::Edit::SetHeader(set(name, value)?))
    }

    /// Adds a value to a header.
    pub fn append_header(&self, name: &str, value: &str) -> Result<(), String> {
        self.edit(wit::Edit::AppendHeader(set(name, value)?))
    }

    /// Removes a header.
    pub fn remove_header(&self, name: &str) {
        if let Ok(n) = crate::rules::header_name(name) {
            let _ = self.edit(wit::Edit::RemoveHeader(n));
        }
    }

    /// The whole body, in the response-body phase.
    pub fn body(&self) -> Option<Vec<u8>> {
        both!(self, Resp, body())
    }

    /// Replaces the body (Content-Length follows).
    pub fn set_body(&self, body: &[u8]) {
        both!(self, Resp, set_body(body))
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
