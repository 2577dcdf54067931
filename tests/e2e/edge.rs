//! The edge under hostile clients and upstreams: connections that send nothing or too little,
//! bodies that stall or grow too large, heads too big, a descriptor limit, and configs that
//! would lock users out.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

/// Reads until the peer closes (or resets); returns what arrived, or `None` if it was still
/// open after `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_close_at_their_deadline_under_a_descriptor_limit() {
    let up = Upstream::echo("up").await;
    let settings = Settings {
        nofile: Some(1024),
        ..Settings::server("header_read_timeout = \"1s\"")
    };
    let gw = Gateway::start_with(&settings, &route_to(&up)).await;
    // 1,100 connections that never send a byte, and 100 HTTP/2 ones that send the preface and
    // then nothing: more than the 1,024 descriptors the gateway may open.
    let mut silent = Vec::new();
    for i in 0..1_200 {
        let mut s = TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .expect("connect");
        if i >= 1_100 {
            s.write_all(H2_PREFACE).await.expect("preface");
        }
        silent.push(s);
    }
    // A real request still gets through: it waits in the backlog behind the silent ones, which
    // are accepted as earlier ones are closed at their deadline.
    let r = tokio::time::timeout(Duration::from_secs(30), get(&gw.url("/hello")))
        .await
        .expect("the request was served within 30 s")
        .expect("request");
    assert_eq!(r.status, 200, "{}", r.text());
    // Every silent connection was closed by the gateway.
    for (i, s) in silent.iter_mut().enumerate() {
        assert!(
            read_until_closed(s, Duration::from_secs(30))
                .await
                .is_some(),
            "silent connection {i} is still open"
        );
    }
    let log = gw.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("connection limit reached"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_get_408_and_idle_connections_close() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start_with(
        &Settings::server("header_read_timeout = \"500ms\"\nidle_timeout = \"700ms\""),
        &route_to(&up),
    )
    .await;
    // Half a head, then nothing (slowloris): 408, then the connection closes.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n")
        .await
        .expect("write");
    let out = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("closed");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");

    // A kept-alive connection with nothing more to ask is closed after idle_timeout, and the
    // next head on a kept-alive connection has its own head deadline.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    s.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let out = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("closed when idle");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");

    // HTTP/2: a client that made one request and then stays quiet is closed too.
    let stream = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = Request::get(gw.url("/h2")).body(full("")).expect("req");
    let resp = sender.send_request(req).await.expect("h2 request");
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_cut_both_ways() {
    // An upstream that sends its head and part of its body, then stalls.
    let staller = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let stall_addr = staller.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = staller.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst part")
                    .await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    // An upstream that reads the whole request body before it answers.
    let sink = Upstream::serve("sink", |req| async move {
        match req.into_body().collect().await {
            Ok(b) => http::Response::new(full(b.to_bytes().len().to_string())),
            Err(_) => http::Response::new(full("cut")),
        }
    })
    .await;
    let gw = Gateway::start_with(
        &Settings::server("body_read_timeout = \"500ms\""),
        &format!(
            "[upstreams.stall]\ntargets = [\"{stall_addr}\"]\nread_timeout = \"500ms\"\n{}\
             [[routes]]\npath = \"/stall\"\nupstream = \"stall\"\n\
             [[routes]]\npath = \"/sink\"\nupstream = \"sink\"\n",
            upstream_block("sink", &[&sink], "")
        ),
    )
    .await;

    // The client gets the head and the first part, then the response is cut, not held.
    let resp = client()
        .request(Request::get(gw.url("/stall")).body(full("")).expect("req"))
        .await
        .expect("head");
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "the stalled body was not cut: {body:?}"
    );
    gw.wait_log("read_timeout").await;

    // A client that promises 100 bytes and sends 5: 408 once its body stalls.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    s.write_all(b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhello")
        .await
        .expect("write");
    let out = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_get_413_and_big_heads_431() {
    let up = Upstream::serve("up", |req| async move {
        let n = req
            .into_body()
            .collect()
            .await
            .map_or(0, |b| b.to_bytes().len());
        http::Response::new(full(n.to_string()))
    })
    .await;
    let gw = Gateway::start(&format!(
        "{}[[routes]]\npath = \"/small\"\nupstream = \"up\"\nmax_body = \"1KiB\"\n\
         [[routes]]\npath = \"/default\"\nupstream = \"up\"\n",
        upstream_block("up", &[&up], "")
    ))
    .await;
    let post = |path: &str, body: Vec<u8>| {
        send(Request::post(gw.url(path)).body(full(body)).expect("req"))
    };
    let ok = post("/small", vec![b'a'; 1024]).await.expect("1 KiB");
    assert_eq!((ok.status.as_u16(), ok.text()), (200, "1024".to_string()));
    let before = up.requests.load(Ordering::Relaxed);
    let big = post("/small", vec![b'a'; 1025]).await.expect("413");
    assert_eq!(big.status, 413, "{}", big.text());
    assert_eq!(big.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        before,
        "a body declared too large was forwarded"
    );
    // Chunked, with no declared length: cut when it passes the limit.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    let mut req = b"POST /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'b'; 512]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).await.expect("write");
    let out = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("answered");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    // The default limit (16 MiB) applies where a route sets none.
    // curl asks `Expect: 100-continue` for a body this large, and gets the 413 before sending it.
    let dir = temp_dir("big-body");
    let file = dir.join("body");
    std::fs::write(&file, vec![b'c'; (16 << 20) + 1]).expect("write");
    let (ok, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        &format!("@{}", file.display()),
        &gw.url("/default"),
    ]);
    assert!(ok);
    assert_eq!(out, "413", "over the default max_body");

    // A 64 KiB header is refused by the gateway itself (the default head limit is 32 KiB).
    let before = up.requests.load(Ordering::Relaxed);
    let long = "x".repeat(64 << 10);
    let r = get_with(&gw.url("/default"), &[("x-long", &long)]).await;
    assert_eq!(r.status, 431);
    // HTTP/2: a head over the limit (but under twice it, which h2 treats as an attack and
    // answers with GOAWAY) gets 431 on its stream.
    let long = "x".repeat(40 << 10);
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
        ])
        .args([
            "-w",
            "%{http_code}",
            "-H",
            &format!("x-long: {long}"),
            &gw.url("/default"),
        ])
        .output()
        .expect("curl");
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out, "431", "HTTP/2 head limit");
    assert_eq!(up.requests.load(Ordering::Relaxed), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_config_is_refused_by_check_reload_and_run() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&route_to(&up)).await;
    // Reload: refused, the old config keeps serving.
    gw.write_config_text("");
    let r = send(
        Request::post(gw.admin_url("/reload"))
            .body(full(""))
            .expect("req"),
    )
    .await
    .expect("reload");
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("no [[routes]]"), "{}", r.text());
    assert_eq!(gw.generation().await, 1);
    assert_eq!(get(&gw.url("/still")).await.expect("serving").status, 200);

    // Run and check: refused with the reason, nothing bound.
    let dir = temp_dir("empty");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, "").expect("write");
    for cmd in ["check", "run"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmgate"))
            .args([cmd, "-c"])
            .arg(&path)
            .output()
            .expect("wasmgate");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} accepted an empty config");
        assert!(
            err.contains("no [[routes]]") && err.contains("allow_empty"),
            "{cmd}: {err}"
        );
    }
    // Unless asked for on purpose.
    std::fs::write(&path, "[server]\nallow_empty = true\n").expect("write");
    let (accepted, err) = check(&path);
    assert!(accepted, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_its_token_refuses_foreign_origins_and_hides_secrets() {
    let up = Upstream::echo("up").await;
    let dir = temp_dir("secrets");
    let token_file = dir.join("admin-token");
    let token = "a-long-admin-token-for-the-test";
    std::fs::write(&token_file, format!("{token}\n")).expect("token");
    let pw_file = dir.join("redis-password");
    std::fs::write(&pw_file, "hunter2-redis").expect("password");
    let settings = Settings {
        admin: format!("token = \"${{file:{}}}\"", token_file.display()),
        ..Settings::default()
    };
    let gw = Gateway::start_with(
        &settings,
        &format!(
            "[store]\nbackend = \"redis\"\nurl = \"redis://app:${{file:{pw}}}@127.0.0.1:1\"\n\
             {up}{headers}[[routes]]\nupstream = \"up\"\nplugins = [\n  \
             {{ name = \"headers\", config = {{ request = {{ set = {{ x-api-key = \"${{file:{pw}}}\", x-team = \"blue\" }} }} }} }},\n]\n",
            pw = pw_file.display(),
            up = upstream_block("up", &[&up], ""),
            headers = plugin_block("headers", "headers", ""),
        ),
    )
    .await;
    // The secret reached the plugin's config.
    let r = get(&gw.url("/")).await.expect("proxied");
    assert_eq!(r.json()["headers"]["x-api-key"], "hunter2-redis");

    let admin = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut b = Request::builder().method(method).uri(gw.admin_url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(b.body(full("")).expect("req"))
    };
    let bearer = format!("Bearer {token}");
    // Health probes stay open; everything else needs the token.
    assert_eq!(
        admin("GET", "/readyz", &[]).await.expect("readyz").status,
        200
    );
    assert_eq!(
        admin("POST", "/reload", &[]).await.expect("reload").status,
        401
    );
    assert_eq!(
        admin("GET", "/config", &[]).await.expect("config").status,
        401
    );
    // The dashboard page opens without the token (it holds no data; its calls send the token
    // from the page's #token= fragment), and the data it reads still needs it.
    let page = admin("GET", "/dashboard", &[]).await.expect("dashboard");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<table id=\"routes\">"));
    assert_eq!(
        admin("GET", "/routes", &[]).await.expect("routes").status,
        401
    );
    let foreign = admin(
        "POST",
        "/reload",
        &[
            ("authorization", &bearer),
            ("origin", "http://evil.example"),
        ],
    )
    .await
    .expect("reload");
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    let r = admin("POST", "/reload", &[("authorization", &bearer)])
        .await
        .expect("reload");
    assert_eq!(r.status, 200, "{}", r.text());

    let cfg = admin("GET", "/config", &[("authorization", &bearer)])
        .await
        .expect("config");
    assert_eq!(cfg.status, 200);
    let text = cfg.text();
    assert!(!text.contains("hunter2"), "a password leaked: {text}");
    assert!(!text.contains(token), "the admin token leaked: {text}");
    let c = cfg.json();
    assert_eq!(
        c["config"]["store"]["url"],
        "redis://app:(redacted)@127.0.0.1:1"
    );
    let set = &c["config"]["routes"][0]["plugins"][0]["config"]["request"]["set"];
    assert_eq!(set["x-api-key"], "(redacted)");
    assert_eq!(
        set["x-team"], "blue",
        "values that are not secret are shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_admin_answers_only_to_loopback_names() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&route_to(&up)).await;
    // DNS rebinding: a page on attacker.example resolved to 127.0.0.1.
    let (ok, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: attacker.example:9901",
        &gw.admin_url("/config"),
    ]);
    assert!(ok);
    assert_eq!(out, "403");
    let (ok, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "-H",
        "Origin: http://attacker.example",
        &gw.admin_url("/reload"),
    ]);
    assert!(ok);
    assert_eq!(out, "403", "a cross-site POST /reload");
    assert_eq!(gw.generation().await, 1);
    let started = Instant::now();
    let (ok, out) = curl(&["-X", "POST", &gw.admin_url("/reload")]);
    assert!(
        ok && out.contains("\"generation\":2"),
        "{out} after {:?}",
        started.elapsed()
    );
}

