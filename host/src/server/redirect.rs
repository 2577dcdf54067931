//! A plain listener with `redirect_https`: every request is sent to the same host and target
//! on `https` (308, so the method and body are kept).

use http::{Request, Response, StatusCode, header};

use crate::proxy::ResponseBody;

pub fn to_https<B>(req: &Request<B>, port: u16) -> Response<ResponseBody> {
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            let h = req.headers().get(header::HOST)?.to_str().ok()?;
            // Without the port: the client's port was the plain listener's.
            let name = match h.rfind(':') {
                Some(i) if !h.ends_with(']') => &h[..i],
                _ => h,
            };
            Some(name.to_string())
        })
        .filter(|h| !h.is_empty());
    let Some(host) = host else {
        return crate::error::problem(
            StatusCode::BAD_REQUEST,
            "the request names no host to redirect to; send a Host header",
        );
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    let mut resp = Response::new(ResponseBody::from(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    match http::HeaderValue::try_from(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => crate::error::problem(
            StatusCode::BAD_REQUEST,
            "the request's host cannot stand in a Location header",
        ),
    }
}
