//! Targets written as DNS names, resolved by the gateway against a DNS server the test runs:
//! addresses that appear join the balancer and those that vanish leave it, with no reload and
//! no failed request; SRV records name targets with their ports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

async fn targets(gw: &Gateway, upstream: &str) -> Vec<String> {
    let all = get(&gw.admin_url("/upstreams"))
        .await
        .expect("admin")
        .json();
    all[upstream]["targets"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["resolved"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_targets(gw: &Gateway, upstream: &str, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = targets(gw, upstream).await;
        if t.len() == want {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{upstream} never had {want} targets: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_follow_dns_with_no_failed_request() {
    let a = Upstream::echo_at("127.0.0.2:0", "a").await;
    let port = a.addr.port();
    let b = Upstream::echo_at(&format!("127.0.0.3:{port}"), "b").await;
    let dns = DnsServer::start().await;
    dns.set_ips("api.test", &["127.0.0.2"]);
    let gw = Gateway::start_with(
        &Settings::server(&format!("dns_servers = [\"{}\"]", dns.addr)),
        &format!(
            "[upstreams.api]\ntargets = [\"api.test:{port}\"]\ndns_interval = \"100ms\"\n\n\
             [[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\n"
        ),
    )
    .await;
    wait_targets(&gw, "api", 1).await;

    // Clients keep sending through every change.
    let stop = Arc::new(AtomicBool::new(false));
    let (url, s) = (gw.url("/who"), stop.clone());
    let client = tokio::spawn(async move {
        let mut failed = Vec::new();
        let mut served = std::collections::BTreeSet::new();
        while !s.load(Ordering::Relaxed) {
            match get(&url).await {
                Ok(r) if r.status == 200 => {
                    served.insert(r.json()["upstream"].as_str().unwrap_or("").to_string());
                }
                Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                Err(e) => failed.push(e.to_string()),
            }
        }
        (failed, served)
    });

    dns.set_ips("api.test", &["127.0.0.2", "127.0.0.3"]);
    let both = wait_targets(&gw, "api", 2).await;
    assert!(both.contains(&format!("127.0.0.3:{port}")), "{both:?}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let r = get(&gw.url("/x")).await.expect("get");
        seen.insert(r.json()["upstream"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(seen.len(), 2, "both addresses take requests: {seen:?}");

    dns.set_ips("api.test", &["127.0.0.3"]);
    let left = wait_targets(&gw, "api", 1).await;
    assert_eq!(left, vec![format!("127.0.0.3:{port}")]);
    let before = a.requests.load(Ordering::Relaxed);
    for _ in 0..10 {
        let r = get(&gw.url("/x")).await.expect("get");
        assert_eq!(r.json()["upstream"], Value::from("b"));
    }
    assert_eq!(
        a.requests.load(Ordering::Relaxed),
        before,
        "the gone address gets nothing"
    );

    // A failed lookup (no address any more) keeps the targets there are.
    dns.set_ips("api.test", &[]);
    gw.wait_log("discovery failed").await;
    assert_eq!(targets(&gw, "api").await.len(), 1);
    assert_eq!(
        get(&gw.url("/x")).await.expect("get").json()["upstream"],
        "b"
    );
    stop.store(true, Ordering::Relaxed);
    let (failed, served) = client.await.expect("client");
    assert!(
        failed.is_empty(),
        "requests failed while DNS changed: {failed:?}"
    );
    assert!(served.contains("a") && served.contains("b"), "{served:?}");
    assert!(b.requests.load(Ordering::Relaxed) > 10);
    gw.wait_log("discovery changed the targets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srv_record_names_targets_and_their_ports() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let dns = DnsServer::start().await;
    dns.set_ips("node1.test", &["127.0.0.1"]);
    dns.set_srv(
        "_http._tcp.api.test",
        &[
            (10, 1, a.addr.port(), "node1.test"),
            (10, 1, b.addr.port(), "node1.test"),
            (20, 1, 1, "node1.test"),
        ],
    );
    let gw = Gateway::start_with(
        &Settings::server(&format!("dns_servers = [\"{}\"]", dns.addr)),
        "[upstreams.api]\ntargets = []\nsrv = \"_http._tcp.api.test\"\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\n",
    )
    .await;
    let t = wait_targets(&gw, "api", 2).await;
    assert!(
        t.contains(&a.addr.to_string()) && t.contains(&b.addr.to_string()),
        "{t:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = get(&gw.url("/x")).await.expect("get");
        assert_eq!(r.status, 200, "{}", r.text());
        seen.insert(r.json()["upstream"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}
