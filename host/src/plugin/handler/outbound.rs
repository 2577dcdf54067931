//! A handler's outbound `wasi:http` calls: `http://NAME/...` goes to upstream `NAME` when the
//! handler's definition lists it in `http`, through the same pools, balancing and TLS as
//! proxied requests; anything else is denied.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiHttpHooks};

use crate::plugin::caps::http::{Destination, Refusal};
use crate::plugin::settings::Env;
use crate::upstream::{BoxError, Lease};

type WasiBody = wasmtime_wasi_http::WasiBody;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Sent = Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), Error>> + Send>;

pub struct Outbound {
    env: Arc<Env>,
}

impl Outbound {
    pub fn new(env: Arc<Env>) -> Outbound {
        Outbound { env }
    }
}

impl WasiHttpHooks for Outbound {
    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        Some(http::uri::Scheme::HTTP)
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        _options: Option<RequestOptions>,
        _io: IoFuture,
    ) -> Sent {
        let env = self.env.clone();
        Box::new(async move {
            let to = Destination::of(&env, request.uri()).map_err(|r| match r {
                Refusal::NotAllowed(m) => {
                    tracing::warn!(plugin = %env.name, "outbound call denied: {m}");
                    Error::HttpRequestDenied
                }
                Refusal::Invalid(_) => Error::HttpRequestUriInvalid,
                Refusal::NoTarget(_) => Error::DestinationUnavailable,
            })?;
            let (mut parts, body) = request.into_parts();
            parts.uri = to.uri;
            parts.version = to.version;
            match to.host {
                Some(h) => parts.headers.insert(http::header::HOST, h),
                None => parts.headers.remove(http::header::HOST),
            };
            let body = body.map_err(BoxError::from).boxed_unsync();
            let (resp, lease) = to
                .upstream
                .send(&to.target, Request::from_parts(parts, body))
                .await
                .map_err(|e| {
                    tracing::warn!(plugin = %env.name, error = %e, "outbound call failed");
                    Error::ConnectionRefused
                })?;
            let resp = resp.map(|body| Leased { body, lease }.boxed_unsync());
            let done: IoFuture = Box::new(async { Ok(()) });
            Ok((resp, done))
        })
    }
}

/// An upstream's response body that gives its connection back to the pool once read to the end.
struct Leased {
    body: hyper::body::Incoming,
    lease: Lease,
}

impl http_body::Body for Leased {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.lease.complete();
        }
        polled.map_err(Error::Hyper)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
