//! OpenTelemetry traces as a collector sees them: a real OTLP/HTTP receiver here decodes what
//! the gateway exports with the `opentelemetry-proto` types. One trace per request, continued
//! from the client and sent upstream; a span per plugin call and per upstream try; sampling by
//! the caller and by ratio; a collector that is down costs dropped spans, not requests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use crate::harness::*;

/// Spans received, each with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP traces receiver.
struct Collector {
    server: Upstream,
    spans: Received,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Received = Arc::default();
        let store = spans.clone();
        let server = Upstream::serve("collector", move |req| {
            let store = store.clone();
            async move {
                assert_eq!(req.uri().path(), "/v1/traces");
                assert_eq!(
                    req.headers()["content-type"],
                    "application/x-protobuf",
                    "OTLP/HTTP protobuf"
                );
                let body = req.into_body().collect().await.expect("body").to_bytes();
                let export = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                let mut store = store.lock().expect("lock");
                for rs in export.resource_spans {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| attr(&r.attributes, "service.name"))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            store.push((service.clone(), span));
                        }
                    }
                }
                answer("application/x-protobuf", &[], "")
            }
        })
        .await;
        Collector { server, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.server.addr)
    }

    /// What arrived so far: each span with its service name.
    fn received(&self) -> Vec<(String, Span)> {
        self.spans.lock().expect("lock").clone()
    }

    /// The spans of `trace` (hex), once its server span arrived.
    async fn trace(&self, trace: &str) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<Span> = self
                .received()
                .into_iter()
                .map(|(_, s)| s)
                .filter(|s| hex(&s.trace_id) == trace)
                .collect();
            if spans.iter().any(|s| s.kind == SpanKind::Server as i32) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no server span of trace {trace}; got {} spans",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn trace_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|(_, s)| hex(&s.trace_id))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A string or integer attribute, as text.
fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match v.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn tracing_block(endpoint: &str, keys: &str) -> String {
    format!("[tracing]\nendpoint = \"{endpoint}\"\nexport_interval = \"50ms\"\n{keys}\n")
}

