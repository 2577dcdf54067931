//! Logging: `tracing` to stdout through a background writer, so a slow terminal or pipe never
//! stalls a worker thread. Access-log lines have their own writer (`access.rs`).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber: `level` is `[log] level`, lines as JSON or text. Keep the
/// guard alive until exit so buffered lines are written.
pub fn init(level: &str, json: bool) -> WorkerGuard {
    // `RUST_LOG` or `[log] level`: a level, or `target=level` pairs (`info,hyper=warn`).
    // `Targets` rather than `EnvFilter`: the same directives without span and field filters,
    // and without compiling a regex engine into the gateway.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .or_else(|| level.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry.with(fmt.json().flatten_event(true)).try_init()
    } else {
        registry.with(fmt).try_init()
    };
    guard
}
