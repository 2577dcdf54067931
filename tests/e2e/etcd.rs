//! Service discovery through etcd (a real `etcd` started by the test): instances register under
//! a key prefix with a lease; one that registers starts taking requests, one that stops renewing
//! its lease leaves the pool, and no client request fails on the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

async fn target_count(gw: &Gateway) -> usize {
    let all = get(&gw.admin_url("/upstreams"))
        .await
        .expect("admin")
        .json();
    all["api"]["targets"].as_array().map_or(0, Vec::len)
}

async fn wait_count(gw: &Gateway, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while target_count(gw).await != n {
        assert!(Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_registered_in_etcd_join_and_leave_with_their_lease() {
    let etcd = EtcdServer::start().await;
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    etcd.put("/services/api/a", &a.addr.to_string(), None).await;
    let gw = Gateway::start(&format!(
        "[etcd]\nendpoints = [\"{}\"]\npoll_interval = \"100ms\"\n\n\
         [upstreams.api]\ntargets = []\netcd_prefix = \"/services/api/\"\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\n",
        etcd.url
    ))
    .await;
    wait_count(&gw, 1, "found a").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (url, s) = (gw.url("/who"), stop.clone());
    let client = tokio::spawn(async move {
        let mut failed = Vec::new();
        while !s.load(Ordering::Relaxed) {
            match get(&url).await {
                Ok(r) if r.status == 200 => {}
                Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                Err(e) => failed.push(e.to_string()),
            }
        }
        failed
    });

    // b registers with a 3-second lease and renews it: it takes requests.
    let lease = etcd.grant(3).await;
    etcd.put(
        "/services/api/b",
        &format!("{{\"address\": \"{}\"}}", b.addr),
        Some(&lease),
    )
    .await;
    wait_count(&gw, 2, "found b").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.requests.load(Ordering::Relaxed) < 5 {
        assert!(Instant::now() < deadline, "b got no traffic");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    etcd.keep_alive(&lease).await;

    // b stops renewing: its key expires with the lease and it leaves the pool.
    wait_count(&gw, 1, "saw b's lease expire").await;
    let served = b.requests.load(Ordering::Relaxed);
    for _ in 0..10 {
        let r = get(&gw.url("/x")).await.expect("get");
        assert_eq!(r.json()["upstream"], "a");
    }
    assert_eq!(b.requests.load(Ordering::Relaxed), served);

    stop.store(true, Ordering::Relaxed);
    let failed = client.await.expect("client");
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    gw.wait_log("discovery changed the targets").await;
}
