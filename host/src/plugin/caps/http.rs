//! `http-client`: outbound calls, only to upstreams the plugin's definition lists in `http`.
//! They go through the same pools, balancing and TLS as proxied requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};

use crate::plugin::bindings::http_client::{Error, Host, Incoming, Outgoing};
use crate::plugin::instance::HostState;
use crate::plugin::settings::Env;
use crate::upstream::{BoxError, Target, Upstream};

/// Responses larger than this are refused rather than buffered.
const MAX_RESPONSE: usize = 8 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Host for HostState {
    async fn send(&mut self, req: Outgoing) -> Result<Incoming, Error> {
        send(&self.env, req).await
    }

    async fn send_all(&mut self, reqs: Vec<Outgoing>) -> Vec<Result<Incoming, Error>> {
        let env = &self.env;
        futures_util::future::join_all(reqs.into_iter().map(|r| send(env, r))).await
    }
}

async fn send(env: &Env, req: Outgoing) -> Result<Incoming, Error> {
    let uri: Uri = req
        .url
        .parse()
        .map_err(|_| Error::Invalid(format!("`{}` is not a URL", req.url)))?;
    let to = Destination::of(env, &uri).map_err(|r| match r {
        Refusal::NotAllowed(m) => Error::NotAllowed(m),
        Refusal::Invalid(m) => Error::Invalid(m),
        Refusal::NoTarget(m) => Error::Refused(m),
    })?;
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| Error::Invalid(format!("`{}` is not an HTTP method", req.method)))?;
    let mut out = Request::builder()
        .method(method)
        .uri(to.uri)
        .version(to.version);
    if let Some(host) = to.host {
        out = out.header(http::header::HOST, host);
    }
    for (k, v) in &req.headers {
        let k = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::Invalid(format!("`{k}` is not a header name")))?;
        let v =
            HeaderValue::from_str(v).map_err(|_| Error::Invalid(format!("bad value for `{k}`")))?;
        out = out.header(k, v);
    }
    let body = Full::new(Bytes::from(req.body))
        .map_err(|never| -> BoxError { match never {} })
        .boxed_unsync();
    let out = out.body(body).map_err(|e| Error::Invalid(e.to_string()))?;
    let timeout = req
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(u64::from(ms)));
    let call = async {
        let (resp, mut lease) = to
            .upstream
            .send(&to.target, out)
            .await
            .map_err(|e| Error::Refused(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = match Limited::new(body, MAX_RESPONSE).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(Error::TooLarge),
            Err(e) => return Err(Error::Refused(format!("reading the response: {e}"))),
        };
        lease.complete();
        Ok((parts, body))
    };
    let (parts, body) = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| Error::Timeout)??;
    Ok(Incoming {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    })
}

/// Where an outbound call to `http://NAME/path` goes: upstream `NAME`, when the caller's
/// definition lists it in `http`, one of its targets, and the request's URI and `Host` for it.
pub(in crate::plugin) struct Destination {
    pub upstream: Arc<Upstream>,
    pub target: Arc<Target>,
    pub uri: Uri,
    pub version: http::Version,
    /// For HTTP/1.1; HTTP/2 carries the authority in the URI.
    pub host: Option<HeaderValue>,
}

/// Why an outbound call was not made.
pub(in crate::plugin) enum Refusal {
    NotAllowed(String),
    Invalid(String),
    NoTarget(String),
}

impl Destination {
    pub fn of(env: &Env, uri: &Uri) -> Result<Destination, Refusal> {
        let name = uri
            .host()
            .ok_or_else(|| Refusal::NotAllowed(format!("`{uri}` names no upstream")))?;
        if !env.http_allow.iter().any(|a| a == name) {
            return Err(Refusal::NotAllowed(format!(
                "upstream `{name}` is not in this plugin's `http` list"
            )));
        }
        let upstream = env
            .upstreams
            .get(name)
            .cloned()
            .ok_or_else(|| Refusal::NotAllowed(format!("no upstream is named `{name}`")))?;
        let target = upstream
            .pick(&crate::upstream::NoKeys)
            .ok_or_else(|| Refusal::NoTarget(format!("upstream `{name}` has no healthy target")))?;
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let host = HeaderValue::from_str(target.authority.as_str())
            .map_err(|_| Refusal::Invalid("the target's address is not a valid host".into()))?;
        let uri = upstream
            .uri(&target, pq, &host)
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
        let h2 = upstream.config.http2;
        Ok(Destination {
            uri,
            version: if h2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            },
            host: (!h2).then_some(host),
            upstream,
            target,
        })
    }
}
