//! Each match kind, priority, prefix strip and rewrite, and the forwarding headers.

use crate::harness::*;

async fn routed(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let r = get_with(&gw.url(path), headers).await;
    if r.status != 200 {
        return (r.status.as_u16(), String::new(), String::new());
    }
    let j = r.json();
    (
        200,
        j["upstream"].as_str().unwrap_or("").to_string(),
        j["path"].as_str().unwrap_or("").to_string()
            + &j["query"]
                .as_str()
                .map(|q| format!("?{q}"))
                .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_match_kind_and_priority() {
    let names = [
        "exact", "prefix", "pattern", "host", "wild", "method", "header", "query", "low", "high",
        "strip", "rewrite", "fallback",
    ];
    let mut servers = Vec::new();
    for n in names {
        servers.push(Upstream::echo(n).await);
    }
    let mut cfg = String::new();
    for s in &servers {
        cfg += &upstream_block(&s.name, &[s], "");
    }
    cfg += r#"
[[routes]]
name = "fallback"
path_prefix = "/"
upstream = "fallback"

[[routes]]
path = "/exact"
upstream = "exact"

[[routes]]
path_prefix = "/files"
upstream = "prefix"

[[routes]]
path = "/users/{id}/posts/{post}"
upstream = "pattern"

[[routes]]
hosts = ["api.example.com"]
path_prefix = "/h"
upstream = "host"

[[routes]]
hosts = ["*.example.com"]
path_prefix = "/h"
upstream = "wild"

[[routes]]
path = "/m"
methods = ["POST", "PUT"]
upstream = "method"

[[routes]]
path = "/hdr"
headers = { "x-version" = "2" }
upstream = "header"

[[routes]]
path = "/q"
query = { beta = "yes" }
upstream = "query"

[[routes]]
path = "/prio"
upstream = "low"

[[routes]]
path_prefix = "/prio"
priority = 10
upstream = "high"

[[routes]]
path_prefix = "/strip"
strip_prefix = true
upstream = "strip"

[[routes]]
path_prefix = "/old/api"
rewrite_prefix = "/v2"
upstream = "rewrite"
"#;
    let gw = Gateway::start(&cfg).await;

    // exact
    assert_eq!(routed(&gw, "/exact", &[]).await.1, "exact");
    assert_eq!(routed(&gw, "/exact/more", &[]).await.1, "fallback");
    // prefix: whole segments only
    assert_eq!(routed(&gw, "/files", &[]).await.1, "prefix");
    assert_eq!(routed(&gw, "/files/a/b.txt", &[]).await.1, "prefix");
    assert_eq!(routed(&gw, "/filesystem", &[]).await.1, "fallback");
    // pattern
    assert_eq!(routed(&gw, "/users/7/posts/abc", &[]).await.1, "pattern");
    assert_eq!(routed(&gw, "/users/7/posts", &[]).await.1, "fallback");
    // host: exact beats wildcard, wildcard covers deeper names, port and case are ignored
    assert_eq!(
        routed(&gw, "/h", &[("host", "api.example.com")]).await.1,
        "host"
    );
    assert_eq!(
        routed(&gw, "/h", &[("host", "API.Example.com:8443")])
            .await
            .1,
        "host"
    );
    assert_eq!(
        routed(&gw, "/h", &[("host", "a.b.example.com")]).await.1,
        "wild"
    );
    assert_eq!(
        routed(&gw, "/h", &[("host", "example.com")]).await.1,
        "fallback"
    );
    // method
    let post = send(
        http::Request::post(gw.url("/m"))
            .body(full("x"))
            .expect("req"),
    )
    .await
    .expect("post");
    assert_eq!(post.json()["upstream"], "method");
    assert_eq!(routed(&gw, "/m", &[]).await.1, "fallback");
    // header
    assert_eq!(routed(&gw, "/hdr", &[("x-version", "2")]).await.1, "header");
    assert_eq!(
        routed(&gw, "/hdr", &[("x-version", "1")]).await.1,
        "fallback"
    );
    // query
    assert_eq!(routed(&gw, "/q?a=1&beta=yes", &[]).await.1, "query");
    assert_eq!(routed(&gw, "/q?beta=no", &[]).await.1, "fallback");
    // priority: a prefix with priority 10 beats the exact path
    assert_eq!(routed(&gw, "/prio", &[]).await.1, "high");
    // strip and rewrite keep the rest of the path and the query
    assert_eq!(
        routed(&gw, "/strip/a/b?x=1", &[]).await,
        (200, "strip".into(), "/a/b?x=1".into())
    );
    assert_eq!(routed(&gw, "/strip", &[]).await.2, "/");
    assert_eq!(
        routed(&gw, "/old/api/items/3", &[]).await,
        (200, "rewrite".into(), "/v2/items/3".into())
    );
}

/// A path only other methods take: 405 with `Allow` (RFC 9110 §15.5.6), not 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_no_route_takes_gets_405_with_allow() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(
        &(upstream_block("up", &[&up], "")
            + "[[routes]]\npath = \"/items/{id}\"\nmethods = [\"PUT\", \"GET\"]\nupstream = \"up\"\n\n\
               [[routes]]\npath = \"/items/{id}\"\nmethods = [\"DELETE\"]\nheaders = { \"x-admin\" = \"1\" }\nupstream = \"up\"\n"),
    )
    .await;
    let r = send(
        http::Request::post(gw.url("/items/7"))
            .body(full("x"))
            .expect("req"),
    )
    .await
    .expect("post");
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(
        r.header("allow"),
        Some("GET, PUT"),
        "a route its headers keep out is not offered"
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.json()["detail"],
        "POST is not allowed on /items/7; use GET, PUT"
    );
    let r = send(
        http::Request::delete(gw.url("/items/7"))
            .header("x-admin", "1")
            .body(full(""))
            .expect("req"),
    )
    .await
    .expect("delete");
    assert_eq!(r.status, 200);
    assert_eq!(get_with(&gw.url("/items/7"), &[]).await.status, 200);
    assert_eq!(get_with(&gw.url("/other"), &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_and_hop_by_hop_headers() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&format!(
        "{}\n[[routes]]\nupstream = \"up\"\n",
        upstream_block("up", &[&up], "")
    ))
    .await;
    let r = get_with(
        &gw.url("/x"),
        &[
            ("host", "shop.example.com"),
            ("x-forwarded-for", "203.0.113.9"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "gzip"),
        ],
    )
    .await;
    assert_eq!(
        r.json()["target"],
        "/x",
        "HTTP/1.1 upstreams get origin-form request targets"
    );
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example.com");
    assert_eq!(
        h["host"], "shop.example.com",
        "Host is preserved by default"
    );
    assert_eq!(h["via"], "1.1 wasmgate");
    for gone in ["x-drop-me", "keep-alive", "proxy-authorization", "te"] {
        assert!(
            h.get(gone).is_none(),
            "{gone} must not reach the upstream: {h}"
        );
    }
    assert_eq!(r.header("via"), Some("1.1 wasmgate"));

    // One JSON access-log line per request, with route, upstream, status, latency and bytes.
    let body_len = r.body.len() as u64;
    let mut line = None;
    for _ in 0..50 {
        line = gw
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|j| j["target"] == "access" && j["path"] == "/x");
        if line.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let line = line.unwrap_or_else(|| panic!("no access-log line: {}", gw.log()));
    assert_eq!(line["route"], "route-1");
    assert_eq!(line["upstream"], "up");
    assert_eq!(line["target_addr"], up.authority());
    assert_eq!(line["status"], 200);
    assert_eq!(line["response_bytes"], body_len);
    assert_eq!(line["method"], "GET");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );

    // With preserve_host = false the upstream sees its own address.
    let gw2 = Gateway::start(&format!(
        "{}\n[[routes]]\nupstream = \"up\"\n",
        upstream_block("up", &[&up], "preserve_host = false")
    ))
    .await;
    let r = get_with(&gw2.url("/x"), &[("host", "shop.example.com")]).await;
    assert_eq!(r.json()["headers"]["host"], up.authority());
}
