//! The seed policies (issue "seed policies I") through the real gateway: content-based routing.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_by_sends_orders_by_their_content() {
    let premium = Upstream::echo("premium").await;
    let standard = Upstream::echo("standard").await;
    let images = Upstream::echo("images").await;
    let rules = r#"rules = [
  { when = { json = "$.order.type", equals = "premium" }, upstream = "premium" },
  { when = { header = "content-type", glob = "image/*" }, upstream = "images", path = "/upload" },
]"#;
    let gw = Gateway::start(
        &(upstream_block("premium", &[&premium], "")
            + &upstream_block("standard", &[&standard], "")
            + &upstream_block("images", &[&images], "")
            + &plugin_block("route-by", "route_by", "")
            + &format!(
                "[[routes]]\npath_prefix = \"/orders\"\nupstream = \"standard\"\nplugins = [{{ name = \"route-by\", config = {{ {} }} }}]\n",
                rules.replace('\n', " ")
            )),
    )
    .await;
    let post = |ct: &str, body: &'static str| {
        send(
            http::Request::post(gw.url("/orders"))
                .header("content-type", ct)
                .body(full(body))
                .expect("request"),
        )
    };
    let r = post(
        "application/json",
        r#"{"order": {"type": "premium", "id": 1}}"#,
    )
    .await
    .expect("post");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("premium"));
    let sent = r#"{"order": {"type": "premium", "id": 1}}"#.len().to_string();
    assert_eq!(
        r.json()["headers"]["content-length"],
        sent,
        "the body goes on whole"
    );

    let r = post("application/json", r#"{"order": {"type": "basic"}}"#)
        .await
        .expect("post");
    assert_eq!(r.header("x-upstream"), Some("standard"));

    let r = post("image/png", "not really a png").await.expect("post");
    assert_eq!(r.header("x-upstream"), Some("images"));
    assert_eq!(r.json()["path"], "/upload");

    let r = post("application/json", r#"{"order": "#)
        .await
        .expect("post");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("the request body is not valid JSON"),
        "{}",
        r.text()
    );
    let seen = |u: &Upstream| u.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (seen(&premium), seen(&standard), seen(&images)),
        (1, 1, 1),
        "the malformed order reached no upstream"
    );
}
