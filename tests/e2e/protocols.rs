//! HTTP/2 on both sides, TLS termination and TLS to upstreams, WebSocket, gRPC trailers.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;

use crate::harness::*;

fn route_to(up: &str) -> String {
    format!("[[routes]]\nupstream = \"{up}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_client_and_h2_upstream() {
    let h1 = Upstream::echo("h1").await;
    let h2 = Upstream::start("h2", Proto::H2, None, echo_handler("h2".into())).await;
    let cfg = upstream_block("one", &[&h1], "")
        + &upstream_block("two", &[&h2], "http2 = true")
        + "[[routes]]\npath_prefix = \"/one\"\nupstream = \"one\"\n"
        + "[[routes]]\npath_prefix = \"/two\"\nupstream = \"two\"\n";
    let gw = Gateway::start(&cfg).await;

    // HTTP/2 client (prior knowledge) to an HTTP/1.1 upstream.
    let c = h2c_client();
    let r = send_with(
        &c,
        Request::get(gw.url("/one")).body(full("")).expect("req"),
    )
    .await
    .expect("h2");
    assert_eq!(r.version, http::Version::HTTP_2);
    let j = r.json();
    assert_eq!(j["version"], "HTTP/1.1");
    assert_eq!(j["headers"]["via"], "2 wasmgate");
    assert!(
        j["headers"]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("127.0.0.1:"))
    );

    // HTTP/1.1 client to an HTTP/2-only upstream: the client's host becomes `:authority`.
    let r = get_with(&gw.url("/two"), &[("host", "shop.example.com")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], "HTTP/2.0");
    assert_eq!(r.json()["target"], "http://shop.example.com/two");

    // curl speaking h2c with prior knowledge, end to end over HTTP/2.
    let (ok, out) = curl(&["--http2-prior-knowledge", &gw.url("/two")]);
    assert!(ok, "curl failed");
    assert!(out.contains("\"version\":\"HTTP/2.0\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_with_alpn_and_tls_upstream() {
    let pki = TestPki::new();
    let plain = Upstream::echo("plain").await;
    let secure = Upstream::start(
        "secure",
        Proto::Auto,
        Some(pki.server_config.clone()),
        echo_handler("secure".into()),
    )
    .await;
    let cfg = format!(
        r#"[[listeners]]
address = "127.0.0.1:0"
tls = {{ cert = "{cert}", key = "{key}" }}

{plain}
[upstreams.secure]
targets = ["{secure}"]
tls = {{ ca = "{ca}" }}

[upstreams.secure_h2]
targets = ["{secure}"]
http2 = true
tls = {{ ca = "{ca}", server_name = "localhost" }}

[[routes]]
path_prefix = "/secure-h2"
upstream = "secure_h2"
[[routes]]
path_prefix = "/secure"
upstream = "secure"
[[routes]]
upstream = "plain"
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
        ca = pki.ca.display(),
        plain = upstream_block("plain", &[&plain], ""),
        secure = secure.addr,
    );
    let gw = Gateway::start(&cfg).await;
    let tls_port = gw.listeners[1];
    let base = format!("https://localhost:{tls_port}");
    let resolve = format!("localhost:{tls_port}:127.0.0.1");
    let ca = pki.ca.display().to_string();

    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (ok, out) = curl(&[
            flag,
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_version}",
            &format!("{base}/hello"),
        ]);
        assert!(ok, "curl {flag} failed: {out}");
        let (body, got) = out.rsplit_once('\n').expect("version line");
        assert_eq!(got, version, "ALPN should give HTTP/{version}");
        let j: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(j["upstream"], "plain");
        assert_eq!(j["headers"]["x-forwarded-proto"], "https");
    }
    // A client that does not trust the CA is refused by TLS itself.
    let (ok, _) = curl(&["--resolve", &resolve, &format!("{base}/hello")]);
    assert!(!ok, "curl without the CA must fail verification");

    // TLS to the upstream, verified against the configured CA, over HTTP/1.1 and over h2 (ALPN).
    let r = get(&gw.url("/secure")).await.expect("secure");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "secure");
    let r = get(&gw.url("/secure-h2")).await.expect("secure h2");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], "HTTP/2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_upstream_with_untrusted_certificate_is_a_502() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let secure = Upstream::start(
        "secure",
        Proto::Auto,
        Some(pki.server_config.clone()),
        echo_handler("s".into()),
    )
    .await;
    let cfg = format!(
        "[upstreams.s]\ntargets = [\"{}\"]\ntls = {{ ca = \"{}\" }}\n{}",
        secure.addr,
        other.ca.display(),
        route_to("s")
    );
    let gw = Gateway::start(&cfg).await;
    let r = get(&gw.url("/")).await.expect("resp");
    assert_eq!(r.status, 502, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_gateway() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    let cfg = format!("[upstreams.ws]\ntargets = [\"{addr}\"]\n{}", route_to("ws"));
    let gw = Gateway::start(&cfg).await;
    let (mut ws, resp) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/chat", gw.port))
            .await
            .expect("websocket handshake through the gateway");
    assert_eq!(resp.status(), 101);
    for i in 0..20 {
        let text = format!("hello {i}");
        ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
            .await
            .expect("send");
        let back = ws.next().await.expect("message").expect("ok");
        assert_eq!(back.into_text().expect("text").as_str(), text);
    }
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_h2_keeps_trailers() {
    // A gRPC-shaped upstream: HTTP/2 only, length-prefixed message, status in trailers.
    let grpc = Upstream::start(
        "grpc",
        Proto::H2,
        None,
        handler(|req| async move {
            let te = req.headers().get("te").cloned();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            trailers.insert("grpc-message", HeaderValue::from_static("ok"));
            trailers.insert(
                "x-te-seen",
                te.unwrap_or_else(|| HeaderValue::from_static("none")),
            );
            let out = http_body_util::Full::new(body)
                .map_err(|e| match e {})
                .with_trailers(async move { Some(Ok(trailers)) })
                .boxed();
            let mut resp = http::Response::new(out);
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            resp
        }),
    )
    .await;
    let cfg = upstream_block("grpc", &[&grpc], "http2 = true") + &route_to("grpc");
    let gw = Gateway::start(&cfg).await;

    let msg: &[u8] = b"\x00\x00\x00\x00\x05hello";
    let req = Request::post(gw.url("/helloworld.Greeter/SayHello"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(Bytes::from_static(msg)))
        .expect("req");
    let resp = h2c_client().request(req).await.expect("grpc call");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let collected = resp.into_body().collect().await.expect("body");
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    assert_eq!(
        trailers["x-te-seen"], "trailers",
        "TE: trailers must reach the upstream"
    );
    assert_eq!(collected.to_bytes().as_ref(), msg);
}
