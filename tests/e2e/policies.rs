//! The policy plugins through the real gateway: rate limiting (one gateway, then two sharing a
//! real Redis, then Redis going away and coming back).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Waits until a fixed window of `window_ms` has at least `need_ms` left, so a test's requests
/// all fall in one window.
async fn fresh_window(window_ms: u64, need_ms: u64) {
    let left = window_ms - now_ms() % window_ms;
    if left < need_ms {
        tokio::time::sleep(Duration::from_millis(left + 20)).await;
    }
}

/// Plugins and a route: the consumer and tier come from request headers (standing in for an
/// auth plugin), then `rate-limit` with `config`.
fn limited(up: &Upstream, store: &str, config: &str) -> String {
    upstream_block(&up.name, &[up], "")
        + store
        + &plugin_block("set-context", "set-context", "")
        + &plugin_block("rate-limit", "rate-limit", "")
        + &format!(
            r#"[[routes]]
name = "api"
upstream = "{}"
plugins = [
  {{ name = "set-context", config = {{ key = "consumer", from_header = "x-user" }} }},
  {{ name = "set-context", config = {{ key = "tier", from_header = "x-tier" }} }},
  {{ name = "rate-limit", config = {config} }},
]
"#,
            up.name
        )
}

async fn as_user(gw: &Gateway, user: &str, tier: &str) -> Resp {
    get_with(&gw.url("/"), &[("x-user", user), ("x-tier", tier)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_exact_at_the_boundary_per_tier_and_resets() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&limited(
        &a,
        "",
        r#"{ limit = 3, window_s = 2, algorithm = "fixed_window", tiers = { premium = { limit = 5 } } }"#,
    ))
    .await;
    fresh_window(2000, 1500).await;
    for left in ["2", "1", "0"] {
        let r = as_user(&gw, "alice", "free").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-remaining"), Some(left));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(left));
        let reset: u64 = r
            .header("ratelimit-reset")
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        assert!((1..=2).contains(&reset), "reset {reset}");
    }
    let r = as_user(&gw, "alice", "free").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.json()["detail"],
        "limit of 3 requests per 2 s of plan `default` reached"
    );
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let retry: u64 = r.header("retry-after").unwrap_or("").parse().unwrap_or(0);
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::Relaxed), 3);

    let premium: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(as_user(&gw, "bob", "premium").await.status.as_u16());
        }
        v
    };
    assert_eq!(premium, [200, 200, 200, 200, 200, 429], "premium gets 5");
    assert_eq!(
        as_user(&gw, "carol", "free").await.status,
        200,
        "per consumer"
    );

    fresh_window(2000, 2000).await;
    assert_eq!(
        as_user(&gw, "alice", "free").await.status,
        200,
        "a new window"
    );
}

