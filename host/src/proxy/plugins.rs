//! The plugin phases of the request path (`phases` in `mod.rs` runs them in the order of the
//! chart, docs/ARCHITECTURE.md): the exchange plugins see, the buffered body phases, and the
//! response phases.
//!
//! An answer from a plugin (or a fail-closed plugin) skips the rest of the request phases and
//! the upstream; the response phases of the plugins before it still run, so e.g. a request-id
//! or CORS plugin decorates a 401 from a later auth plugin. In a response phase an answer
//! replaces the response and the chain goes on with it.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, Limited};

use super::encoding::{self, DecodeError};
use super::{ClientBody, Forward, ResponseBody};
use crate::error::{BodyOf, ClientBodyError, ProxyError};
use crate::plugin::{Chain, Exchange, Phase, Phases, Reply, ResponseState, Verdict};
use crate::upstream::{Body, BoxError};

/// The request context key holding the subject of the client's TLS certificate.
pub const CLIENT_CERT_SUBJECT: &str = "client-cert-subject";

/// The exchange plugins see, holding the request's headers while the request phases run.
pub(super) fn exchange(
    parts: &mut http::request::Parts,
    fwd: &Forward<'_>,
    params: Vec<(Arc<str>, String)>,
    trace: Option<Arc<crate::telemetry::traces::RequestTrace>>,
) -> Box<Exchange> {
    Box::new(Exchange {
        method: parts.method.clone(),
        pq: fwd.pq.clone(),
        authority: fwd.host.clone(),
        scheme: if fwd.conn.tls { "https" } else { "http" },
        client_ip: fwd.conn.client.ip(),
        route: fwd.route.name.clone(),
        params,
        headers: std::mem::take(&mut parts.headers),
        body: None,
        // Facts the host vouches for, readable with `context-get`.
        context: fwd
            .conn
            .client_cert
            .as_ref()
            .map(|s| vec![(CLIENT_CERT_SUBJECT.to_string(), s.to_string())])
            .unwrap_or_default(),
        upstream: None,
        response: None,
        step: 0,
        skips: Default::default(),
        trace,
    })
}

/// What the client gets.
type Outcome = Result<Response<ResponseBody>, ProxyError>;
type Answered = (Box<Exchange>, Outcome);

/// The request-body phase: buffers the client's body (decoded for plugins), runs the phase, and
/// returns what goes upstream; or the early answer (too large, undecodable, a plugin's).
pub(super) async fn request_body(
    chain: &Chain,
    mut ex: Box<Exchange>,
    body: ClientBody,
) -> (Box<Exchange>, Result<Body, Outcome>) {
    let all = chain.steps.len();
    let bytes = match Limited::new(body, chain.body_limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let resp = ProxyError::PluginBodyTooLarge {
                which: BodyOf::Request,
                limit: chain.body_limit,
            }
            .response();
            let (ex, r) = answered(chain, ex, resp, all).await;
            return (ex, Err(r));
        }
        Err(e) => {
            let err = match ClientBodyError::find(&*e) {
                Some(b) => b.clone().into(),
                None => ProxyError::BadRequest(format!("reading the request body: {e}")),
            };
            return (ex, Err(Err(err)));
        }
    };
    let decoded = match decode(chain, &ex.headers, bytes.clone()) {
        Ok(d) => d,
        Err(e) => {
            let resp = ProxyError::BodyDecode {
                which: BodyOf::Request,
                reason: e.to_string(),
            }
            .response();
            let (ex, r) = answered(chain, ex, resp, all).await;
            return (ex, Err(r));
        }
    };
    ex.body = Some(decoded.clone());
    let verdict;
    (ex, verdict) = chain.run(Phase::RequestBody, ex, all).await;
    if let Verdict::Answer { reply, at } = verdict {
        let (ex, r) = answered(chain, ex, from_reply(reply), at).await;
        return (ex, Err(r));
    }
    let after = ex.body.take().unwrap_or_default();
    let out = settle(&mut ex.headers, bytes, &decoded, after);
    let body = Full::new(out)
        .map_err(|never| -> BoxError { match never {} })
        .boxed_unsync();
    (ex, Ok(body))
}

/// The response phases of the first `upto` plugins on `resp`: the answer to the client.
pub(super) async fn answered(
    chain: &Chain,
    ex: Box<Exchange>,
    resp: Response<ResponseBody>,
    upto: usize,
) -> Answered {
    let (ex, resp) = respond(chain, ex, resp, upto).await;
    (ex, Ok(resp))
}

