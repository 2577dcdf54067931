//! Retries, circuit breakers, fallbacks and outlier ejection against upstreams that fail in
//! each way a real one does: refusing, resetting, hanging, answering 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::Value;

use crate::harness::*;

fn status_server(name: &str, status: u16) -> impl Future<Output = Upstream> {
    Upstream::serve(name, move |_| async move {
        let mut r = answer("text/plain", &[], "sick");
        *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
        r
    })
}

/// Answers 200 with the request body it read.
async fn body_echo(name: &'static str) -> Upstream {
    Upstream::serve(name, move |req| async move {
        let body = req.into_body().collect().await.expect("body").to_bytes();
        answer("text/plain", &[("x-served-by", name)], body)
    })
    .await
}

async fn post(url: &str, body: impl Into<bytes::Bytes>) -> Resp {
    send(
        http::Request::post(url)
            .body(full(body.into()))
            .expect("request"),
    )
    .await
    .expect("post")
}

async fn upstreams(gw: &Gateway) -> Value {
    get(&gw.admin_url("/upstreams"))
        .await
        .expect("admin /upstreams")
        .json()
}

/// Polls the admin `/upstreams` until `pred` holds on the upstream's entry.
async fn wait_upstream(gw: &Gateway, name: &str, what: &str, pred: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = upstreams(gw).await;
        if pred(&all[name]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "upstream `{name}` never got {what}: {all}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With two targets, one of which fails in each of the four ways, every GET is answered by the
/// good one: the failed try is made again there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_target_of_two_costs_no_client_request() {
    let good = Upstream::echo("good").await;
    let sick = status_server("sick", 503).await;
    let (reset, _r) = reset_server().await;
    let (hang, _h) = hanging_server().await;
    let refused = free_port();
    // `max_fails` high: the bad target stays in rotation, so every other request meets it.
    let block = |name: &str, bad: String| {
        format!(
            "[upstreams.{name}]\ntargets = [\"{bad}\", \"{}\"]\nhealth = {{ max_fails = 1000 }}\n\
             retry = {{ attempts = 2, per_try_timeout = \"300ms\", backoff = \"0s\" }}\n\n\
             [[routes]]\npath_prefix = \"/{name}\"\nupstream = \"{name}\"\n\n",
            good.addr
        )
    };
    let cfg = [
        block("refuse", format!("127.0.0.1:{refused}")),
        block("reset", reset.to_string()),
        block("hang", hang.to_string()),
        block("unavailable", sick.authority()),
    ]
    .concat();
    let gw = Gateway::start(&cfg).await;
    for path in ["refuse", "reset", "hang", "unavailable"] {
        for i in 0..8 {
            let r = get(&gw.url(&format!("/{path}/{i}"))).await.expect("get");
            assert_eq!(r.status, 200, "/{path}/{i}: {}", r.text());
            assert_eq!(r.json()["upstream"], "good");
        }
    }
    assert_eq!(
        good.requests.load(Ordering::Relaxed),
        32,
        "each request once"
    );
    let sick_tries = sick.requests.load(Ordering::Relaxed);
    assert!(sick_tries >= 4, "the sick target was met: {sick_tries}");
    let m = gw.metrics().await;
    for reason in ["unreachable", "reset", "timeout", "status"] {
        let line = metric_line(
            &m,
            "wasmgate_upstream_retries_total",
            &[&format!("reason=\"{reason}\"")],
        );
        let n: usize = line
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(n >= 4, "retries for {reason}: {line:?}\n{m}");
        if reason == "status" {
            assert_eq!(n, sick_tries, "each 503 was retried");
        }
    }
    gw.wait_log("\"attempts\":2").await;
}

/// A POST is not idempotent: the try a target failed is not made again unless the route says
/// so; then its body is sent again whole. A body over `max_body` is never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_retried_only_where_the_route_allows_it() {
    let sick = status_server("sick", 503).await;
    let good = body_echo("good").await;
    let cfg = format!(
        r#"
[upstreams.app]
targets = ["{sick}", "{good}"]
retry = {{ max_body = "1KiB", backoff = "0s" }}

[[routes]]
path_prefix = "/strict"
upstream = "app"

[[routes]]
path_prefix = "/lenient"
upstream = "app"
retry_non_idempotent = true
"#,
        sick = sick.addr,
        good = good.addr,
    );
    let gw = Gateway::start(&cfg).await;

    let mut refused = 0;
    for i in 0..10 {
        let r = post(&gw.url("/strict"), format!("order {i}")).await;
        match r.status.as_u16() {
            200 => assert_eq!(r.text(), format!("order {i}")),
            503 => refused += 1,
            s => panic!("POST /strict: {s} {}", r.text()),
        }
    }
    assert_eq!(
        refused, 5,
        "the POSTs the sick target got reached the client"
    );
    assert_eq!(sick.requests.load(Ordering::Relaxed), 5);

    for i in 0..10 {
        let r = post(&gw.url("/lenient"), format!("order {i}")).await;
        assert_eq!(r.status, 200, "POST /lenient {i}: {}", r.text());
        assert_eq!(
            r.text(),
            format!("order {i}"),
            "the body was sent again whole"
        );
    }
    assert!(
        sick.requests.load(Ordering::Relaxed) >= 10,
        "the sick target got lenient POSTs too"
    );

    // Over max_body the body is not kept: no retry, the sick target's 503 comes through.
    let big = "x".repeat(4096);
    let statuses: Vec<u16> = [
        post(&gw.url("/lenient"), big.clone()).await,
        post(&gw.url("/lenient"), big.clone()).await,
    ]
    .iter()
    .map(|r| r.status.as_u16())
    .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

/// The retry budget bounds the extra load when every target fails: at most 20% more tries
/// than requests, plus the burst reserve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_stops_retries_amplifying_an_outage() {
    let a = status_server("a", 503).await;
    let b = status_server("b", 503).await;
    let cfg = format!(
        "[upstreams.down]\ntargets = [\"{}\", \"{}\"]\n\
         retry = {{ attempts = 3, budget = 0.2, budget_reserve = 2, backoff = \"0s\" }}\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"down\"\n",
        a.addr, b.addr
    );
    let gw = Gateway::start(&cfg).await;
    for _ in 0..100 {
        let r = get(&gw.url("/")).await.expect("get");
        assert_eq!(r.status, 503);
    }
    let tries = a.requests.load(Ordering::Relaxed) + b.requests.load(Ordering::Relaxed);
    // Without a budget: 300 tries. With it: 100 + 2 + 100 × 0.2.
    assert!(
        (115..=122).contains(&tries),
        "{tries} tries for 100 requests"
    );
}