fn redis_store(redis: &Redis) -> String {
    format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"200ms\"\n",
        redis.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_through_redis() {
    let redis = Redis::start().await;
    let a = Upstream::echo("a").await;
    let config = limited(
        &a,
        &redis_store(&redis),
        r#"{ limit = 10, window_s = 60, algorithm = "fixed_window" }"#,
    );
    let one = Gateway::start(&config).await;
    let two = Gateway::start(&config).await;
    fresh_window(60_000, 5_000).await;
    let mut allowed = 0;
    let mut refused = 0;
    for i in 0..24 {
        let gw = if i % 2 == 0 { &one } else { &two };
        match as_user(gw, "dave", "free").await.status.as_u16() {
            200 => allowed += 1,
            429 => refused += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(
        (allowed, refused),
        (10, 14),
        "one limit of 10 across both gateways"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_to_local_counting_and_reconnects() {
    let mut redis = Redis::start().await;
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&limited(
        &a,
        &redis_store(&redis),
        r#"{ limit = 5, window_s = 60, algorithm = "fixed_window" }"#,
    ))
    .await;
    fresh_window(60_000, 8_000).await;
    let r = as_user(&gw, "erin", "free").await;
    assert_eq!(
        r.header("ratelimit-remaining"),
        Some("4"),
        "counted in redis"
    );

    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(as_user(&gw, "erin", "free").await.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429],
        "counted locally meanwhile"
    );
    assert!(gw.log().contains("counting locally"), "{}", gw.log());
    let m = get(&gw.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text();
    assert!(m.contains("wasmgate_plugin_store_unavailable"), "{m}");

    redis.restart().await;
    // Redis came back empty: once reconnected, the count starts over there.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = as_user(&gw, "erin", "free").await;
        if r.status == 200 && r.header("ratelimit-remaining") == Some("4") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While Redis is down the store fails fast instead of making every request wait out its
/// timeout: the chain keeps answering at speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_fast() {
    let mut redis = Redis::start().await;
    let a = Upstream::echo("a").await;
    let store = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
        redis.url()
    );
    let gw = Gateway::start(&limited(
        &a,
        &store,
        r#"{ limit = 1000, window_s = 60, algorithm = "fixed_window" }"#,
    ))
    .await;
    assert_eq!(as_user(&gw, "fay", "free").await.status, 200);
    redis.stop();
    // 40 requests, each with a store call: waiting out the 2 s timeout each would take 80 s.
    let started = std::time::Instant::now();
    for _ in 0..40 {
        assert_eq!(as_user(&gw, "fay", "free").await.status, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "40 requests took {took:?} with redis down"
    );
    gw.wait_log("store calls fail fast").await;
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn one_route(up: &Upstream, defs: &[&str], chain: &str) -> String {
    let mut s = upstream_block(&up.name, &[up], "");
    for d in defs {
        s += &plugin_block(d, d, "");
    }
    s + &format!(
        "[[routes]]\nname = \"api\"\nupstream = \"{}\"\nplugins = [{chain}]\n",
        up.name
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_maps_keys_to_consumers_and_strips_them() {
    let a = Upstream::echo("a").await;
    let chain = format!(
        r#"{{ name = "key-auth", config = {{ query = "api_key", consumer_header = "x-consumer", keys = [
    {{ sha256 = "{}", consumer = "alice", tier = "premium" }} ] }} }}"#,
        sha256_hex("k-alice")
    );
    let gw = Gateway::start(&one_route(&a, &["key-auth"], &chain)).await;
    let r = get_with(&gw.url("/x"), &[("x-api-key", "k-alice")]).await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["x-consumer"], "alice");
    assert!(h.get("x-api-key").is_none(), "the key is not forwarded");
    let r = get(&gw.url("/x?api_key=k-alice&page=2"))
        .await
        .expect("get");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["query"], "page=2");

    for (headers, detail) in [
        (vec![], "an API key is required"),
        (vec![("x-api-key", "wrong")], "the API key is not valid"),
    ] {
        let r = get_with(&gw.url("/x"), &headers).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("ApiKey realm=\"wasmgate\"")
        );
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.json()["detail"], detail);
    }
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::Relaxed), 2);

    let err = check_refuses(&one_route(
        &a,
        &["key-auth"],
        r#"{ name = "key-auth", config = { keys = [{ sha256 = "k-alice", consumer = "alice" }] } }"#,
    ));
    assert!(
        err.contains("plugin `key-auth`") && err.contains("must be 64 hex digits"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_checks_salted_hashes() {
    use base64::Engine;
    let a = Upstream::echo("a").await;
    let hash = format!("sha256:NaCl:{}", sha256_hex("NaClhunter2"));
    let chain = format!(
        r#"{{ name = "basic-auth", config = {{ realm = "shop", users = [{{ username = "ann", password_hash = "{hash}" }}] }} }}"#
    );
    let gw = Gateway::start(&one_route(&a, &["basic-auth"], &chain)).await;
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let r = get_with(&gw.url("/"), &[("authorization", &basic("ann", "hunter2"))]).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("authorization").is_none());
    for auth in [basic("ann", "wrong"), basic("bob", "hunter2")] {
        let r = get_with(&gw.url("/"), &[("authorization", &auth)]).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"shop\", charset=\"UTF-8\"")
        );
        assert_eq!(r.json()["detail"], "the username or password is wrong");
    }
    let (ok, out) = curl(&["-i", "-u", "ann:hunter2", &gw.url("/")]);
    assert!(ok && out.starts_with("HTTP/1.1 200"), "{out}");
    let err = check_refuses(&one_route(
        &a,
        &["basic-auth"],
        r#"{ name = "basic-auth", config = { users = [{ username = "ann", password_hash = "hunter2" }] } }"#,
    ));
    assert!(
        err.contains("password_hash must be sha256:SALT:HEX"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_restriction_honours_trusted_proxies() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&one_route(
        &a,
        &["ip-restriction"],
        r#"{ name = "ip-restriction", config = { allow = ["10.0.0.0/8", "2001:db8::/32"], deny = ["10.6.6.6"], trusted_proxies = ["127.0.0.1"] } }"#,
    ))
    .await;
    // The tests connect from 127.0.0.1, a trusted proxy: the forwarded address decides.
    for (xff, status) in [
        ("10.1.2.3", 200),
        ("2001:db8::5", 200),
        ("10.6.6.6", 403),
        ("192.0.2.1", 403),
        ("10.1.2.3, 192.0.2.1", 403),
    ] {
        let r = get_with(&gw.url("/"), &[("x-forwarded-for", xff)]).await;
        assert_eq!(r.status, status, "{xff}: {}", r.text());
        if status == 403 {
            assert!(
                r.json()["detail"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("may not use this route")
            );
        }
    }
    let r = get(&gw.url("/")).await.expect("get");
    assert_eq!(r.status, 403, "127.0.0.1 itself is not allowed");
    let err = check_refuses(&one_route(
        &a,
        &["ip-restriction"],
        r#"{ name = "ip-restriction", config = { allow = ["10.0.0.0/40"] } }"#,
    ));
    assert!(
        err.contains("`10.0.0.0/40` is not an IP address or CIDR range"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_allows_groups_and_denies_the_rest() {
    let a = Upstream::echo("a").await;
    let chain = format!(
        r#"{{ name = "key-auth", config = {{ keys = [
    {{ sha256 = "{}", consumer = "alice", groups = ["staff"] }},
    {{ sha256 = "{}", consumer = "bob" }} ] }} }},
  {{ name = "acl", config = {{ allow = {{ groups = ["staff"] }} }} }}"#,
        sha256_hex("k-alice"),
        sha256_hex("k-bob")
    );
    let gw = Gateway::start(&one_route(&a, &["key-auth", "acl"], &chain)).await;
    assert_eq!(
        get_with(&gw.url("/"), &[("x-api-key", "k-alice")])
            .await
            .status,
        200
    );
    let r = get_with(&gw.url("/"), &[("x-api-key", "k-bob")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["detail"], "bob may not use this route");
    let err = check_refuses(&one_route(&a, &["acl"], r#"{ name = "acl", config = {} }"#));
    assert!(err.contains("set `allow`, `deny` or both"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_and_decorates_responses() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&one_route(
        &a,
        &["cors"],
        r#"{ name = "cors", config = { origins = ["https://app.example.com", "https://*.example.org"], methods = ["GET", "PUT"], credentials = true, max_age = 120, expose_headers = ["x-request-id"] } }"#,
    ))
    .await;
    let preflight = |origin: &'static str, method: &'static str| {
        send(
            http::Request::builder()
                .method("OPTIONS")
                .uri(gw.url("/items"))
                .header("origin", origin)
                .header("access-control-request-method", method)
                .header("access-control-request-headers", "content-type")
                .body(full(""))
                .expect("req"),
        )
    };
    let r = preflight("https://shop.example.org", "PUT")
        .await
        .expect("preflight");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example.org")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("120"));
    let r = preflight("https://evil.example.com", "GET")
        .await
        .expect("preflight");
    assert_eq!(r.status, 403);
    let r = preflight("https://app.example.com", "DELETE")
        .await
        .expect("preflight");
    assert_eq!(r.status, 403);
    assert_eq!(
        a.requests.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "preflights stay here"
    );

    let r = get_with(&gw.url("/items"), &[("origin", "https://app.example.com")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    let r = get_with(&gw.url("/items"), &[("origin", "https://evil.example.com")]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let err = check_refuses(&one_route(
        &a,
        &["cors"],
        r#"{ name = "cors", config = { origins = ["*"], credentials = true } }"#,
    ));
    assert!(
        err.contains("credentials cannot be allowed for any origin"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_made_or_kept_and_returned() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&one_route(&a, &["request-id"], r#""request-id""#)).await;
    let r = get(&gw.url("/")).await.expect("get");
    let id = r.header("x-request-id").unwrap_or("").to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(
        r.json()["headers"]["x-request-id"],
        id.as_str(),
        "the same id upstream"
    );
    let tp = r.header("traceparent").unwrap_or("").to_string();
    assert_eq!(r.json()["headers"]["traceparent"], tp.as_str());

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get_with(
        &gw.url("/"),
        &[
            ("x-request-id", "from-client-1"),
            ("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01")),
        ],
    )
    .await;
    assert_eq!(r.header("x-request-id"), Some("from-client-1"));
    let tp = r.header("traceparent").unwrap_or("");
    assert!(
        tp.starts_with(&format!("00-{trace}-")) && tp.ends_with("-01"),
        "{tp}"
    );
    assert!(!tp.contains("00f067aa0ba902b7"), "a new span id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_rewrites_path_query_and_headers_both_ways() {
    let up = Upstream::serve("h", |req| async move {
        let seen = serde_json::json!({
            "path": req.uri().path(),
            "query": req.uri().query(),
            "x-new": req.headers().get_all("x-new").iter().map(|v| v.to_str().unwrap_or("")).collect::<Vec<_>>(),
            "x-old": req.headers().get("x-old").is_some(),
        });
        http::Response::builder()
            .header("server", "internal-appserver/1.2")
            .header("x-internal-trace", "abc")
            .body(full(seen.to_string()))
            .expect("response")
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("h", &[&up], "")
            + &plugin_block("headers", "headers", "")
            + r#"[[routes]]
name = "users"
path = "/users/{id}"
upstream = "h"
plugins = [{ name = "headers", config = { path = "/v2/accounts/{id}/profile", query = { add = { source = "gateway" }, remove = ["debug"] }, request = { rename = { x-old = "x-new" } }, security_headers = true, strip_response = ["server", "x-internal-*"] } }]
"#),
    )
    .await;
    let r = get_with(&gw.url("/users/42?debug=1&page=2"), &[("x-old", "a")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["path"], "/v2/accounts/42/profile");
    assert_eq!(v["query"], "page=2&source=gateway");
    assert_eq!(v["x-new"], serde_json::json!(["a"]));
    assert_eq!(v["x-old"], false);
    assert_eq!(r.header("server"), None);
    assert_eq!(r.header("x-internal-trace"), None);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let err = check_refuses(&one_route(
        &up,
        &["headers"],
        r#"{ name = "headers", config = { path = "v2/{id}" } }"#,
    ));
    assert!(err.contains("must start with `/`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_does_not_stop_the_gateway() {
    let mut redis = Redis::not_started();
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&limited(
        &a,
        &redis_store(&redis),
        r#"{ limit = 3, window_s = 60, algorithm = "fixed_window" }"#,
    ))
    .await;
    fresh_window(60_000, 8_000).await;
    let r = as_user(&gw, "fay", "free").await;
    assert_eq!(r.status, 200, "serving without Redis: {}", r.text());
    assert_eq!(
        r.header("ratelimit-remaining"),
        Some("2"),
        "counted locally"
    );
    redis.restart().await;
    assert_eq!(redis.dbsize().await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Once the gateway reaches Redis, the counters land there.
    let mut i = 0;
    while redis.dbsize().await == 0 {
        i += 1;
        let user = format!("user-{i}");
        assert_eq!(as_user(&gw, &user, "free").await.status, 200);
        assert!(std::time::Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_request_id_refuse_bad_configs() {
    let a = Upstream::echo("a").await;
    let err = check_refuses(&one_route(
        &a,
        &["rate-limit"],
        r#"{ name = "rate-limit", config = { limit = 0 } }"#,
    ));
    assert!(
        err.contains("route `api` plugin `rate-limit`") && err.contains("a limit of 0"),
        "{err}"
    );
    let err = check_refuses(&one_route(
        &a,
        &["rate-limit"],
        r#"{ name = "rate-limit", config = { limit = 5, algorithm = "leaky" } }"#,
    ));
    assert!(err.contains("unknown variant `leaky`"), "{err}");
    let err = check_refuses(&one_route(
        &a,
        &["rate-limit"],
        r#"{ name = "rate-limit", config = { limit = 5, burst = 10 } }"#,
    ));
    assert!(
        err.contains("`burst` needs `algorithm = \"gcra\"`"),
        "{err}"
    );
    // A wrong value names its key and drops the JSON position the user never wrote.
    let err = check_refuses(&one_route(
        &a,
        &["rate-limit"],
        r#"{ name = "rate-limit", config = { limit = -1 } }"#,
    ));
    assert!(
        err.contains("`limit`: invalid value: integer `-1`, expected u64; fix `limit`"),
        "{err}"
    );
    assert!(!err.contains("column 1"), "{err}");
    let err = check_refuses(&one_route(
        &a,
        &["request-id"],
        r#"{ name = "request-id", config = { header = "" } }"#,
    ));
    assert!(err.contains("`header` must name a header"), "{err}");
}

/// Usage plans: a free and a premium key on two routes that share the plan's daily quota,
/// counted in Redis by two gateways, exact at the boundary; every answer says what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_quotas_hold_across_routes_and_gateways() {
    let redis = Redis::start().await;
    let a = Upstream::echo("a").await;
    let keys = format!(
        r#"{{ name = "key-auth", config = {{ keys = [{{ sha256 = "{}", consumer = "fay", tier = "free" }}, {{ sha256 = "{}", consumer = "pat", tier = "premium" }}] }} }}"#,
        sha256_hex("k-free"),
        sha256_hex("k-premium")
    );
    let limit = r#"{ name = "rate-limit", config = { limit = 100, scope = "global", tiers = { free = { limit = 100, quota_per_day = 3 }, premium = { limit = 100, quota_per_day = 5 } } } }"#;
    let route = |name: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nupstream = \"a\"\nplugins = [{keys}, {limit}]\n"
        )
    };
    let config = upstream_block("a", &[&a], "")
        + &redis_store(&redis)
        + &plugin_block("key-auth", "key-auth", "")
        + &plugin_block("rate-limit", "rate-limit", "")
        + &route("orders")
        + &route("profile");
    let (one, two) = (Gateway::start(&config).await, Gateway::start(&config).await);
    // Not across a UTC midnight, when the daily quota starts again.
    fresh_window(86_400_000, 10_000).await;
    let answers = |key: &'static str| {
        let (one, two) = (&one, &two);
        async move {
            let mut out = Vec::new();
            for i in 0..7 {
                let gw = if i % 2 == 0 { one } else { two };
                let path = if i % 3 == 0 {
                    "/orders/x"
                } else {
                    "/profile/x"
                };
                let r = get_with(&gw.url(path), &[("x-api-key", key)]).await;
                out.push((
                    r.status.as_u16(),
                    r.header("x-quota-remaining").map(str::to_string),
                    r.text(),
                ));
            }
            out
        }
    };
    let free = answers("k-free").await;
    let statuses: Vec<u16> = free.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429], "{free:?}");
    let left: Vec<Option<&str>> = free.iter().take(3).map(|a| a.1.as_deref()).collect();
    assert_eq!(left, [Some("2"), Some("1"), Some("0")]);
    assert!(
        free[3]
            .2
            .contains("the daily quota of 3 requests of plan `free` is used up"),
        "{}",
        free[3].2
    );
    let premium: Vec<u16> = answers("k-premium").await.iter().map(|a| a.0).collect();
    assert_eq!(premium, [200, 200, 200, 200, 200, 429, 429]);
    let scrape = one.metrics().await + &two.metrics().await;
    assert!(
        metric_line(
            &scrape,
            "wasmgate_plugin_used",
            &["consumer=\"pat\"", "plan=\"premium\""]
        )
        .is_some(),
        "{scrape}"
    );
}

/// A token bucket (GCRA) shared by two gateways through Redis: a burst of concurrent requests
/// from both gets exactly the bucket's size through, per plan, and the rest a 429 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bucket_holds_its_burst_across_gateways() {
    let redis = Redis::start().await;
    let a = Upstream::echo("a").await;
    let config = limited(
        &a,
        &redis_store(&redis),
        r#"{ limit = 1, window_s = 3600, algorithm = "gcra", tiers = { free = { limit = 1, burst = 4 }, premium = { limit = 1, burst = 7 } } }"#,
    );
    let (one, two) = (Gateway::start(&config).await, Gateway::start(&config).await);
    for (user, tier, burst) in [("eve", "free", 4), ("pia", "premium", 7)] {
        let answers = futures_util::future::join_all((0..16).map(|i| {
            let gw = if i % 2 == 0 { &one } else { &two };
            as_user(gw, user, tier)
        }))
        .await;
        let allowed = answers.iter().filter(|r| r.status == 200).count();
        let refused: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
        assert_eq!((allowed, refused.len()), (burst, 16 - burst), "{user}");
        let policy = format!("1;w=3600;burst={burst}");
        assert_eq!(refused[0].header("ratelimit-policy"), Some(policy.as_str()));
        // The next request is one interval (an hour) away, less what has passed.
        let retry: u64 = refused[0]
            .header("retry-after")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!((3590..=3601).contains(&retry), "retry-after {retry}");
        assert!(
            refused[0]
                .text()
                .contains(&format!("(burst {burst}) of plan `{tier}` reached")),
            "{}",
            refused[0].text()
        );
    }
}
