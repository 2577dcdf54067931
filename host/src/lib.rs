//! wasmgate: an API gateway whose policy steps are sandboxed WebAssembly components.
//! The host owns connections, routing, pooling and balancing; see `docs/ARCHITECTURE.md`.

pub mod admin;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod demo;
pub mod dry_run;
pub mod error;
pub mod etcd;
pub mod gateway;
pub mod pem;
pub mod plugin;
pub mod proxy;
pub mod reload;
pub mod router;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod upstream;
