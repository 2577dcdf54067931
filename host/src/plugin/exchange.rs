//! The request (and later its response) as plugins see it: one `Exchange` per request, owned by
//! the proxy between plugin calls and lent to a plugin's store during a call. Plugins query it
//! through the `request` and `response` resources, so headers nobody reads are never copied
//! into the guest.

use crate::telemetry::traces::RequestTrace;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use wasmtime::component::{HasData, Resource};

use super::bindings::types::{HostRequest, HostResponse};
use super::bindings::{RequestHandle, ResponseHandle};
use crate::upstream::{Target, Upstream};

/// Everything the chain can read or change about one request.
pub struct Exchange {
    pub method: Method,
    /// Path and query as they will be forwarded (after the route's rewrite); `set-path` and
    /// `set-query` replace it, already validated.
    pub pq: PathAndQuery,
    /// The host the client asked for.
    pub authority: HeaderValue,
    pub scheme: &'static str,
    pub client_ip: IpAddr,
    pub route: Arc<str>,
    pub params: Vec<(Arc<str>, String)>,
    pub headers: HeaderMap,
    /// The buffered request body, present in the request-body phase.
    pub body: Option<Bytes>,
    pub context: Vec<(String, String)>,
    /// Set by `set-upstream`: where to send instead of the route's upstream.
    pub upstream: Option<(Arc<Upstream>, Option<Arc<Target>>)>,
    pub response: Option<ResponseState>,
    /// The chain step being called, for `skip-body`.
    pub step: usize,
    /// Steps that said `skip-body` for this request's and this response's body.
    pub skips: BodySkips,
    /// The request's trace, when it is sampled: plugin calls become its spans.
    pub trace: Option<Arc<RequestTrace>>,
}

/// Which steps of the chain do not need a body, one bit per step: the first 64 steps can skip,
/// any later one always gets the body it asked for.
#[derive(Debug, Default, Clone, Copy)]
pub struct BodySkips {
    pub request: u64,
    pub response: u64,
}

impl BodySkips {
    fn bit(step: usize) -> u64 {
        1u64.checked_shl(u32::try_from(step).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }

    pub fn skips(mask: u64, step: usize) -> bool {
        mask & Self::bit(step) != 0
    }
}

impl Exchange {
    /// The request context's value for `key`, as plugins set it.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The response on its way back to the client.
pub struct ResponseState {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The buffered response body, present in the response-body phase.
    pub body: Option<Bytes>,
    /// A plugin answered in a response phase: this is its response, the upstream's is dropped.
    pub replaced: bool,
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))
}

/// Visible ASCII, spaces and tabs: `http` would also pass bytes above 0x7f (obs-text), which
/// peers read in different charsets; a plugin percent- or RFC 8187-encodes those. Takes the
/// guest's string as the value's bytes, without a copy.
fn header_value(value: String) -> Result<HeaderValue, String> {
    let refused = || "the header value has a control or non-ASCII character".to_string();
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(refused());
    }
    HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|_| refused())
}

fn get(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn get_all(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn names(h: &HeaderMap) -> Vec<String> {
    h.keys().map(|k| k.as_str().to_string()).collect()
}

fn set(h: &mut HeaderMap, name: &str, value: String, append: bool) -> Result<(), String> {
    let (n, v) = (header_name(name)?, header_value(value)?);
    if append {
        h.append(n, v);
    } else {
        h.insert(n, v);
    }
    Ok(())
}

fn remove(h: &mut HeaderMap, name: &str) {
    if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
        h.remove(n);
    }
}

/// What the `request` and `response` resources reach during a call: the store's lent exchange
/// and the upstreams `set-upstream` may name (the way wasmtime-wasi-http's `WasiHttpView` lends
/// its state), so this module needs nothing else of the store.
pub struct ExchangeView<'a> {
    pub exchange: &'a mut Option<Box<Exchange>>,
    pub upstreams: &'a BTreeMap<String, Arc<Upstream>>,
}

/// Links the `types` interface to [`ExchangeView`].
pub struct ExchangeAccess;

impl HasData for ExchangeAccess {
    type Data<'a> = ExchangeView<'a>;
}

impl ExchangeView<'_> {
    fn ex(&mut self) -> &mut Exchange {
        self.exchange
            .get_or_insert_with(|| Box::new(Exchange::detached()))
    }

    fn resp(&mut self) -> &mut ResponseState {
        self.ex().response.get_or_insert_with(|| ResponseState {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: None,
            replaced: false,
        })
    }
}

