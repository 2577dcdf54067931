//! 100 MiB through the gateway in each direction without the gateway holding it in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::stream;
use http::Request;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::harness::*;

const TOTAL: u64 = 100 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

fn generated_body() -> Body {
    let chunks = (TOTAL as usize) / CHUNK;
    let s = stream::iter(
        (0..chunks).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; CHUNK])))),
    );
    StreamBody::new(s).boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_each_way_keeps_rss_flat() {
    // Upload sink: counts what arrives, slowly enough that a buffering proxy would pile it up.
    let received = Arc::new(AtomicU64::new(0));
    let r2 = received.clone();
    let sink = Upstream::serve("sink", move |req| {
        let received = r2.clone();
        async move {
            let mut body = req.into_body();
            let mut next_pause = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    let n = received.fetch_add(d.len() as u64, Ordering::Relaxed);
                    if n >= next_pause {
                        next_pause = n + 1024 * 1024;
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                }
            }
            http::Response::new(full(received.load(Ordering::Relaxed).to_string()))
        }
    })
    .await;
    let source = Upstream::serve("source", |_| async {
        http::Response::new(generated_body())
    })
    .await;
    let cfg = upstream_block("sink", &[&sink], "")
        + &upstream_block("source", &[&source], "")
        + "[[routes]]\npath = \"/up\"\nupstream = \"sink\"\nmax_body = \"128MiB\"\n"
        + "[[routes]]\npath = \"/down\"\nupstream = \"source\"\n";
    let gw = Gateway::start(&cfg).await;
    // Warm up the allocator and the pools with a small request each way.
    let _ = get(&gw.url("/up")).await;
    let before = gw.rss_kib();

    let up = send(
        Request::post(gw.url("/up"))
            .body(generated_body())
            .expect("req"),
    )
    .await
    .expect("upload");
    assert_eq!(up.status, 200);
    assert_eq!(up.text(), TOTAL.to_string());
    let after_up = gw.rss_kib();

    // Download: read the response as it streams and sample the gateway's RSS on the way.
    let resp = client()
        .request(Request::get(gw.url("/down")).body(full("")).expect("req"))
        .await
        .expect("download");
    let mut body = resp.into_body();
    let (mut got, mut peak) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame.expect("frame").data_ref() {
            got += d.len() as u64;
            // A slow reader, so a gateway that buffered would pile the body up.
            if got % (1024 * 1024) < d.len() as u64 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                peak = peak.max(gw.rss_kib());
            }
        }
    }
    assert_eq!(got, TOTAL);
    let grow_up = after_up.saturating_sub(before);
    let grow_down = peak.max(gw.rss_kib()).saturating_sub(before);
    eprintln!(
        "RSS before {before} KiB, +{grow_up} KiB after upload, +{grow_down} KiB peak during download"
    );
    assert!(grow_up < 6 * 1024, "upload grew RSS by {grow_up} KiB");
    assert!(grow_down < 6 * 1024, "download grew RSS by {grow_down} KiB");
}
