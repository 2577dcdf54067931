//! The admin listener (loopback by default): liveness, readiness, the active config, upstream
//! health, and a reload trigger.

mod guard;
mod metrics;
mod plugins;
mod redact;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::runtime::Shared;

const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, req).await) }
            });
            // Admin calls are short: a connection that lingers (or never speaks) is closed.
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let rt = shared.current.load_full();
    if let Err((status, why)) = guard::check(
        req.method(),
        req.uri().path(),
        req.headers(),
        &rt.loaded.config.admin,
    ) {
        return crate::error::problem(status, why);
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, json!({ "status": "ok" })),
        (&Method::GET, "/readyz") if shared.is_draining() => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "draining" }),
        ),
        (&Method::GET, "/readyz") => reply(
            StatusCode::OK,
            json!({ "status": "ready", "generation": rt.generation, "listeners": shared.listeners }),
        ),
        (&Method::GET, "/routes") => reply(StatusCode::OK, routes(&rt.loaded.config)),
        (&Method::GET, "/plugins") => reply(StatusCode::OK, plugins::list(&rt)),
        (&Method::GET, "/reloads") => reply(StatusCode::OK, json!(shared.reloads.list())),
        (&Method::GET, "/dashboard") => dashboard(),
        (&Method::GET, "/version") => reply(
            StatusCode::OK,
            json!({ "version": env!("CARGO_PKG_VERSION"), "generation": rt.generation }),
        ),
        (&Method::GET, "/config") => reply(
            StatusCode::OK,
            json!({
                "generation": rt.generation,
                "path": rt.loaded.path,
                "config": redact::redacted(&rt.loaded.config, &rt.loaded.secrets),
            }),
        ),
        (&Method::GET, "/upstreams") => {
            let ups: serde_json::Map<_, _> = rt
                .upstreams
                .iter()
                .map(|(name, u)| (name.clone(), upstream_state(u)))
                .collect();
            reply(StatusCode::OK, serde_json::Value::Object(ups))
        }
        (&Method::GET, "/metrics") => match metrics::render(shared) {
            Some(text) => {
                let mut r = Response::new(Full::new(Bytes::from(text)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            None => crate::error::problem(StatusCode::NOT_FOUND, "metrics are off"),
        },
        (&Method::POST, "/reload") => match crate::reload::reload(shared).await {
            Ok(generation) => reply(StatusCode::OK, json!({ "generation": generation })),
            Err(errors) => reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "generation": rt.generation,
                    "errors": errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            ),
        },
        _ => crate::error::problem(
            StatusCode::NOT_FOUND,
            "admin endpoints: GET /healthz, /readyz, /version, /config, /routes, /plugins, /reloads, /upstreams, /metrics, /dashboard; POST /reload",
        ),
    }
}

/// An upstream's targets with their health and breakers, and its own breaker.
fn upstream_state(u: &crate::upstream::Upstream) -> serde_json::Value {
    let breaker = |b: &crate::upstream::breaker::Breaker| {
        let state = b.state();
        json!({ "state": state.name(), "retry_in_ms": b.retry_in() })
    };
    let targets: Vec<_> = u
        .targets()
        .list
        .iter()
        .map(|t| {
            json!({
                "address": t.authority.as_str(),
                "resolved": t.addr.map(|a| a.to_string()),
                "weight": t.weight,
                "healthy": t.healthy(),
                "check_failed": t.check_failed(),
                "breaker": breaker(&t.breaker),
                "in_flight": t.in_flight(),
            })
        })
        .collect();
    json!({
        "targets": targets,
        "breaker": u.breaker.as_ref().map(breaker),
    })
}

/// A page over the other endpoints (routes, upstreams, reloads, rates and latency from
/// `/metrics`), polled every 2 s; no build step, no outside resource.
fn dashboard() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(
        include_str!("dashboard.html").as_bytes(),
    )));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:",
        ),
    );
    r
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Each route as it matches and where it sends requests, with its plugin chain by name (plugin
/// settings, which may hold secrets, are in `/config`, redacted).
fn routes(cfg: &crate::config::Config) -> serde_json::Value {
    let all: Vec<serde_json::Value> = cfg
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.get_ref();
            json!({
                "name": crate::config::route_name(r, i),
                "hosts": r.hosts,
                "path": r.path.as_ref().map(|p| p.get_ref()),
                "path_prefix": r.path_prefix.as_ref().map(|p| p.get_ref()),
                "methods": r.methods,
                "priority": r.priority,
                "upstream": r.upstream.as_ref().map(|u| u.get_ref()),
                "handler": r.handler.as_ref().map(|h| h.get_ref()),
                "split": r.split.as_ref().map(|s| s.get_ref()),
                "plugins": r.plugins.iter().map(|p| p.get_ref().name.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::Value::Array(all)
}
