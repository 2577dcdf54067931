use super::*;
use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest, TestResponse};

const CONFIG: &str = r#"{"ttl_s": 60, "stale_if_error_s": 300, "bypass": ["/search"],
    "ignore_query": ["utm_source"]}"#;

/// One request through the plugin with `upstream` answering (when the plugin lets it):
/// the status, the `x-cache` header and the body the client gets.
fn fetch(h: &TestHost<Cache>, req: TestRequest, upstream: TestResponse) -> (u16, String, Vec<u8>) {
    match h.request_headers(&req) {
        Action::Respond(a) => (a.status, header(&a, "x-cache"), a.body),
        Action::Continue => match h.response_headers(&req, &upstream) {
            Action::Respond(a) => (a.status, header(&a, "x-cache"), a.body),
            Action::Continue => {
                h.response_body(&req, &upstream);
                let v = upstream.view();
                (
                    v.status(),
                    v.header("x-cache").unwrap_or_default(),
                    v.body().unwrap_or_default(),
                )
            }
        },
    }
}

fn header(a: &Answer, name: &str) -> String {
    a.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn ok(body: &str) -> TestResponse {
    TestResponse::new(200)
        .header("content-type", "text/plain")
        .body(body.as_bytes())
}

fn host() -> TestHost<Cache> {
    testing::reset();
    testing::set_clock_ms(1_000_000);
    TestHost::<Cache>::new(CONFIG).unwrap()
}

#[test]
fn a_miss_is_stored_and_the_next_request_is_a_hit_until_the_ttl() {
    let h = host();
    assert_eq!(
        fetch(&h, TestRequest::get("/p?b=2&a=1"), ok("v1")),
        (200, "MISS".into(), b"v1".to_vec())
    );
    // Same query in another order, an ignored parameter: the same entry.
    testing::set_clock_ms(1_030_000);
    let req = TestRequest::get("/p?a=1&utm_source=x&b=2");
    let Action::Respond(hit) = h.request_headers(&req) else {
        panic!("not a hit");
    };
    assert_eq!(
        (hit.body.as_slice(), header(&hit, "x-cache").as_str()),
        (&b"v1"[..], "HIT")
    );
    assert_eq!(header(&hit, "age"), "30");
    assert_eq!(header(&hit, "content-type"), "text/plain");
    testing::set_clock_ms(1_061_000);
    assert_eq!(
        fetch(&h, TestRequest::get("/p?a=1&b=2"), ok("v2")).1,
        "MISS"
    );
}

#[test]
fn cache_control_decides_what_is_kept_and_for_how_long() {
    let h = host();
    let upstream = |cc: &str| ok("x").header("cache-control", cc);
    fetch(&h, TestRequest::get("/a"), upstream("max-age=5"));
    fetch(&h, TestRequest::get("/b"), upstream("no-store"));
    fetch(&h, TestRequest::get("/c"), upstream("private, max-age=600"));
    fetch(
        &h,
        TestRequest::get("/d"),
        upstream("max-age=5, s-maxage=100"),
    );
    fetch(
        &h,
        TestRequest::get("/e"),
        ok("x").header("set-cookie", "sid=1"),
    );
    testing::set_clock_ms(1_006_000);
    let cached = |p: &str| fetch(&h, TestRequest::get(p), ok("new")).1 == "HIT";
    assert_eq!(
        ["/a", "/b", "/c", "/d", "/e"].map(cached),
        [false, false, false, true, false]
    );
}

#[test]
fn an_upstream_error_gets_the_stale_entry_within_its_window() {
    let h = host();
    fetch(&h, TestRequest::get("/p"), ok("old"));
    testing::set_clock_ms(1_100_000);
    let failed = || TestResponse::new(502).body(b"bad gateway");
    assert_eq!(
        fetch(&h, TestRequest::get("/p"), failed()),
        (200, "STALE".into(), b"old".to_vec())
    );
    testing::set_clock_ms(1_000_000 + 361_000);
    assert_eq!(fetch(&h, TestRequest::get("/p"), failed()).0, 502);
}

#[test]
fn bypassed_requests_are_marked_and_never_stored() {
    let h = host();
    for req in [
        TestRequest::get("/search?q=x"),
        TestRequest::get("/p").header("authorization", "Bearer t"),
        TestRequest::get("/p").header("cookie", "sid=1"),
        TestRequest::new("POST", "/p"),
    ] {
        assert_eq!(fetch(&h, req, ok("x")).1, "BYPASS");
    }
    assert_eq!(fetch(&h, TestRequest::get("/p"), ok("x")).1, "MISS");
}

#[test]
fn vary_keeps_variants_apart() {
    let h = host();
    let en = || TestRequest::get("/p").header("accept-language", "en");
    fetch(&h, en(), ok("hello").header("vary", "Accept-Language"));
    assert_eq!(fetch(&h, en(), ok("x")).1, "HIT");
    let fr = TestRequest::get("/p").header("accept-language", "fr");
    assert_eq!(fetch(&h, fr, ok("bonjour")).1, "MISS");
}

#[test]
fn a_purge_makes_entries_under_its_prefix_misses() {
    let h = host();
    fetch(&h, TestRequest::get("/products/1"), ok("p1"));
    fetch(&h, TestRequest::get("/orders/1"), ok("o1"));
    let purger = TestHost::<Cache>::new(r#"{"purge": true}"#).unwrap();
    let a = purger.request_headers(&TestRequest::new("POST", "/purge?prefix=/products"));
    assert_eq!(testing::status(&a), 200);
    assert_eq!(
        fetch(&h, TestRequest::get("/products/1"), ok("p1'")).1,
        "MISS"
    );
    assert_eq!(fetch(&h, TestRequest::get("/orders/1"), ok("x")).1, "HIT");
    // Stored after the purge: a hit again.
    testing::set_clock_ms(1_000_001);
    fetch(&h, TestRequest::get("/products/2"), ok("p2"));
    assert_eq!(fetch(&h, TestRequest::get("/products/2"), ok("x")).1, "HIT");
}

#[test]
fn an_unavailable_store_bypasses() {
    let h = host();
    testing::set_kv_down(true);
    assert_eq!(fetch(&h, TestRequest::get("/p"), ok("x")).1, "BYPASS");
}
