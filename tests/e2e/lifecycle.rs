//! Reload without restart (file watch, SIGHUP, admin call), refusal of a bad file, and draining
//! in-flight requests on SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::*;

fn to(up: &str) -> String {
    format!("[[routes]]\nupstream = \"{up}\"\n")
}

/// Keeps `clients` connections busy until `stop`; returns (ok, failed, answered by `b`).
fn load(
    gw: &Gateway,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(usize, usize, usize)>> {
    (0..clients)
        .map(|_| {
            let url = gw.url("/");
            let stop = stop.clone();
            tokio::spawn(async move {
                let c = client();
                let (mut ok, mut failed, mut new) = (0, 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    match send_with(&c, http::Request::get(&url).body(full("")).expect("req")).await
                    {
                        Ok(r) if r.status == 200 => {
                            ok += 1;
                            if r.header("x-upstream") == Some("b") {
                                new += 1;
                            }
                        }
                        Ok(r) => {
                            eprintln!("failed: {} {}", r.status, r.text());
                            failed += 1
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed += 1
                        }
                    }
                }
                (ok, failed, new)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_nothing() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "") + &upstream_block("b", &[&b], "") + &to("a")),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&gw, 16, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Flip between the two upstreams by editing the file, 10 times, under load.
    for i in 0..10 {
        let target = if i % 2 == 0 { "b" } else { "a" };
        gw.write_config(
            &(upstream_block("a", &[&a], "") + &upstream_block("b", &[&b], "") + &to(target)),
        );
        gw.wait_generation(2 + i).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed, mut new) = (0, 0, 0);
    for t in tasks {
        let (o, f, n) = t.await.expect("task");
        ok += o;
        failed += f;
        new += n;
    }
    eprintln!("{ok} ok, {failed} failed, {new} answered by b");
    assert_eq!(failed, 0);
    assert!(ok > 500, "too little load to prove anything: {ok}");
    assert!(new > 0, "the reloaded route never took effect");
    assert!(gw.log().contains("config reloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_is_refused_and_old_config_serves() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    let good = upstream_block("a", &[&a], "") + &upstream_block("b", &[&b], "") + &to("a");
    let gw = Gateway::start(&good).await;

    // 1. A file with a syntax error, seen by the file watcher.
    gw.write_config(&(good.clone() + "[[routes]\n"));
    // 2. A valid TOML file with a broken reference, through the admin call.
    gw.write_config(&(upstream_block("a", &[&a], "") + &to("missing")));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = send(
        http::Request::post(gw.admin_url("/reload"))
            .body(full(""))
            .expect("req"),
    )
    .await
    .expect("admin reload");
    assert_eq!(r.status, 422);
    let errors = r.json()["errors"].to_string();
    assert!(errors.contains("gateway.toml:"), "{errors}");
    assert!(
        errors.contains("upstream `missing`, which is not defined"),
        "{errors}"
    );
    // 3. And through SIGHUP.
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(
        gw.generation().await,
        1,
        "no bad file may become the config"
    );
    let r = get(&gw.url("/")).await.expect("still serving");
    assert_eq!(r.header("x-upstream"), Some("a"));
    let log = gw.log();
    assert!(log.contains("config reload refused"), "{log}");
    assert!(
        log.contains("gateway.toml:"),
        "errors in the log name the file: {log}"
    );

    // A good file after the bad ones is taken, here through SIGHUP.
    gw.write_config(&(upstream_block("a", &[&a], "") + &upstream_block("b", &[&b], "") + &to("b")));
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&gw.url("/")).await.expect("serving");
        if r.header("x-upstream") == Some("b") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "good config never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let started = Arc::new(AtomicUsize::new(0));
    let s2 = started.clone();
    let slow = Upstream::serve("slow", move |_| {
        s2.fetch_add(1, Ordering::Relaxed);
        async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            http::Response::new(full("done"))
        }
    })
    .await;
    let mut gw = Gateway::start(&(upstream_block("slow", &[&slow], "") + &to("slow"))).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = gw.url("/");
        tasks.push(tokio::spawn(async move { get(&url).await }));
    }
    while started.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("TERM");
    // While draining: readiness says so, and new connections are no longer accepted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = get(&gw.admin_url("/readyz"))
        .await
        .expect("admin still up while draining");
    assert_eq!(ready.status, 503);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .is_err(),
        "listener must be closed"
    );

    for t in tasks {
        let r = t
            .await
            .expect("task")
            .expect("in-flight request must complete");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "done");
    }
    assert!(
        gw.wait_exit(Duration::from_secs(5)).await,
        "clean exit after drain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reports_health_readiness_and_active_config() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&(upstream_block("a", &[&a], "") + &to("a"))).await;
    let h = get(&gw.admin_url("/healthz")).await.expect("healthz");
    assert_eq!(
        (h.status.as_u16(), h.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let c = get(&gw.admin_url("/config")).await.expect("config").json();
    assert_eq!(c["generation"], 1);
    assert_eq!(
        c["config"]["upstreams"]["a"]["targets"][0]["address"],
        a.authority()
    );
    assert_eq!(c["config"]["upstreams"]["a"]["connect_timeout"], "5s");
    let u = get(&gw.admin_url("/upstreams"))
        .await
        .expect("upstreams")
        .json();
    assert_eq!(u["a"]["targets"][0]["healthy"], true);
    let (ok, out) = curl(&["-X", "POST", &gw.admin_url("/reload")]);
    assert!(ok);
    assert!(out.contains("\"generation\":2"), "{out}");
    let v = get(&gw.admin_url("/version"))
        .await
        .expect("version")
        .json();
    assert_eq!(
        (v["version"].as_str(), v["generation"].as_u64()),
        (Some(env!("CARGO_PKG_VERSION")), Some(2))
    );
    assert_eq!(get(&gw.admin_url("/nope")).await.expect("404").status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_logs_what_it_serves_and_how_long_it_took() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&format!(
        "{}{}[[routes]]\npath_prefix = \"/x\"\nupstream = \"a\"\nplugins = [\"count\"]\n[[routes]]\nupstream = \"a\"\n",
        upstream_block("a", &[&a], ""),
        plugin_block("count", "count", ""),
    ))
    .await;
    gw.wait_log("\"ready\"").await;
    let ready: serde_json::Value = gw
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "ready")
        .expect("a ready line");
    assert_eq!(ready["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        ready["config"]
            .as_str()
            .is_some_and(|c| c.ends_with("gateway.toml")),
        "{ready}"
    );
    assert_eq!(
        (
            ready["listeners"].as_u64(),
            ready["routes"].as_u64(),
            ready["upstreams"].as_u64(),
            ready["plugins"].as_u64()
        ),
        (Some(1), Some(2), Some(1), Some(1)),
        "{ready}"
    );
    assert!(
        ready["ready_ms"].as_u64().is_some_and(|ms| ms < 60_000),
        "{ready}"
    );

    // The admin lists the routes with their chains, in file order.
    let routes = get(&gw.admin_url("/routes")).await.expect("routes").json();
    assert_eq!(routes[0]["name"], "route-1");
    assert_eq!(routes[0]["path_prefix"], "/x");
    assert_eq!(routes[0]["upstream"], "a");
    assert_eq!(routes[0]["plugins"], serde_json::json!(["count"]));
    assert_eq!(routes[1]["plugins"], serde_json::json!([]));
    assert_eq!(routes.as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_is_bounded_by_shutdown_timeout() {
    let stuck = Upstream::serve("stuck", |_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        http::Response::new(full("late"))
    })
    .await;
    let text = Gateway::config(&(upstream_block("stuck", &[&stuck], "") + &to("stuck")))
        .replace("shutdown_timeout = \"10s\"", "shutdown_timeout = \"1s\"");
    let mut gw = Gateway::start_text(&text).await;
    let url = gw.url("/");
    let pending = tokio::spawn(async move { get(&url).await });
    while stuck.requests.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = std::time::Instant::now();
    gw.signal("TERM");
    gw.wait_exit(Duration::from_secs(5)).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "exit after {took:?}"
    );
    assert!(
        gw.log().contains("shutdown timeout reached"),
        "{}",
        gw.log()
    );
    assert!(
        pending.await.expect("task").is_err(),
        "the stuck request is cut at the timeout"
    );
}

/// The README's first command: the example config answers on its own, through the demo backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_config_answers_through_the_demo_backend() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../gateway.toml"))
        .expect("gateway.toml");
    // The gateway's own ports are picked by the system; the demo backend's must be known to
    // the upstream that points at it.
    let demo = free_port();
    let text = example
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("127.0.0.1:9080", &format!("127.0.0.1:{demo}"))
        .replace(
            "file = \"target/plugins/",
            &format!("file = \"{}/../target/plugins/", env!("CARGO_MANIFEST_DIR")),
        );
    assert_ne!(
        text, example,
        "the example's addresses changed; update this test"
    );
    let gw = Gateway::start_text(&text).await;
    let (ok, out) = curl(&["-i", &gw.url("/demo/hello?name=you")]);
    assert!(ok, "curl failed");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    let j: serde_json::Value = serde_json::from_str(body).expect("demo backend JSON");
    assert_eq!(j["service"], "wasmgate demo backend");
    assert_eq!(j["path"], "/hello", "the route strips /demo");
    assert_eq!(j["query"], "name=you");
    assert_eq!(j["headers"]["x-forwarded-for"], "127.0.0.1");
    // The demo route compresses for a client that accepts it (curl decodes).
    let (ok, out) = curl(&["-i", "--compressed", &gw.url("/demo/hello")]);
    assert!(ok && out.contains("content-encoding: zstd\r\n"), "{out}");
    assert!(out.contains("wasmgate demo backend"), "{out}");

    // The plugin chain of the `api` route, as the comments at the top of the file show it.
    let (ok, out) = curl(&["-i", "-H", "x-user: alice", &gw.url("/api/orders")]);
    assert!(ok && out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("x-gateway: wasmgate"), "{out}");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    let j: serde_json::Value = serde_json::from_str(body).expect("demo backend JSON");
    assert_eq!(j["headers"]["x-consumer"], "alice");
    assert_eq!(j["headers"]["x-hits"], "1");
    let (ok, out) = curl(&["-i", "-H", "x-blocked: 1", &gw.url("/api/orders")]);
    assert!(ok && out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("blocked by policy"), "{out}");

    // The `shop` chain: request-id -> jwt -> acl -> rate-limit -> headers, with the tokens the
    // file's comments give.
    let token = |name: &str| {
        example
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#   {name}=")))
            .map(|t| format!("authorization: Bearer {}", t.trim()))
            .unwrap_or_default()
    };
    let shop = gw.url("/shop/cart");
    for left in ["4", "3", "2", "1", "0"] {
        let (ok, out) = curl(&["-i", "-H", &token("DEMO"), &shop]);
        assert!(ok && out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(
            out.contains(&format!("ratelimit-remaining: {left}\r\n")),
            "{out}"
        );
        assert!(out.contains("x-request-id: "), "{out}");
        assert!(out.contains("x-content-type-options: nosniff"), "{out}");
        assert!(out.contains(r#""x-user-id":"demo""#), "{out}");
        assert!(!out.contains(r#""authorization""#), "{out}");
    }
    let (_, out) = curl(&["-i", "-H", &token("DEMO"), &shop]);
    assert!(
        out.starts_with("HTTP/1.1 429"),
        "the free tier allows 5: {out}"
    );
    let (_, out) = curl(&["-i", &shop]);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    let (_, out) = curl(&["-i", "-H", &token("GUEST"), &shop]);
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");

    // The `hello` route, answered by a handler component after its plugin.
    let (ok, out) = curl(&["-i", "-d", "hi", &gw.url("/hello/you")]);
    assert!(ok && out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("x-request-id: "), "{out}");
    assert!(out.contains(r#""path":"/hello/you""#), "{out}");
    assert!(out.contains(r#""body_bytes":2"#), "{out}");

    // The `profile` route: four demo services at once, shaped; the second call a cache hit.
    let profile = gw.url("/profile/7");
    let first = get_with(&profile, &[]).await;
    assert_eq!(first.header("x-cache"), Some("MISS"), "{}", first.text());
    let p = first.json();
    assert_eq!(p["user"]["name"], "User 7");
    assert_eq!(
        p["orders"].as_array().map(Vec::len),
        Some(5),
        "the last 5 of 8"
    );
    assert_eq!(
        (p["wishlistCount"].clone(), p["reviewCount"].clone()),
        (3.into(), 3.into())
    );
    assert_eq!(p["averageRating"], 4.0);
    let again = get_with(&profile, &[]).await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.json(), p);

    // The `orders` route: validated, then routed by the JSON body.
    let (ok, out) = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"order": {"type": "premium"}}"#,
        &gw.url("/orders"),
    ]);
    assert!(ok && out.contains(r#""path":"/premium/orders""#), "{out}");
    let (_, out) = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"order": {"type": "gold"}}"#,
        &gw.url("/orders"),
    ]);
    assert!(
        out.contains(r#""pointer":"/order/type""#) && out.contains(r#""status":400"#),
        "{out}"
    );
    let (_, out) = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        "{",
        &gw.url("/orders"),
    ]);
    assert!(out.contains("not valid JSON"), "{out}");

    // The `users-v1` route: the v2 service's answer in the v1 shape.
    let r = get_with(&gw.url("/v1/users/6"), &[("x-request-id", "req-6")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"id": 6, "firstName": "Grace", "lastName": "Brewster Hopper",
            "email": "user6@example.com", "_api_version": "v1", "_request_id": "req-6"})
    );

    // The `products` route: prices and dates for the client's locale, a 404 in French.
    let r = get_with(
        &gw.url("/products/3"),
        &[("accept-language", "de-CH, fr;q=0.8")],
    )
    .await;
    assert_eq!(r.header("content-language"), Some("de"), "{}", r.text());
    assert_eq!(r.json()["price"], "1.234,50\u{a0}€");
    assert_eq!(r.json()["available_from"], "01.03.2024");
    let r = get_with(&gw.url("/products/3?lang=en"), &[("accept-language", "de")]).await;
    assert_eq!(r.json()["price"], "€1,234.50");
    let r = get_with(&gw.url("/products/kettle"), &[("accept-language", "fr")]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["title"], "Introuvable");

    // The `tenants` route: each tenant's headers; an unknown tenant refused.
    let r = get_with(&gw.url("/t/reports"), &[("x-tenant", "globex")]).await;
    assert_eq!(r.json()["headers"]["x-plan"], "enterprise", "{}", r.text());
    let r = get_with(&gw.url("/t/reports"), &[("x-tenant", "nobody")]).await;
    assert_eq!(r.status, 403, "{}", r.text());

    // The `partner` route: the demo token is active at the introspection endpoint, its subject
    // becomes the consumer, and the token bucket lets 10 through at once.
    let partner = gw.url("/partner/orders");
    let bearer = [("authorization", "Bearer demo-opaque-token")];
    let r = get_with(&partner, &bearer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-consumer"], "partner-42");
    assert_eq!(r.header("ratelimit-policy"), Some("60;w=60;burst=10"));
    for _ in 1..10 {
        assert_eq!(get_with(&partner, &bearer).await.status, 200);
    }
    assert_eq!(
        get_with(&partner, &bearer).await.status,
        429,
        "the 11th at once"
    );
    let r = get_with(&partner, &[("authorization", "Bearer not-a-token")]).await;
    assert_eq!(r.status, 401);

    // The `canary` route: 1 in 10 to `demo-canary` (which gets the target's address as Host),
    // all with the tester's header.
    let canary_host = format!("127.0.0.1:{demo}");
    let host_of = |r: &Resp| {
        r.json()["headers"]["host"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let mut to_canary = 0;
    for _ in 0..20 {
        let r = get_with(&gw.url("/canary/hello"), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if host_of(&r) == canary_host {
            to_canary += 1;
        }
    }
    assert_eq!(to_canary, 2, "2 of 20 to the canary");
    let forced = get_with(&gw.url("/canary/hello"), &[("x-version", "demo-canary")]).await;
    assert_eq!(host_of(&forced), canary_host);
}
