//! Plugin chains through the real gateway, with real `.wasm` files built from `plugins/`: order,
//! context, early answers, body phases, upstream picking, and the sandbox's limits and fail modes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::harness::*;

fn route(name: &str, prefix: &str, upstream: &str, plugins: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\nplugins = [{plugins}]\n"
    )
}

/// An upstream that answers with the request's headers and its body parsed as JSON.
async fn body_echo() -> Upstream {
    Upstream::serve(
        "body",
        |req: http::Request<hyper::body::Incoming>| async move {
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(v.to_str().unwrap_or("?"))))
                .collect();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let out =
                serde_json::json!({ "headers": headers, "body": parsed, "bytes": body.len() });
            http::Response::builder()
                .header("content-type", "application/json")
                .body(full(out.to_string()))
                .expect("response")
        },
    )
    .await
}

async fn post(url: &str, body: &str) -> Resp {
    send(
        http::Request::post(url)
            .header("content-type", "application/json")
            .body(full(Bytes::from(body.to_string())))
            .expect("request"),
    )
    .await
    .expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_runs_in_order_passes_context_and_picks_upstream() {
    let a = Upstream::echo("a").await;
    let b = Upstream::echo("b").await;
    // Each plugin needs what the one before it did: set-context puts the consumer in the
    // context, headers turns it into a header, pick-upstream routes on that header.
    let chain = r#"
  { name = "set-context", config = { key = "consumer", from_header = "x-user" } },
  { name = "headers", config = { from_context = { x-consumer = "consumer" }, response = { set = { x-chain = "done" } } } },
  { name = "pick-upstream", config = { header = "x-consumer", routes = { alice = { upstream = "b" } } } },
"#;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &upstream_block("b", &[&b], "")
            + &plugin_block("set-context", "set-context", "")
            + &plugin_block("headers", "headers", "")
            + &plugin_block("pick-upstream", "pick-upstream", "")
            + &route("chained", "/chained", "a", chain)
            + &route("plain", "/plain", "a", "")),
    )
    .await;

    let r = get_with(&gw.url("/chained/x"), &[("x-user", "alice")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-upstream"),
        Some("b"),
        "picked by the third plugin"
    );
    assert_eq!(r.json()["headers"]["x-consumer"], "alice");
    assert_eq!(r.header("x-chain"), Some("done"), "response phase ran");

    let r = get_with(&gw.url("/chained/x"), &[("x-user", "bob")]).await;
    assert_eq!(
        r.header("x-upstream"),
        Some("a"),
        "bob keeps the route's upstream"
    );
    assert_eq!(r.json()["headers"]["x-consumer"], "bob");

    let r = get_with(&gw.url("/plain/x"), &[("x-user", "alice")]).await;
    assert_eq!(r.header("x-upstream"), Some("a"));
    assert_eq!(
        r.json()["headers"].get("x-consumer"),
        None,
        "no plugins here"
    );
    assert_eq!(r.header("x-chain"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answer_stops_the_chain() {
    let a = Upstream::echo("a").await;
    let chain = r#"
  { name = "headers", config = { response = { set = { x-seen-by = "first" } } } },
  { name = "deny", config = { status = 429, message = "slow down", when_header = "x-deny", headers = [["retry-after", "7"]] } },
  { name = "headers", config = { request = { set = { x-after = "yes" } } } },
"#;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("headers", "headers", "")
            + &plugin_block("deny", "deny", "")
            + &route("guarded", "/", "a", chain)),
    )
    .await;

    let r = get_with(&gw.url("/x"), &[("x-deny", "1")]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["detail"], "slow down");
    assert_eq!(
        r.header("x-seen-by"),
        Some("first"),
        "earlier plugins see the answer"
    );
    assert_eq!(
        a.requests.load(Ordering::Relaxed),
        0,
        "the upstream saw nothing"
    );

    let r = get_with(&gw.url("/x"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["headers"]["x-after"],
        "yes",
        "without the answer the chain goes on"
    );
    assert_eq!(a.requests.load(Ordering::Relaxed), 1);

    let (ok, out) = curl(&["-i", "-H", "x-deny: 1", &gw.url("/y")]);
    assert!(ok);
    assert!(out.starts_with("HTTP/1.1 429"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_phases_rewrite_json_and_headers() {
    let up = body_echo().await;
    let chain = r#"
  { name = "json-request", config = { set = { via = "wasmgate" } } },
  { name = "json-response", config = { set = { checked = true } } },
"#;
    let gw = Gateway::start(
        &(upstream_block("body", &[&up], "")
            + &plugin_block("json-request", "json-request", "body_limit = \"1KiB\"")
            + &plugin_block("json-response", "json-response", "")
            + &route("json", "/", "body", chain)),
    )
    .await;

    let r = post(&gw.url("/orders"), r#"{"item": "tea", "qty": 2}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["body"]["via"], "wasmgate", "request body rewritten");
    assert_eq!(v["body"]["item"], "tea");
    assert_eq!(
        v["headers"]["x-json-fields"], "2",
        "header set after reading the body"
    );
    let sent = v["bytes"].as_u64().unwrap_or(0);
    assert_eq!(
        v["headers"]["content-length"],
        sent.to_string(),
        "length follows the body"
    );
    assert_eq!(v["checked"], true, "response body rewritten");
    assert_eq!(r.header("x-json-rewritten"), Some("1"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    let r = post(&gw.url("/orders"), "[1, 2]").await;
    assert_eq!(r.status, 400, "the plugin refuses a non-object body");
    assert_eq!(up.requests.load(Ordering::Relaxed), 1);

    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(2048));
    let r = post(&gw.url("/orders"), &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(up.requests.load(Ordering::Relaxed), 1);
}

/// Fires `n` GETs at `url` at once; returns their statuses.
async fn burst(url: String, n: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await.map(|r| r.status.as_u16()).unwrap_or(0) })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap_or(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_plugin_is_cut_at_its_deadline_while_others_go_on() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("spin", "spin", "timeout = \"50ms\"")
            + &route("spin", "/spin", "a", "\"spin\"")
            + &route("ok", "/ok", "a", "")),
    )
    .await;

    let started = Instant::now();
    let spinning = tokio::spawn(burst(gw.url("/spin"), 8));
    let mut ok = 0;
    while !spinning.is_finished() || ok < 200 {
        let r = get(&gw.url("/ok")).await.expect("ok route");
        assert_eq!(r.status, 200);
        ok += 1;
    }
    let statuses = spinning.await.expect("spin burst");
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "8 loops of 50 ms took {:?}",
        started.elapsed()
    );

    let r = get(&gw.url("/spin")).await.expect("spin");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["detail"],
        "plugin `spin` ran past its CPU deadline"
    );
    assert_eq!(
        a.requests.load(Ordering::Relaxed),
        ok,
        "loops never reached the upstream"
    );
    assert!(gw.log().contains("ran past its CPU deadline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_is_capped() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("bomb", "memory-bomb", "memory = \"32MiB\"")
            + &route("bomb", "/bomb", "a", "\"bomb\"")
            + &route("ok", "/ok", "a", "")),
    )
    .await;
    let before = gw.rss_kib();
    let bombs = tokio::spawn(burst(gw.url("/bomb"), 6));
    let oks = burst(gw.url("/ok"), 50).await;
    assert!(oks.iter().all(|s| *s == 200), "{oks:?}");
    let statuses = bombs.await.expect("bombs");
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let r = get(&gw.url("/bomb")).await.expect("bomb");
    assert_eq!(r.json()["detail"], "plugin `bomb` went over its memory cap");
    let grown = gw.rss_kib().saturating_sub(before);
    assert!(grown < 256 * 1024, "RSS grew by {grown} KiB");
    assert_eq!(get(&gw.url("/ok")).await.expect("ok").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_fails_closed_or_open_as_configured() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("strict", "trap", "")
            + &plugin_block("lenient", "trap", "fail = \"open\"")
            + &route("closed", "/closed", "a", "\"strict\"")
            + &route("open", "/open", "a", "\"lenient\"")),
    )
    .await;

    let r = get_with(&gw.url("/closed"), &[("x-trap", "1")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["detail"], "plugin `strict` failed");
    let r = get_with(&gw.url("/closed"), &[]).await;
    assert_eq!(r.status, 200, "the next request gets a fresh instance");
    assert_eq!(r.json()["headers"]["x-trap-passed"], "1");

    let r = get_with(&gw.url("/open"), &[("x-trap", "1")]).await;
    assert_eq!(r.status, 200, "fail open skips the plugin");
    assert_eq!(r.json()["headers"].get("x-trap-passed"), None);
    let r = get_with(&gw.url("/open"), &[]).await;
    assert_eq!(r.json()["headers"]["x-trap-passed"], "1");

    let m = get(&gw.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text();
    for (plugin, fail) in [("strict", "closed"), ("lenient", "open")] {
        let line = m
            .lines()
            .find(|l| {
                l.starts_with("wasmgate_plugin_failures_total")
                    && l.contains(&format!("plugin=\"{plugin}\""))
            })
            .unwrap_or_else(|| panic!("no failure metric for {plugin}:\n{m}"));
        assert!(line.contains("kind=\"trap\"") && line.contains(&format!("fail=\"{fail}\"")));
        assert!(line.ends_with(" 1"), "{line}");
    }
    gw.wait_log("fail = \\\"open\\\": skipped").await;
}

/// A plugin that imports nothing that waits is called directly (no fiber): its stdio still
/// works, and a WASI wait traps with a message saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directly_called_plugin_prints_but_never_blocks() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("t", "trap", "stderr = true")
            + &route("t", "/t", "a", "\"t\"")),
    )
    .await;
    let r = get_with(&gw.url("/t"), &[("x-trap", "print")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-trap-passed"], "1");
    gw.wait_log("trap plugin: printed to stderr").await;

    let r = get_with(&gw.url("/t"), &[("x-trap", "sleep")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["detail"], "plugin `t` failed");
    gw.wait_log("would wait; a plugin may not block on WASI I/O")
        .await;
    let r = get_with(&gw.url("/t"), &[]).await;
    assert_eq!(r.status, 200, "a fresh instance serves the next request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_metrics_and_logs_reach_the_host() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("count", "count", "")
            + &route(
                "counted",
                "/",
                "a",
                "{ name = \"count\", config = { window_s = 3600 } }",
            )),
    )
    .await;
    for n in 1..=3 {
        let r = get(&gw.url("/")).await.expect("get");
        assert_eq!(r.json()["headers"]["x-hits"], n.to_string());
    }
    let m = gw.metrics().await;
    assert!(
        metric_line(
            &m,
            "wasmgate_plugin_requests",
            &["plugin=\"count\"", "route=\"counted\""]
        )
        .is_some_and(|l| l.ends_with(" 3")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugin_config_is_refused_with_file_route_and_plugin() {
    let a = Upstream::echo("a").await;
    let good = upstream_block("a", &[&a], "")
        + &plugin_block("headers", "headers", "")
        + &route(
            "r",
            "/",
            "a",
            "{ name = \"headers\", config = { request = { set = { x-v = \"1\" } } } }",
        );
    let gw = Gateway::start(&good).await;

    // A config the plugin's own `init` refuses: reload says where and why, old one serves.
    let bad = good.replace("x-v = ", "\"bad name\" = ");
    gw.write_config(&bad);
    let r = send(
        http::Request::post(gw.admin_url("/reload"))
            .body(full(""))
            .expect("req"),
    )
    .await
    .expect("reload");
    assert_eq!(r.status, 422);
    let errors = r.json()["errors"].to_string();
    assert!(
        errors.contains("gateway.toml:")
            && errors.contains("route `r` plugin `headers`")
            && errors.contains("`bad name` is not a header name"),
        "{errors}"
    );
    assert_eq!(gw.generation().await, 1);
    assert_eq!(
        get(&gw.url("/")).await.expect("get").json()["headers"]["x-v"],
        "1"
    );

    // `wasmgate check` reports the same, with line and column.
    let (accepted, text) = check(&gw.config_path);
    assert!(!accepted);
    let written = std::fs::read_to_string(&gw.config_path).expect("config");
    let line = written
        .lines()
        .position(|l| l.contains("bad name"))
        .map_or(0, |i| i + 1);
    assert!(
        text.contains(&format!("gateway.toml:{line}:")),
        "expected line {line}: {text}"
    );

    // An unknown plugin name and a missing file are config errors too.
    let missing = good.replace(
        "plugins = [{ name = \"headers\"",
        "plugins = [{ name = \"nope\"",
    );
    gw.write_config(&missing);
    let r = send(
        http::Request::post(gw.admin_url("/reload"))
            .body(full(""))
            .expect("req"),
    )
    .await
    .expect("reload");
    assert!(
        r.json()["errors"]
            .to_string()
            .contains("uses plugin `nope`, which is not defined")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loads_compiled_plugins_from_the_cache() {
    let a = Upstream::echo("a").await;
    let cache = temp_dir("cache");
    let text = Gateway::config(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("deny", "deny", "")
            + &route(
                "r",
                "/",
                "a",
                "{ name = \"deny\", config = { when_header = \"x-no\" } }",
            )),
    )
    .replace(
        &format!("plugin_cache = \"{}\"", plugin_cache().display()),
        &format!("plugin_cache = \"{}\"", cache.display()),
    );
    let loaded = |gw: &Gateway| -> Value {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == "plugin loaded")
            .unwrap_or_else(|| panic!("no plugin loaded line:\n{}", gw.log()))
    };
    let first = Gateway::start_text(&text).await;
    assert_eq!(loaded(&first)["cached"], false);
    drop(first);
    let second = Gateway::start_text(&text).await;
    assert_eq!(
        loaded(&second)["cached"],
        true,
        "restart does not recompile"
    );
    assert_eq!(get(&second.url("/")).await.expect("get").status, 200);
    drop(second);

    // The cache is bounded: with a cap smaller than any entry, storing acl's evicts deny's.
    let cached = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache)
            .expect("cache dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect()
    };
    assert_eq!(cached().len(), 1, "{:?}", cached());
    let deny_entry = cached().remove(0);
    let capped = |t: &str| {
        t.replace(
            &format!("plugin_cache = \"{}\"", cache.display()),
            &format!(
                "plugin_cache = \"{}\"\nplugin_cache_max = \"1KiB\"",
                cache.display()
            ),
        )
    };
    let acl = capped(&text)
        .replace(
            "name = \"deny\", config = { when_header = \"x-no\" }",
            "name = \"acl\", config = { allow = { groups = [\"a\"] } }",
        )
        .replace(
            &plugin_block("deny", "deny", ""),
            &plugin_block("acl", "acl", ""),
        );
    let third = Gateway::start_text(&acl).await;
    assert_eq!(loaded(&third)["cached"], false);
    let left = cached();
    assert_eq!(left.len(), 1, "only the newest entry fits: {left:?}");
    assert_ne!(left[0], deny_entry, "the entry used longest ago went");
    drop(third);
    let fourth = Gateway::start_text(&capped(&text)).await;
    assert_eq!(
        loaded(&fourth)["cached"],
        false,
        "evicted, so compiled again"
    );
    assert_eq!(get(&fourth.url("/")).await.expect("get").status, 200);
    let _ = std::fs::remove_dir_all(cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_wasm_is_refused_and_the_old_version_serves() {
    let a = Upstream::echo("a").await;
    let (gw, dir, file) = policy_gateway("bad-wasm", &a).await;
    std::fs::write(dir.join("x.tmp"), b"\0asm not really").expect("write");
    std::fs::rename(dir.join("x.tmp"), &file).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log().contains("is not a valid WebAssembly component") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gw.log().contains(&file.display().to_string()));
    assert_eq!(gw.generation().await, 1);
    let r = get(&gw.url("/")).await.expect("get");
    assert_eq!(
        r.json()["headers"]["x-trap-passed"],
        "1",
        "old version still serving"
    );

    // A good file again goes live.
    swap_in("headers", &file);
    gw.wait_generation(2).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_reaches_only_allowed_upstreams() {
    let a = Upstream::echo("a").await;
    let keys = Upstream::serve("keys", |req| async move {
        http::Response::new(full(format!("key for {}", req.uri().path())))
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &upstream_block("keys", &[&keys], "")
            + &plugin_block("fetch", "fetch", "http = [\"keys\"]")
            + &route(
                "allowed",
                "/allowed",
                "a",
                "{ name = \"fetch\", config = { url = \"http://keys/jwks\" } }",
            )
            + &route(
                "denied",
                "/denied",
                "a",
                "{ name = \"fetch\", config = { url = \"http://a/secret\" } }",
            )),
    )
    .await;
    let r = get(&gw.url("/allowed")).await.expect("get");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-fetch-status"], "200");
    assert_eq!(r.json()["headers"]["x-fetch-body"], "key for /jwks");
    assert_eq!(keys.requests.load(Ordering::Relaxed), 1);

    let r = get(&gw.url("/denied")).await.expect("get");
    assert_eq!(r.status, 502);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("upstream `a` is not in this plugin's `http` list"),
        "{}",
        r.text()
    );
    assert_eq!(
        a.requests.load(Ordering::Relaxed),
        1,
        "only the allowed route's request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_grants_nothing_unless_configured_and_isolation_is_per_request_when_asked() {
    let a = Upstream::echo("a").await;
    let dir = temp_dir("grant");
    std::fs::write(dir.join("secret.txt"), "s3cret").expect("write");
    std::fs::write("/tmp/wasmgate-probe.txt", "host file").expect("write");
    let probe = |route: &str| {
        format!(
            "{{ name = \"{route}\", config = {{ env = \"PROBE\", file = \"/data/secret.txt\" }} }}"
        )
    };
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("bare", "sandbox-probe", "")
            + &plugin_block(
                "granted",
                "sandbox-probe",
                &format!(
                    "env = {{ PROBE = \"given\" }}\ndirs = [{{ host = \"{}\", guest = \"/data\" }}]\nisolation = \"per_request\"",
                    dir.display()
                ),
            )
            + &route("bare", "/bare", "a", &probe("bare"))
            + &route("granted", "/granted", "a", &probe("granted"))
            + &route("host-path", "/host-path", "a", "{ name = \"bare\", config = { env = \"HOME\", file = \"/tmp/wasmgate-probe.txt\" } }")),
    )
    .await;

    let h = |r: &Resp, k: &str| r.json()["headers"][k].as_str().unwrap_or("").to_string();
    let mut calls = Vec::new();
    for _ in 0..3 {
        let r = get(&gw.url("/bare")).await.expect("get");
        assert_eq!(h(&r, "x-probe-env"), "(none)", "no environment by default");
        assert_eq!(h(&r, "x-probe-file"), "(denied)", "no files by default");
        calls.push(h(&r, "x-probe-calls"));
    }
    assert_eq!(
        calls,
        ["1", "2", "3"],
        "pooled: one instance serves one request after another"
    );
    let r = get(&gw.url("/host-path")).await.expect("get");
    assert_eq!(
        h(&r, "x-probe-env"),
        "(none)",
        "the gateway's own environment stays hidden"
    );
    assert_eq!(
        h(&r, "x-probe-file"),
        "(denied)",
        "host paths are not reachable"
    );

    for _ in 0..3 {
        let r = get(&gw.url("/granted")).await.expect("get");
        assert_eq!(h(&r, "x-probe-env"), "given");
        assert_eq!(
            h(&r, "x-probe-file"),
            "s3cret",
            "a granted folder is readable"
        );
        assert_eq!(
            h(&r, "x-probe-calls"),
            "1",
            "per_request: a fresh instance every time"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
