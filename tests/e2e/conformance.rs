//! One suite, every plugin language: the same behaviours built in Rust (`plugins/conformance`),
//! Python (`plugins/python/conformance`) and JavaScript, each run through the real gateway in
//! front of a real upstream. A language passes when it passes every case here.

use crate::harness::*;

fn route(plugin_config: &str) -> String {
    format!(
        "[[routes]]\nname = \"main\"\npath_prefix = \"/\"\nupstream = \"up\"\n\
         plugins = [{{ name = \"p\", config = {plugin_config} }}]\n"
    )
}

const CONFIG: &str =
    r#"{ request_headers = { x-a = "1" }, response_headers = { x-b = "2" }, counter = "hits" }"#;

async fn conformance(file: &str, language: &str) {
    let up = Upstream::echo("up").await;
    let plugin = plugin_block("p", file, "memory = \"64MiB\"");
    let gw = Gateway::start(&(upstream_block("up", &[&up], "") + &plugin + &route(CONFIG))).await;
    let url = gw.url("/conformance");

    // An early answer by header: the upstream is not asked.
    let r = get_with(&url, &[("x-deny", "1")]).await;
    assert_eq!(r.status, 403, "{language}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.json()["detail"],
        format!("denied by the {language} plugin")
    );
    assert_eq!(r.header("x-upstream"), None);

    // Header edits both ways from the config, and a kv counter.
    for n in 1..=3 {
        let r = get_with(&url, &[]).await;
        assert_eq!(r.status, 200, "{language}: {}", r.text());
        assert_eq!(
            r.json()["headers"]["x-a"],
            "1",
            "{language}: upstream saw the edit"
        );
        assert_eq!(r.header("x-b"), Some("2"), "{language}");
        assert_eq!(
            r.header("x-count"),
            Some(n.to_string().as_str()),
            "{language}"
        );
        assert_eq!(r.header("x-plugin-language"), Some(language));
    }
    // ... with a metric and a log line.
    gw.wait_log("request 3").await;
    let m = gw.metrics().await;
    assert!(
        metric_line(&m, "wasmgate_plugin_requests", &["plugin=\"p\""])
            .is_some_and(|l| l.ends_with(" 3")),
        "{language}: {m}"
    );

    // The response body phase sees the whole body; a plugin that says skip-body is not called.
    let r = get_with(&url, &[]).await;
    assert_eq!(
        r.header("x-body-bytes").map(str::to_string),
        Some(r.text().len().to_string()),
        "{language}"
    );
    let r = get_with(&url, &[("x-skip-body", "1")]).await;
    assert_eq!(
        (r.status, r.header("x-body-bytes")),
        (http::StatusCode::OK, None),
        "{language}"
    );

    // kv.compare-and-swap: the first claim wins, a later one sees it taken.
    for (value, claimed) in [("first", "yes"), ("second", "no")] {
        let r = get_with(&url, &[("x-claim", value)]).await;
        assert_eq!(r.header("x-claimed"), Some(claimed), "{language}: {value}");
    }

    // An exception in a phase: the fail mode's answer (closed: 500), the exception's text in
    // the log, and the next request served by a fresh instance.
    let r = get_with(&url, &[("x-raise", &format!("boom-{language}"))]).await;
    assert_eq!(r.status, 500, "{language}: {}", r.text());
    // The trap's own line carries the exception's text (Rust: the panic message).
    let said = format!("asked to raise: boom-{language}");
    gw.wait_log("the plugin said:").await;
    assert!(
        gw.log()
            .lines()
            .any(|l| l.contains("trapped") && l.contains("the plugin said:") && l.contains(&said)),
        "{language}:\n{}",
        gw.log()
    );
    assert_eq!(
        get_with(&url, &[]).await.status,
        200,
        "{language}: recovered"
    );

    // Over the memory cap: cut off with 503, others go on.
    let r = get_with(&url, &[("x-allocate-mb", "200")]).await;
    assert_eq!(r.status, 503, "{language}: {}", r.text());
    assert_eq!(r.json()["detail"], "plugin `p` went over its memory cap");
    assert_eq!(
        get_with(&url, &[]).await.status,
        200,
        "{language}: recovered"
    );

    // A config the plugin refuses: named key, nothing starts.
    let dir = temp_dir(&format!("conformance-{language}"));
    let path = dir.join("gateway.toml");
    let bad = upstream_block("up", &[&up], "") + &plugin + &route("{ colour = \"red\" }");
    std::fs::write(&path, bad).expect("write config");
    let (ok, err) = check(&path);
    assert!(!ok, "{language}: an unknown key was accepted");
    assert!(err.contains("colour"), "{language}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_passes_the_conformance_suite() {
    conformance("conformance", "rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_passes_the_conformance_suite() {
    conformance("python-conformance", "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_passes_the_conformance_suite() {
    conformance("js-conformance", "js").await;
}
