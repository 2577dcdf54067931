//! The response body handed to the client: the upstream's stream (never buffered) or a body the
//! gateway made. It counts bytes and writes the access-log line once the body is done or dropped,
//! and it holds the target's in-flight count until then, so `least_conn` sees streaming load.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::upstream::InFlight;

pub enum Inner {
    Upstream(Incoming),
    Full(Full<Bytes>),
}

/// What the access log says of one request; written when the response body ends.
pub struct AccessRecord {
    pub start: Instant,
    pub method: http::Method,
    pub path: String,
    pub client: std::net::IpAddr,
    pub route: Option<std::sync::Arc<str>>,
    pub upstream: Option<std::sync::Arc<str>>,
    pub target: Option<String>,
    pub status: StatusCode,
}

pub struct ResponseBody {
    inner: Inner,
    bytes: u64,
    log: Option<Box<AccessRecord>>,
    _in_flight: Option<InFlight>,
}

impl ResponseBody {
    pub fn upstream(body: Incoming, in_flight: InFlight) -> Self {
        ResponseBody {
            inner: Inner::Upstream(body),
            bytes: 0,
            log: None,
            _in_flight: Some(in_flight),
        }
    }

    pub fn set_log(&mut self, record: Option<Box<AccessRecord>>) {
        self.log = record;
    }
}

impl From<Bytes> for ResponseBody {
    fn from(b: Bytes) -> Self {
        ResponseBody {
            inner: Inner::Full(Full::new(b)),
            bytes: 0,
            log: None,
            _in_flight: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = match &mut self.inner {
            Inner::Upstream(b) => Pin::new(b).poll_frame(cx),
            Inner::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(b) => b.is_end_stream(),
            Inner::Full(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(b) => b.size_hint(),
            Inner::Full(b) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(r) = self.log.take() {
            let complete = self.is_end_stream();
            tracing::info!(
                target: "access",
                client = %r.client,
                method = %r.method,
                path = %r.path,
                route = r.route.as_deref().unwrap_or("-"),
                upstream = r.upstream.as_deref().unwrap_or("-"),
                target_addr = r.target.as_deref().unwrap_or("-"),
                status = r.status.as_u16(),
                bytes = self.bytes,
                complete,
                latency_ms = r.start.elapsed().as_secs_f64() * 1000.0,
            );
        }
    }
}