/// A GET of `path` from a caller that sampled `trace`; it must succeed.
async fn sampled_get(gw: &Gateway, path: &str, trace: &str) {
    let caller = format!("00-{trace}-2222222222222222-01");
    let r = get_with(&gw.url(path), &[("traceparent", &caller)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The `(trace id, span id, flags)` of a `traceparent`.
fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    assert_eq!(p[0], "00", "{traceparent}");
    (p[1].into(), p[2].into(), p[3].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_with_its_plugin_calls_and_upstream_tries() {
    let collector = Collector::start().await;
    // The first try gets a 503 (retried), the second the echo; each keeps its traceparent.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (log, tries) = (
        seen.clone(),
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    let echo = echo_handler("flaky".into());
    let up = Upstream::serve("flaky", move |req| {
        let tp = req.headers()["traceparent"]
            .to_str()
            .expect("ascii")
            .to_string();
        log.lock().expect("lock").push(tp);
        let first = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
        let reply = echo(req);
        async move {
            if first {
                let mut r = answer("text/plain", &[], "busy");
                *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                r
            } else {
                reply.await
            }
        }
    })
    .await;
    let gw = Gateway::start(
        &(tracing_block(
            &collector.endpoint(),
            "service_name = \"edge-gw\"\nsample_ratio = 0.0",
        ) + &upstream_block(
            "flaky",
            &[&up],
            "retry = { attempts = 2, statuses = [503], backoff = \"0s\" }",
        ) + &plugin_block("request-id", "request_id", "")
            + &plugin_block("set-context", "set_context", "")
            + r#"
[[routes]]
name = "api"
path_prefix = "/api"
upstream = "flaky"
plugins = [
  { name = "request-id" },
  { name = "set-context", config = { key = "consumer", from_header = "x-user" } },
]
"#),
    )
    .await;

    let (trace, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = get_with(
        &gw.url("/api/orders"),
        &[
            ("traceparent", &format!("00-{trace}-{caller}-01")),
            ("tracestate", "vendor=abc"),
            ("x-user", "alice"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The request-id plugin continued the gateway's trace: one trace, not two.
    let echoed = r
        .header("traceparent")
        .expect("request-id echoes the trace");
    assert_eq!(parts(echoed).0, trace);
    assert_eq!(r.json()["headers"]["tracestate"], "vendor=abc");

    let spans = collector.trace(trace).await;
    let kind = |k: SpanKind| spans.iter().filter(move |s| s.kind == k as i32);
    let servers: Vec<&Span> = kind(SpanKind::Server).collect();
    assert_eq!(servers.len(), 1, "{spans:#?}");
    let server = servers[0];
    assert_eq!(
        hex(&server.parent_span_id),
        caller,
        "continues the caller's span"
    );
    assert_eq!(server.name, "GET api");
    assert_eq!(
        attr(&server.attributes, "http.route").as_deref(),
        Some("api")
    );
    assert_eq!(
        attr(&server.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&server.attributes, "wasmgate.upstream").as_deref(),
        Some("flaky")
    );
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    let server_id = hex(&server.span_id);
    for s in &spans {
        if s.kind != SpanKind::Server as i32 {
            assert_eq!(
                hex(&s.parent_span_id),
                server_id,
                "{} is the request's child",
                s.name
            );
            assert!(
                s.start_time_unix_nano >= server.start_time_unix_nano,
                "{}",
                s.name
            );
            assert!(
                s.end_time_unix_nano <= server.end_time_unix_nano,
                "{}",
                s.name
            );
        }
    }

    // A span for each plugin call, named by plugin and phase.
    let mut calls: Vec<(String, String)> = kind(SpanKind::Internal)
        .map(|s| {
            (
                attr(&s.attributes, "wasmgate.plugin").expect("plugin"),
                attr(&s.attributes, "wasmgate.phase").expect("phase"),
            )
        })
        .collect();
    calls.sort();
    let expected = [
        ("request-id", "request_headers"),
        ("request-id", "response_headers"),
        ("set-context", "request_headers"),
    ]
    .map(|(p, ph)| (p.to_string(), ph.to_string()));
    assert_eq!(calls, expected);

    // A span for each try, in order; the upstream saw each try's own span as its parent.
    let mut upstream_tries: Vec<&Span> = kind(SpanKind::Client).collect();
    upstream_tries.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(upstream_tries.len(), 2, "{spans:#?}");
    let status = |s: &Span| attr(&s.attributes, "http.response.status_code");
    assert_eq!(status(upstream_tries[0]).as_deref(), Some("503"));
    assert_eq!(status(upstream_tries[1]).as_deref(), Some("200"));
    assert_eq!(
        attr(&upstream_tries[1].attributes, "http.request.resend_count").as_deref(),
        Some("1")
    );
    let failed = upstream_tries[0].status.as_ref().expect("status");
    assert_eq!(failed.code, 2, "a 503 try is an error (STATUS_CODE_ERROR)");
    let sent = seen.lock().expect("lock").clone();
    assert_eq!(sent.len(), 2);
    for (header, span) in sent.iter().zip(&upstream_tries) {
        assert_eq!(
            parts(header),
            (trace.into(), hex(&span.span_id), "01".into())
        );
    }
    let services: Vec<String> = collector.received().into_iter().map(|(s, _)| s).collect();
    assert!(services.iter().all(|s| s == "edge-gw"), "{services:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_follows_the_caller_then_the_ratio_and_unsampled_requests_still_carry_a_trace() {
    let collector = Collector::start().await;
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(
        &(tracing_block(&collector.endpoint(), "sample_ratio = 0.0") + &route_to(&up)),
    )
    .await;

    // No caller: a new trace, not sampled (ratio 0), still sent upstream.
    let r = get_with(&gw.url("/fresh"), &[]).await;
    let fresh = r.json()["headers"]["traceparent"]
        .as_str()
        .expect("a traceparent upstream")
        .to_string();
    let (fresh_trace, _, flags) = parts(&fresh);
    assert_eq!(flags, "00");
    assert_eq!(fresh_trace.len(), 32);

    // A caller that did not sample: its trace goes on, unsampled.
    let quiet = "0af7651916cd43dd8448eb211c80319c";
    let r = get_with(
        &gw.url("/quiet"),
        &[("traceparent", &format!("00-{quiet}-b7ad6b7169203331-00"))],
    )
    .await;
    let sent = r.json()["headers"]["traceparent"]
        .as_str()
        .expect("traceparent")
        .to_string();
    let (t, span, flags) = parts(&sent);
    assert_eq!((t.as_str(), flags.as_str()), (quiet, "00"));
    assert_ne!(span, "b7ad6b7169203331", "the gateway is a hop of its own");

    // A caller that sampled: recorded despite the ratio.
    let loud = "11111111111111111111111111111111";
    sampled_get(&gw, "/loud", loud).await;
    let spans = collector.trace(loud).await;
    assert_eq!(spans.len(), 2, "the request and its try: {spans:#?}");
    let ids = collector.trace_ids();
    assert!(
        !ids.contains(&fresh_trace) && !ids.contains(&quiet.to_string()),
        "unsampled traces were exported: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_dropped_spans_never_requests() {
    // One that takes the connection and never answers: the export waits, the queue fills.
    let (hanging, _task) = hanging_server().await;
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(
        &(tracing_block(
            &format!("http://{hanging}/v1/traces"),
            "queue_size = 4\nbatch_size = 2\nexport_timeout = \"60s\"",
        ) + &route_to(&up)),
    )
    .await;
    for i in 0..50 {
        let r = get(&gw.url(&format!("/r{i}"))).await.expect("answered");
        assert_eq!(r.status, 200);
    }
    // Each request is two spans (the request, its try); two requests fill the queue of four.
    let want = (50 - 2) * 2;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = gw.metrics().await;
        let dropped = metric_line(
            &scrape,
            "wasmgate_trace_spans_dropped_total",
            &["reason=\"queue_full\""],
        )
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        if dropped == Some(want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dropped {dropped:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One that refuses: each export fails, is counted, and said once in the log.
    let closed = free_port();
    let gw = Gateway::start(
        &(tracing_block(&format!("http://127.0.0.1:{closed}/v1/traces"), "") + &route_to(&up)),
    )
    .await;
    for i in 0..3 {
        let r = get(&gw.url(&format!("/r{i}"))).await.expect("answered");
        assert_eq!(r.status, 200);
    }
    gw.wait_log("trace export failed").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw
        .metrics()
        .await
        .contains("wasmgate_trace_spans_dropped_total{reason=\"export_failed\"} 6")
    {
        assert!(Instant::now() < deadline, "{}", gw.metrics().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gw.log().matches("trace export failed").count(),
        1,
        "once per outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_stops_sends_the_spans_it_still_holds() {
    let collector = Collector::start().await;
    let up = Upstream::echo("up").await;
    // Batches would wait an hour: only the shutdown's flush sends this one.
    let mut gw = Gateway::start(
        &(format!(
            "[tracing]\nendpoint = \"{}\"\nexport_interval = \"1h\"\n",
            collector.endpoint()
        ) + &route_to(&up)),
    )
    .await;
    let last = "33333333333333333333333333333333";
    sampled_get(&gw, "/last", last).await;
    assert!(
        collector.trace_ids().is_empty(),
        "nothing sent before the stop"
    );
    gw.signal("TERM");
    assert!(
        gw.wait_exit(Duration::from_secs(10)).await,
        "the gateway exits"
    );
    let spans = collector.trace(last).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
}
