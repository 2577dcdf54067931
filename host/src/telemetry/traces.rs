//! OpenTelemetry traces (`[tracing]`): a server span per request, with a child span for each
//! plugin call and each upstream try, exported over OTLP/HTTP by a task of its own.
//!
//! The request path decides sampling, makes ids and, only for a sampled request, keeps its
//! finished spans. A bounded queue stands between it and the exporter: a slow or absent
//! collector costs dropped spans (counted in `wasmgate_trace_spans_dropped_total`), never a
//! request that waits.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanExporter, SpanLinks,
};
use tokio::sync::mpsc;

use crate::config;

/// The W3C header that carries a trace from hop to hop.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("the OTLP exporter could not be built: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// One config generation's tracing: its sampler and the queue to its export task. The task
/// ends, after sending what is queued, once the last request of the generation let go of it.
pub struct Tracer {
    pub config: config::Tracing,
    sampler: Sampler,
    ids: RandomIdGenerator,
    propagator: TraceContextPropagator,
    scope: InstrumentationScope,
    queue: mpsc::UnboundedSender<Queued>,
    /// Spans queued or being exported: the queue's bound is on this count.
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// Builds the exporter and starts its task (so: inside the async runtime).
    pub fn start(c: &config::Tracing) -> Result<Arc<Tracer>, TraceError> {
        let client =
            opentelemetry_http::hyper::HyperClient::with_default_connector(c.export_timeout, None);
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(c.endpoint.clone())
            .with_timeout(c.export_timeout)
            .with_headers(c.headers.clone().into_iter().collect())
            .build()?;
        exporter.set_resource(
            &Resource::builder()
                .with_service_name(c.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let ratio = Sampler::TraceIdRatioBased(c.sample_ratio);
        let sampler = if c.parent_based {
            Sampler::ParentBased(Box::new(ratio))
        } else {
            ratio
        };
        let (queue, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(export(
            exporter,
            rx,
            queued.clone(),
            c.batch_size,
            c.export_interval,
            c.export_timeout,
        ));
        Ok(Arc::new(Tracer {
            config: c.clone(),
            sampler,
            ids: RandomIdGenerator::default(),
            propagator: TraceContextPropagator::new(),
            scope: InstrumentationScope::builder("wasmgate")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            queue,
            queued,
        }))
    }

    /// The trace of a request with these headers: the caller's (`traceparent`, `tracestate`)
    /// continued, or a new one; sampled as the sampler says.
    pub fn begin(self: &Arc<Self>, headers: &HeaderMap) -> RequestTrace {
        let caller = headers
            .contains_key(TRACEPARENT)
            .then(|| self.propagator.extract(&HeaderExtractor(headers)))
            .filter(|cx| cx.span().span_context().is_valid());
        let (trace_id, parent, state) = match &caller {
            Some(cx) => {
                let sc = cx.span().span_context().clone();
                (sc.trace_id(), Some(sc.span_id()), sc.trace_state().clone())
            }
            None => (self.ids.new_trace_id(), None, TraceState::NONE),
        };
        let decision = self
            .sampler
            .should_sample(caller.as_ref(), trace_id, "", &SpanKind::Server, &[], &[])
            .decision;
        let sampled = decision == SamplingDecision::RecordAndSample;
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::NOT_SAMPLED
        };
        let span = SpanContext::new(trace_id, self.ids.new_span_id(), flags, false, state);
        RequestTrace {
            traceparent: traceparent(&span, span.span_id()),
            span,
            parent,
            start: SystemTime::now(),
            recording: sampled.then(|| Recording {
                tracer: self.clone(),
                children: Mutex::default(),
            }),
        }
    }

    /// Queues a request's spans, or counts them dropped when the queue is full.
    fn enqueue(&self, spans: Vec<SpanData>) {
        let n = spans.len();
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.config.queue_size || self.queue.send(Queued::Spans(spans)).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            dropped("queue_full", n);
        }
    }

    /// Exports what is queued now; for a gateway that stops, so its last requests are not lost.
    /// Waits at most `within`.
    pub async fn flush(&self, within: Duration) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queue.send(Queued::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(within, wait).await;
        }
    }
}

