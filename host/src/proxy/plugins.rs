//! The request path of a route with plugins: the same phases as the plain path, with the chain
//! run at each hook (docs/ARCHITECTURE.md):
//!
//! on-request-headers → [buffer body, on-request-body] → pick + forward → on-response-headers →
//! [buffer body, on-response-body] → stream back.
//!
//! An answer from a plugin (or a fail-closed plugin) skips the rest of the request phases and
//! the upstream; the response phases of the plugins before it still run, so e.g. a request-id
//! or CORS plugin decorates a 401 from a later auth plugin.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};

use super::body::AccessRecord;
use super::{ClientBody, Forward, ResponseBody, send};
use crate::error::{ClientBodyError, ProxyError, problem};
use crate::plugin::{Chain, Exchange, Phase, Reply, ResponseState, Verdict};
use crate::upstream::BoxError;

pub(super) async fn forward(
    chain: &Chain,
    mut fwd: Forward<'_>,
    params: Vec<(Arc<str>, String)>,
    req: Request<ClientBody>,
    record: Option<&mut AccessRecord>,
) -> Result<Response<ResponseBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let mut ex = Box::new(Exchange {
        method: parts.method.clone(),
        pq: fwd.pq.clone(),
        authority: fwd.host.clone(),
        scheme: if fwd.conn.tls { "https" } else { "http" },
        client_ip: fwd.conn.client.ip(),
        route: fwd.route.name.clone(),
        params,
        headers: std::mem::take(&mut parts.headers),
        body: None,
        context: Vec::new(),
        upstream: None,
        response: None,
    });
    let all = chain.steps.len();

    let verdict;
    (ex, verdict) = chain.run(Phase::RequestHeaders, ex, all).await;
    if let Verdict::Answer { reply, at } = verdict {
        return Ok(respond(chain, ex, from_reply(reply), at).await);
    }

    let body = if chain.has(Phase::RequestBody) {
        let bytes = match Limited::new(body, chain.body_limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                let detail = format!(
                    "the request body is over {} bytes, the limit of this route's body plugins",
                    chain.body_limit
                );
                let resp = problem(StatusCode::PAYLOAD_TOO_LARGE, &detail);
                return Ok(respond(chain, ex, resp, all).await);
            }
            Err(e) => {
                return Err(match ClientBodyError::find(&*e) {
                    Some(b) => b.clone().into(),
                    None => ProxyError::BadRequest(format!("reading the request body: {e}")),
                });
            }
        };
        ex.body = Some(bytes);
        let verdict;
        (ex, verdict) = chain.run(Phase::RequestBody, ex, all).await;
        if let Verdict::Answer { reply, at } = verdict {
            return Ok(respond(chain, ex, from_reply(reply), at).await);
        }
        let bytes = ex.body.take().unwrap_or_default();
        set_length(&mut ex.headers, bytes.len());
        Full::new(bytes)
            .map_err(|never| -> BoxError { match never {} })
            .boxed_unsync()
    } else {
        body.boxed_unsync()
    };

    // Response phases still read the request (e.g. its Origin): keep a copy for them.
    parts.headers = if chain.has(Phase::ResponseHeaders) || chain.has(Phase::ResponseBody) {
        ex.headers.clone()
    } else {
        std::mem::take(&mut ex.headers)
    };
    fwd.pq = ex.pq.clone();
    if let Some((upstream, target)) = ex.upstream.take() {
        fwd.upstream = upstream;
        fwd.target = target;
    }
    let resp = match send(fwd, Request::from_parts(parts, body), record).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "request failed");
            }
            problem(e.status(), &e.detail())
        }
    };
    Ok(respond(chain, ex, resp, all).await)
}

/// Runs the response phases of the first `upto` plugins on `resp`.
async fn respond(
    chain: &Chain,
    mut ex: Box<Exchange>,
    resp: Response<ResponseBody>,
    upto: usize,
) -> Response<ResponseBody> {
    let wants_body = chain.has(Phase::ResponseBody) && may_have_body(&ex.method, resp.status());
    if upto == 0 || !(chain.has(Phase::ResponseHeaders) || wants_body) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    ex.response = Some(ResponseState {
        status: parts.status,
        headers: std::mem::take(&mut parts.headers),
        body: None,
    });
    let verdict;
    (ex, verdict) = chain.run(Phase::ResponseHeaders, ex, upto).await;
    if let Verdict::Answer { reply, .. } = verdict {
        return from_reply(reply);
    }
    let body = if wants_body {
        let bytes = match Limited::new(body, chain.body_limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                let detail = format!(
                    "the upstream's response body is over {} bytes, the limit of this route's body plugins",
                    chain.body_limit
                );
                return problem(StatusCode::BAD_GATEWAY, &detail);
            }
        };
        if let Some(r) = ex.response.as_mut() {
            r.body = Some(bytes);
        }
        let verdict;
        (ex, verdict) = chain.run(Phase::ResponseBody, ex, upto).await;
        if let Verdict::Answer { reply, .. } = verdict {
            return from_reply(reply);
        }
        let bytes = ex
            .response
            .as_mut()
            .and_then(|r| r.body.take())
            .unwrap_or_default();
        if let Some(r) = ex.response.as_mut() {
            set_length(&mut r.headers, bytes.len());
        }
        ResponseBody::from(bytes)
    } else {
        body
    };
    if let Some(r) = ex.response.take() {
        parts.status = r.status;
        parts.headers = r.headers;
    }
    Response::from_parts(parts, body)
}

fn may_have_body(method: &Method, status: StatusCode) -> bool {
    method != Method::HEAD
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// A buffered body has a known length: say so, and drop any chunked framing.
fn set_length(h: &mut http::HeaderMap, len: usize) {
    h.remove(header::TRANSFER_ENCODING);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
}

fn from_reply(reply: Reply) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::from(reply.body));
    *resp.status_mut() = reply.status;
    *resp.headers_mut() = reply.headers;
    resp
}
