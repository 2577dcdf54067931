//! What the gateway tells its operators: logs (`logging`, `access`), Prometheus metrics
//! (`metrics`, with the resolved handles the request path updates) and OpenTelemetry traces
//! (`traces`).

pub mod access;
pub mod connections;
pub mod histogram;
pub mod kv;
pub mod logging;
pub mod metrics;
pub mod plugins;
pub mod reloads;
pub mod requests;
pub mod targets;
pub mod traces;

pub use logging::init;
