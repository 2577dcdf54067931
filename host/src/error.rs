//! Errors on the request path and the one place that turns them into HTTP answers:
//! `application/problem+json` bodies (RFC 9457) with the status that says what went wrong.

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
    #[error("upstream `{0}` has no healthy target")]
    NoHealthyTarget(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::NoHealthyTarget(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream(
                UpstreamError::Timeout { .. } | UpstreamError::ConnectTimeout { .. },
            ) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(UpstreamError::Request(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
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