/// The upstream's breaker: closed → open after 3 failures (503 problem with Retry-After, the
/// upstream spared) → half-open after `open_for` → closed by a successful probe. Each state is
/// read from the admin `/upstreams`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_half_opens_and_closes() {
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let flaky = Upstream::serve("flaky", move |_| {
        let fail = f.load(Ordering::Relaxed);
        async move {
            let mut r = answer("text/plain", &[], if fail { "down" } else { "up" });
            if fail {
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            r
        }
    })
    .await;
    let cfg = format!(
        "[upstreams.flaky]\ntargets = [\"{}\"]\n\
         breaker = {{ failures = 3, open_for = \"1s\", probes = 1 }}\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"flaky\"\n",
        flaky.addr
    );
    let gw = Gateway::start(&cfg).await;
    assert_eq!(upstreams(&gw).await["flaky"]["breaker"]["state"], "closed");
    for _ in 0..3 {
        let r = get(&gw.url("/")).await.expect("get");
        assert_eq!(r.status, 500, "the upstream's own answer");
    }
    let up = upstreams(&gw).await;
    assert_eq!(up["flaky"]["breaker"]["state"], "open", "{up}");

    let r = get(&gw.url("/")).await.expect("get");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("circuit breaker is open")
    );
    assert_eq!(
        flaky.requests.load(Ordering::Relaxed),
        3,
        "spared while open"
    );

    failing.store(false, Ordering::Relaxed);
    wait_upstream(&gw, "flaky", "half-open", |u| {
        u["breaker"]["state"] == "half_open"
    })
    .await;
    let r = get(&gw.url("/")).await.expect("probe");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "up");
    let up = upstreams(&gw).await;
    assert_eq!(up["flaky"]["breaker"]["state"], "closed", "{up}");
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/")).await.expect("get").status, 200);
    }
}

