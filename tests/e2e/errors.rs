//! Every error status the proxy produces, each as application/problem+json, and malformed
//! requests refused with a 4xx without reaching any upstream.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

fn assert_problem(r: &Resp, status: u16, detail_has: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    assert!(
        status < 500 || !r.text().contains("127.0.0.1"),
        "an internal address leaked to the client: {}",
        r.text()
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let j = r.json();
    assert_eq!(j["status"], status);
    assert!(j["title"].is_string());
    let detail = j["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(detail_has),
        "detail {detail:?} lacks {detail_has:?}"
    );
}

/// A port with nothing listening on it.
fn closed_port() -> u16 {
    free_port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses() {
    // 502 on reset: accept, read the request, then abort the connection with RST.
    let (reset_addr, _resetter) = reset_server().await;
    let slow = Upstream::serve("slow", |_| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        http::Response::new(full("late"))
    })
    .await;
    let sick = Upstream::serve("sick", |req| async move {
        let status = if req.uri().path() == "/health" {
            500
        } else {
            200
        };
        let mut r = http::Response::new(full("sick"));
        *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
        r
    })
    .await;
    let refused = closed_port();
    let cfg = format!(
        r#"
[upstreams.refused]
targets = ["127.0.0.1:{refused}"]
health = {{ max_fails = 100 }}

[upstreams.down]
targets = ["127.0.0.1:{refused}"]
health = {{ max_fails = 1, fail_timeout = "30s" }}

[upstreams.reset]
targets = ["{reset_addr}"]

[upstreams.slow]
targets = ["{slow}"]
request_timeout = "300ms"

[upstreams.checked]
targets = ["{sick}"]
health = {{ check = {{ path = "/health", interval = "100ms" }} }}

[[routes]]
path = "/refused"
upstream = "refused"
[[routes]]
path = "/down"
upstream = "down"
[[routes]]
path = "/reset"
upstream = "reset"
[[routes]]
path = "/slow"
upstream = "slow"
[[routes]]
path = "/checked"
upstream = "checked"
"#,
        slow = slow.addr,
        sick = sick.addr,
    );
    let gw = Gateway::start(&cfg).await;

    assert_problem(
        &get(&gw.url("/nowhere")).await.expect("404"),
        404,
        "no route matches GET",
    );
    assert_problem(
        &get(&gw.url("/refused")).await.expect("502"),
        502,
        "could not be reached",
    );
    assert_problem(
        &get(&gw.url("/reset")).await.expect("502"),
        502,
        "closed the connection",
    );
    let t = std::time::Instant::now();
    assert_problem(
        &get(&gw.url("/slow")).await.expect("504"),
        504,
        "did not answer within",
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the timeout was not applied"
    );
    // The first failure takes the only target out of rotation: then there is no healthy target.
    assert_problem(
        &get(&gw.url("/down")).await.expect("502"),
        502,
        "could not be reached",
    );
    assert_problem(
        &get(&gw.url("/down")).await.expect("503"),
        503,
        "no healthy target",
    );
    // An active check that fails takes the target out although it still answers requests.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_problem(
        &get(&gw.url("/checked")).await.expect("503"),
        503,
        "no healthy target",
    );
    let ups = get(&gw.admin_url("/upstreams"))
        .await
        .expect("admin")
        .json();
    assert_eq!(ups["checked"]["targets"][0]["healthy"], false);
}

async fn raw(gw: &Gateway, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    // Until the connection closes or one whole response (head and Content-Length body) is in.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_and_never_reach_upstream() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&format!(
        "{}[[routes]]\nupstream = \"up\"\n",
        upstream_block("up", &[&up], "")
    ))
    .await;
    let cases: [(&str, &[u8]); 22] = [
        ("garbage request line", b"HELLO THERE\r\n\r\n"),
        ("bad header name", b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n"),
        ("chunked on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two content-lengths", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
        ("bad chunk size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("no Host header", b"GET / HTTP/1.1\r\n\r\n"),
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("the same Host twice", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        ("negative content-length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
        ("chunked not last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("unknown transfer-coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n"),
        ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n"),
        ("bad method token", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("space in the target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("two transfer-encodings", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
        ("non-ASCII target", "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n".as_bytes()),
        ("HTTP/2.0 on an HTTP/1 line", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("bad host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
        ("user info in Host", b"GET / HTTP/1.1\r\nHost: evil@a\r\n\r\n"),
    ];
    let mut wrong = Vec::new();
    for (what, req) in cases {
        let out = raw(&gw, req).await;
        let status: u16 = out
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let exact_400 = matches!(
            what,
            "bad chunk size" | "two Host headers" | "chunk size overflow"
        );
        if (exact_400 && status != 400) || !(400..500).contains(&status) {
            wrong.push(format!("{what}: {out:?}"));
        }
        // Whatever the answer, the request did not reach the upstream.
        if up.requests.load(Ordering::Relaxed) != 0 {
            wrong.push(format!("{what}: reached the upstream"));
            break;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        0,
        "a malformed request reached the upstream"
    );
    // And the gateway still serves.
    assert_eq!(get(&gw.url("/")).await.expect("ok").status, 200);
}

/// Content-Length and chunked together is the classic smuggling vector. As RFC 9112 §6.3 asks of
/// an intermediary, the chunked framing wins, Content-Length is dropped, and the connection is
/// closed after the response, so bytes hidden behind the first body never become a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_request_never_reaches_upstream() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&format!(
        "{}[[routes]]\nupstream = \"up\"\n",
        upstream_block("up", &[&up], "")
    ))
    .await;
    let out = raw(
        &gw,
        b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert!(
        !out.contains("content-length\":"),
        "the upstream must not see Content-Length: {out}"
    );
    assert!(!out.contains("/smuggled"), "{out}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        1,
        "exactly one request may reach the upstream"
    );
}