impl Exchange {
    /// An empty exchange, for `init` and for any call made without a request.
    pub fn detached() -> Self {
        Exchange {
            method: Method::GET,
            pq: PathAndQuery::from_static("/"),
            authority: HeaderValue::from_static(""),
            scheme: "http",
            client_ip: IpAddr::from([0, 0, 0, 0]),
            route: "".into(),
            params: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            context: Vec::new(),
            upstream: None,
            response: None,
            step: 0,
            skips: BodySkips::default(),
            trace: None,
        }
    }
}

impl HostRequest for ExchangeView<'_> {
    fn method(&mut self, _: Resource<RequestHandle>) -> String {
        self.ex().method.to_string()
    }

    fn path(&mut self, _: Resource<RequestHandle>) -> String {
        self.ex().pq.path().to_string()
    }

    fn set_path(&mut self, _: Resource<RequestHandle>, path: String) -> Result<(), String> {
        // Visible ASCII only, as for a client's target (`proxy::forward`): raw bytes could be
        // read one way here and another upstream.
        let ok = path.starts_with('/')
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !ok {
            return Err(format!(
                "`{path}` is not a valid path: it must start with `/`, be visible ASCII and hold no `?` or `#`"
            ));
        }
        let ex = self.ex();
        let next = match ex.pq.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        ex.pq =
            PathAndQuery::try_from(next).map_err(|_| format!("`{path}` is not a valid path"))?;
        Ok(())
    }

    fn query(&mut self, _: Resource<RequestHandle>) -> Option<String> {
        self.ex().pq.query().map(str::to_string)
    }

    fn set_query(
        &mut self,
        _: Resource<RequestHandle>,
        query: Option<String>,
    ) -> Result<(), String> {
        let ex = self.ex();
        let next = match query.as_deref().filter(|q| !q.is_empty()) {
            Some(q) if !q.bytes().all(|b| b.is_ascii_graphic() && b != b'#') => {
                return Err(format!("`{q}` is not a valid query"));
            }
            Some(q) => format!("{}?{q}", ex.pq.path()),
            None => ex.pq.path().to_string(),
        };
        ex.pq = PathAndQuery::try_from(next)
            .map_err(|_| format!("`{}` is not a valid query", query.unwrap_or_default()))?;
        Ok(())
    }

    fn authority(&mut self, _: Resource<RequestHandle>) -> String {
        String::from_utf8_lossy(self.ex().authority.as_bytes()).into_owned()
    }

    fn scheme(&mut self, _: Resource<RequestHandle>) -> String {
        self.ex().scheme.to_string()
    }

    fn client_ip(&mut self, _: Resource<RequestHandle>) -> String {
        self.ex().client_ip.to_string()
    }

    fn route_name(&mut self, _: Resource<RequestHandle>) -> String {
        self.ex().route.to_string()
    }

    fn path_param(&mut self, _: Resource<RequestHandle>, name: String) -> Option<String> {
        self.ex()
            .params
            .iter()
            .find(|(k, _)| **k == *name)
            .map(|(_, v)| v.clone())
    }

    fn header(&mut self, _: Resource<RequestHandle>, name: String) -> Option<String> {
        get(&self.ex().headers, &name)
    }

    fn header_all(&mut self, _: Resource<RequestHandle>, name: String) -> Vec<String> {
        get_all(&self.ex().headers, &name)
    }

    fn header_names(&mut self, _: Resource<RequestHandle>) -> Vec<String> {
        names(&self.ex().headers)
    }

    fn set_header(
        &mut self,
        _: Resource<RequestHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        set(&mut self.ex().headers, &name, value, false)
    }

    fn append_header(
        &mut self,
        _: Resource<RequestHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        set(&mut self.ex().headers, &name, value, true)
    }

    fn remove_header(&mut self, _: Resource<RequestHandle>, name: String) {
        remove(&mut self.ex().headers, &name);
    }

    fn body(&mut self, _: Resource<RequestHandle>) -> Option<Vec<u8>> {
        self.ex().body.as_ref().map(|b| b.to_vec())
    }

    fn set_body(&mut self, _: Resource<RequestHandle>, body: Vec<u8>) {
        self.ex().body = Some(Bytes::from(body));
    }

    fn skip_body(&mut self, _: Resource<RequestHandle>) {
        let ex = self.ex();
        ex.skips.request |= BodySkips::bit(ex.step);
    }

    fn set_upstream(
        &mut self,
        _: Resource<RequestHandle>,
        upstream: String,
        target: Option<String>,
    ) -> Result<(), String> {
        let Some(up) = self.upstreams.get(&upstream).cloned() else {
            return Err(format!("no upstream is named `{upstream}`"));
        };
        let target = match target {
            None => None,
            Some(t) => Some(
                up.targets()
                    .list
                    .iter()
                    .find(|x| x.authority.as_str() == t)
                    .cloned()
                    .ok_or_else(|| format!("upstream `{upstream}` has no target `{t}`"))?,
            ),
        };
        self.ex().upstream = Some((up, target));
        Ok(())
    }

    fn context_get(&mut self, _: Resource<RequestHandle>, key: String) -> Option<String> {
        self.ex().context_value(&key).map(str::to_string)
    }

    fn context_set(&mut self, _: Resource<RequestHandle>, key: String, value: String) {
        let ctx = &mut self.ex().context;
        match ctx.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => ctx.push((key, value)),
        }
    }

    fn drop(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl HostResponse for ExchangeView<'_> {
    fn status(&mut self, _: Resource<ResponseHandle>) -> u16 {
        self.resp().status.as_u16()
    }

    fn set_status(&mut self, _: Resource<ResponseHandle>, status: u16) -> Result<(), String> {
        let s = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| format!("{status} is not a final HTTP status"))?;
        self.resp().status = s;
        Ok(())
    }

    fn header(&mut self, _: Resource<ResponseHandle>, name: String) -> Option<String> {
        get(&self.resp().headers, &name)
    }

    fn header_all(&mut self, _: Resource<ResponseHandle>, name: String) -> Vec<String> {
        get_all(&self.resp().headers, &name)
    }

    fn header_names(&mut self, _: Resource<ResponseHandle>) -> Vec<String> {
        names(&self.resp().headers)
    }

    fn set_header(
        &mut self,
        _: Resource<ResponseHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        set(&mut self.resp().headers, &name, value, false)
    }

    fn append_header(
        &mut self,
        _: Resource<ResponseHandle>,
        name: String,
        value: String,
    ) -> Result<(), String> {
        set(&mut self.resp().headers, &name, value, true)
    }

    fn remove_header(&mut self, _: Resource<ResponseHandle>, name: String) {
        remove(&mut self.resp().headers, &name);
    }

    fn body(&mut self, _: Resource<ResponseHandle>) -> Option<Vec<u8>> {
        self.resp().body.as_ref().map(|b| b.to_vec())
    }

    fn set_body(&mut self, _: Resource<ResponseHandle>, body: Vec<u8>) {
        self.resp().body = Some(Bytes::from(body));
    }

    fn skip_body(&mut self, _: Resource<ResponseHandle>) {
        let ex = self.ex();
        ex.skips.response |= BodySkips::bit(ex.step);
    }

    fn drop(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl super::bindings::types::Host for ExchangeView<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway refuses exactly what the SDK's test host refuses (it runs the same table).
    #[test]
    fn contract_cases_match_the_sdk_test_host() {
        let cfg: crate::config::Upstream =
            toml::from_str("targets = [\"127.0.0.1:1\"]").expect("upstream config");
        let known = Upstream::new("known", &cfg, &Default::default()).expect("upstream");
        let upstreams = BTreeMap::from([("known".to_string(), known)]);
        let cases = include_str!("../../../wit/contract-cases.jsonl")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| serde_json::from_str::<(String, String, bool)>(l).expect("case"));
        for (op, input, accepted) in cases {
            let mut slot = Some(Box::new(Exchange::detached()));
            let mut v = ExchangeView {
                exchange: &mut slot,
                upstreams: &upstreams,
            };
            let (req, resp) = (Resource::new_borrow(0), Resource::new_borrow(0));
            let result = match op.as_str() {
                "header-name" => HostRequest::set_header(&mut v, req, input.clone(), "v".into()),
                "header-value" => HostRequest::set_header(&mut v, req, "x-v".into(), input.clone()),
                "set-path" => v.set_path(req, input.clone()),
                "set-query" => v.set_query(req, Some(input.clone())),
                "set-status" => match input.parse() {
                    Ok(s) => v.set_status(resp, s),
                    Err(_) => Err("not a number".into()),
                },
                "set-upstream" => v.set_upstream(req, input.clone(), None),
                other => panic!("unknown operation `{other}`"),
            };
            assert_eq!(result.is_ok(), accepted, "{op} {input:?}: {result:?}");
        }
    }
}
