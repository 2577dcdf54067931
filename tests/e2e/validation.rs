//! The `validate` plugin through the real gateway: valid requests go on whole, invalid ones get
//! one 400 listing every violation and never reach the upstream, hostile bodies are refused
//! cleanly and the gateway goes on serving.

use std::sync::atomic::Ordering;

use crate::harness::*;

const SCHEMA: &str = r#"{ type = "object", required = ["order"], properties = { order = { type = "object", required = ["type", "qty"], properties = { type = { enum = ["standard", "premium"] }, qty = { type = "integer", minimum = 1 } } } } }"#;

async fn gateway(up: &Upstream) -> Gateway {
    Gateway::start(
        &(upstream_block("up", &[up], "")
            + &plugin_block("validate", "validate", "body_limit = \"1MiB\"")
            + &format!(
                "[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"up\"\nplugins = [{{ name = \"validate\", config = {{ headers = {{ x-api-version = {{ pattern = \"[12]\" }} }}, schema = {SCHEMA} }} }}]\n"
            )),
    )
    .await
}

fn post(
    gw: &Gateway,
    version: Option<&str>,
    ct: &str,
    body: impl Into<bytes::Bytes>,
) -> http::Request<Body> {
    let mut r = http::Request::post(gw.url("/orders")).header("content-type", ct);
    if let Some(v) = version {
        r = r.header("x-api-version", v);
    }
    r.body(full(body)).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_lets_valid_orders_through_and_lists_what_is_wrong() {
    let up = Upstream::echo("up").await;
    let gw = gateway(&up).await;
    let good = r#"{"order": {"type": "premium", "qty": 2}}"#;
    let r = send(post(&gw, Some("2"), "application/json", good))
        .await
        .expect("post");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["headers"]["content-length"],
        good.len().to_string()
    );

    let r = send(post(
        &gw,
        Some("3"),
        "application/json",
        r#"{"order": {"type": "gold", "qty": 0}}"#,
    ))
    .await
    .expect("post");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let v = r.json();
    assert_eq!(v["detail"], "the request breaks 3 rules");
    assert_eq!(
        v["violations"][0],
        serde_json::json!({"location": "header", "name": "x-api-version", "message": "`3` does not match `[12]`"})
    );
    let mut pointers: Vec<&str> = v["violations"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["pointer"].as_str()).collect())
        .unwrap_or_default();
    pointers.sort_unstable();
    assert_eq!(pointers, ["/order/qty", "/order/type"], "{v}");
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        1,
        "only the valid order went on"
    );
}

