//! Response compression on a route (`compress`), through the real gateway to curl, which
//! decodes what it gets: the encoding the client prefers, only for listed types above the
//! minimum size, never over another encoding or `no-transform`, and streamed.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::harness::*;

/// A JSON document of about `n` bytes, repetitive as real API answers are.
fn json_of(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"name":"item {i}","price":{}.{:02},"tags":["a","b"]}},"#,
            i * 7 % 1000,
            i % 100
        ));
        i += 1;
    }
    s.pop();
    s.push(']');
    s
}

/// curl's answer to `path` with `accept` (curl decodes the body): (headers, body).
fn fetch(gw: &Gateway, path: &str, accept: &str) -> (String, String) {
    let (ok, out) = curl(&[
        "--compressed",
        "-H",
        &format!("accept-encoding: {accept}"),
        "-D",
        "-",
        &gw.url(path),
    ]);
    assert!(ok, "curl {path}: {out}");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_compressed_as_the_client_prefers() {
    let doc = json_of(64 * 1024);
    let served = doc.clone();
    let up = Upstream::serve("up", move |req| {
        let doc = served.clone();
        async move {
            match req.uri().path() {
                "/json" => answer(
                    "application/json; charset=utf-8",
                    &[("etag", "\"v1\"")],
                    doc,
                ),
                "/small" => answer("application/json", &[], r#"{"ok":true}"#),
                "/png" => answer("image/png", &[], doc),
                "/encoded" => answer("application/json", &[("content-encoding", "br")], doc),
                _ => answer(
                    "application/json",
                    &[("cache-control", "no-transform")],
                    doc,
                ),
            }
        }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("up", &[&up], "")
            + "[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\ncompress = { gzip_level = 1 }\n"),
    )
    .await;

    for (accept, expected) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, br, zstd", "zstd"),
        ("gzip;q=0.8, br;q=0.5", "gzip"),
        ("*;q=0.5, zstd;q=0", "br"),
    ] {
        let (head, body) = fetch(&gw, "/json", accept);
        assert!(
            head.contains(&format!("content-encoding: {expected}\r\n")),
            "{accept}: {head}"
        );
        assert!(head.contains("vary: accept-encoding"), "{head}");
        assert!(head.contains("etag: w/\"v1\""), "a weak validator: {head}");
        assert!(!head.contains("content-length"), "{head}");
        assert_eq!(
            body, doc,
            "{accept}: the body decodes to what the upstream sent"
        );
    }
    // Nothing the client accepts: as it came, with Vary so caches keep both apart.
    let (head, body) = fetch(&gw, "/json", "gzip;q=0, identity");
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert_eq!(body.len(), doc.len());
    // Below the minimum size, not a listed type, already encoded, or no-transform: untouched.
    for path in ["/small", "/png", "/encoded", "/no-transform"] {
        let r = get_with(&gw.url(path), &[("accept-encoding", "gzip")]).await;
        let ce = r.header("content-encoding");
        assert!(ce.is_none() || ce == Some("br"), "{path}: {ce:?}");
        assert_eq!(
            r.body.len(),
            if path == "/small" { 11 } else { doc.len() },
            "{path}"
        );
    }
}

/// The body is compressed as it streams: the client gets compressed bytes while the upstream
/// is still holding back the end of its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_streams() {
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let up = Upstream::serve("up", move |_req| {
        let body = held_body(
            bytes::Bytes::from(json_of(256 * 1024)),
            bytes::Bytes::from_static(b"\n"),
            held.clone(),
        );
        async move {
            let mut r = http::Response::new(body);
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("up", &[&up], "")
            + "[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\ncompress = {}\n"),
    )
    .await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    conn.write_all(b"GET /feed HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    // Compressed body bytes arrive before the upstream sends its last chunk.
    let body_started = |got: &[u8]| {
        let text = String::from_utf8_lossy(got);
        text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            head.contains("content-encoding: gzip") && body.len() > 1024
        })
    };
    read_until(
        &mut conn,
        &mut got,
        body_started,
        "compressed bytes while the upstream still holds its last chunk",
    )
    .await;
    release.notify_one();
    read_until(
        &mut conn,
        &mut got,
        |g| g.ends_with(b"0\r\n\r\n"),
        "the end of the compressed body",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_compress_settings_are_refused_by_check() {
    let up = Upstream::echo("up").await;
    for (setting, says) in [
        (
            "{ gzip_level = 12 }",
            "`gzip_level` = 12 is out of range; use 1 to 9",
        ),
        ("{ encodings = [] }", "`encodings` is empty"),
        ("{ types = [\"json\"] }", "type `json` is not a media type"),
        ("{ encodings = [\"deflate\"] }", "unknown variant `deflate`"),
    ] {
        let err = check_refuses(
            &(upstream_block("up", &[&up], "")
                + &format!(
                    "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstream = \"up\"\ncompress = {setting}\n"
                )),
        );
        assert!(err.contains(says), "{setting}: {err}");
    }
}
