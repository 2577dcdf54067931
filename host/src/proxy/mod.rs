//! The request path, in the order a request lives it:
//!
//! accept (server) → route → request headers → [buffer, request body] → pick target + pooled
//! connection → forward → response headers → [buffer, response body] → stream the body back →
//! access log and log phase. Each bracketed step and each plugin phase runs only when the
//! route's chain has a plugin for it; a route without plugins has an empty chain.

mod body;
mod compress;
mod encoding;
mod handler;
mod headers;
mod mirror;
mod plugins;
mod replay;
mod request_body;
mod retry;
mod stall;
mod upgrade;

pub use body::ResponseBody;
pub use request_body::ClientBody;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::{ClientBodyError, ProxyError};
use crate::plugin::{Chain, Exchange, Phase, Phases, Verdict};
use crate::router::RequestView;
use crate::runtime::{RouteTarget, Runtime};
use crate::telemetry::requests::InFlight;
use crate::telemetry::traces::TRACEPARENT;
use crate::upstream::{Body, HashSource, Target, Upstream};
use body::{AccessContext, AccessRecord, ClientHeaders};

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client: the connection's peer (or the PROXY protocol's source), or for a request
    /// through trusted proxies, the address their forwarding header names.
    pub client: SocketAddr,
    /// The hop this request came from (appended to `X-Forwarded-For`).
    pub peer: IpAddr,
    pub tls: bool,
    /// The subject of the client's TLS certificate (mutual TLS), for plugins.
    pub client_cert: Option<Arc<str>>,
}

/// Answers one request. Never fails: every error becomes a problem response.
pub async fn handle(
    rt: Arc<Runtime>,
    conn: ConnInfo,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let conn = if rt.trusted.is_empty() {
        conn
    } else {
        ConnInfo {
            client: SocketAddr::new(rt.trusted.client(conn.peer, req.headers()), 0),
            ..conn
        }
    };
    let trace = rt.tracer.as_ref().map(|t| t.begin(req.headers()));
    let mut record =
        (rt.access.is_some() || rt.log_phase || rt.metrics || trace.is_some()).then(|| {
            Box::new(AccessRecord {
                access: rt.access.clone(),
                client_headers: rt
                    .access
                    .as_deref()
                    .map(|a| ClientHeaders::of(a, req.headers())),
                answered_by: None,
                context: Default::default(),
                start: Instant::now(),
                method: req.method().clone(),
                target_pq: req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
                client: conn.client.ip(),
                route: None,
                upstream: None,
                target: None,
                attempts: 0,
                status: http::StatusCode::OK,
                upstream_time: None,
                request_bytes: req.body().size_hint().exact().unwrap_or(0),
                request_read: None,
                log_phase: None,
                metrics: rt.metrics,
                stats: None,
                in_flight: rt.metrics.then(InFlight::start),
                trace: None,
            })
        });
    // The chain and the upstream see the gateway's span as the caller: the request-id plugin
    // continues this trace, and each try names its own span (`retry::run`).
    if let (Some(t), Some(r)) = (trace, record.as_deref_mut()) {
        req.headers_mut().insert(TRACEPARENT, t.traceparent());
        r.trace = Some(Arc::new(t));
    }
    let mut resp = match forward(&rt, conn, req, record.as_deref_mut()).await {
        Ok(resp) => resp,
        Err(e) => {
            let status = e.status();
            if status.is_server_error() {
                tracing::warn!(error = %e, "request failed");
            }
            e.response()
        }
    };
    if let Some(r) = record.as_deref_mut() {
        r.status = resp.status();
    }
    resp.body_mut().set_log(record);
    resp
}