/// A body sent zstd-compressed is validated decoded, and goes on as it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reads_compressed_bodies() {
    let up = Upstream::echo("up").await;
    let gw = gateway(&up).await;
    let zstd = |json: &str| zstd::stream::encode_all(json.as_bytes(), 3).expect("in-memory");
    let send_zstd = |body: Vec<u8>| {
        let mut r = post(&gw, Some("1"), "application/json", body);
        r.headers_mut()
            .insert("content-encoding", http::HeaderValue::from_static("zstd"));
        send(r)
    };
    let good = zstd(r#"{"order": {"type": "standard", "qty": 3}}"#);
    let r = send_zstd(good.clone()).await.expect("post");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["content-encoding"], "zstd");
    assert_eq!(
        r.json()["headers"]["content-length"],
        good.len().to_string(),
        "the upstream got the bytes sent"
    );
    let r = send_zstd(zstd(r#"{"order": {"type": "standard", "qty": -1}}"#))
        .await
        .expect("post");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["violations"][0]["pointer"], "/order/qty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_refuses_hostile_bodies_and_the_gateway_goes_on() {
    let up = Upstream::echo("up").await;
    let gw = gateway(&up).await;
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let mut invalid_utf8 = br#"{"order": {"type": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#"", "qty": 1}}"#);
    for (name, body, status, says) in [
        (
            "deeply nested",
            bytes::Bytes::from(deep),
            400,
            "the body is not valid JSON: recursion limit exceeded",
        ),
        (
            "invalid UTF-8",
            bytes::Bytes::from(invalid_utf8),
            400,
            "the body is not valid JSON",
        ),
        ("10 MB", bytes::Bytes::from(vec![b' '; 10 << 20]), 413, ""),
    ] {
        let r = match send(post(&gw, Some("1"), "application/json", body)).await {
            Ok(r) => r,
            // The gateway answers 413 once the body passes the limit and closes the connection
            // while the client is still writing; the client may see its write fail before it
            // reads the answer (the gateway does not linger to drain the rest, as nginx does).
            Err(e) if status == 413 && format!("{e:?}").contains("BodyWrite") => continue,
            Err(e) => panic!("{name}: {e:?}"),
        };
        assert_eq!(r.status, status, "{name}: {}", r.text());
        let text = r.text();
        assert!(text.contains(says), "{name}: {text}");
    }
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        0,
        "nothing hostile reached the upstream"
    );
    let good = r#"{"order": {"type": "standard", "qty": 1}}"#;
    let r = send(post(&gw, Some("1"), "application/json", good))
        .await
        .expect("post");
    assert_eq!(r.status, 200, "the gateway goes on: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_bad_configs_are_refused_by_check() {
    let up = Upstream::echo("up").await;
    for (config, says) in [
        (
            r#"{ schema = { type = "nonsense" } }"#,
            "`schema` is not a valid JSON Schema",
        ),
        (
            r#"{ query = { q = { pattern = "(" } } }"#,
            "query.q.pattern `(` is not a regular expression",
        ),
        (
            r#"{ headers = { x = { needed = true } } }"#,
            "unknown field `needed`",
        ),
        (
            r#"{ openapi = { openapi = "2.0", paths = {} } }"#,
            "openapi: OpenAPI `2.0` is not supported",
        ),
        (
            r#"{ openapi_file = "/spec/missing.yaml" }"#,
            "grant its folder to the plugin with `dirs`",
        ),
    ] {
        let err = check_refuses(
            &(upstream_block("up", &[&up], "")
                + &plugin_block("validate", "validate", "")
                + &format!(
                    "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstream = \"up\"\nplugins = [{{ name = \"validate\", config = {config} }}]\n"
                )),
        );
        assert!(
            err.contains("route `api` plugin `validate`") && err.contains(says),
            "{config}: {err}"
        );
    }
}

/// An OpenAPI document read from a file granted to the plugin: requests are checked by
/// operation, unknown methods get 405 with `Allow`, and answers that break the document are
/// logged and counted while the client still gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_checks_requests_and_answers() {
    let up = Upstream::serve("up", |req| async move {
        // The user service answers a string id: a break of its own contract.
        let body = if req.uri().path().ends_with("/7") {
            r#"{"id": 7, "name": "Ada"}"#
        } else {
            r#"{"id": "oops"}"#
        };
        answer("application/json", &[], body)
    })
    .await;
    let dir = temp_dir("openapi");
    std::fs::write(
        dir.join("api.yaml"),
        r#"openapi: 3.1.0
servers: [{url: /api}]
paths:
  /users/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
        - {name: verbose, in: query, schema: {type: boolean}}
      responses:
        "200":
          content:
            application/json:
              schema: {type: object, required: [id, name], properties: {id: {type: integer}, name: {type: string}}}
"#,
    )
    .expect("write the document");
    let gw = Gateway::start(
        &(upstream_block("up", &[&up], "")
            + &plugin_block(
                "validate",
                "validate",
                &format!("dirs = [{{ host = \"{}\", guest = \"/spec\" }}]", dir.display()),
            )
            + "[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"up\"\nplugins = [{ name = \"validate\", config = { openapi_file = \"/spec/api.yaml\", validate_responses = true } }]\n"),
    )
    .await;
    let r = get_with(&gw.url("/api/users/7?verbose=true"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_with(&gw.url("/api/users/0?verbose=maybe"), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    let at: Vec<(&str, &str)> = v["violations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["location"].as_str().unwrap_or(""),
                        x["name"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(at, [("path", "id"), ("query", "verbose")], "{v}");
    let r = send(
        http::Request::delete(gw.url("/api/users/7"))
            .body(full(""))
            .expect("request"),
    )
    .await
    .expect("delete");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(get_with(&gw.url("/api/orders"), &[]).await.status, 404);
    // An answer that breaks the document still reaches the client; the gateway says so.
    let r = get_with(&gw.url("/api/users/8"), &[]).await;
    assert_eq!(
        (r.status, r.text()),
        (http::StatusCode::OK, r#"{"id": "oops"}"#.to_string())
    );
    gw.wait_log("the 200 answer to GET /users/{id} breaks its schema")
        .await;
    let scrape = gw.metrics().await;
    assert!(
        metric_line(
            &scrape,
            "wasmgate_plugin_response_invalid",
            &["operation=\"GET /users/{id}\""]
        )
        .is_some(),
        "{scrape}"
    );
}
