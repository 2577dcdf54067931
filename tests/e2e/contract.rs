//! What contract 0.2 lets a plugin do, end to end: parallel outbound calls, http and kv errors
//! as variants, decoded bodies, whole-response replacement, the log phase, and a 0.1 plugin
//! refused by version.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn route(name: &str, prefix: &str, upstream: &str, plugins: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\nplugins = [{plugins}]\n"
    )
}

async fn slow(name: &str, wait: Duration) -> Upstream {
    let n = name.to_string();
    Upstream::serve(name, move |_| {
        let n = n.clone();
        async move {
            tokio::time::sleep(wait).await;
            http::Response::new(full(format!("from {n}")))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_slow_upstreams_are_fetched_in_parallel_and_a_timeout_is_a_504() {
    let a = Upstream::echo("a").await;
    let wait = Duration::from_millis(200);
    let (s1, s2, s3) = (
        slow("s1", wait).await,
        slow("s2", wait).await,
        slow("s3", wait).await,
    );
    let hang = slow("hang", Duration::from_secs(30)).await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &upstream_block("s1", &[&s1], "")
            + &upstream_block("s2", &[&s2], "")
            + &upstream_block("s3", &[&s3], "")
            + &upstream_block("hang", &[&hang], "")
            + &plugin_block("fetch", "fetch", "http = [\"s1\", \"s2\", \"s3\", \"hang\"]")
            + &route(
                "fan",
                "/fan",
                "a",
                "{ name = \"fetch\", config = { urls = [\"http://s1/\", \"http://s2/\", \"http://s3/\"] } }",
            )
            + &route(
                "hang",
                "/hang",
                "a",
                "{ name = \"fetch\", config = { url = \"http://hang/\", timeout_ms = 100 } }",
            )),
    )
    .await;
    // Warm the pools, so the figure below is the calls, not three connects.
    assert_eq!(get(&gw.url("/fan")).await.expect("get").status, 200);
    let started = Instant::now();
    let r = get(&gw.url("/fan")).await.expect("get");
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    for (i, name) in ["s1", "s2", "s3"].iter().enumerate() {
        assert_eq!(
            r.json()["headers"][format!("x-fetch-{}-body", i + 1)],
            format!("from {name}"),
            "results in order"
        );
    }
    assert!(
        took < Duration::from_millis(350),
        "three 200 ms calls took {took:?}: not in parallel"
    );

    // The plugin tells a timeout from other failures (a variant, not a string).
    let r = get(&gw.url("/hang")).await.expect("get");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().contains("fetch timed out"), "{}", r.text());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in-memory write");
    e.finish().expect("in-memory write")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzipped_json_response_is_rewritten_by_a_body_plugin_and_arrives_valid() {
    let doc = serde_json::json!({"items": (0..200).collect::<Vec<_>>(), "name": "catalog"});
    let zipped = gzip(doc.to_string().as_bytes());
    let up = Upstream::serve("z", move |_| {
        let zipped = zipped.clone();
        async move {
            http::Response::builder()
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(full(zipped))
                .expect("response")
        }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("z", &[&up], "")
            + &plugin_block("json-response", "json-response", "")
            + &route(
                "z",
                "/",
                "z",
                "{ name = \"json-response\", config = { set = { gateway = \"wasmgate\" } } }",
            )),
    )
    .await;
    let r = get(&gw.url("/catalog")).await.expect("get");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-encoding"), None, "sent as plain JSON now");
    assert_eq!(r.header("x-json-rewritten"), Some("1"));
    assert_eq!(
        r.header("content-length").map(str::to_string),
        Some(r.body.len().to_string())
    );
    let got = r.json();
    assert_eq!(got["gateway"], "wasmgate");
    assert_eq!(got["name"], "catalog");
    assert_eq!(got["items"][199], 199);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_phase_plugin_replaces_the_whole_response() {
    let up = Upstream::serve("broken", |_| async {
        http::Response::builder()
            .status(500)
            .header("x-internal", "db-7")
            .body(full("panic at src/db.rs:42: connection lost"))
            .expect("response")
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("broken", &[&up], "")
            + &plugin_block("request-id", "request-id", "")
            + &plugin_block("error-pages", "error-pages", "")
            + &route(
                "r",
                "/",
                "broken",
                "\"request-id\", { name = \"error-pages\", config = { when = [500], status = 503, body = \"<h1>Back soon ({status})</h1>\" } }",
            )),
    )
    .await;
    let r = get(&gw.url("/orders")).await.expect("get");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "<h1>Back soon (500)</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("x-internal"),
        None,
        "the upstream's headers are gone"
    );
    assert_eq!(r.header("content-length"), Some("24"));
    assert!(
        r.header("x-request-id").is_some(),
        "the outer plugin decorates the replacement"
    );
}

/// A copy of `plugins/deny` built with SDK 0.1 (`wasmgate:plugin@0.1.0`).
fn plugin_0_1() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/deny-0.1.wasm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_for_0_1_is_refused_with_the_version_and_what_to_do() {
    let a = Upstream::echo("a").await;
    let (gw, dir, file) = policy_gateway("v01", &a).await;
    let tmp = dir.join("x.tmp");
    std::fs::copy(plugin_0_1(), &tmp).expect("copy");
    std::fs::rename(&tmp, &file).expect("rename");
    gw.wait_log("was built for wasmgate:plugin@0.1.0").await;
    let log = gw.log();
    assert!(
        log.contains("this gateway runs wasmgate:plugin@0.2.0"),
        "{log}"
    );
    assert!(log.contains("rebuild it with the current SDK"), "{log}");
    assert_eq!(gw.generation().await, 1);
    let r = get(&gw.url("/")).await.expect("get");
    assert_eq!(
        r.json()["headers"]["x-trap-passed"],
        "1",
        "old version serving"
    );

    let (accepted, text) = check(&gw.config_path);
    assert!(!accepted);
    assert!(
        text.contains("was built for wasmgate:plugin@0.1.0"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// An upstream that keeps every request body it gets.
async fn collector() -> (Upstream, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    let up = Upstream::serve("logs", move |req: http::Request<hyper::body::Incoming>| {
        let g = g.clone();
        async move {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.map(|c| c.to_bytes());
            if let Ok(v) = serde_json::from_slice::<Value>(&body.unwrap_or_default()) {
                g.lock().expect("lock").push(v);
            }
            http::Response::builder()
                .status(204)
                .body(full(""))
                .expect("response")
        }
    })
    .await;
    (up, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_log_delivers_batched_records_to_a_real_upstream() {
    let a = Upstream::echo("a").await;
    let (logs, got) = collector().await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &upstream_block("logs", &[&logs], "")
            + &plugin_block("request-id", "request-id", "")
            + &plugin_block("http-log", "http-log", "http = [\"logs\"]")
            + &route(
                "shop",
                "/shop",
                "a",
                "\"request-id\", { name = \"http-log\", config = { url = \"http://logs/ingest\", batch_size = 3, flush_ms = 60000 } }",
            )),
    )
    .await;
    for i in 0..3 {
        let r = get(&gw.url(&format!("/shop/item?n={i}")))
            .await
            .expect("get");
        assert_eq!(r.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "no batch arrived:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let batches = got.lock().expect("lock").clone();
    assert_eq!(batches.len(), 1, "one POST for three records: {batches:?}");
    let records = batches[0].as_array().expect("an array");
    assert_eq!(records.len(), 3);
    let targets: Vec<&str> = records
        .iter()
        .filter_map(|r| r["target"].as_str())
        .collect();
    assert_eq!(
        targets,
        ["/shop/item?n=0", "/shop/item?n=1", "/shop/item?n=2"]
    );
    let first = &records[0];
    assert_eq!(first["status"], 200);
    assert_eq!(first["route"], "shop");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["completed"], true);
    assert_eq!(first["upstream"], a.authority());
    assert!(first["response_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(
        first["duration_us"].as_u64().unwrap_or(0) >= first["upstream_us"].as_u64().unwrap_or(0)
    );
    assert!(
        first["context"]["request-id"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "the request context travels with the record: {first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_phase_that_traps_or_hangs_never_touches_the_request() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("trap", "trap", "")
            + &plugin_block("hang", "trap", "timeout = \"2s\"")
            + &route(
                "traps",
                "/traps",
                "a",
                "{ name = \"trap\", config = { in_log = \"panic\" } }",
            )
            + &route(
                "hangs",
                "/hangs",
                "a",
                "{ name = \"hang\", config = { in_log = \"loop\" } }",
            )),
    )
    .await;
    let r = get(&gw.url("/traps")).await.expect("get");
    assert_eq!(r.status, 200);
    gw.wait_log("asked to trap in the log phase").await;

    // The hanging log call runs for its 2 s deadline; requests are answered meanwhile, each
    // well within that time (they do not wait for it).
    let started = Instant::now();
    for _ in 0..5 {
        let r = get(&gw.url("/hangs")).await.expect("get");
        assert_eq!(r.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "requests waited for their log phase: {:?}",
        started.elapsed()
    );
    gw.wait_log("ran past its CPU deadline").await;
    assert_eq!(get(&gw.url("/traps")).await.expect("get").status, 200);
}
