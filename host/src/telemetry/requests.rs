//! Request metrics of one route, with handles resolved ahead: the route's own upstreams are
//! known when the config loads, and a series appears the first time a request needs it. An
//! upstream a plugin picked (or a fallback), and every 4xx/5xx with its exact code, takes the
//! slower path of a lookup by labels.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use http::Method;
use metrics::{Counter, Gauge};

use super::histogram::{self, Histogram};
use super::metrics::{CLASSES, class_index};

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The series of one route toward one upstream.
#[derive(Debug)]
struct ToUpstream {
    upstream: Arc<str>,
    /// By method and status class; 4xx and 5xx go by code instead.
    requests: [[OnceLock<Counter>; 3]; 8],
    duration: Arc<Histogram>,
}

fn duration(route: &str, upstream: &str) -> Arc<Histogram> {
    histogram::get(
        "wasmgate_http_request_duration_seconds",
        vec![
            ("route", route.to_string()),
            ("upstream", upstream.to_string()),
        ],
    )
}

impl ToUpstream {
    fn new(route: &Arc<str>, upstream: Arc<str>) -> Self {
        ToUpstream {
            duration: duration(route, &upstream),
            upstream,
            requests: Default::default(),
        }
    }
}

/// One route's request metrics. Built with each config generation; the series live in the
/// recorder, so counts carry on across reloads.
#[derive(Debug)]
pub struct RouteStats {
    route: Arc<str>,
    /// The route's own upstreams, then "" for requests answered without one.
    upstreams: Vec<ToUpstream>,
    request_bytes: Counter,
    response_bytes: Counter,
}

impl RouteStats {
    pub fn new(route: Arc<str>, upstreams: impl IntoIterator<Item = Arc<str>>) -> Self {
        let mut to: Vec<ToUpstream> = upstreams
            .into_iter()
            .map(|u| ToUpstream::new(&route, u))
            .collect();
        to.push(ToUpstream::new(&route, Arc::from("")));
        RouteStats {
            request_bytes: metrics::counter!("wasmgate_http_request_body_bytes_total", "route" => route.to_string()),
            response_bytes: metrics::counter!("wasmgate_http_response_body_bytes_total", "route" => route.to_string()),
            upstreams: to,
            route,
        }
    }

    /// Counts one request whose response body ended (or was dropped).
    pub fn record(&self, done: &Done<'_>) {
        let upstream = done.upstream.unwrap_or("");
        let to = self.upstreams.iter().find(|t| &*t.upstream == upstream);
        let code = done.status.as_u16();
        let class = class_index(code);
        let method = method_index(done.method);
        match to {
            Some(to) if class < 3 => {
                to.requests[method][class]
                    .get_or_init(|| {
                        metrics::counter!(
                            "wasmgate_http_requests_total",
                            "route" => self.route.to_string(),
                            "method" => METHODS[method],
                            "status_class" => CLASSES[class],
                            "upstream" => upstream.to_string(),
                        )
                    })
                    .increment(1);
            }
            _ => {
                let mut labels = vec![
                    ("route", self.route.to_string()),
                    ("method", METHODS[method].to_string()),
                    ("status_class", CLASSES[class].to_string()),
                    ("upstream", upstream.to_string()),
                ];
                if class >= 3 {
                    labels.push(("status", code.to_string()));
                }
                metrics::counter!("wasmgate_http_requests_total", &labels).increment(1);
            }
        }
        match to {
            Some(to) => to.duration.record(done.elapsed),
            None => duration(&self.route, upstream).record(done.elapsed),
        }
        if done.request_bytes > 0 {
            self.request_bytes.increment(done.request_bytes);
        }
        if done.response_bytes > 0 {
            self.response_bytes.increment(done.response_bytes);
        }
    }
}

/// What the metrics need of a finished request.
pub struct Done<'a> {
    pub method: &'a Method,
    pub status: http::StatusCode,
    pub upstream: Option<&'a str>,
    pub elapsed: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// Requests no route matched (404, 405, and requests refused before routing).
pub fn unrouted() -> &'static RouteStats {
    static UNROUTED: LazyLock<RouteStats> =
        LazyLock::new(|| RouteStats::new(Arc::from(""), std::iter::empty()));
    &UNROUTED
}

/// One request in `wasmgate_http_requests_in_flight` until dropped.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        gauge().increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge().decrement(1.0);
    }
}

fn gauge() -> &'static Gauge {
    static IN_FLIGHT: LazyLock<Gauge> =
        LazyLock::new(|| metrics::gauge!("wasmgate_http_requests_in_flight"));
    &IN_FLIGHT
}