async fn forward(
    rt: &Runtime,
    conn: ConnInfo,
    req: Request<Incoming>,
    mut record: Option<&mut AccessRecord>,
) -> Result<Response<ResponseBody>, ProxyError> {
    // A target must be ASCII (RFC 3986): raw bytes could be read one way here and another way
    // upstream.
    if let Some(pq) = req.uri().path_and_query()
        && !pq.as_str().bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ProxyError::BadRequest(
            "the request target has bytes that are not visible ASCII; percent-encode them".into(),
        ));
    }
    // route
    let host = request_host(&req)?;
    let host_str = host.to_str().unwrap_or("");
    let view = RequestView {
        host: host_str,
        path: req.uri().path(),
        query: req.uri().query(),
        method: req.method(),
        headers: req.headers(),
    };
    let Some(found) = rt.router.lookup(&view) else {
        let allow = rt.router.allowed_methods(&view);
        return Err(if allow.is_empty() {
            ProxyError::NoRoute {
                method: req.method().to_string(),
                host: host_str.to_string(),
                path: req.uri().path().to_string(),
            }
        } else {
            ProxyError::MethodNotAllowed {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
                allow: allow.iter().map(|m| m.to_string()).collect(),
            }
        });
    };
    let route: &RouteTarget = found.value;
    if let Some(r) = record.as_deref_mut() {
        r.route = Some(route.name.clone());
        r.stats = route.stats.clone();
    }
    let pq = upstream_path(&req, route, found.prefix_len)?;
    // What compression needs of the request, kept before the chain takes it.
    let compress = route
        .compress
        .as_deref()
        .filter(|_| req.method() != Method::HEAD)
        .map(|c| (c, req.headers().get(header::ACCEPT_ENCODING).cloned()));
    let declared = req.body().size_hint().exact().is_some();
    let mut req = limit_body(req, route.max_body, rt.body_read_timeout)?;
    if let Some(r) = record.as_deref_mut()
        && !declared
    {
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        req.body_mut().count_into(read.clone());
        r.request_read = Some(read);
    }
    req.body_mut().read_first().await?;
    let chain = &route.chain;
    // Only plugins read path parameters: a route without them copies none.
    let params = if chain.steps.is_empty() {
        Vec::new()
    } else {
        found
            .params
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    req.uri().path().get(r.clone()).unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let upstream = route.upstream_for(&RequestKeys {
        headers: req.headers(),
        client: conn.client.ip(),
    });
    let fwd = Forward {
        conn,
        route,
        upstream,
        target: None,
        pq,
        host,
    };
    let (ex, mut result) = phases(chain, fwd, params, req, record.as_deref_mut()).await;
    if let Some((c, accept)) = compress {
        result = result.map(|r| compress::apply(c, accept.as_ref(), r));
    }
    if let Some(r) = record {
        if r.access.is_some() {
            r.context = AccessContext::of(&ex);
        }
        if chain.phases.contains(Phases::LOG) {
            r.log_phase = Some((chain.clone(), ex.context));
        }
    }
    result
}

/// The phases after routing, in the order of the chart; a route without plugins runs them with
/// an empty chain, where each phase is a check that finds nothing to call. The exchange comes
/// back for the log phase. Plugin phases are boxed: their state stays out of the future hyper
/// keeps inline for every connection, idle ones included.
async fn phases(
    chain: &Chain,
    mut fwd: Forward<'_>,
    params: Vec<(Arc<str>, String)>,
    req: Request<ClientBody>,
    record: Option<&mut AccessRecord>,
) -> (Box<Exchange>, Result<Response<ResponseBody>, ProxyError>) {
    let (mut parts, body) = req.into_parts();
    // Plugin calls are spans of a sampled trace.
    let trace = record
        .as_deref()
        .and_then(|r| r.trace.as_ref())
        .filter(|t| t.sampled() && !chain.steps.is_empty())
        .cloned();
    let mut ex = plugins::exchange(&mut parts, &fwd, params, trace);
    let all = chain.steps.len();

    // request headers
    if chain.has(Phase::RequestHeaders) {
        let verdict;
        (ex, verdict) = Box::pin(chain.run(Phase::RequestHeaders, ex, all)).await;
        if let Verdict::Answer { reply, at } = verdict {
            if let (Some(r), Some(step)) = (record, chain.steps.get(at)) {
                r.answered_by = Some(step.name().into());
            }
            return Box::pin(plugins::answered(chain, ex, plugins::from_reply(reply), at)).await;
        }
    }

    // request body
    let body = if chain.wants_body(Phase::RequestBody, &ex, all) {
        match Box::pin(plugins::request_body(chain, ex, body)).await {
            (back, Ok(body)) => {
                ex = back;
                body
            }
            (back, Err(early)) => return (back, early),
        }
    } else {
        body.boxed_unsync()
    };

    // pick + send
    let responds = chain.has(Phase::ResponseHeaders) || chain.has(Phase::ResponseBody);
    // Response phases still read the request (e.g. its Origin): keep a copy for them.
    parts.headers = if responds {
        ex.headers.clone()
    } else {
        std::mem::take(&mut ex.headers)
    };
    fwd.pq = ex.pq.clone();
    if let Some((upstream, target)) = ex.upstream.take() {
        fwd.upstream = Some(upstream);
        fwd.target = target;
    }
    let req = Request::from_parts(parts, body);
    let sent = match (&fwd.upstream, &fwd.route.handler) {
        (None, Some(h)) => handler::answer(h, fwd, req, record).await,
        _ => send(fwd, req, record).await,
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "request failed");
            }
            e.response()
        }
    };

    // response headers, response body (the body streams back; the log phase runs at its end)
    if responds {
        Box::pin(plugins::answered(chain, ex, resp, all)).await
    } else {
        (ex, Ok(resp))
    }
}

