//! The Prometheus recorder behind the admin's `/metrics`, and the gateway's metric families with
//! their HELP text. Hot paths hold resolved handles (`requests.rs`, `targets.rs`, `plugins.rs`):
//! an update is an atomic add, with no label hashing per request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{describe_counter, describe_gauge};

static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family the recorder holds, so each has HELP. State read at scrape time (pools,
/// health, plugin instances, the config generation) is written by the admin (`admin/metrics.rs`).
const FAMILIES: &[(&str, Kind, &str)] = &[
    // requests
    (
        "wasmgate_http_requests_total",
        Kind::Counter,
        "Requests answered, by route, method, status class (and status code for 4xx/5xx) and upstream (empty: answered by the gateway or a plugin).",
    ),
    (
        "wasmgate_http_request_duration_seconds",
        Kind::Histogram,
        "Time from a request's arrival to the end of its response body, by route and upstream.",
    ),
    (
        "wasmgate_http_request_body_bytes_total",
        Kind::Counter,
        "Request body bytes received from clients, by route.",
    ),
    (
        "wasmgate_http_response_body_bytes_total",
        Kind::Counter,
        "Response body bytes sent to clients, by route.",
    ),
    (
        "wasmgate_http_requests_in_flight",
        Kind::Gauge,
        "Requests received and not yet answered to the end of their body.",
    ),
    (
        "wasmgate_connections_open",
        Kind::Gauge,
        "Client connections open, by listener and protocol (http1, http2; unknown before the first bytes).",
    ),
    (
        "wasmgate_connections_total",
        Kind::Counter,
        "Client connections accepted, by listener.",
    ),
    (
        "wasmgate_tls_handshakes_total",
        Kind::Counter,
        "TLS handshakes completed with clients, by listener.",
    ),
    (
        "wasmgate_tls_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes with clients that failed or timed out, by listener.",
    ),
    // upstreams
    (
        "wasmgate_upstream_requests_total",
        Kind::Counter,
        "Tries sent to upstream targets that got a response, by upstream, target and status class.",
    ),
    (
        "wasmgate_upstream_failures_total",
        Kind::Counter,
        "Tries at upstream targets that got no response, by upstream, target and kind (connect, timeout, reset).",
    ),
    (
        "wasmgate_upstream_request_duration_seconds",
        Kind::Histogram,
        "Time from sending a try to its response head (or its failure), by upstream and target.",
    ),
    (
        "wasmgate_upstream_retries_total",
        Kind::Counter,
        "Tries made again, by upstream and reason.",
    ),
    (
        "wasmgate_upstream_fallbacks_total",
        Kind::Counter,
        "Requests an unavailable upstream sent to its fallback, by upstream and fallback kind.",
    ),
    (
        "wasmgate_mirror_requests_total",
        Kind::Counter,
        "Copies of requests sent to a mirror upstream, by upstream and result.",
    ),
    // plugins
    (
        "wasmgate_plugin_calls_total",
        Kind::Counter,
        "Plugin calls, by plugin, route and phase.",
    ),
    (
        "wasmgate_plugin_call_duration_seconds",
        Kind::Histogram,
        "Time of one plugin call, by plugin, route and phase.",
    ),
    (
        "wasmgate_plugin_failures_total",
        Kind::Counter,
        "Plugin calls cut off, by plugin, route, kind (trap, deadline, memory) and fail mode.",
    ),
    (
        "wasmgate_plugin_log_dropped_total",
        Kind::Counter,
        "Log-phase records dropped because the plugin's queue was full, by plugin and route.",
    ),
    (
        "wasmgate_kv_operations_total",
        Kind::Counter,
        "Plugin key-value operations, by backend, operation and result (ok, error, unavailable).",
    ),
    (
        "wasmgate_kv_operation_duration_seconds",
        Kind::Histogram,
        "Time of one key-value operation, by backend and operation.",
    ),
    // traces
    (
        "wasmgate_trace_spans_exported_total",
        Kind::Counter,
        "Spans the OTLP collector accepted.",
    ),
    (
        "wasmgate_trace_spans_dropped_total",
        Kind::Counter,
        "Spans not exported, by reason: queue_full (the export queue was full) or export_failed (the collector refused or did not answer).",
    ),
    // config
    (
        "wasmgate_config_reloads_total",
        Kind::Counter,
        "Reloads tried, by result (success, failure).",
    ),
    (
        "wasmgate_config_last_reload_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last reload tried.",
    ),
    (
        "wasmgate_config_last_reload_success",
        Kind::Gauge,
        "1 if the last reload tried was applied, 0 if it was refused.",
    ),
    (
        "wasmgate_build_info",
        Kind::Gauge,
        "1, with the gateway's version.",
    ),
];

/// Installs the global recorder behind the admin's `/metrics`. Call once, inside the async
/// runtime (it schedules the recorder's upkeep), and before anything resolves a handle: a
/// handle taken earlier writes nowhere.
pub fn init() {
    let built = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&super::histogram::BUCKETS)
        .and_then(|b| b.install_recorder());
    let handle = match built {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off");
            return;
        }
    };
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let _ = HANDLE.set(handle);
    for (name, kind, help) in FAMILIES {
        match kind {
            Kind::Counter => describe_counter!(*name, *help),
            Kind::Gauge => describe_gauge!(*name, *help),
            // Ours (`histogram.rs`), rendered with their HELP by `render`.
            Kind::Histogram => {}
        }
    }
    metrics::gauge!("wasmgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Per-request metrics (`[metrics] enabled`): requests, tries, plugin calls, kv operations.
static PER_REQUEST: AtomicBool = AtomicBool::new(true);

/// Set by each config generation as it is built.
pub fn count_requests(on: bool) {
    PER_REQUEST.store(on, Ordering::Relaxed);
}

pub fn counting_requests() -> bool {
    PER_REQUEST.load(Ordering::Relaxed)
}

/// The Prometheus text exposition of every metric, if metrics are on.
pub fn render() -> Option<String> {
    let mut out = HANDLE.get()?.render();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    super::histogram::render(&mut out, help);
    Some(out)
}

fn help(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("A wasmgate histogram.", |(_, _, help)| help)
}

/// The status class label of a status code.
pub fn status_class(status: u16) -> &'static str {
    CLASSES[class_index(status)]
}

pub(super) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub(super) fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}
