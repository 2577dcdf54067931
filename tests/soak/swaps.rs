//! Hot swaps at scale: a swap with a thousand requests in flight, and a thousand swaps in a row.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_fails_nothing() {
    // The upstream holds every request for a while, so the swap happens with many in flight.
    let slow = Upstream::serve("slow", |req| async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let passed = req.headers().contains_key("x-trap-passed");
        http::Response::new(full(if passed { "v1" } else { "v2" }))
    })
    .await;
    let (gw, dir, file) = policy_gateway("swap", &slow).await;

    let c = client();
    let send_one = |c: hyper_util::client::legacy::Client<_, Body>| {
        let url = gw.url("/");
        tokio::spawn(async move {
            match send_with(&c, http::Request::get(url).body(full("")).expect("req")).await {
                Ok(r) if r.status == 200 => Ok(r.text()),
                Ok(r) => Err(format!("{} {}", r.status, r.text())),
                Err(e) => Err(e.to_string()),
            }
        })
    };
    let mut wave: Vec<_> = (0..1100).map(|_| send_one(c.clone())).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.requests.load(Ordering::Relaxed) < 1000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_flight = slow.requests.load(Ordering::Relaxed);
    assert!(in_flight >= 1000, "only {in_flight} requests in flight");

    swap_in("headers", &file);
    let swapped = Instant::now();
    // New requests keep coming during and after the swap, one every 25 ms; the first one
    // that the new version answered tells when it went live.
    let probes: Vec<_> = (0..80)
        .map(|i| {
            let url = gw.url("/");
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(25 * i)).await;
                let sent = swapped.elapsed();
                let r = get(&url).await.map(|r| r.text());
                (sent, r.unwrap_or_else(|e| e.to_string()))
            })
        })
        .collect();
    wave.extend((0..200).map(|_| send_one(c.clone())));
    let mut results = Vec::new();
    for t in wave {
        results.push(t.await.expect("task"));
    }
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let v1 = results.iter().filter(|r| r.as_deref() == Ok("v1")).count();
    assert!(
        v1 >= 1000,
        "in-flight requests finish on the old version ({v1})"
    );
    let mut first_v2 = None;
    for p in probes {
        let (sent, text) = p.await.expect("probe");
        assert!(text == "v1" || text == "v2", "probe failed: {text}");
        if text == "v2" && first_v2.is_none_or(|f| sent < f) {
            first_v2 = Some(sent);
        }
    }
    let visible = first_v2.expect("the new version never answered");
    eprintln!("{in_flight} in flight at the swap; new version live after {visible:?}");
    assert!(
        visible < Duration::from_secs(1),
        "new version visible after {visible:?}"
    );
    assert_eq!(gw.generation().await, 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_swaps_keep_rss_flat() {
    let a = Upstream::echo("a").await;
    let (gw, dir, file) = policy_gateway("swaps", &a).await;
    // Swaps are driven by the admin call here, one at a time.
    gw.write_config_text(
        &std::fs::read_to_string(&gw.config_path)
            .expect("config")
            .replace("[server]\n", "[server]\nwatch_config = false\n"),
    );
    gw.wait_generation(2).await;
    let c = client();
    let mut warm = 0;
    for i in 0..1000 {
        swap_in(if i % 2 == 0 { "headers" } else { "trap" }, &file);
        let req = http::Request::post(gw.admin_url("/reload")).body(full(""));
        let r = send_with(&c, req.expect("req")).await.expect("reload");
        assert_eq!(r.status, 200, "{}", r.text());
        if i % 50 == 0 {
            let r = send_with(
                &c,
                http::Request::get(gw.url("/")).body(full("")).expect("req"),
            )
            .await
            .expect("get");
            assert_eq!(r.status, 200);
        }
        if i == 99 {
            warm = gw.rss_kib();
        }
    }
    let end = gw.rss_kib();
    let grown = end as f64 / warm as f64;
    eprintln!("RSS after 100 swaps: {warm} KiB, after 1000: {end} KiB ({grown:.3}x)");
    assert!(grown < 1.10, "RSS grew from {warm} to {end} KiB");
    let _ = std::fs::remove_dir_all(dir);
}
