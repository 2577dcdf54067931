use super::*;
use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, status};

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