/// What the export task is handed.
enum Queued {
    /// A request's spans.
    Spans(Vec<SpanData>),
    /// Export everything before this now, then say so.
    Flush(tokio::sync::oneshot::Sender<()>),
}

fn dropped(reason: &'static str, n: usize) {
    metrics::counter!("wasmgate_trace_spans_dropped_total", "reason" => reason).increment(n as u64);
}

/// Sends queued spans in batches of `batch` at most, each at most `interval` after its first
/// span arrived, one export at a time.
async fn export(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    queued: Arc<AtomicUsize>,
    batch: usize,
    interval: Duration,
    timeout: Duration,
) {
    let mut out = Outbox {
        exporter,
        queued,
        batch,
        timeout,
        pending: Vec::new(),
        failing: false,
    };
    let mut open = true;
    while open {
        let mut flushed = None;
        match rx.recv().await {
            Some(Queued::Spans(spans)) => out.pending.extend(spans),
            Some(Queued::Flush(done)) => flushed = Some(done),
            None => break,
        }
        let due = tokio::time::Instant::now() + interval;
        while flushed.is_none() && out.pending.len() < batch {
            tokio::select! {
                more = rx.recv() => match more {
                    Some(Queued::Spans(spans)) => out.pending.extend(spans),
                    Some(Queued::Flush(done)) => flushed = Some(done),
                    None => {
                        open = false;
                        break;
                    }
                },
                () = tokio::time::sleep_until(due) => break,
            }
        }
        out.send_all().await;
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

/// The export task's side: spans taken from the queue and the exporter they go through.
struct Outbox {
    exporter: opentelemetry_otlp::SpanExporter,
    queued: Arc<AtomicUsize>,
    batch: usize,
    timeout: Duration,
    pending: Vec<SpanData>,
    /// The last export failed: the next failure is not logged again.
    failing: bool,
}

impl Outbox {
    async fn send_all(&mut self) {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.batch);
            let spans: Vec<SpanData> = self.pending.drain(..n).collect();
            let timeout = self.timeout;
            let result = match tokio::time::timeout(timeout, self.exporter.export(spans)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {timeout:?} (export_timeout)")),
            };
            self.queued.fetch_sub(n, Ordering::Relaxed);
            match result {
                Ok(()) => {
                    metrics::counter!("wasmgate_trace_spans_exported_total").increment(n as u64);
                    if self.failing {
                        tracing::info!("trace export works again");
                        self.failing = false;
                    }
                }
                Err(e) => {
                    dropped("export_failed", n);
                    // Once per outage, not once per batch.
                    if !self.failing {
                        tracing::warn!(error = %e, "trace export failed; spans are dropped until the collector answers");
                        self.failing = true;
                    }
                }
            }
        }
    }
}

/// One request's trace: its server span's context and, when sampled, the finished child spans.
pub struct RequestTrace {
    /// The server span (the request as the gateway handled it).
    span: SpanContext,
    /// The server span's `traceparent`, made once.
    traceparent: HeaderValue,
    /// The caller's span, when the request came with a valid `traceparent`.
    parent: Option<SpanId>,
    start: SystemTime,
    /// Present when the request is sampled: only then is the tracer shared with it.
    recording: Option<Recording>,
}

/// A sampled request's tracer and its finished child spans.
struct Recording {
    tracer: Arc<Tracer>,
    children: Mutex<Vec<SpanData>>,
}

/// A child span begun: its id and start.
pub struct Begun {
    id: SpanId,
    start: SystemTime,
}

impl Begun {
    pub fn id(&self) -> SpanId {
        self.id
    }
}

/// What the server span says of the request, known when its response body ends.
pub struct Served<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub status: u16,
    pub upstream: Option<&'a str>,
    pub client: std::net::IpAddr,
    pub answered_by: Option<&'a str>,
    pub complete: bool,
}

impl RequestTrace {
    pub fn sampled(&self) -> bool {
        self.recording.is_some()
    }

    /// The server span's id.
    pub fn span_id(&self) -> SpanId {
        self.span.span_id()
    }

