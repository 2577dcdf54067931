//! Logging: `tracing` to stdout through a background writer, so a slow terminal or pipe never
//! stalls a worker thread. Access-log lines use the `access` target.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Log, LogFormat};

/// Installs the global subscriber; keep the guard alive until exit so buffered lines are written.
pub fn init(log: &Log) -> WorkerGuard {
    // `RUST_LOG` or `[log] level`: a level, or `target=level` pairs (`info,hyper=warn`).
    // `Targets` rather than `EnvFilter`: the same directives without span and field filters,
    // and without compiling a regex engine into the gateway.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .or_else(|| log.level.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match log.format {
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
        LogFormat::Text => registry.with(fmt).try_init(),
    };
    guard
}

static METRICS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// Installs the global metrics recorder behind the admin's `/metrics`. Call once, inside the
/// async runtime (it schedules the recorder's upkeep).
pub fn init_metrics() {
    let built = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .and_then(|b| b.install_recorder());
    match built {
        Ok(handle) => {
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    every.tick().await;
                    upkeep.run_upkeep();
                }
            });
            let _ = METRICS.set(handle);
        }
        Err(e) => tracing::warn!(error = %e, "metrics are off"),
    }
}

/// The Prometheus text exposition of every metric, if metrics are on.
pub fn render_metrics() -> Option<String> {
    METRICS.get().map(|h| h.render())
}
