use super::*;
use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse, status};

const ORDERS: &str = r#"{
    "headers": {"x-api-version": {"pattern": "[12]"}},
    "query": {"dry_run": {"required": false, "pattern": "true|false"}},
    "schema": {
        "type": "object",
        "required": ["customer", "items"],
        "properties": {
            "customer": {"type": "string", "minLength": 1},
            "items": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
            }}
        }
    }
}"#;

fn order(body: &str) -> TestRequest {
    TestRequest::new("POST", "/orders")
        .header("x-api-version", "2")
        .header("content-type", "application/json")
        .body(body.as_bytes())
}

fn violations(a: &Action) -> Vec<Value> {
    let Action::Respond(a) = a else {
        return Vec::new();
    };
    let v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
    v["violations"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_valid_order_goes_on() {
    let h = TestHost::<Validate>::new(ORDERS).unwrap();
    let ok = order(r#"{"customer": "ann", "items": [{"sku": "a-1", "qty": 2}]}"#);
    assert_eq!(status(&h.request_body(&ok)), 200);
}

#[test]
fn every_violation_is_listed_with_where_it_is() {
    let h = TestHost::<Validate>::new(ORDERS).unwrap();
    let req = TestRequest::new("POST", "/orders?dry_run=maybe")
        .header("content-type", "application/json")
        .body(br#"{"items": [{"sku": "a-1", "qty": 0}]}"#);
    let a = h.request_body(&req);
    assert_eq!(status(&a), 400);
    let v = violations(&a);
    assert_eq!(v.len(), 4, "{v:?}");
    assert_eq!(
        v[0],
        json!({"location": "header", "name": "x-api-version", "message": "the header is required"})
    );
    assert_eq!(v[1]["name"], "dry_run");
    assert_eq!(v[1]["message"], "`maybe` does not match `true|false`");
    let pointers: Vec<&str> = v[2..]
        .iter()
        .filter_map(|x| x["pointer"].as_str())
        .collect();
    assert!(
        pointers.contains(&""),
        "the missing customer is reported at the root: {v:?}"
    );
    assert!(pointers.contains(&"/items/0/qty"), "{v:?}");
}

#[test]
fn bodies_that_are_not_json_are_refused_plainly() {
    let h = TestHost::<Validate>::new(ORDERS).unwrap();
    for (ct, body, says) in [
        ("application/json", "{", "the body is not valid JSON"),
        ("text/plain", "hi", "the body must be JSON"),
        ("application/json", "", "a JSON body is required"),
    ] {
        let req = TestRequest::new("POST", "/orders")
            .header("x-api-version", "1")
            .header("content-type", ct)
            .body(body.as_bytes());
        let v = violations(&h.request_body(&req));
        assert!(
            v[0]["message"].as_str().unwrap_or("").starts_with(says),
            "{v:?}"
        );
    }
}

#[test]
fn the_list_is_capped() {
    let h = TestHost::<Validate>::new(
        r#"{"max_violations": 2, "schema": {"type": "array", "items": {"type": "integer"}}}"#,
    )
    .unwrap();
    let a = h.request_body(&order(r#"["a", "b", "c", "d"]"#));
    assert_eq!(violations(&a).len(), 2);
    let Action::Respond(a) = a else {
        unreachable!()
    };
    assert!(String::from_utf8_lossy(&a.body).contains("breaks 2+ rules"));
}

#[test]
fn head_rules_alone_need_no_body() {
    let h = TestHost::<Validate>::new(r#"{"headers": {"x-tenant": {}}}"#).unwrap();
    assert_eq!(status(&h.request_headers(&TestRequest::get("/"))), 400);
    assert_eq!(
        status(&h.request_headers(&TestRequest::get("/").header("x-tenant", "acme"))),
        200
    );
}

#[test]
fn bad_configs_are_refused_with_the_key() {
    let e = |c: &str| TestHost::<Validate>::new(c).err().unwrap_or_default();
    assert!(
        e(r#"{"schema": {"type": "nonsense"}}"#).contains("`schema` is not a valid JSON Schema")
    );
    assert!(
        e(r#"{"query": {"q": {"pattern": "("}}}"#)
            .contains("query.q.pattern `(` is not a regular expression")
    );
    assert!(e(r#"{"max_violations": 0}"#).contains("`max_violations`"));
}

const API: &str = r##"{
  "openapi": "3.0.3",
  "servers": [{"url": "https://api.example.com/v1"}],
  "paths": {
    "/users/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}],
      "get": {
        "parameters": [
          {"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string", "enum": ["name", "email"]}}},
          {"$ref": "#/components/parameters/Trace"}
        ],
        "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}}
      }
    },
    "/users/me": {"get": {"responses": {"200": {"description": "you"}}}},
    "/orders": {
      "post": {
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
        "responses": {"201": {"description": "made"}}
      }
    }
  },
  "components": {
    "parameters": {"Trace": {"name": "X-Trace", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[a-f0-9]+$"}}},
    "schemas": {
      "User": {"type": "object", "required": ["id", "name"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "nickname": {"type": "string", "nullable": true}}},
      "Order": {"type": "object", "required": ["sku", "qty"], "properties": {
        "sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}
    }
  }
}"##;

fn api(extra: &str) -> TestHost<Validate> {
    wasmgate_plugin_sdk::testing::reset();
    TestHost::new(&format!(r#"{{"openapi": {API}{extra}}}"#)).unwrap()
}

fn names(a: &Action) -> Vec<(String, String)> {
    violations(a)
        .iter()
        .map(|v| {
            let at = v
                .get("name")
                .or_else(|| v.get("pointer"))
                .and_then(Value::as_str)
                .unwrap_or("");
            (
                v["location"].as_str().unwrap_or("").to_string(),
                at.to_string(),
            )
        })
        .collect()
}

#[test]
fn openapi_parameters_are_checked_by_operation() {
    let h = api("");
    let ok = TestRequest::get("/v1/users/7?fields=name,email").header("x-trace", "abc1");
    assert_eq!(status(&h.request_headers(&ok)), 200);
    assert!(ok.body_skipped(), "a GET takes no body");
    let bad = TestRequest::get("/v1/users/0?fields=age");
    let a = h.request_headers(&bad);
    assert_eq!(status(&a), 400);
    assert_eq!(
        names(&a),
        [
            ("path".into(), "id".into()),
            ("query".into(), "fields".into()),
            ("header".into(), "x-trace".into())
        ]
    );
    let a = h.request_headers(&TestRequest::get("/v1/users/abc").header("x-trace", "a"));
    assert!(
        violations(&a)[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("integer"),
        "{:?}",
        violations(&a)
    );
    // The concrete path wins over the template.
    assert_eq!(
        status(&h.request_headers(&TestRequest::get("/v1/users/me"))),
        200
    );
}

#[test]
fn unknown_operations_are_refused_or_passed() {
    let h = api("");
    let Action::Respond(a) = h.request_headers(&TestRequest::new("DELETE", "/v1/users/7")) else {
        panic!("DELETE is not in the document")
    };
    assert_eq!(a.status, 405);
    assert!(
        a.headers.contains(&("allow".into(), "GET".into())),
        "{:?}",
        a.headers
    );
    assert_eq!(
        status(&h.request_headers(&TestRequest::get("/v1/nothing"))),
        404
    );
    assert_eq!(
        status(&h.request_headers(&TestRequest::get("/elsewhere"))),
        404,
        "outside the base path"
    );
    let pass = api(r#", "unknown": "pass""#);
    assert_eq!(
        status(&pass.request_headers(&TestRequest::get("/v1/nothing"))),
        200
    );
}

#[test]
fn openapi_request_bodies_are_checked_by_media_type() {
    let h = api("");
    let post = |ct: &str, body: &str| {
        let r = TestRequest::new("POST", "/v1/orders")
            .header("content-type", ct)
            .body(body.as_bytes());
        assert_eq!(status(&h.request_headers(&r)), 200, "checked with the body");
        assert!(!r.body_skipped());
        h.request_body(&r)
    };
    assert_eq!(
        status(&post("application/json", r#"{"sku": "a", "qty": 2}"#)),
        200
    );
    assert_eq!(
        names(&post("application/json", r#"{"sku": "a", "qty": 0}"#)),
        [("body".into(), "/qty".into())]
    );
    let a = post("text/plain", "hi");
    assert!(
        violations(&a)[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("`text/plain` is not one of application/json")
    );
    let a = post("application/json", "");
    assert_eq!(violations(&a)[0]["message"], "a body is required");
}

#[test]
fn responses_are_checked_logged_and_counted_never_blocked() {
    let h = api(r#", "validate_responses": true"#);
    let req = TestRequest::get("/v1/users/7").header("x-trace", "ab");
    h.request_headers(&req);
    let answer = |body: &str| {
        let resp = TestResponse::new(200)
            .header("content-type", "application/json")
            .body(body.as_bytes());
        h.response_headers(&req, &resp);
        assert!(!resp.body_skipped());
        assert_eq!(status(&h.response_body(&req, &resp)), 200);
    };
    answer(r#"{"id": 7, "name": "Ada", "nickname": null}"#);
    assert!(
        wasmgate_plugin_sdk::testing::logs().is_empty(),
        "nullable (3.0) allows null"
    );
    answer(r#"{"id": "7"}"#);
    let logs = wasmgate_plugin_sdk::testing::logs();
    assert!(
        logs.iter()
            .any(|(_, m)| m.contains("the 200 answer to GET /users/{id} breaks its schema")),
        "{logs:?}"
    );
    let metrics = wasmgate_plugin_sdk::testing::metrics();
    assert!(
        metrics.iter().any(|(n, _, l)| n == "response_invalid"
            && l.contains(&("operation".into(), "GET /users/{id}".into()))),
        "{metrics:?}"
    );
    // A status the document does not describe is not checked (its body streams).
    let resp = TestResponse::new(500).header("content-type", "application/json");
    h.response_headers(&req, &resp);
    assert!(resp.body_skipped());
}

#[test]
fn openapi_files_and_bad_documents() {
    let dir = std::env::temp_dir().join(format!("validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = dir.join("api.yaml");
    std::fs::write(&yaml, "openapi: 3.1.0\npaths:\n  /ping:\n    get:\n      parameters:\n        - {name: n, in: query, required: true, schema: {type: integer}}\n").unwrap();
    let h =
        TestHost::<Validate>::new(&format!(r#"{{"openapi_file": "{}"}}"#, yaml.display())).unwrap();
    assert_eq!(
        status(&h.request_headers(&TestRequest::get("/ping?n=3"))),
        200
    );
    assert_eq!(
        status(&h.request_headers(&TestRequest::get("/ping?n=x"))),
        400
    );
    for (config, says) in [
        (r#"{"openapi": {"paths": {}}}"#.to_string(), "openapi: the document has no `openapi` version"),
        (r#"{"openapi": {"openapi": "2.0", "paths": {}}}"#.into(), "OpenAPI `2.0` is not supported"),
        (
            r#"{"openapi": {"openapi": "3.1.0", "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "nonsense"}}}}}}}}}"#.into(),
            "openapi: paths./a.post.requestBody.content.application/json: the schema is not valid",
        ),
        (format!(r#"{{"openapi": {API}, "schema": {{}}}}"#), "not both"),
        (r#"{"validate_responses": true}"#.into(), "`validate_responses` needs"),
        (r#"{"openapi_file": "/nowhere/api.json"}"#.into(), "grant its folder to the plugin with `dirs`"),
    ] {
        let err = TestHost::<Validate>::new(&config).err().unwrap_or_default();
        assert!(err.contains(says), "{config}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