/// While the breaker is open, a configured answer or another upstream answers instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_answers_with_its_fallback() {
    let sick = status_server("sick", 502).await;
    let spare = Upstream::echo("spare").await;
    let refused = free_port();
    let cfg = format!(
        r#"
[upstreams.catalog]
targets = ["{sick}"]
[upstreams.catalog.breaker]
failures = 2
open_for = "30s"
fallback = {{ status = 200, headers = {{ "content-type" = "application/json", "x-fallback" = "catalog" }}, body = '{{"items":[]}}' }}

[upstreams.primary]
targets = ["127.0.0.1:{refused}"]
breaker = {{ failures = 1, open_for = "30s", fallback_upstream = "spare" }}

[upstreams.spare]
targets = ["{spare}"]

[[routes]]
path_prefix = "/catalog"
upstream = "catalog"

[[routes]]
path_prefix = "/primary"
upstream = "primary"
"#,
        sick = sick.addr,
        spare = spare.addr,
    );
    let gw = Gateway::start(&cfg).await;
    for _ in 0..2 {
        assert_eq!(get(&gw.url("/catalog")).await.expect("get").status, 502);
    }
    for _ in 0..3 {
        let r = get(&gw.url("/catalog")).await.expect("fallback");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-fallback"), Some("catalog"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.text(), r#"{"items":[]}"#);
    }
    assert_eq!(sick.requests.load(Ordering::Relaxed), 2);

    let r = get(&gw.url("/primary/a")).await.expect("get");
    assert_eq!(r.status, 502, "{}", r.text());
    for i in 0..3 {
        let r = get(&gw.url(&format!("/primary/{i}"))).await.expect("get");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["upstream"], "spare");
        assert_eq!(r.json()["path"], format!("/primary/{i}"));
    }
    let m = gw.metrics().await;
    assert!(
        metric_line(
            &m,
            "wasmgate_upstream_fallbacks_total",
            &["upstream=\"primary\"", "to=\"upstream\""]
        )
        .is_some_and(|l| l.ends_with(" 3")),
        "{m}"
    );
}

/// Failures take a target out of rotation, but never more than `max_ejected_percent` of them:
/// with four targets of which three fail and a 50% cap, two are ejected and the third keeps
/// its share. A target whose `fail_timeout` is over gets one probe and, answering, is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejection_is_capped_and_a_recovered_target_comes_back() {
    let healed = Arc::new(AtomicBool::new(false));
    let sick: Vec<Upstream> = {
        let mut v = Vec::new();
        for i in 0..3 {
            let healed = healed.clone();
            v.push(
                Upstream::serve(&format!("sick{i}"), move |_| {
                    let ok = healed.load(Ordering::Relaxed);
                    async move {
                        let mut r = answer("text/plain", &[], "x");
                        if !ok {
                            *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        r
                    }
                })
                .await,
            );
        }
        v
    };
    let good = Upstream::echo("good").await;
    let cfg = format!(
        "[upstreams.pool]\ntargets = [\"{}\", \"{}\", \"{}\", \"{}\"]\n\
         health = {{ max_fails = 2, fail_timeout = \"1s\", fail_on = [\"5xx\"], max_ejected_percent = 50 }}\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"pool\"\n",
        sick[0].addr, sick[1].addr, sick[2].addr, good.addr
    );
    let gw = Gateway::start(&cfg).await;
    let ejected = |u: &Value| {
        u["targets"].as_array().map_or(0, |t| {
            t.iter()
                .filter(|t| t["breaker"]["state"] != "closed")
                .count()
        })
    };
    let mut answered = 0;
    for _ in 0..40 {
        if get(&gw.url("/")).await.expect("get").status == 200 {
            answered += 1;
        }
    }
    let up = upstreams(&gw).await;
    assert_eq!(ejected(&up["pool"]), 2, "the cap holds two of four: {up}");
    let still_in: Vec<&Value> = up["pool"]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|t| t["breaker"]["state"] == "closed")
        .collect();
    assert_eq!(still_in.len(), 2);
    assert!(answered >= 10, "the good target kept serving: {answered}");

    // Probes come only with requests: keep them flowing until every target is back.
    healed.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        get(&gw.url("/")).await.expect("get");
        let up = upstreams(&gw).await;
        if ejected(&up["pool"]) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "targets never came back: {up}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
