//! A route answered by a handler component: the request as a handler sees it (the path after
//! the route's rewrite, the client's host, the usual forwarding headers), and its response on
//! the way back.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, header};

use super::body::{AccessRecord, ResponseBody};
use super::{Forward, headers};
use crate::error::ProxyError;
use crate::plugin::Handler;
use crate::upstream::Body;

pub(crate) async fn answer(
    handler: &Arc<Handler>,
    fwd: Forward<'_>,
    req: Request<Body>,
    record: Option<&mut AccessRecord>,
) -> Result<Response<ResponseBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let incoming_version = parts.version;
    parts.uri = fwd.pq.into();
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, false);
    headers::add_forwarded(h, &fwd.conn, &fwd.host);
    // wasi:http needs an authority; an HTTP/1.0 request may come without one.
    let host = if fwd.host.is_empty() {
        HeaderValue::from_static("localhost")
    } else {
        fwd.host
    };
    h.insert(header::HOST, host);
    let resp = handler
        .serve(Request::from_parts(parts, body), fwd.conn.tls)
        .await
        .map_err(|error| ProxyError::Handler {
            plugin: handler.name().to_string(),
            error,
        })?;
    if let Some(r) = record {
        r.upstream = Some(handler.env.name.clone());
        r.upstream_time = Some(r.start.elapsed());
    }
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    parts.version = incoming_version;
    Ok(Response::from_parts(parts, ResponseBody::boxed(body)))
}
