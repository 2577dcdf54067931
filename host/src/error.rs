//! Errors on the request path and the one place that turns them into HTTP answers:
//! `application/problem+json` bodies (RFC 9457) with the status that says what went wrong.
//! The log gets the whole error; the client gets a detail that names no internal address.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no route matches {method} {host}{path}")]
    NoRoute {
        method: String,
        host: String,
        path: String,
    },
    /// Routes match the path, with other methods.
    #[error("{method} is not allowed on {path}; use {}", allow.join(", "))]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: Vec<String>,
    },
    /// No target may take the request: each is out of rotation, or the upstream's breaker is
    /// open. `Retry-After` says when that may change.
    #[error("upstream `{upstream}` {why}")]
    Unavailable {
        upstream: String,
        why: &'static str,
        retry_after: Option<Duration>,
    },
    #[error(transparent)]
    ClientBody(#[from] ClientBodyError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A body is over what the route's body plugins may buffer.
    #[error("the {which} body is over {limit} bytes, the limit of this route's body plugins")]
    PluginBodyTooLarge { which: BodyOf, limit: usize },
    /// A body could not be decoded for the route's body plugins.
    #[error("the {which} body: {reason}")]
    BodyDecode { which: BodyOf, reason: String },
    /// A `fail = "closed"` plugin failed.
    #[error("plugin `{plugin}` {}", failure.summary())]
    PluginFailed {
        plugin: String,
        failure: crate::plugin::Failure,
    },
    /// The route's handler component gave no response.
    #[error("handler `{plugin}` {error}")]
    Handler {
        plugin: String,
        error: crate::plugin::HandlerError,
    },
}

/// Which body an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOf {
    Request,
    Response,
}

impl std::fmt::Display for BodyOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyOf::Request => "request",
            BodyOf::Response => "upstream's response",
        })
    }
}

/// Why reading the client's request body stopped. Raised by the body stream itself, so it also
/// reaches us through the upstream client when the body was being forwarded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the request body is over {limit} bytes, this route's limit (max_body)")]
    TooLarge { limit: u64 },
    #[error("the client sent no request body data for {0:?} (body_read_timeout)")]
    TimedOut(Duration),
    #[error("the request body is malformed: {0}")]
    Malformed(String),
}

impl ClientBodyError {
    /// The body error anywhere in an error's chain of causes.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ClientBodyError> {
        let mut cur = Some(e);
        while let Some(e) = cur {
            if let Some(b) = e.downcast_ref::<ClientBodyError>() {
                return Some(b);
            }
            cur = e.source();
        }
        None
    }
}

impl ProxyError {
    /// An upstream failure, unless it was the client's body that failed while being forwarded:
    /// then it is the client's error (400, 408, 413), not a 502.
    pub fn from_upstream(e: UpstreamError) -> ProxyError {
        if let UpstreamError::Failed { source, .. } = &e
            && let Some(b) = ClientBodyError::find(source)
        {
            return ProxyError::ClientBody(b.clone());
        }
        ProxyError::Upstream(e)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::ClientBody(ClientBodyError::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ProxyError::ClientBody(ClientBodyError::TimedOut(_)) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ClientBody(ClientBodyError::Malformed(_)) => StatusCode::BAD_REQUEST,
            ProxyError::Upstream(
                UpstreamError::Timeout { .. } | UpstreamError::ConnectTimeout { .. },
            ) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(UpstreamError::Request(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::PluginBodyTooLarge {
                which: BodyOf::Request,
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyDecode {
                which: BodyOf::Request,
                ..
            } => StatusCode::BAD_REQUEST,
            ProxyError::PluginBodyTooLarge { .. } | ProxyError::BodyDecode { .. } => {
                StatusCode::BAD_GATEWAY
            }
            // Out of time or memory may pass on retry; any other trap will not.
            ProxyError::PluginFailed { failure, .. } => match failure {
                crate::plugin::Failure::Deadline | crate::plugin::Failure::Memory => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                crate::plugin::Failure::Trap(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ProxyError::Handler { error, .. } => match error {
                crate::plugin::HandlerError::Failed(
                    crate::plugin::Failure::Deadline | crate::plugin::Failure::Memory,
                ) => StatusCode::SERVICE_UNAVAILABLE,
                crate::plugin::HandlerError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
                crate::plugin::HandlerError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// What the client is told: the cause in its own terms, without target addresses or the
    /// upstream client's internals (those go to the log).
    pub fn detail(&self) -> String {
        match self {
            ProxyError::Upstream(e) => match e {
                UpstreamError::Connect { .. } => "the upstream could not be reached".into(),
                UpstreamError::ConnectTimeout { timeout, .. } => {
                    format!("the upstream could not be reached within {timeout:?}")
                }
                UpstreamError::Timeout { timeout, .. } => {
                    format!("the upstream did not answer within {timeout:?}")
                }
                UpstreamError::Failed { .. } | UpstreamError::Closed { .. } => {
                    "the upstream closed the connection or sent an invalid response".into()
                }
                UpstreamError::Request(_) => "the request could not be forwarded".into(),
            },
            ProxyError::Handler { plugin, error } => {
                format!("handler `{plugin}` {}", error.summary())
            }
            other => other.to_string(),
        }
    }

    /// The problem document the client gets.
    pub fn response<B: From<bytes::Bytes>>(&self) -> Response<B> {
        let mut resp = problem(self.status(), &self.detail());
        match self {
            ProxyError::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
            }
            ProxyError::Unavailable {
                retry_after: Some(after),
                ..
            } => {
                // Whole seconds, rounded up: "0" would invite a retry storm.
                let secs = after.as_millis().div_ceil(1000).max(1);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
            }
            _ => {}
        }
        resp
    }
}

/// A problem document for `status` with a human-readable `detail`.
pub fn problem<B: From<bytes::Bytes>>(status: StatusCode, detail: &str) -> Response<B> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let bytes = bytes::Bytes::from(body.to_string());
    let mut resp = Response::new(B::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}
