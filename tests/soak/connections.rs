//! Ten thousand idle connections: what each costs, and that memory comes back when they close.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

const CONNECTIONS: usize = 10_000;

/// Opens `n` connections; with `request`, each makes one request and then stays open (kept
/// alive), else each stays silent.
async fn open(gw: &Gateway, n: usize, request: bool) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .expect("connect");
        if request {
            s.write_all(b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .expect("write");
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).await.expect("read");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        }
        conns.push(s);
    }
    conns
}

/// Waits (up to 10 s) until the gateway's RSS is back within `limit`; returns the last sample.
async fn rss_back_under(gw: &Gateway, limit: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = gw.rss_kib();
        if now <= limit || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the gateway's RSS settles (two samples 200 ms apart within 1%).
async fn settled_rss(gw: &Gateway) -> u64 {
    let mut last = gw.rss_kib();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = gw.rss_kib();
        if now.abs_diff(last) * 100 <= last {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_cost_little_and_memory_comes_back() {
    let up = Upstream::echo("up").await;
    let settings = Settings {
        // Idle connections need no upstream: allow more than half the descriptors.
        nofile: Some(20_000),
        ..Settings::server(
            "idle_timeout = \"120s\"\nheader_read_timeout = \"120s\"\nmax_connections = 12000",
        )
    };
    let gw = Gateway::start_with(&settings, &route_to(&up)).await;
    assert_eq!(get(&gw.url("/warm")).await.expect("warm").status, 200);
    let base = settled_rss(&gw).await;
    let mut rounds = Vec::new();
    for round in 0..3 {
        let request = round % 2 == 1;
        let conns = open(&gw, CONNECTIONS, request).await;
        let held = settled_rss(&gw).await;
        drop(conns);
        // Memory given back: close to where it started.
        let after = rss_back_under(&gw, back_to(base)).await;
        let per_conn = (held.saturating_sub(base) * 1024) / CONNECTIONS as u64;
        eprintln!(
            "round {round} ({}): RSS before {base} KiB, with {CONNECTIONS} idle connections {held} KiB ({per_conn} bytes each), after they closed {after} KiB",
            if request {
                "kept alive after a request"
            } else {
                "silent"
            }
        );
        rounds.push((held, after, per_conn));
    }
    for (i, (_, after, per_conn)) in rounds.iter().enumerate() {
        // A silent connection is only a socket and a small task until it speaks. One kept alive
        // after a request also holds hyper's two 8 KiB HTTP/1 buffers (read and write), fixed
        // in hyper 1.x: that is why its bound is higher than the 16 KiB goal.
        let bound = if i % 2 == 1 { 24 * 1024 } else { 16 * 1024 };
        assert!(
            *per_conn <= bound,
            "round {i}: {per_conn} bytes per idle connection (at most {bound})"
        );
        assert!(
            *after <= back_to(base),
            "round {i}: RSS {after} KiB after the connections closed, from {base} KiB before"
        );
    }
}

/// What "memory given back" means here: within 50% + 8 MiB of the RSS before (the allocator
/// keeps some, and the first connections grow a few tables for good).
fn back_to(base: u64) -> u64 {
    base + base / 2 + 8 * 1024
}