    /// The trace id, as the access log shows it.
    pub fn trace_id(&self) -> TraceId {
        self.span.trace_id()
    }

    /// `traceparent` naming the server span: what the chain's plugins see.
    pub fn traceparent(&self) -> HeaderValue {
        self.traceparent.clone()
    }

    /// `traceparent` naming `span` of this trace.
    pub fn header(&self, span: SpanId) -> HeaderValue {
        if span == self.span.span_id() {
            return self.traceparent.clone();
        }
        traceparent(&self.span, span)
    }

    /// Starts a child span, when the request is sampled.
    pub fn begin(&self) -> Option<Begun> {
        let r = self.recording.as_ref()?;
        Some(Begun {
            id: r.tracer.ids.new_span_id(),
            start: SystemTime::now(),
        })
    }

    /// A plugin call of `phase`, begun at `begun`; `failure` is the plugin's own message.
    pub fn plugin_call(
        &self,
        begun: Begun,
        plugin: &str,
        route: &str,
        phase: &'static str,
        failure: Option<String>,
    ) {
        self.child(
            begun,
            format!("plugin {plugin} {phase}"),
            SpanKind::Internal,
            vec![
                KeyValue::new("wasmgate.plugin", plugin.to_string()),
                KeyValue::new("wasmgate.phase", phase),
                KeyValue::new("wasmgate.route", route.to_string()),
            ],
            failure,
        );
    }

    /// A try at an upstream target.
    pub fn upstream_try(&self, begun: Begun, t: Try<'_>) {
        let mut attributes = vec![
            KeyValue::new("http.request.method", t.method.to_string()),
            KeyValue::new("url.full", t.url.to_string()),
            KeyValue::new("server.address", t.target.to_string()),
            KeyValue::new("wasmgate.upstream", t.upstream.to_string()),
        ];
        if t.attempt > 1 {
            attributes.push(KeyValue::new(
                "http.request.resend_count",
                i64::from(t.attempt - 1),
            ));
        }
        let failure = match t.outcome {
            Ok(status) => {
                attributes.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                (status >= 500).then(|| status.to_string())
            }
            Err(kind) => {
                attributes.push(KeyValue::new("error.type", kind.to_string()));
                Some(kind.to_string())
            }
        };
        self.child(
            begun,
            format!("{} {}", t.method, t.upstream),
            SpanKind::Client,
            attributes,
            failure,
        );
    }

    fn child(
        &self,
        begun: Begun,
        name: String,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        failure: Option<String>,
    ) {
        let Some(r) = &self.recording else {
            return;
        };
        let span = self.span_data(
            &r.tracer,
            SpanContext::new(
                self.span.trace_id(),
                begun.id,
                self.span.trace_flags(),
                false,
                self.span.trace_state().clone(),
            ),
            self.span.span_id(),
            false,
            (name, kind),
            (begun.start, SystemTime::now()),
            attributes,
            failure.map_or(Status::Unset, Status::error),
        );
        if let Ok(mut c) = r.children.lock() {
            c.push(span);
        }
    }

    /// Ends the server span and queues it with its children.
    pub fn finish(&self, s: Served<'_>) {
        let Some(r) = &self.recording else {
            return;
        };
        let mut spans = r
            .children
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let mut attributes = vec![
            KeyValue::new("http.request.method", s.method.to_string()),
            KeyValue::new("url.path", s.path.to_string()),
            KeyValue::new("http.response.status_code", i64::from(s.status)),
            KeyValue::new("client.address", s.client.to_string()),
        ];
        let name = match s.route {
            Some(route) => {
                attributes.push(KeyValue::new("http.route", route.to_string()));
                format!("{} {route}", s.method)
            }
            None => s.method.to_string(),
        };
        if let Some(u) = s.upstream {
            attributes.push(KeyValue::new("wasmgate.upstream", u.to_string()));
        }
        if let Some(p) = s.answered_by {
            attributes.push(KeyValue::new("wasmgate.answered_by", p.to_string()));
        }
        if !s.complete {
            attributes.push(KeyValue::new("wasmgate.response_complete", false));
        }
        // A server span is an error for a 5xx only: a 4xx is the client's (OTel HTTP
        // conventions).
        let status = if s.status >= 500 {
            Status::error(s.status.to_string())
        } else {
            Status::Unset
        };
        spans.push(self.span_data(
            &r.tracer,
            self.span.clone(),
            self.parent.unwrap_or(SpanId::INVALID),
            self.parent.is_some(),
            (name, SpanKind::Server),
            (self.start, SystemTime::now()),
            attributes,
            status,
        ));
        r.tracer.enqueue(spans);
    }