/// A client that sends its whole body before it reads (as most do without `Expect:
/// 100-continue`) still reads the 413, though its writes fail once the gateway closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_whole_body_first_still_reads_the_413() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start(&format!(
        "{}[[routes]]\npath = \"/small\"\nupstream = \"up\"\nmax_body = \"1KiB\"\n",
        upstream_block("up", &[&up], "")
    ))
    .await;
    let port = gw.port;
    for length in ["Content-Length: 4194304", "Transfer-Encoding: chunked"] {
        let head = format!("POST /small HTTP/1.1\r\nHost: a\r\n{length}\r\n\r\n");
        let chunked = length.contains("chunked");
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            s.write_all(head.as_bytes()).expect("head");
            let chunk = if chunked {
                let mut c = b"10000\r\n".to_vec();
                c.extend_from_slice(&[b'x'; 0x10000]);
                c.extend_from_slice(b"\r\n");
                c
            } else {
                vec![b'x'; 0x10000]
            };
            // The gateway stops reading after its answer: the writes fail part way.
            for _ in 0..64 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
            let mut out = Vec::new();
            let read = s.read_to_end(&mut out);
            (
                String::from_utf8_lossy(&out).into_owned(),
                read.err().map(|e| e.to_string()),
            )
        })
        .await
        .expect("client");
        assert!(
            answer.0.starts_with("HTTP/1.1 413 "),
            "{length}: {answer:?}"
        );
    }
}