/// Runs the response phases of the first `upto` plugins on `resp`.
async fn respond(
    chain: &Chain,
    mut ex: Box<Exchange>,
    resp: Response<ResponseBody>,
    upto: usize,
) -> (Box<Exchange>, Response<ResponseBody>) {
    let wants_body = chain.has(Phase::ResponseBody) && may_have_body(&ex.method, resp.status());
    if upto == 0 || !(chain.has(Phase::ResponseHeaders) || wants_body) {
        return (ex, resp);
    }
    let (mut parts, mut body) = resp.into_parts();
    ex.response = Some(ResponseState {
        status: parts.status,
        headers: std::mem::take(&mut parts.headers),
        body: None,
        replaced: false,
    });
    let verdict;
    (ex, verdict) = chain.run(Phase::ResponseHeaders, ex, upto).await;
    debug_assert!(
        matches!(verdict, Verdict::Continue),
        "response phases replace, never stop"
    );
    let replaced = ex.response.as_ref().is_some_and(|r| r.replaced);
    if replaced {
        // The upstream's body is dropped unread: its connection is not reused.
        body = ResponseBody::from(Bytes::new());
    }
    let wants_body = wants_body
        && chain.wants_body(Phase::ResponseBody, &ex, upto)
        && ex
            .response
            .as_ref()
            .is_some_and(|r| may_have_body(&ex.method, r.status));
    let body = if wants_body {
        let (raw, decoded) = match response_body(chain, &mut ex, body).await {
            Read::Whole(raw, decoded) => (raw, decoded),
            Read::Refused(resp) => return (ex, resp),
            Read::Passed(body) => {
                if let Some(r) = ex.response.take() {
                    parts.status = r.status;
                    parts.headers = r.headers;
                }
                return (ex, Response::from_parts(parts, body));
            }
        };
        if let Some(r) = ex.response.as_mut() {
            r.body = Some(decoded.clone());
        }
        let verdict;
        (ex, verdict) = chain.run(Phase::ResponseBody, ex, upto).await;
        debug_assert!(
            matches!(verdict, Verdict::Continue),
            "response phases replace, never stop"
        );
        match ex.response.as_mut() {
            Some(r) => {
                let after = r.body.take().unwrap_or_default();
                let out = settle(&mut r.headers, raw, &decoded, after);
                ResponseBody::from(out)
            }
            None => ResponseBody::from(raw),
        }
    } else if let Some(r) = ex.response.as_mut().filter(|r| r.replaced) {
        let b = r.body.take().unwrap_or_default();
        encoding::fix_framing(&mut r.headers, b.len(), false);
        ResponseBody::from(b)
    } else {
        body
    };
    if let Some(r) = ex.response.take() {
        parts.status = r.status;
        parts.headers = r.headers;
    }
    (ex, Response::from_parts(parts, body))
}

/// The response body for the body phase.
enum Read {
    /// `(as sent, as handed to plugins)`.
    Whole(Bytes, Bytes),
    /// Too large or undecodable: the error answer.
    Refused(Response<ResponseBody>),
    /// Over the limit on a chain that lets such bodies pass: the body as it came, unread.
    Passed(ResponseBody),
}

async fn response_body(chain: &Chain, ex: &mut Exchange, body: ResponseBody) -> Read {
    let Some(r) = ex.response.as_mut() else {
        return Read::Whole(Bytes::new(), Bytes::new());
    };
    let too_large = || {
        Read::Refused(
            ProxyError::PluginBodyTooLarge {
                which: BodyOf::Response,
                limit: chain.body_limit,
            }
            .response(),
        )
    };
    let raw = match r.body.take() {
        // A replacement made in the headers phase.
        Some(b) => return Read::Whole(b.clone(), b),
        None if chain.pass_large_responses => match read_upto(body, chain.body_limit).await {
            Ok(Upto::Whole(b)) => b,
            Ok(Upto::Over(body)) => return Read::Passed(body),
            Err(_) => return too_large(),
        },
        None => match Limited::new(body, chain.body_limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return too_large(),
        },
    };
    match decode(chain, &r.headers, raw.clone()) {
        Ok(decoded) => Read::Whole(raw, decoded),
        Err(e) => Read::Refused(
            ProxyError::BodyDecode {
                which: BodyOf::Response,
                reason: e.to_string(),
            }
            .response(),
        ),
    }
}

enum Upto {
    Whole(Bytes),
    /// What was read, then the rest of the stream.
    Over(ResponseBody),
}

/// Reads `body` to its end if it fits in `limit` bytes; else gives it back whole, the part read
/// first and the rest streaming after it.
async fn read_upto(mut body: ResponseBody, limit: usize) -> Result<Upto, BoxError> {
    let mut read: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        len += data.len();
        read.push(data);
        if len > limit {
            let prefix = futures_util::stream::iter(read.into_iter().map(|d| Ok(Frame::data(d))));
            let rest = http_body_util::BodyStream::new(body);
            let whole = http_body_util::StreamBody::new(prefix.chain(rest));
            return Ok(Upto::Over(ResponseBody::boxed(whole.boxed_unsync())));
        }
    }
    // A body that came in one frame (the usual small one) is kept as it came, not copied.
    if read.len() == 1 {
        return Ok(Upto::Whole(read.swap_remove(0)));
    }
    let mut out = bytes::BytesMut::with_capacity(len);
    for d in read {
        out.extend_from_slice(&d);
    }
    Ok(Upto::Whole(out.freeze()))
}

/// The body as plugins see it: decoded, unless a body plugin asked for raw bytes.
fn decode(chain: &Chain, headers: &http::HeaderMap, raw: Bytes) -> Result<Bytes, DecodeError> {
    if chain.phases.contains(Phases::RAW_BODY) {
        return Ok(raw);
    }
    match encoding::coding(headers) {
        Some(c) => encoding::decode(c, &raw, chain.body_limit),
        None => Ok(raw),
    }
}

/// What goes on after a body phase: the original bytes when no plugin changed the body (still
/// encoded as they came), else the plugin's body, unencoded, with its length.
fn settle(headers: &mut http::HeaderMap, raw: Bytes, given: &Bytes, after: Bytes) -> Bytes {
    let unchanged = after.as_ptr() == given.as_ptr() && after.len() == given.len();
    if unchanged {
        encoding::fix_framing(headers, raw.len(), false);
        raw
    } else {
        let decoded = given.as_ptr() != raw.as_ptr();
        encoding::fix_framing(headers, after.len(), decoded);
        after
    }
}

fn may_have_body(method: &Method, status: StatusCode) -> bool {
    method != Method::HEAD
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

pub(super) fn from_reply(reply: Reply) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::from(reply.body));
    *resp.status_mut() = reply.status;
    *resp.headers_mut() = reply.headers;
    resp
}
