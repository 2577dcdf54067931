//! etcd (a real `etcd` started by the test). Service discovery: instances register under a key
//! prefix with a lease; one that registers starts taking requests, one that stops renewing its
//! lease leaves the pool, and no client request fails on the way. Config: routes and upstreams
//! kept under a prefix are followed by every gateway; a bad write is refused by each of them.

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

async fn status(gw: &Gateway, path: &str) -> u16 {
    get(&gw.url(path)).await.map_or(0, |r| r.status.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_follow_the_routes_kept_in_etcd() {
    let etcd = EtcdServer::start().await;
    let api = Upstream::echo("api").await;
    etcd.put(
        "/gw/upstreams/api",
        &format!("targets = [\"{}\"]\n[retry]\nattempts = 2", api.addr),
        None,
    )
    .await;
    etcd.put(
        "/gw/routes/first",
        "path_prefix = \"/first\"\nupstream = \"api\"",
        None,
    )
    .await;
    // No route in the files: all of them are in etcd.
    let extra = format!(
        "[etcd]\nendpoints = [\"{}\"]\nconfig_prefix = \"/gw\"\n",
        etcd.url
    );
    let gws = [
        Gateway::start(&extra).await,
        Gateway::start(&extra).await,
        Gateway::start(&extra).await,
    ];
    for gw in &gws {
        let r = get(&gw.url("/first/x")).await.expect("get");
        assert_eq!(
            (r.status, r.json()["path"].clone()),
            (http::StatusCode::OK, "/first/x".into())
        );
        assert_eq!(status(gw, "/second").await, 404);
    }

    // A new route: every gateway serves it within a second of the write.
    etcd.put(
        "/gw/routes/second",
        "path_prefix = \"/second\"\nupstream = \"api\"",
        None,
    )
    .await;
    let written = Instant::now();
    for gw in &gws {
        while status(gw, "/second").await != 200 {
            assert!(
                written.elapsed() < Duration::from_secs(1),
                "gateway on {} did not serve the new route within a second",
                gw.port
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!(
        "all three gateways served the new route {:?} after the write",
        written.elapsed()
    );

    // A bad write: refused and logged by each gateway, at the key and the value's line; the
    // last good config goes on serving.
    let generations = [
        gws[0].generation().await,
        gws[1].generation().await,
        gws[2].generation().await,
    ];
    etcd.put(
        "/gw/routes/bad",
        "path_prefix = \"/bad\"\nupstream = \"nowhere\"",
        None,
    )
    .await;
    for (gw, generation) in gws.iter().zip(generations) {
        gw.wait_log("etcd:/gw/routes/bad:2:").await;
        assert!(
            gw.log()
                .contains("route `bad` uses upstream `nowhere`, which is not defined"),
            "{}",
            gw.log()
        );
        assert_eq!(gw.generation().await, generation);
        assert_eq!(status(gw, "/first").await, 200);
        assert_eq!(status(gw, "/second").await, 200);
        assert_eq!(status(gw, "/bad").await, 404);
    }

    // Fixed: the route goes live everywhere.
    etcd.put(
        "/gw/routes/bad",
        "path_prefix = \"/bad\"\nupstream = \"api\"",
        None,
    )
    .await;
    for (gw, generation) in gws.iter().zip(generations) {
        gw.wait_generation(generation + 1).await;
        assert_eq!(status(gw, "/bad").await, 200);
    }
    // Deleted: gone everywhere.
    etcd.delete("/gw/routes/second").await;
    for (gw, generation) in gws.iter().zip(generations) {
        gw.wait_generation(generation + 2).await;
        assert_eq!(status(gw, "/second").await, 404);
    }
}
