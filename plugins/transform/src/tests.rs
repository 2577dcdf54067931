use serde_json::{Value, json};
use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest, TestResponse, status};

use super::*;

fn host(config: Value) -> TestHost<Transform> {
    testing::reset();
    TestHost::new(&config.to_string()).unwrap()
}

fn json_of(body: Option<Vec<u8>>) -> Value {
    serde_json::from_slice(&body.unwrap_or_default()).unwrap()
}

/// The response a JSON upstream body becomes.
fn respond(h: &TestHost<Transform>, req: &TestRequest, body: Value) -> TestResponse {
    let resp = TestResponse::new(200)
        .header("content-type", "application/json")
        .header("etag", "\"abc\"")
        .body(body.to_string().as_bytes());
    assert_eq!(status(&h.response_headers(req, &resp)), 200);
    assert_eq!(status(&h.response_body(req, &resp)), 200);
    resp
}

#[test]
fn v2_served_in_the_v1_shape() {
    let h = host(json!({"response": {
        "shape": "{id: id, firstName: split(fullName, ' ')[0], lastName: join(' ', split(fullName, ' ')[1:]), email: email}"
    }}));
    let req = TestRequest::get("/v1/users/7");
    let resp = respond(
        &h,
        &req,
        json!({"id": 7, "fullName": "Ada King Lovelace", "email": "ada@example.com", "plan": "pro"}),
    );
    assert_eq!(
        json_of(resp.view().body()),
        json!({"id": 7, "firstName": "Ada", "lastName": "King Lovelace", "email": "ada@example.com"})
    );
    assert_eq!(
        resp.view().header("etag"),
        None,
        "the upstream's ETag no longer names the body"
    );
}

#[test]
fn renames_moves_removes_and_cases_in_order() {
    let h = host(json!({"request": {
        "keys": "snake",
        "rename": {"user_id": "user"},
        "move": {"home_address.zip_code": "zip"},
        "remove": ["password", "items[].internal_note"],
    }}));
    let req = TestRequest::new("POST", "/orders")
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({"userId": 7, "password": "x", "homeAddress": {"zipCode": "10115", "city": "Berlin"},
                     "items": [{"sku": "a", "internalNote": "n"}]}).to_string().as_bytes());
    assert_eq!(status(&h.request_headers(&req)), 200);
    assert!(!req.body_skipped());
    assert_eq!(status(&h.request_body(&req)), 200);
    assert_eq!(
        json_of(req.view().body()),
        json!({"user": 7, "home_address": {"city": "Berlin"}, "items": [{"sku": "a"}], "zip": "10115"})
    );
}

