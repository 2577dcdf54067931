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
    assert_eq!(r.json()["detail"], "limit of 3 requests per 2 s reached");
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