/// Where a request goes once its route (and plugins) are done with it.
pub(crate) struct Forward<'a> {
    pub conn: ConnInfo,
    pub route: &'a RouteTarget,
    /// `None` on a route answered by a handler, unless a plugin picked an upstream.
    pub upstream: Option<Arc<Upstream>>,
    /// A target chosen by a plugin; the balancer picks otherwise.
    pub target: Option<Arc<Target>>,
    /// Path and query as the upstream gets them.
    pub pq: PathAndQuery,
    pub host: HeaderValue,
}

/// Addresses a request to `target`: its URI (see `Upstream::uri`) and its `Host`: none over
/// HTTP/2 (the authority travels as `:authority`), the client's with `preserve_host`, else the
/// target's own.
fn address(
    parts: &mut http::request::Parts,
    upstream: &Upstream,
    target: &Target,
    pq: PathAndQuery,
    host: &HeaderValue,
) -> Result<(), ProxyError> {
    parts.uri = upstream.uri(target, pq, host)?;
    let h = &mut parts.headers;
    if upstream.config.http2 {
        h.remove(header::HOST);
    } else if upstream.config.preserve_host && !host.is_empty() {
        h.insert(header::HOST, host.clone());
    } else if let Ok(v) = HeaderValue::from_str(target.authority.as_str()) {
        h.insert(header::HOST, v);
    }
    Ok(())
}

/// Picks a target, forwards, and shapes the response head for the client.
pub(crate) async fn send(
    fwd: Forward<'_>,
    mut req: Request<Body>,
    mut record: Option<&mut AccessRecord>,
) -> Result<Response<ResponseBody>, ProxyError> {
    let Forward {
        conn,
        route,
        upstream,
        target,
        pq,
        host,
    } = fwd;
    // Validation gives every route an upstream or a handler; this is the former.
    let upstream =
        upstream.ok_or_else(|| ProxyError::BadRequest("the route has no upstream".into()))?;
    let keys = RequestKeys {
        headers: req.headers(),
        client: conn.client.ip(),
    };
    let (upstream, target) = match target {
        Some(t) => (upstream, t),
        None => match admit(upstream, &keys)? {
            Admitted::To(u, t) => (u, t),
            Admitted::Fallback(resp) => return Ok(*resp),
        },
    };
    if let Some(r) = record.as_deref_mut() {
        // The target is written once the tries are over: it may not be this one.
        r.upstream = Some(upstream.name.clone());
    }

    // the request as the upstream sees it
    // HTTP/1.1 `Upgrade` has no HTTP/2 equivalent on the upstream side.
    let upgrade = headers::is_upgrade(req.headers())
        && req.version() == Version::HTTP_11
        && !upstream.config.http2;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let incoming_version = parts.version;
    parts.version = if upstream.config.http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, upgrade);
    headers::add_forwarded(h, &conn, &host);
    headers::add_via(h, incoming_version);
    address(&mut parts, &upstream, &target, pq, &host)?;

    // forward, trying again where the failure and the retry policy allow
    let tries = retry::Tries {
        upstream: &upstream,
        host: &host,
        client: conn.client.ip(),
        non_idempotent: route.retry_non_idempotent,
        upgrade,
        trace: record.as_deref().and_then(|r| r.trace.as_deref()),
    };
    let mirror = route.mirror.as_ref().filter(|_| !upgrade);
    let (body, copy) = mirror::begin(mirror, &parts, body);
    let sent = retry::run(tries, target, Request::from_parts(parts, body)).await;
    if let Some(copy) = copy {
        copy.send(conn.client.ip(), &host);
    }
    let (sent, target, attempts) = match sent {
        Ok(s) => {
            let (t, a) = (s.target.clone(), s.attempts);
            (Ok(s), t, a)
        }
        Err((e, t, a)) => (Err(e), t, a),
    };
    if let Some(r) = record.as_deref_mut() {
        r.attempts = attempts;
        r.target = Some(target.authority.to_string());
    }
    let retry::Sent {
        response: mut resp,
        mut lease,
        ..
    } = sent?;
    if let Some(r) = record {
        r.upstream_time = Some(r.start.elapsed());
    }

    // the response as the client sees it
    let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        lease.detach();
        if let Some(client_upgrade) = client_upgrade {
            upgrade::tunnel(client_upgrade, hyper::upgrade::on(&mut resp));
        }
    }
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, switching && upgrade);
    headers::add_via(&mut parts.headers, parts.version);
    parts.version = incoming_version;
    let stall = stall::StallTimer::new(upstream.config.read_timeout);
    Ok(Response::from_parts(
        parts,
        ResponseBody::upstream(body, lease, stall),
    ))
}

enum Admitted {
    To(Arc<Upstream>, Arc<Target>),
    /// Rare (an open breaker), so boxed: the common variant stays two pointers.
    Fallback(Box<Response<ResponseBody>>),
}

