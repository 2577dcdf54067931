//! The demo backend: a tiny echo service the example config starts in-process, so a newcomer's
//! first `curl` goes through the real proxy path to a real HTTP server. It answers with what it
//! received, which shows the forwarding headers the gateway adds; a few paths answer sample
//! data instead (`data.rs`), for the example's aggregation and OAuth routes.

mod data;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(echo))
                .await;
        });
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if let Some(json) = data::users(path).or_else(|| data::users_v2(path)) {
        return Ok(json_response(json));
    }
    match data::products(path) {
        Some(Ok(product)) => return Ok(json_response(product)),
        Some(Err(problem)) => {
            let mut resp = json_response(problem);
            *resp.status_mut() = http::StatusCode::NOT_FOUND;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/problem+json"),
            );
            return Ok(resp);
        }
        None => {}
    }
    // The demo is for small requests; a body it cannot read is reported as empty.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    if parts.uri.path() == data::INTROSPECT {
        let basic = parts.headers.get(header::AUTHORIZATION);
        return Ok(json_response(data::introspect(basic, &body)));
    }
    let out = serde_json::json!({
        "service": "wasmgate demo backend",
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
    });
    Ok(json_response(out))
}

fn json_response(json: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string() + "\n")));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
