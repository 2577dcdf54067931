//! What the gateway tells its operators: logs (`logging`) and Prometheus metrics (`metrics`,
//! with the resolved handles the request path updates).

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

pub use logging::init;
