//! The real client address: `X-Forwarded-For` / `Forwarded` believed from trusted proxies only,
//! and the PROXY protocol (v1 and v2, from raw sockets) on a listener behind a TCP balancer.
//! Upstreams get it as `X-Real-IP`, plugins and the access log see it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

fn routes(up: &Upstream) -> String {
    format!(
        r#"
[upstreams.echo]
targets = ["{up}"]

[[routes]]
path_prefix = "/"
upstream = "echo"

[[routes]]
path_prefix = "/guarded"
upstream = "echo"
plugins = [{{ name = "ip-restriction", config = {{ deny = ["203.0.113.66"] }} }}]

{plugin}
"#,
        up = up.addr,
        plugin = plugin_block("ip-restriction", "ip_restriction", ""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_believed_from_trusted_proxies_only() {
    let up = Upstream::echo("echo").await;
    let gw = Gateway::start_with(
        &Settings::server("trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]"),
        &routes(&up),
    )
    .await;

    // Through a trusted hop (10.1.1.1) behind the trusted peer: the client is 203.0.113.7.
    let r = get_with(
        &gw.url("/who"),
        &[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1"),
            ("x-real-ip", "1.1.1.1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(
        h["x-real-ip"], "203.0.113.7",
        "the client's own claim is replaced"
    );
    assert_eq!(
        h["x-forwarded-for"], "6.6.6.6, 203.0.113.7, 10.1.1.1, 127.0.0.1",
        "the chain goes on with the hop that connected"
    );
    gw.wait_log("\"client\":\"203.0.113.7\"").await;

    // A plugin sees the same client: ip-restriction denies 203.0.113.66.
    let denied = get_with(&gw.url("/guarded"), &[("x-forwarded-for", "203.0.113.66")]).await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    let allowed = get_with(&gw.url("/guarded"), &[("x-forwarded-for", "203.0.113.67")]).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());

    // `Forwarded` when configured so.
    let fwd = Gateway::start_with(
        &Settings::server("trusted_proxies = [\"127.0.0.1\"]\nclient_ip_header = \"forwarded\""),
        &routes(&up),
    )
    .await;
    let r = get_with(
        &fwd.url("/who"),
        &[("forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https")],
    )
    .await;
    assert_eq!(r.json()["headers"]["x-real-ip"], "2001:db8:cafe::17");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_claim_another_address() {
    let up = Upstream::echo("echo").await;
    // Trusted proxies elsewhere: this test's loopback client is not one of them.
    let gw = Gateway::start_with(
        &Settings::server("trusted_proxies = [\"10.0.0.0/8\"]"),
        &routes(&up),
    )
    .await;
    let r = get_with(&gw.url("/who"), &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(r.json()["headers"]["x-real-ip"], "127.0.0.1");
    let denied = get_with(&gw.url("/guarded"), &[("x-forwarded-for", "203.0.113.66")]).await;
    assert_eq!(
        denied.status, 200,
        "the claim is not believed, so not denied"
    );
}

/// Sends `prefix` and a GET on a fresh connection; the answer as text ("" if closed unanswered).
async fn raw(port: u16, prefix: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(b"GET /who HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
    // One write: a gateway that refuses the header may close before a second one (reset).
    let _ = s.write_all(&bytes).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn body_json(resp: &str) -> serde_json::Value {
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

/// A v2 header: PROXY command, TCP over IPv4, from `src`:`port`.
fn v2_header(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_protocol_names_the_client() {
    let up = Upstream::echo("echo").await;
    let gw = Gateway::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n\n{}",
        routes(&up)
    ))
    .await;
    let port = gw.listeners[1];

    let v1 = raw(port, b"PROXY TCP4 198.51.100.22 127.0.0.1 5555 80\r\n").await;
    assert!(v1.starts_with("HTTP/1.1 200"), "{v1}");
    let j = body_json(&v1);
    assert_eq!(j["headers"]["x-real-ip"], "198.51.100.22");
    assert_eq!(j["headers"]["x-forwarded-for"], "198.51.100.22");

    let v2 = raw(port, &v2_header([192, 0, 2, 44], 6000)).await;
    assert!(v2.starts_with("HTTP/1.1 200"), "{v2}");
    assert_eq!(body_json(&v2)["headers"]["x-real-ip"], "192.0.2.44");

    // LOCAL (the balancer's own health check): the peer is the client.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    let l = raw(port, &local).await;
    assert_eq!(body_json(&l)["headers"]["x-real-ip"], "127.0.0.1");

    // No header, or a broken one: closed without an answer, nothing forwarded.
    let before = up.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(raw(port, b"").await, "");
    assert_eq!(raw(port, b"PROXY TCP4 not-an-address\r\n").await, "");
    assert_eq!(
        up.requests.load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    gw.wait_log("without a valid PROXY protocol header").await;

    // The plain listener next to it takes no PROXY header.
    let plain = get(&gw.url("/who")).await.expect("plain");
    assert_eq!(plain.json()["headers"]["x-real-ip"], "127.0.0.1");
}
