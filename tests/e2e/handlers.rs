//! Routes answered by a `wasi:http` handler component instead of an upstream: in Rust and in
//! JavaScript, after the route's plugins, sandboxed (CPU deadline), calling only the upstreams
//! it is allowed, and hot-swapped under load. Misplaced handlers: `tests/configs/invalid/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::*;

/// A route on `prefix` answered by `handler`, with `plugins` before it.
fn handler_route(prefix: &str, handler: &str, plugins: &str) -> String {
    format!(
        "[[routes]]\npath_prefix = \"{prefix}\"\nhandler = \"{handler}\"\nplugins = [{plugins}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_answer_routes_after_the_plugin_chain() {
    let backend = Upstream::serve("backend", |req| async move {
        http::Response::new(full(format!("backend saw {}", req.uri())))
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("backend", &[&backend], "")
            + &plugin_block(
                "rust",
                "hello_handler",
                "isolation = \"pooled\"\ntimeout = \"20ms\"",
            )
            + &plugin_block("js", "js_hello_handler", "http = [\"backend\"]")
            + &plugin_block("headers", "headers", "")
            + &plugin_block("deny", "deny", "")
            + &handler_route(
                "/rust",
                "rust",
                "{ name = \"deny\", config = { when_header = \"x-block\" } }, \
                 { name = \"headers\", config = { response = { set = { x-chain = \"ran\" } } } }",
            )
            + &handler_route("/js", "js", "")),
    )
    .await;

    // Rust: the handler sees the method, path, host and body; the chain's edits reach the client.
    let r = send(
        http::Request::post(gw.url("/rust/items?x=1"))
            .body(full("12345"))
            .expect("request"),
    )
    .await
    .expect("post");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-handler"), Some("rust"));
    assert_eq!(r.header("x-chain"), Some("ran"), "the response phase ran");
    let j = r.json();
    assert_eq!(j["method"], "POST");
    assert_eq!(j["path"], "/rust/items?x=1");
    assert_eq!(j["body_bytes"], 5);
    assert!(
        j["host"].as_str().unwrap_or("").starts_with("127.0.0.1:"),
        "{j}"
    );

    // A plugin that answers first: the handler is never asked.
    let r = get_with(&gw.url("/rust/items"), &[("x-block", "1")]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-handler"), None);

    // JavaScript, and its outbound `fetch` to an allowed upstream.
    let r = get(&gw.url("/js/hello")).await.expect("get");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["handler"], "js");
    let r = get(&gw.url("/js/fetch/items/7?q=a")).await.expect("get");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "backend saw /items/7?q=a");
    assert_eq!(backend.requests.load(Ordering::Relaxed), 1);

    // A handler that loops is cut off at its deadline; the next request is served.
    let r = get(&gw.url("/rust/spin")).await.expect("get");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.json()["detail"],
        "handler `rust` ran past its CPU deadline"
    );
    assert_eq!(get(&gw.url("/rust/after")).await.expect("get").status, 200);
    gw.wait_log("handler ran past its CPU deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_call_only_allowed_upstreams() {
    let secret = Upstream::echo("secret").await;
    let gw = Gateway::start(
        &(upstream_block("backend", &[&secret], "")
            + &plugin_block("js", "js_hello_handler", "")
            + &handler_route("/js", "js", "")),
    )
    .await;
    let r = get(&gw.url("/js/fetch/anything")).await.expect("get");
    assert!(r.status.is_server_error(), "{} {}", r.status, r.text());
    assert_eq!(secret.requests.load(Ordering::Relaxed), 0);
    gw.wait_log("outbound call denied: upstream `backend` is not in this plugin's `http` list")
        .await;
}

/// Compiles the handlers into the tests' plugin cache, so a swap's reload is not a compile.
fn precompile(dir: &std::path::Path, names: &[&str]) {
    let path = dir.join("precompile.toml");
    let blocks: String = names.iter().map(|n| plugin_block(n, n, "")).collect();
    let text = Gateway::config_with(&Settings::server("allow_empty = true"), &blocks);
    std::fs::write(&path, text).expect("write config");
    let (ok, err) = check(&path);
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_is_hot_swapped_under_load_with_no_failed_request() {
    let dir = temp_dir("handler-swap");
    precompile(&dir, &["hello_handler", "js_hello_handler"]);
    let file = dir.join("handler.wasm");
    swap_in("hello_handler", &file);
    let gw = Gateway::start(&format!(
        "[plugins.h]\nfile = \"{}\"\n{}",
        file.display(),
        handler_route("/", "h", "")
    ))
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let by_js = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (url, stop, by_js) = (gw.url("/swap"), stop.clone(), by_js.clone());
            tokio::spawn(async move {
                let c = client();
                let (mut ok, mut failed) = (0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let req = http::Request::get(&url).body(full("")).expect("request");
                    match send_with(&c, req).await {
                        Ok(r) if r.status == 200 => {
                            ok += 1;
                            if r.header("x-handler") == Some("js") {
                                by_js.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(r) => {
                            eprintln!("failed: {} {}", r.status, r.text());
                            failed += 1;
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed += 1;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    // Rust → JavaScript → Rust, each version seen answering.
    swap_in("js_hello_handler", &file);
    gw.wait_generation(2).await;
    let since = std::time::Instant::now();
    while by_js.load(Ordering::Relaxed) == 0 && since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    swap_in("hello_handler", &file);
    gw.wait_generation(3).await;
    let js_answers = by_js.load(Ordering::Relaxed);
    let after = get(&gw.url("/swap")).await.expect("get");
    assert_eq!(after.header("x-handler"), Some("rust"));
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.expect("task");
        ok += o;
        failed += f;
    }
    eprintln!("{ok} ok, {failed} failed, {js_answers} answered by the JavaScript version");
    assert_eq!(failed, 0);
    assert!(js_answers > 0, "the swapped-in handler never answered");
    assert!(ok > 200, "too little load to prove anything: {ok}");
    let _ = std::fs::remove_dir_all(dir);
}
