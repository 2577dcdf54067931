//! Each balance mode's distribution, and connection reuse through the pool.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::*;

async fn counts(
    gw: &Gateway,
    n: usize,
    headers: impl Fn(usize) -> Vec<(String, String)>,
) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for i in 0..n {
        let h = headers(i);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = get_with(&gw.url("/"), &h).await;
        assert_eq!(r.status, 200, "{}", r.text());
        *seen
            .entry(r.header("x-upstream").unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    seen
}

async fn three() -> Vec<Upstream> {
    vec![
        Upstream::echo("a").await,
        Upstream::echo("b").await,
        Upstream::echo("c").await,
    ]
}

fn route_to(up: &str) -> String {
    format!("[[routes]]\nupstream = \"{up}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_even() {
    let s = three().await;
    let gw =
        Gateway::start(&(upstream_block("u", &[&s[0], &s[1], &s[2]], "") + &route_to("u"))).await;
    let c = counts(&gw, 300, |_| vec![]).await;
    assert_eq!(c.get("a"), Some(&100), "{c:?}");
    assert_eq!(c.get("b"), Some(&100), "{c:?}");
    assert_eq!(c.get("c"), Some(&100), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_follows_weights() {
    let s = three().await;
    let cfg = format!(
        r#"[upstreams.u]
balance = "weighted"
targets = [{{ address = "{}", weight = 5 }}, {{ address = "{}", weight = 3 }}, "{}"]
"#,
        s[0].addr, s[1].addr, s[2].addr
    ) + &route_to("u");
    let gw = Gateway::start(&cfg).await;
    let c = counts(&gw, 900, |_| vec![]).await;
    assert_eq!(c.get("a"), Some(&500), "{c:?}");
    assert_eq!(c.get("b"), Some(&300), "{c:?}");
    assert_eq!(c.get("c"), Some(&100), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_avoids_the_busy_target() {
    let slow = Upstream::serve("slow", |_req| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut r = http::Response::new(full("slow"));
        r.headers_mut()
            .insert("x-upstream", http::HeaderValue::from_static("slow"));
        r
    })
    .await;
    let fast = Upstream::echo("fast").await;
    let gw = Gateway::start(
        &(upstream_block("u", &[&slow, &fast], "balance = \"least_conn\"") + &route_to("u")),
    )
    .await;
    // 20 clients in parallel, 10 requests each: the slow target holds its requests for 300 ms,
    // so least_conn should send it only a handful while the fast one takes the rest.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = gw.url("/");
        tasks.push(tokio::spawn(async move {
            let mut slow = 0;
            for _ in 0..10 {
                let r = get_with(&url, &[]).await;
                assert_eq!(r.status, 200);
                if r.header("x-upstream") == Some("slow") {
                    slow += 1;
                }
            }
            slow
        }));
    }
    let mut slow_total = 0;
    for t in tasks {
        slow_total += t.await.expect("task");
    }
    assert!(
        slow_total < 40,
        "slow target got {slow_total} of 200 requests"
    );
    assert!(slow_total > 0, "slow target should still get some traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_by_header_cookie_and_client_ip_is_sticky() {
    let s = three().await;
    let all = [&s[0], &s[1], &s[2]];
    let cfg = upstream_block(
        "byheader",
        &all,
        "balance = \"hash\"\nhash_on = { header = \"x-user\" }",
    ) + &upstream_block(
        "bycookie",
        &all,
        "balance = \"hash\"\nhash_on = { cookie = \"session\" }",
    ) + &upstream_block("byip", &all, "balance = \"hash\"\nhash_on = \"client_ip\"")
        + "[[routes]]\nheaders = { \"x-mode\" = \"header\" }\nupstream = \"byheader\"\n"
        + "[[routes]]\nheaders = { \"x-mode\" = \"cookie\" }\nupstream = \"bycookie\"\n"
        + "[[routes]]\nheaders = { \"x-mode\" = \"ip\" }\nupstream = \"byip\"\n";
    let gw = Gateway::start(&cfg).await;

    for (mode, header) in [("header", "x-user"), ("cookie", "cookie")] {
        let mut owner: HashMap<usize, String> = HashMap::new();
        for round in 0..3 {
            for user in 0..30 {
                let value = if mode == "cookie" {
                    format!("theme=dark; session=user-{user}")
                } else {
                    format!("user-{user}")
                };
                let r = get_with(&gw.url("/"), &[("x-mode", mode), (header, &value)]).await;
                let got = r.header("x-upstream").unwrap_or("?").to_string();
                if round == 0 {
                    owner.insert(user, got);
                } else {
                    assert_eq!(owner[&user], got, "{mode}: user {user} moved");
                }
            }
        }
        let distinct: std::collections::HashSet<_> = owner.values().collect();
        assert_eq!(
            distinct.len(),
            3,
            "{mode}: 30 keys should spread over all 3 targets: {owner:?}"
        );
    }
    // Every test request comes from 127.0.0.1, so hashing on the client IP pins them to one target.
    let c = counts(&gw, 30, |_| vec![("x-mode".into(), "ip".into())]).await;
    assert_eq!(c.len(), 1, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reuses_upstream_connections() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&(upstream_block("u", &[&up], "") + &route_to("u"))).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = gw.url("/");
        tasks.push(tokio::spawn(async move {
            let c = client();
            for _ in 0..100 {
                let r = send_with(&c, http::Request::get(&url).body(full("")).expect("req"))
                    .await
                    .expect("resp");
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let reqs = up.requests.load(Ordering::Relaxed);
    let conns = up.connections.load(Ordering::Relaxed);
    assert_eq!(reqs, 800);
    assert!(
        conns <= 16,
        "800 requests used {conns} upstream connections"
    );
}

/// An upstream that closes every connection after one response without saying so: the pooled
/// connection is dead by the next request, which must go out on a fresh one, not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_skips_connections_the_upstream_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a2 = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            a2.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // and close, although HTTP/1.1 promised keep-alive
            });
        }
    });
    let gw = Gateway::start(&format!(
        "[upstreams.u]\ntargets = [\"{addr}\"]\n{}",
        route_to("u")
    ))
    .await;
    for i in 0..30 {
        let r = get(&gw.url("/")).await.expect("response");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 30);
}

/// One dead target out of two: a request the dead one refused goes to the live one, so no
/// client sees a failure — GETs and POSTs alike, since the dead target never got the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_goes_to_the_next_target() {
    let live = Upstream::echo("live").await;
    let dead = free_port();
    // The dead target is marked down only after 100 failures: every round meets it.
    let gw = Gateway::start(&format!(
        "[upstreams.up]\ntargets = [\"127.0.0.1:{dead}\", \"{}\"]\nhealth = {{ max_fails = 100 }}\n\n\
         [[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\n",
        live.addr
    ))
    .await;
    for i in 0..20 {
        let r = get_with(&gw.url(&format!("/get/{i}")), &[]).await;
        assert_eq!(r.status, 200, "GET {i}: {}", r.text());
        assert_eq!(r.json()["upstream"], "live");
        let r = send(
            http::Request::post(gw.url(&format!("/post/{i}")))
                .header("content-type", "application/json")
                .body(full(format!("{{\"n\": {i}}}")))
                .expect("request"),
        )
        .await
        .expect("post");
        assert_eq!(r.status, 200, "POST {i}: {}", r.text());
        assert_eq!(r.json()["method"], "POST");
    }
    assert_eq!(
        live.requests.load(Ordering::Relaxed),
        40,
        "each request reached it once"
    );
    gw.wait_log("trying the next").await;
}
