//! The `transform` plugin through the real gateway: a v2 backend served in the v1 shape,
//! XML ↔ JSON both ways, a gzip-encoded answer transformed, other content types streamed
//! unread, and hostile or oversized bodies refused with the status a client expects.

use std::io::Write;
use std::sync::Arc;

use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::harness::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A backend with a JSON, an XML, a gzip-encoded and a big answer; a POST is answered with
/// what it received (content type and body), so the test sees what the gateway sent.
async fn backend() -> Upstream {
    Upstream::serve("up", |req| async move {
        let path = req.uri().path().to_string();
        if req.method() == http::Method::POST {
            let ct = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let got = serde_json::json!({"content_type": ct, "body": String::from_utf8_lossy(&body)});
            return answer("application/json", &[], got.to_string());
        }
        match path.as_str() {
            "/v2/users/7" => answer(
                "application/json",
                &[("etag", "\"u7\"")],
                r#"{"id":7,"fullName":"Ada King Lovelace","email":"ada@example.com","plan":"pro"}"#,
            ),
            "/xml" => answer(
                "text/xml; charset=utf-8",
                &[],
                r#"<?xml version="1.0"?><order id="7"><item sku="a">2</item><item sku="b">1</item><note>fish &amp; chips</note></order>"#,
            ),
            "/gz" => answer(
                "application/json",
                &[("content-encoding", "gzip")],
                gzip(br#"{"user_id":1,"display_name":"x"}"#),
            ),
            "/big" => answer("application/json", &[], format!("[{}0]", "0,".repeat(40_000))),
            "/broken" => answer("application/json", &[], "{\"a\":"),
            _ => answer("text/plain", &[], "plain"),
        }
    })
    .await
}

fn config(up: &Upstream, route_config: &str) -> String {
    upstream_block("up", &[up], "")
        + &plugin_block("transform", "transform", "body_limit = \"64KiB\"")
        + &format!(
            "[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\nplugins = [{{ name = \"transform\", config = {route_config} }}]\n"
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_reshaped_and_xml_converted_both_ways() {
    let up = backend().await;
    let gw = Gateway::start(&config(
        &up,
        r#"{ request = { to = "xml", xml_root = "order" }, response = { keys = "camel", shape = "{id: id, firstName: split(fullName, ' ')[0], lastName: join(' ', split(fullName, ' ')[1:]), email: email}", add = { "_request_id" = "{request_id}", "_client_ip" = "{client_ip}" } } }"#,
    ))
    .await;

    // v2 answer in the v1 shape, metadata added, the upstream's ETag dropped.
    let r = get_with(&gw.url("/v2/users/7"), &[("x-request-id", "abc-1")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"id": 7, "firstName": "Ada", "lastName": "King Lovelace",
            "email": "ada@example.com", "_request_id": "abc-1", "_client_ip": "127.0.0.1"})
    );
    assert_eq!(r.header("etag"), None);
    assert_eq!(
        r.header("content-length").map(str::to_string),
        Some(r.text().len().to_string()),
        "Content-Length fixed"
    );

    // A JSON request goes upstream as XML.
    let (ok, out) = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"sku": "a&b", "qty": 2}"#,
        &gw.url("/orders"),
    ]);
    assert!(ok, "{out}");
    let got: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(got["content_type"], "application/xml");
    assert_eq!(
        got["body"],
        r#"<?xml version="1.0" encoding="UTF-8"?><order><sku>a&amp;b</sku><qty>2</qty></order>"#
    );
    // Other request types go through as they were.
    let (_, out) = curl(&[
        "-H",
        "content-type: text/plain",
        "-d",
        "hello",
        &gw.url("/notes"),
    ]);
    assert!(
        out.contains(r#""body":"hello""#) && out.contains("text/plain"),
        "{out}"
    );
    // A request body that is not JSON: 400, nothing forwarded.
    let (_, out) = curl(&[
        "-i",
        "-H",
        "content-type: application/json",
        "-d",
        "{nope",
        &gw.url("/orders"),
    ]);
    assert!(
        out.starts_with("HTTP/1.1 400") && out.contains("not JSON"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_answers_become_json_and_hostile_xml_is_refused() {
    let up = backend().await;
    let gw = Gateway::start(&config(
        &up,
        r#"{ request = { from = "xml" }, response = { from = "xml" } }"#,
    ))
    .await;
    let r = get_with(&gw.url("/xml"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"order": {"@id": "7",
            "item": [{"@sku": "a", "#text": "2"}, {"@sku": "b", "#text": "1"}],
            "note": "fish & chips"}})
    );
    // Billion laughs: the DTD's entities are never expanded; the request is refused.
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><lolz>&lol2;</lolz>"#;
    let (_, out) = curl(&[
        "-i",
        "-H",
        "content-type: application/xml",
        "-d",
        laughs,
        &gw.url("/in"),
    ]);
    assert!(
        out.starts_with("HTTP/1.1 400") && out.contains("not XML"),
        "{out}"
    );
    let deep = "<a>".repeat(1000) + &"</a>".repeat(1000);
    let (_, out) = curl(&[
        "-i",
        "-H",
        "content-type: application/xml",
        "-d",
        &deep,
        &gw.url("/in"),
    ]);
    assert!(
        out.starts_with("HTTP/1.1 400") && out.contains("deeper than 64"),
        "{out}"
    );
    // A good one arrives as JSON.
    let (_, out) = curl(&[
        "-H",
        "content-type: application/xml",
        "-d",
        "<user>alice</user>",
        &gw.url("/in"),
    ]);
    assert!(out.contains(r#""body":"{\"user\":\"alice\"}""#), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_oversized_and_unparsable_bodies() {
    let up = backend().await;
    let gw = Gateway::start(&config(
        &up,
        r#"{ request = { keys = "camel" }, response = { keys = "camel" } }"#,
    ))
    .await;
    // Above the plugin's body_limit: 502 for an answer, 413 for a request.
    let r = get_with(&gw.url("/big"), &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let big = format!("[{}0]", "0,".repeat(40_000));
    let (_, out) = curl(&[
        "-i",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &big,
        &gw.url("/in"),
    ]);
    assert!(out.starts_with("HTTP/1.1 413") || out.is_empty(), "{out}");
    // A gzip-encoded answer is decoded, transformed, and sent plain.
    let r = get_with(&gw.url("/gz"), &[]).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(
        r.json(),
        serde_json::json!({"userId": 1, "displayName": "x"})
    );
    // An answer that is not JSON passes unchanged, with a warning in the log.
    let r = get_with(&gw.url("/broken"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"a\":");
    gw.wait_log("passes unchanged").await;
}

/// A response of a type the plugin does not transform streams through: the client reads its
/// first part while the upstream still holds the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_types_stream_through_unread() {
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let up = Upstream::serve("up", move |_req| {
        let body = held_body(
            bytes::Bytes::from_static(b"first part;"),
            bytes::Bytes::from_static(b"the rest"),
            held.clone(),
        );
        async move {
            let mut r = http::Response::new(body);
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("text/event-stream"),
            );
            r
        }
    })
    .await;
    let gw = Gateway::start(&config(&up, r#"{ response = { keys = "camel" } }"#)).await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    conn.write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let has = |needle: &'static str| move |g: &[u8]| String::from_utf8_lossy(g).contains(needle);
    read_until(
        &mut conn,
        &mut got,
        has("first part;"),
        "the first part while the upstream holds the rest",
    )
    .await;
    release.notify_one();
    read_until(&mut conn, &mut got, has("the rest"), "the rest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transform_configs_are_refused_by_check() {
    let up = Upstream::echo("up").await;
    for (config, says) in [
        (r#"{ response = { shape = "a[[" } }"#, "response.shape"),
        (
            r#"{ request = { rename = { a = "b.c" } } }"#,
            "must be a plain field name",
        ),
        (
            r#"{ response = { add = { x = "{nope}" } } }"#,
            "`{nope}` is not one of",
        ),
        (
            r#"{ response = { from = "yaml" } }"#,
            "unknown variant `yaml`",
        ),
    ] {
        let err = check_refuses(
            &(upstream_block("up", &[&up], "")
                + &plugin_block("transform", "transform", "")
                + &format!(
                    "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstream = \"up\"\nplugins = [{{ name = \"transform\", config = {config} }}]\n"
                )),
        );
        assert!(
            err.contains("route `api` plugin `transform`") && err.contains(says),
            "{config}: {err}"
        );
    }
}

/// Hostile bodies both ways: refused (requests) or passed on untouched (responses), the
/// gateway unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_are_refused_cleanly() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let mut invalid_utf8 = br#"{"user_name": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}"#);
    let (served_deep, served_bad) = (deep.clone(), invalid_utf8.clone());
    let up = Upstream::serve("up", move |req| {
        let (deep, bad) = (served_deep.clone(), served_bad.clone());
        async move {
            match req.uri().path() {
                "/deep" => answer("application/json", &[], deep),
                "/utf8" => answer("application/json", &[], bad),
                "/huge" => answer("application/json", &[], vec![b' '; 10 << 20]),
                _ => answer("application/json", &[], r#"{"user_name":"ok"}"#),
            }
        }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("up", &[&up], "")
            + &plugin_block("transform", "transform", "body_limit = \"1MiB\"")
            + "[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\nplugins = [{ name = \"transform\", config = { request = { keys = \"camel\" }, response = { keys = \"camel\" } } }]\n"),
    )
    .await;
    let post = |body: bytes::Bytes| {
        http::Request::post(gw.url("/in"))
            .header("content-type", "application/json")
            .body(full(body))
            .expect("request")
    };
    for (name, body, status, says) in [
        (
            "deeply nested",
            bytes::Bytes::from(deep.clone()),
            400,
            "recursion limit exceeded",
        ),
        (
            "invalid UTF-8",
            bytes::Bytes::from(invalid_utf8.clone()),
            400,
            "not UTF-8",
        ),
        ("10 MB", bytes::Bytes::from(vec![b' '; 10 << 20]), 413, ""),
    ] {
        let r = match send(post(body)).await {
            Ok(r) => r,
            // 413 once the body passes the limit; the client may see its write fail first.
            Err(e) if status == 413 && format!("{e:?}").contains("BodyWrite") => continue,
            Err(e) => panic!("{name}: {e:?}"),
        };
        assert_eq!(r.status, status, "{name}: {}", r.text());
        assert!(r.text().contains(says), "{name}: {}", r.text());
    }
    // Answers: passed on as they came (a warning logged), or 502 over the limit.
    let r = get_with(&gw.url("/deep"), &[]).await;
    assert_eq!(
        (r.status, r.text().len()),
        (http::StatusCode::OK, deep.len())
    );
    let r = get_with(&gw.url("/utf8"), &[]).await;
    assert_eq!(r.status, 200);
    let r = get_with(&gw.url("/huge"), &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    // Unharmed.
    let r = get_with(&gw.url("/fine"), &[]).await;
    assert_eq!(r.json(), serde_json::json!({"userName": "ok"}));
}
