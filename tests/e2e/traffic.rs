//! Traffic splitting between upstreams (canary by weight, forced by a header or cookie, sticky
//! by user), a weight change by reload with no failed request, and mirroring to a shadow.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use crate::harness::*;

fn split_config(stable: &Upstream, canary: &Upstream, weights: (u32, u32), extra: &str) -> String {
    format!(
        "[upstreams.stable]\ntargets = [\"{}\"]\n[upstreams.canary]\ntargets = [\"{}\"]\n\n\
         [[routes]]\npath_prefix = \"/\"\nsplit = {{ stable = {}, canary = {} }}\n{extra}\n",
        stable.addr, canary.addr, weights.0, weights.1
    )
}

async fn served_by(gw: &Gateway, headers: &[(&str, &str)]) -> String {
    let r = get_with(&gw.url("/api"), headers).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["upstream"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_sends_each_side_its_weight_and_a_header_or_cookie_forces_one() {
    let stable = Upstream::echo("stable").await;
    let canary = Upstream::echo("canary").await;
    let gw = Gateway::start(&split_config(
        &stable,
        &canary,
        (90, 10),
        "split_force = { header = \"x-version\" }",
    ))
    .await;
    let mut canaries = 0;
    for _ in 0..100 {
        if served_by(&gw, &[]).await == "canary" {
            canaries += 1;
        }
    }
    assert_eq!(canaries, 10, "10 of 100 to the canary");
    for _ in 0..10 {
        assert_eq!(served_by(&gw, &[("x-version", "canary")]).await, "canary");
        assert_eq!(served_by(&gw, &[("x-version", "stable")]).await, "stable");
    }
    // A value that names no side is ignored: the weights decide.
    let _ = served_by(&gw, &[("x-version", "nightly")]).await;

    let cookie = Gateway::start(&split_config(
        &stable,
        &canary,
        (100, 0),
        "split_force = { cookie = \"track\" }",
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(
            served_by(&cookie, &[("cookie", "a=1; track=canary")]).await,
            "canary"
        );
        assert_eq!(served_by(&cookie, &[]).await, "stable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_split_keeps_each_user_on_one_side() {
    let stable = Upstream::echo("stable").await;
    let canary = Upstream::echo("canary").await;
    let gw = Gateway::start(&split_config(
        &stable,
        &canary,
        (50, 50),
        "split_sticky = { header = \"x-user\" }",
    ))
    .await;
    let mut sides = std::collections::BTreeSet::new();
    for user in 0..20 {
        let id = format!("user-{user}");
        let first = served_by(&gw, &[("x-user", &id)]).await;
        for _ in 0..4 {
            assert_eq!(
                served_by(&gw, &[("x-user", &id)]).await,
                first,
                "{id} moved"
            );
        }
        sides.insert(first);
    }
    assert_eq!(sides.len(), 2, "20 users all on one side: {sides:?}");
}

/// Canary 90/10 → 0/100 by editing the file while clients keep sending: no request fails, and
/// after the reload every request goes to the canary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_change_is_a_reload_with_no_failed_request() {
    let stable = Upstream::echo("stable").await;
    let canary = Upstream::echo("canary").await;
    let gw = Gateway::start(&split_config(&stable, &canary, (90, 10), "")).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (gw.url("/api"), stop.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match get(&url).await {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    let generation = gw.generation().await;
    gw.write_config(&split_config(&stable, &canary, (0, 100), ""));
    gw.wait_generation(generation + 1).await;
    let before = stable.requests.load(Ordering::Relaxed);
    for _ in 0..20 {
        assert_eq!(served_by(&gw, &[]).await, "canary");
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (ok, failed) = c.await.expect("client");
        assert!(failed.is_empty(), "failed during the reload: {failed:?}");
        total += ok;
    }
    assert!(total > 0);
    // Requests in flight at the swap may still have reached the old side, none after.
    let after = stable.requests.load(Ordering::Relaxed);
    for _ in 0..10 {
        assert_eq!(served_by(&gw, &[]).await, "canary");
    }
    assert_eq!(stable.requests.load(Ordering::Relaxed), after);
    assert!(after >= before);
}

/// Half the requests are copied to a shadow, bodies included; the client's answers all come
/// from the real upstream, and a shadow that never answers holds nobody up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_copies_a_share_and_never_holds_the_client() {
    let real = Upstream::echo("real").await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let shadow = Upstream::serve("shadow", move |req| {
        let s = s.clone();
        async move {
            let body = req.into_body().collect().await.expect("body").to_bytes();
            s.lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&body).into_owned());
            answer("text/plain", &[], "shadow")
        }
    })
    .await;
    let (hang, _h) = hanging_server().await;
    let cfg = format!(
        r#"
[upstreams.real]
targets = ["{real}"]
[upstreams.shadow]
targets = ["{shadow}"]
[upstreams.blackhole]
targets = ["{hang}"]

[[routes]]
path_prefix = "/copied"
upstream = "real"
mirror = {{ upstream = "shadow", percent = 50 }}

[[routes]]
path_prefix = "/blackholed"
upstream = "real"
mirror = {{ upstream = "blackhole" }}
"#,
        real = real.addr,
        shadow = shadow.addr,
    );
    let gw = Gateway::start(&cfg).await;
    for i in 0..20 {
        let r = send(
            http::Request::post(gw.url(&format!("/copied/{i}")))
                .body(full(format!("body {i}")))
                .expect("request"),
        )
        .await
        .expect("post");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["upstream"], "real");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while shadow.requests.load(Ordering::Relaxed) < 10 {
        assert!(
            Instant::now() < deadline,
            "the shadow got {:?}",
            seen.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut bodies = seen.lock().expect("lock").clone();
    bodies.sort();
    assert_eq!(bodies.len(), 10, "{bodies:?}");
    assert!(bodies.iter().all(|b| b.starts_with("body ")), "{bodies:?}");
    assert_eq!(real.requests.load(Ordering::Relaxed), 20);

    // Every copy goes to a server that never answers; every real request is still answered.
    for i in 0..10 {
        let r = get(&gw.url(&format!("/blackholed/{i}")))
            .await
            .expect("get");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["upstream"], "real");
    }
}