#[test]
fn adds_computed_metadata() {
    let h = host(json!({"response": {"add": {
        "_gateway_received_at": "{received_at}",
        "_request_id": "{request_id}",
        "_client_ip": "{client_ip}",
        "_request_duration_ms": "{duration_ms}",
        "_api_version": "{api_version}",
        "_route": "{route}",
        "_consumer": "{context.consumer}",
        "_trace": "{trace_id}",
        "meta.source": "gateway",
        "meta.flags": [1, 2],
        "_missing": "{header.x-nope}",
    }}}));
    assert!(
        h.phases().contains(Phases::REQUEST_HEADERS),
        "the arrival time is taken then"
    );
    assert!(!h.phases().contains(Phases::REQUEST_BODY));
    testing::set_clock_ms(19_782 * 86_400_000 + 45_296_789);
    let req = TestRequest::get("/v2/users/1")
        .route("users", &[("version", "v2")])
        .client_ip("203.0.113.9")
        .header("x-request-id", "req-1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .context("consumer", "alice");
    h.request_headers(&req);
    testing::set_clock_ms(19_782 * 86_400_000 + 45_296_789 + 12);
    let resp = respond(&h, &req, json!({"id": 1}));
    assert_eq!(
        json_of(resp.view().body()),
        json!({"id": 1, "_gateway_received_at": "2024-02-29T12:34:56.789Z", "_request_id": "req-1",
               "_client_ip": "203.0.113.9", "_request_duration_ms": 12, "_api_version": "v2",
               "_route": "users", "_consumer": "alice", "_trace": "4bf92f3577b34da6a3ce929d0e0e4736",
               "meta": {"source": "gateway", "flags": [1, 2]}, "_missing": null})
    );
}

#[test]
fn xml_response_becomes_json_and_json_request_becomes_xml() {
    let h = host(json!({
        "request": {"to": "xml", "xml_root": "order"},
        "response": {"from": "xml", "keys": "camel"},
    }));
    let req = TestRequest::new("POST", "/legacy")
        .header("content-type", "application/json")
        .body(br#"{"sku": "a&b", "qty": 2}"#);
    h.request_headers(&req);
    assert_eq!(status(&h.request_body(&req)), 200);
    assert_eq!(
        String::from_utf8(req.view().body().unwrap()).unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><order><sku>a&amp;b</sku><qty>2</qty></order>"#
    );
    assert_eq!(
        req.view().header("content-type").as_deref(),
        Some("application/xml")
    );

    let resp = TestResponse::new(200)
        .header("content-type", "text/xml; charset=utf-8")
        .body(b"<order_status><order_id>7</order_id><state>shipped</state></order_status>");
    h.response_headers(&req, &resp);
    assert!(!resp.body_skipped());
    h.response_body(&req, &resp);
    assert_eq!(
        json_of(resp.view().body()),
        json!({"orderStatus": {"orderId": "7", "state": "shipped"}})
    );
    assert_eq!(
        resp.view().header("content-type").as_deref(),
        Some("application/json")
    );
}

#[test]
fn other_content_types_stream_untouched() {
    let h = host(json!({"request": {"keys": "camel"}, "response": {"keys": "camel"}}));
    let req = TestRequest::new("POST", "/upload")
        .header("content-type", "image/png")
        .body(b"\x89PNG");
    h.request_headers(&req);
    assert!(req.body_skipped());
    let resp = TestResponse::new(200)
        .header("content-type", "text/html")
        .body(b"<p>hi</p>");
    h.response_headers(&req, &resp);
    assert!(resp.body_skipped());
    // `+json` types are JSON.
    let problem = TestResponse::new(404).header("content-type", "application/problem+json");
    h.response_headers(&req, &problem);
    assert!(!problem.body_skipped());
}

#[test]
fn unparsable_bodies() {
    let h = host(json!({"request": {"keys": "camel"}, "response": {"keys": "camel"}}));
    let req = TestRequest::new("POST", "/x")
        .header("content-type", "application/json")
        .body(b"{nope");
    h.request_headers(&req);
    let a = h.request_body(&req);
    assert_eq!(status(&a), 400);
    let Action::Respond(answer) = a else {
        unreachable!()
    };
    let detail = json_of(Some(answer.body))["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("not JSON"), "{detail}");

    let resp = TestResponse::new(200)
        .header("content-type", "application/json")
        .body(b"[1,");
    h.response_headers(&req, &resp);
    assert_eq!(status(&h.response_body(&req, &resp)), 200);
    assert_eq!(
        resp.view().body().unwrap(),
        b"[1,",
        "passed through unchanged"
    );
    assert!(
        testing::logs()
            .iter()
            .any(|(_, m)| m.contains("passes unchanged"))
    );

    let strict = host(json!({"response": {"keys": "camel", "on_error": "fail"}}));
    let resp = TestResponse::new(200)
        .header("content-type", "application/json")
        .body(b"[1,");
    strict.response_headers(&req, &resp);
    assert_eq!(status(&strict.response_body(&req, &resp)), 502);
}

#[test]
fn bad_configs_are_refused() {
    for (config, says) in [
        (json!({}), "give `request` or `response`"),
        (
            json!({"request": {"rename": {"a": "b.c"}}}),
            "request.rename.\"a\": `b.c` must be a plain field name",
        ),
        (
            json!({"response": {"move": {"a[].b": "c"}}}),
            "response.move.\"a[].b\"",
        ),
        (
            json!({"response": {"remove": ["a..b"]}}),
            "response.remove: `a..b` has an empty field name",
        ),
        (
            json!({"response": {"shape": "a[["}}),
            "response.shape: `a[[` is not a JMESPath expression",
        ),
        (
            json!({"response": {"add": {"x": "{nope}"}}}),
            "response.add.\"x\": `{nope}` is not one of",
        ),
        (
            json!({"response": {"keys": "upper"}}),
            "unknown variant `upper`",
        ),
        (json!({"response": {"types": []}}), "response.types"),
        (
            json!({"response": {"renames": {}}}),
            "unknown field `renames`",
        ),
    ] {
        let err = TestHost::<Transform>::new(&config.to_string())
            .err()
            .unwrap_or_default();
        assert!(err.contains(says), "{config}: {err}");
    }
}