    #[allow(clippy::too_many_arguments)]
    fn span_data(
        &self,
        tracer: &Tracer,
        span_context: SpanContext,
        parent_span_id: SpanId,
        parent_span_is_remote: bool,
        (name, span_kind): (String, SpanKind),
        (start_time, end_time): (SystemTime, SystemTime),
        attributes: Vec<KeyValue>,
        status: Status,
    ) -> SpanData {
        SpanData {
            span_context,
            parent_span_id,
            parent_span_is_remote,
            span_kind,
            name: Cow::Owned(name),
            start_time,
            end_time,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: tracer.scope.clone(),
        }
    }
}

/// The W3C `traceparent` of `span` in the trace of `cx`.
fn traceparent(cx: &SpanContext, span: SpanId) -> HeaderValue {
    let text = format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        span,
        cx.trace_flags().to_u8()
    );
    // Hex digits and dashes only.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One try at an upstream target, as its span tells it.
pub struct Try<'a> {
    pub method: &'a http::Method,
    pub url: &'a http::Uri,
    pub target: &'a str,
    pub upstream: &'a str,
    /// 1 for the first try.
    pub attempt: u32,
    /// The response status, or why there was none.
    pub outcome: Result<u16, &'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(ratio: f64, parent_based: bool) -> Arc<Tracer> {
        let c: config::Tracing = toml::from_str(&format!(
            "endpoint = \"http://127.0.0.1:9/v1/traces\"\nsample_ratio = {ratio}\nparent_based = {parent_based}"
        ))
        .expect("config");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        Tracer::start(&c).expect("tracer")
    }

    fn headers(traceparent: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_str(traceparent).expect("value"),
        );
        h.insert("tracestate", HeaderValue::from_static("vendor=abc"));
        h
    }

    #[test]
    fn continues_the_callers_trace_and_keeps_its_sampled_flag() {
        let t = tracer(0.0, true);
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = t.begin(&headers(caller));
        assert!(trace.sampled(), "a sampled caller is followed");
        assert_eq!(
            trace.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace.parent, SpanId::from_hex("00f067aa0ba902b7").ok());
        let tp = trace.traceparent();
        let tp = tp.to_str().expect("ascii");
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(tp.ends_with("-01"), "{tp}");
        assert!(!tp.contains("00f067aa0ba902b7"), "a span of our own: {tp}");
        // What we send is what a W3C reader (the SDK's propagator) reads back.
        let back = t.begin(&headers(tp));
        assert_eq!(back.trace_id(), trace.trace_id());
        assert_eq!(back.parent, Some(trace.span.span_id()));
        assert_eq!(trace.span.trace_state().get("vendor"), Some("abc"));

        let unsampled = t.begin(&headers(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ));
        assert!(!unsampled.sampled());
        assert!(unsampled.begin().is_none(), "no child spans unsampled");
        let tp = unsampled.traceparent();
        assert!(tp.to_str().expect("ascii").ends_with("-00"));
    }

    #[test]
    fn new_traces_follow_the_ratio_and_bad_headers_start_one() {
        assert!(!tracer(0.0, true).begin(&HeaderMap::new()).sampled());
        assert!(tracer(1.0, true).begin(&HeaderMap::new()).sampled());
        // Not parent based: the ratio decides even for a sampled caller.
        let caller = headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert!(!tracer(0.0, false).begin(&caller).sampled());
        let bad = tracer(1.0, true).begin(&headers("00-zz-00f067aa0ba902b7-01"));
        assert!(bad.parent.is_none());
        assert_ne!(bad.trace_id(), TraceId::INVALID);
    }
}
