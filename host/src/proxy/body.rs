//! The response body handed to the client: the upstream's stream (never buffered) or a body the
//! gateway made. It counts bytes and writes the access-log line once the body is done or dropped.
//! It holds the upstream lease until then: `least_conn` sees streaming load, and the connection
//! goes back to the pool only once its response was read to the end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

use super::stall::StallTimer;
use crate::plugin::{Chain, Exchange, LogEntry};
use crate::telemetry::access;
use crate::telemetry::requests::{self, InFlight, RouteStats};
use crate::telemetry::traces::{RequestTrace, Served};
use crate::upstream::{BoxError, Lease};

pub enum Inner {
    /// The upstream's body, cut when it stalls past the upstream's `read_timeout`.
    Upstream(Incoming, StallTimer),
    Full(Full<Bytes>),
    /// Any other stream: a handler component's body as it writes it, or a body read in part.
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

/// The upstream stopped sending its body; the client's response is cut short.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent no response body data for {0:?} (read_timeout)")]
pub struct UpstreamStalled(std::time::Duration);

/// What is known of one request when its response body ends: written to the access log and
/// handed to the route's log phase.
pub struct AccessRecord {
    /// Write an access-log line, looking like this.
    pub access: Option<Arc<access::Format>>,
    /// What the access log reads of the client's request head.
    pub client_headers: Option<ClientHeaders>,
    /// What the access log reads of the request context the chain left.
    pub context: AccessContext,
    /// The plugin that answered the request itself.
    pub answered_by: Option<Box<str>>,
    pub start: Instant,
    pub method: http::Method,
    /// Path and query as the client sent them (shares the request's bytes).
    pub target_pq: PathAndQuery,
    pub client: std::net::IpAddr,
    pub route: Option<std::sync::Arc<str>>,
    pub upstream: Option<std::sync::Arc<str>>,
    pub target: Option<String>,
    /// Tries at the upstream's targets (0 when none was made).
    pub attempts: u32,
    pub status: StatusCode,
    /// From the request's arrival to the upstream's response head.
    pub upstream_time: Option<std::time::Duration>,
    /// The request body's declared length...
    pub request_bytes: u64,
    /// ...or, without one (chunked), what was read of it, told when the body is dropped.
    pub request_read: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// The chain whose log phase runs, with the request context it left.
    pub log_phase: Option<LogPhase>,
    /// Count the request in the metrics: in its route's series, or the unrouted ones.
    pub metrics: bool,
    pub stats: Option<Arc<RouteStats>>,
    pub in_flight: Option<InFlight>,
    /// The request's trace (`[tracing]`): its server span ends with the body.
    pub trace: Option<Arc<RequestTrace>>,
}

/// Request headers the access log shows, kept before the chain and the upstream take the head
/// (a header value is a shared buffer: keeping one copies nothing).
pub struct ClientHeaders {
    user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    traceparent: Option<HeaderValue>,
}

impl ClientHeaders {
    pub fn of(format: &access::Format, h: &HeaderMap) -> Self {
        let keep = |field: &str, name: &str| {
            if format.wants(field) {
                h.get(name).cloned()
            } else {
                None
            }
        };
        ClientHeaders {
            user_agent: keep("user_agent", "user-agent"),
            request_id: keep("request_id", "x-request-id"),
            traceparent: keep("trace_id", "traceparent"),
        }
    }
}

/// Context values the access log shows: what identity and request-id plugins set.
#[derive(Default)]
pub struct AccessContext {
    request_id: Option<String>,
    consumer: Option<String>,
    tenant: Option<String>,
    traceparent: Option<String>,
}

impl AccessContext {
    pub fn of(ex: &Exchange) -> Self {
        let get = |k: &str| ex.context_value(k).map(str::to_string);
        AccessContext {
            request_id: get("request-id"),
            consumer: get("consumer"),
            tenant: get("tenant"),
            traceparent: get("traceparent"),
        }
    }
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id(traceparent: &str) -> Option<&str> {
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// A chain with a log phase, and the request context the chain left.
pub type LogPhase = (Arc<Chain>, Vec<(String, String)>);

impl AccessRecord {
    fn access_line(
        &self,
        format: &access::Format,
        bytes: u64,
        complete: bool,
        elapsed: std::time::Duration,
    ) -> String {
        use access::Value::{Bool, Float, Num, Str};
        let header = |pick: fn(&ClientHeaders) -> &Option<HeaderValue>| {
            self.client_headers
                .as_ref()
                .and_then(|h| pick(h).as_ref())
                .and_then(|v| v.to_str().ok())
        };
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let client = self.client.to_string();
        let cx = &self.context;
        // The gateway's own trace, when it traces; else the one a plugin or the client named.
        let traced = self.trace.as_ref().map(|t| t.trace_id().to_string());
        let traceparent = cx
            .traceparent
            .as_deref()
            .or_else(|| header(|h| &h.traceparent));
        let trace_id = traced.as_deref().or(traceparent.and_then(trace_id));
        access::line(
            format,
            &[
                ("client", Str(Some(&client))),
                ("method", Str(Some(self.method.as_str()))),
                ("path", Str(Some(self.target_pq.path()))),
                ("status", Num(u64::from(self.status.as_u16()))),
                ("route", Str(self.route.as_deref())),
                ("upstream", Str(self.upstream.as_deref())),
                ("target_addr", Str(self.target.as_deref())),
                ("attempts", Num(u64::from(self.attempts))),
                (
                    "request_id",
                    Str(cx
                        .request_id
                        .as_deref()
                        .or_else(|| header(|h| &h.request_id))),
                ),
                ("trace_id", Str(trace_id)),
                ("consumer", Str(cx.consumer.as_deref())),
                ("tenant", Str(cx.tenant.as_deref())),
                ("user_agent", Str(header(|h| &h.user_agent))),
                ("answered_by", Str(self.answered_by.as_deref())),
                ("request_bytes", Num(self.request_bytes)),
                ("response_bytes", Num(bytes)),
                ("duration_ms", Float(Some(ms(elapsed)))),
                ("upstream_ms", Float(self.upstream_time.map(ms))),
                ("complete", Bool(complete)),
            ],
        )
    }

    fn finish(self: Box<Self>, bytes: u64, complete: bool) {
        let mut r = *self;
        if let Some(read) = &r.request_read {
            r.request_bytes = read.load(std::sync::atomic::Ordering::Relaxed);
        }
        let elapsed = r.start.elapsed();
        if r.metrics {
            let stats = r.stats.as_deref().unwrap_or_else(|| requests::unrouted());
            stats.record(&requests::Done {
                method: &r.method,
                status: r.status,
                upstream: r.upstream.as_deref(),
                elapsed,
                request_bytes: r.request_bytes,
                response_bytes: bytes,
            });
        }
        if let Some(trace) = &r.trace {
            trace.finish(Served {
                method: r.method.as_str(),
                path: r.target_pq.path(),
                route: r.route.as_deref(),
                status: r.status.as_u16(),
                upstream: r.upstream.as_deref(),
                client: r.client,
                answered_by: r.answered_by.as_deref(),
                complete,
            });
        }
        if let Some(format) = &r.access
            && format.sampled(r.status.as_u16())
        {
            access::write(&r.access_line(format, bytes, complete, elapsed));
        }
        let Some((chain, context)) = r.log_phase else {
            return;
        };
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let entry = LogEntry {
            route: r.route.as_deref().unwrap_or("").to_string(),
            method: r.method.to_string(),
            target: r.target_pq.as_str().to_string(),
            status: r.status.as_u16(),
            request_bytes: r.request_bytes,
            response_bytes: bytes,
            duration_us: micros(elapsed),
            upstream_us: r.upstream_time.map(micros),
            upstream: r.target,
            client_ip: r.client.to_string(),
            context,
            completed: complete,
        };
        // Queued, off the request's path: however the log phase goes (slow, trapped) it
        // cannot change a response that is already on its way.
        chain.log(entry);
    }
}

pub struct ResponseBody {
    inner: Inner,
    bytes: u64,
    /// The body reported its end (not every body's `is_end_stream` says so afterwards).
    ended: bool,
    log: Option<Box<AccessRecord>>,
    lease: Option<Lease>,
}

impl ResponseBody {
    pub fn upstream(body: Incoming, lease: Lease, stall: StallTimer) -> Self {
        ResponseBody {
            inner: Inner::Upstream(body, stall),
            bytes: 0,
            ended: false,
            log: None,
            lease: Some(lease),
        }
    }

    pub fn set_log(&mut self, record: Option<Box<AccessRecord>>) {
        self.log = record;
    }
}

impl ResponseBody {
    pub fn boxed(body: UnsyncBoxBody<Bytes, BoxError>) -> Self {
        ResponseBody {
            inner: Inner::Boxed(body),
            bytes: 0,
            ended: false,
            log: None,
            lease: None,
        }
    }
}

impl From<Bytes> for ResponseBody {
    fn from(b: Bytes) -> Self {
        ResponseBody {
            inner: Inner::Full(Full::new(b)),
            bytes: 0,
            ended: false,
            log: None,
            lease: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = match &mut self.inner {
            Inner::Upstream(b, stall) => match Pin::new(b).poll_frame(cx) {
                Poll::Pending => match stall.poll_stalled(cx) {
                    Poll::Ready(()) => {
                        let e = UpstreamStalled(stall.timeout());
                        tracing::warn!(error = %e, "response cut short");
                        Poll::Ready(Some(Err(e.into())))
                    }
                    Poll::Pending => Poll::Pending,
                },
                ready => {
                    stall.progress();
                    ready.map_err(Into::into)
                }
            },
            Inner::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Inner::Boxed(b) => Pin::new(b).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                self.ended = true;
                if let Some(lease) = &mut self.lease {
                    lease.complete();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(b, _) => b.is_end_stream(),
            Inner::Full(b) => b.is_end_stream(),
            Inner::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(b, _) => b.size_hint(),
            Inner::Full(b) => b.size_hint(),
            Inner::Boxed(b) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let complete = self.ended || self.is_end_stream();
        if let (true, Some(lease)) = (complete, &mut self.lease) {
            lease.complete();
        }
        if let Some(r) = self.log.take() {
            r.finish(self.bytes, complete);
        }
    }
}
