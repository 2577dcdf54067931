//! TLS at the edge: certificates chosen by SNI and renewed in place, client certificates
//! (mutual TLS) with the subject handed to plugins, client certificates towards upstreams, and
//! plain listeners that send clients to https.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_a_renewed_one_goes_live() {
    let pki = TestPki::new();
    let (api, api_key) = pki.issue(&["api.test"], "api.test");
    let (apps, apps_key) = pki.issue(&["*.apps.test"], "apps wildcard");
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         tls = {{ cert = \"{}\", key = \"{}\", certs = [{{ cert = \"{}\", key = \"{}\" }}, {{ cert = \"{}\", key = \"{}\" }}] }}\n\n{}",
        pki.cert.display(),
        pki.key.display(),
        api.display(),
        api_key.display(),
        apps.display(),
        apps_key.display(),
        route_to(&up),
    ))
    .await;
    let addr = SocketAddr::from(([127, 0, 0, 1], gw.listeners[1]));
    assert_eq!(pki.presented(addr, "api.test").await, "api.test");
    assert_eq!(pki.presented(addr, "API.test").await, "api.test");
    assert_eq!(pki.presented(addr, "shop.apps.test").await, "apps wildcard");
    // Not one of theirs: the listener's default certificate.
    assert_eq!(pki.presented(addr, "localhost").await, "localhost");

    // A whole request, verified by curl against the name it asked for.
    let (ok, out) = curl(&[
        "--cacert",
        &pki.ca.display().to_string(),
        "--resolve",
        &format!("api.test:{}:127.0.0.1", addr.port()),
        &format!("https://api.test:{}/who", addr.port()),
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("json")["upstream"],
        "up"
    );

    // The certificate is renewed in place (as certbot does): new connections get it, with no
    // restart and no reload asked for.
    let (renewed, renewed_key) = pki.issue(&["api.test"], "api.test renewed");
    let generation = gw.generation().await;
    std::fs::rename(&renewed_key, &api_key).expect("key");
    std::fs::rename(&renewed, &api).expect("cert");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pki.presented(addr, "api.test").await != "api.test renewed" {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate never went live; log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.generation().await > generation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_clients_by_certificate_and_tells_plugins_who() {
    let pki = TestPki::new();
    let (alice, alice_key) = pki.issue(&[], "alice");
    let stranger = TestPki::new();
    let (mallory, mallory_key) = stranger.issue(&[], "mallory");
    let up = Upstream::echo("up").await;
    let tls = |auth: &str| {
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = \"{}\", key = \"{}\", client_ca = \"{}\"{auth} }}\n",
            pki.cert.display(),
            pki.key.display(),
            pki.ca.display()
        )
    };
    let gw = Gateway::start(&format!(
        "{}{}{}{}[[routes]]\nupstream = \"up\"\nplugins = [{{ name = \"headers\", config = {{ from_context = {{ x-client-subject = \"client-cert-subject\" }} }} }}]\n",
        tls(""),
        tls(", client_auth = \"optional\""),
        plugin_block("headers", "headers", ""),
        upstream_block("up", &[&up], ""),
    ))
    .await;
    let ca = pki.ca.display().to_string();
    let call = |port: u16, extra: &[&str]| {
        let mut args = vec![
            "--cacert".to_string(),
            ca.clone(),
            "--resolve".to_string(),
            format!("localhost:{port}:127.0.0.1"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(format!("https://localhost:{port}/who"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = curl(&args);
        (ok, serde_json::from_str::<serde_json::Value>(&out).ok())
    };
    let (required, optional) = (gw.listeners[1], gw.listeners[2]);
    let alice_args = [
        "--cert",
        &*alice.display().to_string(),
        "--key",
        &*alice_key.display().to_string(),
    ]
    .map(String::from);
    let alice_args: Vec<&str> = alice_args.iter().map(String::as_str).collect();

    // Required: alice is let in and her subject reaches the plugin (which copies it upstream).
    let (ok, echo) = call(required, &alice_args);
    assert!(ok);
    assert_eq!(
        echo.expect("json")["headers"]["x-client-subject"],
        "CN=alice"
    );
    // No certificate, or one from another CA: no request gets through.
    let before = up.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        !call(required, &[]).0,
        "a client without a certificate got an answer"
    );
    let mallory_args = [
        "--cert",
        &*mallory.display().to_string(),
        "--key",
        &*mallory_key.display().to_string(),
    ];
    assert!(
        !call(required, &mallory_args).0,
        "a certificate from another CA was taken"
    );
    assert_eq!(
        up.requests.load(std::sync::atomic::Ordering::Relaxed),
        before
    );

    // Optional: a client without a certificate is served with no subject, and cannot claim one.
    let (ok, echo) = call(optional, &["-H", "x-client-subject: CN=admin"]);
    assert!(ok);
    assert!(
        echo.expect("json")["headers"]
            .get("x-client-subject")
            .is_none()
    );
    let (ok, echo) = call(optional, &alice_args);
    assert!(ok);
    assert_eq!(
        echo.expect("json")["headers"]["x-client-subject"],
        "CN=alice"
    );

    // The handshakes are counted by listener: the two refused ones as failures.
    let m = gw.metrics().await;
    let count = |family: &str, port: u16| {
        metric_line(&m, family, &[&format!("listener=\"127.0.0.1:{port}\"")])
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(
        count("wasmgate_tls_handshakes_total", required),
        Some(1),
        "{m}"
    );
    assert_eq!(
        count("wasmgate_tls_handshake_failures_total", required),
        Some(2),
        "{m}"
    );
    assert_eq!(
        count("wasmgate_tls_handshakes_total", optional),
        Some(2),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_shows_its_client_certificate_to_upstreams_that_ask() {
    let pki = TestPki::new();
    let (client, client_key) = pki.issue(&[], "wasmgate");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(&pki.ca).expect("ca").as_slice()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let cert = rustls_pemfile::certs(&mut std::fs::read(&pki.cert).expect("cert").as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("cert");
    let key = rustls_pemfile::private_key(&mut std::fs::read(&pki.key).expect("key").as_slice())
        .expect("key")
        .expect("a key");
    let strict = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert, key)
        .expect("server config");
    let secure = Upstream::start(
        "secure",
        Proto::Auto,
        Some(Arc::new(strict)),
        echo_handler("secure".into()),
    )
    .await;
    let gw = Gateway::start(&format!(
        "[upstreams.with_cert]\ntargets = [\"{addr}\"]\ntls = {{ ca = \"{ca}\", server_name = \"localhost\", cert = \"{cert}\", key = \"{key}\" }}\n\
         [upstreams.without]\ntargets = [\"{addr}\"]\ntls = {{ ca = \"{ca}\", server_name = \"localhost\" }}\n\
         [[routes]]\npath_prefix = \"/with\"\nupstream = \"with_cert\"\n\
         [[routes]]\npath_prefix = \"/without\"\nupstream = \"without\"\n",
        addr = secure.addr,
        ca = pki.ca.display(),
        cert = client.display(),
        key = client_key.display(),
    ))
    .await;
    let r = get(&gw.url("/with")).await.expect("with");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "secure");
    let r = get(&gw.url("/without")).await.expect("without");
    assert_eq!(r.status, 502, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_listener_can_send_every_client_to_https() {
    let pki = TestPki::new();
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nredirect_https = true\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n\n{}",
        pki.cert.display(),
        pki.key.display(),
        route_to(&up),
    ))
    .await;
    let (plain, tls) = (gw.listeners[1], gw.listeners[2]);
    for method in ["GET", "POST"] {
        let r = send(
            http::Request::builder()
                .method(method)
                .uri(format!("http://127.0.0.1:{plain}/a/b?x=1"))
                .header("host", format!("shop.test:{plain}"))
                .body(full("body"))
                .expect("request"),
        )
        .await
        .expect("send");
        assert_eq!(r.status, 308, "{method}");
        assert_eq!(
            r.headers["location"],
            format!("https://shop.test:{tls}/a/b?x=1").as_str()
        );
    }
    assert_eq!(up.requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Following it lands on the TLS listener, which serves the route.
    let (ok, out) = curl(&[
        "-L",
        "--cacert",
        &pki.ca.display().to_string(),
        "--resolve",
        &format!("localhost:{plain}:127.0.0.1"),
        "--resolve",
        &format!("localhost:{tls}:127.0.0.1"),
        &format!("http://localhost:{plain}/who"),
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).expect("json")["headers"]["x-forwarded-proto"],
        "https"
    );
}
