//! End-to-end tests: the real `wasmgate` binary, real upstream servers, real clients.

mod harness;
mod jwt;

mod access_log;
mod authoring;
mod balance;
mod client_ip;
mod compress;
mod conformance;
mod contract;
mod dashboard;
mod dns;
mod edge;
mod edge_tls;
mod errors;
mod etcd;
mod handlers;
mod lifecycle;
mod localize;
mod metrics;
mod plugins;
mod policies;
mod protocols;
mod resilience;
mod routing;
mod seeds;
mod traces;
mod traffic;
mod transform;
mod validation;
