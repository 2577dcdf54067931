//! Client connection metrics of one listener.

use std::sync::Arc;

use metrics::{Counter, Gauge};

const PROTOCOLS: [&str; 3] = ["unknown", "http1", "http2"];

pub struct ListenerStats {
    accepted: Counter,
    open: [Gauge; 3],
    handshakes: Counter,
    handshake_failures: Counter,
}

impl ListenerStats {
    /// `listener` is its bound address.
    pub fn new(listener: &str) -> Self {
        let gauge = |p: &'static str| metrics::gauge!("wasmgate_connections_open", "listener" => listener.to_string(), "protocol" => p);
        ListenerStats {
            accepted: metrics::counter!("wasmgate_connections_total", "listener" => listener.to_string()),
            open: PROTOCOLS.map(gauge),
            handshakes: metrics::counter!("wasmgate_tls_handshakes_total", "listener" => listener.to_string()),
            handshake_failures: metrics::counter!("wasmgate_tls_handshake_failures_total", "listener" => listener.to_string()),
        }
    }

    pub fn accepted(&self) {
        self.accepted.increment(1);
    }

    /// Counts a connection that speaks HTTP (past its TLS handshake, if any) as open until the
    /// returned guard drops.
    pub fn open(self: &Arc<Self>) -> OpenConnection {
        self.open[0].increment(1.0);
        OpenConnection {
            stats: self.clone(),
            protocol: 0,
        }
    }

    pub fn handshake(&self, ok: bool) {
        if ok {
            self.handshakes.increment(1);
        } else {
            self.handshake_failures.increment(1);
        }
    }
}

/// One open connection in `wasmgate_connections_open`, under its protocol once known.
pub struct OpenConnection {
    stats: Arc<ListenerStats>,
    protocol: usize,
}

impl OpenConnection {
    pub fn speaks(&mut self, http2: bool) {
        let now = if http2 { 2 } else { 1 };
        if now != self.protocol {
            self.stats.open[self.protocol].decrement(1.0);
            self.stats.open[now].increment(1.0);
            self.protocol = now;
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.stats.open[self.protocol].decrement(1.0);
    }
}