/// A target of the upstream for a request; when the upstream refuses it (breaker open, no
/// target in rotation), its configured fallback: an answer, or another upstream's target.
fn admit(upstream: Arc<Upstream>, keys: &RequestKeys<'_>) -> Result<Admitted, ProxyError> {
    if let Some(t) = upstream.admit(keys) {
        return Ok(Admitted::To(upstream, t));
    }
    let open = upstream.breaker.as_ref().is_some_and(|b| !b.admits());
    let unavailable = ProxyError::Unavailable {
        upstream: upstream.name.to_string(),
        why: if open {
            "is failing: its circuit breaker is open"
        } else {
            "has no healthy target"
        },
        retry_after: upstream.retry_after(),
    };
    let fallback = upstream.config.breaker.as_ref().map(|b| b.get_ref());
    if let Some(answer) = fallback.and_then(|b| b.fallback.as_ref()) {
        metrics::counter!("wasmgate_upstream_fallbacks_total", "upstream" => upstream.name.to_string(), "to" => "answer").increment(1);
        return Ok(Admitted::Fallback(Box::new(fallback_answer(
            answer.get_ref(),
        ))));
    }
    if let Some(other) = upstream.fallback_upstream()
        && let Some(t) = other.admit(keys)
    {
        metrics::counter!("wasmgate_upstream_fallbacks_total", "upstream" => upstream.name.to_string(), "to" => "upstream").increment(1);
        return Ok(Admitted::To(other, t));
    }
    Err(unavailable)
}

/// A breaker's configured answer (checked when the config was loaded).
fn fallback_answer(a: &crate::config::FallbackAnswer) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::from(bytes::Bytes::from(a.body.clone())));
    *resp.status_mut() =
        http::StatusCode::from_u16(a.status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
    for (k, v) in &a.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_str().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// The client's body, bounded by the route's `max_body` and the body read timeout. A declared
/// length over the limit (hyper's parsed `Content-Length`, the body's lower size bound) is
/// refused before anything is read or forwarded.
fn limit_body(
    req: Request<Incoming>,
    max_body: u64,
    timeout: std::time::Duration,
) -> Result<Request<ClientBody>, ProxyError> {
    if req.body().size_hint().lower() > max_body {
        return Err(ClientBodyError::TooLarge { limit: max_body }.into());
    }
    Ok(req.map(|b| ClientBody::new(b, max_body, stall::StallTimer::new(timeout))))
}

/// The host the client asked for: the URI's authority (HTTP/2, absolute form) or `Host`. As a
/// header value, so forwarding it is a reference-count bump, not a copy.
fn request_host(req: &Request<Incoming>) -> Result<HeaderValue, ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    if hosts.next().is_some() && hosts.next().is_some() {
        // Two hosts can route one way here and another way upstream (RFC 9112 §3.2: 400).
        return Err(ProxyError::BadRequest(
            "the request has more than one Host header".into(),
        ));
    }
    if let Some(a) = req.uri().authority() {
        return HeaderValue::from_str(a.as_str())
            .map_err(|_| ProxyError::BadRequest("the authority is not a valid host".into()));
    }
    match req.headers().get(header::HOST) {
        // host[:port] only: no user info, nothing an upstream could parse differently.
        Some(h)
            if h.is_empty()
                || (!h.as_bytes().contains(&b'@')
                    && http::uri::Authority::try_from(h.as_bytes()).is_ok()) =>
        {
            Ok(h.clone())
        }
        Some(_) => Err(ProxyError::BadRequest(
            "the Host header is not a valid host[:port]".into(),
        )),
        None if req.version() == Version::HTTP_10 => Ok(HeaderValue::from_static("")),
        None => Err(ProxyError::BadRequest(
            "the request has no Host header".into(),
        )),
    }
}

fn upstream_path(
    req: &Request<Incoming>,
    route: &RouteTarget,
    prefix_len: usize,
) -> Result<PathAndQuery, ProxyError> {
    let Some(replacement) = &route.rewrite_prefix else {
        return Ok(req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")));
    };
    let path = req.uri().path();
    let rest = path.get(prefix_len..).unwrap_or("");
    let mut out = String::with_capacity(replacement.len() + rest.len() + 16);
    out.push_str(replacement);
    if !rest.is_empty() && !rest.starts_with('/') {
        out.push('/');
    }
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = req.uri().query() {
        out.push('?');
        out.push_str(q);
    }
    PathAndQuery::try_from(out).map_err(|e| ProxyError::BadRequest(format!("rewritten path: {e}")))
}

struct RequestKeys<'a> {
    headers: &'a HeaderMap,
    client: IpAddr,
}

impl HashSource for RequestKeys<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(HeaderValue::as_bytes)
    }

    fn cookie(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then_some(v.as_bytes())
            })
    }

    fn client_ip(&self) -> Option<IpAddr> {
        Some(self.client)
    }
}
