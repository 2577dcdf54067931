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

/// A backend that answers `body` as JSON after 150 ms, as the seed's profile services do.
async fn slow_json(name: &str, body: &'static str) -> Upstream {
    Upstream::serve(name, move |_req| async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let mut r = http::Response::new(full(body));
        r.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        r
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_answers_the_profile_from_four_backends_at_once() {
    let users = slow_json("users", r#"{"id": 7, "name": "Ada"}"#).await;
    let orders = slow_json("orders", "[1, 2, 3, 4, 5, 6, 7]").await;
    let wishlist = slow_json("wishlist", r#"["a", "b", "c"]"#).await;
    let reviews = slow_json(
        "reviews",
        r#"[{"rating": 4}, {"rating": 5}, {"rating": 3}]"#,
    )
    .await;
    // Nothing listens on this one: a backend that is down.
    let down = format!(
        "[upstreams.down]\ntargets = [\"127.0.0.1:{}\"]\n",
        free_port()
    );
    let call = |name: &str, up: &str, path: &str, optional: bool| {
        format!(
            "{name} = {{ url = \"http://{up}{path}\", optional = {optional}, timeout_ms = 1000 }}"
        )
    };
    let shape = "shape = '{user: user, orders: orders[:5], wishlistCount: length(wishlist || `[]`), reviewCount: length(reviews || `[]`), averageRating: avg(reviews[].rating || `[]`)}'";
    let route = |prefix: &str, calls: &[String]| {
        format!(
            "[[routes]]\npath = \"{prefix}/{{id}}\"\nupstream = \"users\"\nplugins = [\"cache\", {{ name = \"aggregate\", config = {{ calls = {{ {} }}, {shape} }} }}]\n",
            calls.join(", ")
        )
    };
    let gw = Gateway::start(
        &(upstream_block("users", &[&users], "")
            + &upstream_block("orders", &[&orders], "")
            + &upstream_block("wishlist", &[&wishlist], "")
            + &upstream_block("reviews", &[&reviews], "")
            + &down
            + &plugin_block("cache", "cache", "")
            + &plugin_block(
                "aggregate",
                "aggregate",
                "http = [\"users\", \"orders\", \"wishlist\", \"reviews\", \"down\"]",
            )
            + &route(
                "/profile",
                &[
                    call("user", "users", "/users/{param.id}", false),
                    call("orders", "orders", "/orders?user={param.id}", true),
                    call("wishlist", "wishlist", "/wishlist/{param.id}", true),
                    call("reviews", "reviews", "/reviews?user={param.id}", true),
                ],
            )
            + &route(
                "/profile-wishlist-down",
                &[
                    call("user", "users", "/users/{param.id}", false),
                    call("wishlist", "down", "/wishlist/{param.id}", true),
                ],
            )
            + &route(
                "/profile-user-down",
                &[
                    call("user", "down", "/users/{param.id}", false),
                    call("orders", "orders", "/orders?user={param.id}", true),
                ],
            )),
    )
    .await;

    let started = std::time::Instant::now();
    let r = get(&gw.url("/profile/7")).await.expect("get");
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({
            "user": {"id": 7, "name": "Ada"},
            "orders": [1, 2, 3, 4, 5],
            "wishlistCount": 3,
            "reviewCount": 3,
            "averageRating": 4.0,
        })
    );
    // Four calls of 150 ms each: one after the other would take 600 ms.
    assert!(
        took < std::time::Duration::from_millis(300),
        "took {took:?}: not in parallel"
    );

    let r = get(&gw.url("/profile-wishlist-down/7")).await.expect("get");
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["wishlistCount"], 0);
    assert_eq!(j["errors"][0]["call"], "wishlist");

    let r = get(&gw.url("/profile-user-down/7")).await.expect("get");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("call `user` "),
        "{}",
        r.text()
    );
    let seen = |u: &Upstream| u.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        seen(&users),
        2,
        "the route's upstream is never called, and a hit asks no backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_keeps_each_tenant_on_its_own_upstream() {
    let acme = Upstream::echo("acme").await;
    let globex = Upstream::echo("globex").await;
    let shared = Upstream::echo("shared").await;
    let tenant = r#"{ name = "tenant", config = { from = ["identity", { header = "x-tenant" }], tenants = { acme = { upstream = "acme", headers = { set = { x-tenant-id = "acme" } } }, globex = { upstream = "globex" } } } }"#;
    let gw = Gateway::start(
        &(upstream_block("acme", &[&acme], "")
            + &upstream_block("globex", &[&globex], "")
            + &upstream_block("shared", &[&shared], "")
            + &plugin_block("tenant", "tenant", "")
            + &plugin_block("count", "count", "")
            + &plugin_block("set-context", "set_context", "")
            + &format!(
                "[[routes]]\npath_prefix = \"/api\"\nupstream = \"shared\"\nplugins = [{tenant}, \"count\"]\n"
            )
            // As an auth plugin would: the token says the caller belongs to acme.
            + &format!(
                "[[routes]]\npath_prefix = \"/token\"\nupstream = \"shared\"\nplugins = [{{ name = \"set-context\", config = {{ key = \"tenant\", value = \"acme\" }} }}, {tenant}]\n"
            )),
    )
    .await;
    let r = get_with(&gw.url("/api/x"), &[("x-tenant", "acme")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("acme"));
    assert_eq!(r.json()["headers"]["x-tenant-id"], "acme");
    let r = get_with(&gw.url("/api/x"), &[("x-tenant", "globex")]).await;
    assert_eq!(r.header("x-upstream"), Some("globex"));

    for (path, headers) in [
        ("/api/x", vec![("x-tenant", "initech")]),
        ("/api/x", vec![]),
        ("/token/x", vec![("x-tenant", "globex")]),
    ] {
        let r = get_with(&gw.url(path), &headers).await;
        assert_eq!(r.status, 403, "{path} {headers:?}: {}", r.text());
    }
    let r = get(&gw.url("/token/x")).await.expect("get");
    assert_eq!(r.header("x-upstream"), Some("acme"));

    let seen = |u: &Upstream| u.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((seen(&acme), seen(&globex), seen(&shared)), (2, 1, 0));
    gw.wait_log(r#""tenant":"acme""#).await;
    let scrape = gw.metrics().await;
    assert!(
        metric_line(&scrape, "wasmgate_plugin_requests", &["tenant=\"globex\""]).is_some(),
        "{scrape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_serves_hits_stale_on_errors_purges_and_passes_big_bodies() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let failing = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let (f, n) = (failing.clone(), served.clone());
    let up = Upstream::serve("origin", move |req| {
        let (f, n) = (f.clone(), n.clone());
        async move {
            if f.load(Ordering::Relaxed) {
                let mut r = http::Response::new(full("down"));
                *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                return r;
            }
            let count = n.fetch_add(1, Ordering::Relaxed) + 1;
            let path = req.uri().path().to_string();
            let body = if path == "/big" {
                "x".repeat(2 << 20)
            } else {
                format!("{path} #{count}")
            };
            let mut r = http::Response::new(full(body));
            let cc = if path.starts_with("/short") {
                "max-age=1"
            } else {
                "max-age=60"
            };
            r.headers_mut()
                .insert("cache-control", http::HeaderValue::from_static(cc));
            r
        }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("origin", &[&up], "")
            + &plugin_block("cache", "cache", "body_limit = \"1MiB\"\nover_limit = \"pass\"")
            + "[[routes]]\npath_prefix = \"/purge\"\nupstream = \"origin\"\nplugins = [{ name = \"cache\", config = { purge = true } }]\n"
            + "[[routes]]\npath_prefix = \"/\"\nupstream = \"origin\"\nplugins = [{ name = \"cache\", config = { stale_if_error_s = 600 } }]\n"),
    )
    .await;
    let (first, second) = (
        get(&gw.url("/items/1")).await.expect("get"),
        get(&gw.url("/items/1")).await.expect("get"),
    );
    assert_eq!(
        (first.header("x-cache"), second.header("x-cache")),
        (Some("MISS"), Some("HIT"))
    );
    assert_eq!(second.text(), "/items/1 #1");
    assert!(second.header("age").is_some());
    assert_eq!(served.load(Ordering::Relaxed), 1);

    // Purge: the entry is a miss again.
    let r = send(
        http::Request::post(gw.url("/purge?prefix=/items"))
            .body(full(""))
            .expect("request"),
    )
    .await
    .expect("purge");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&gw.url("/items/1")).await.expect("get");
    assert_eq!(
        (r.header("x-cache"), r.text().as_str()),
        (Some("MISS"), "/items/1 #2")
    );

    // Stale if error: with the origin failing, the one-second entry is a hit while fresh,
    // then served stale.
    assert_eq!(
        get(&gw.url("/short")).await.expect("get").header("x-cache"),
        Some("MISS")
    );
    failing.store(true, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let r = loop {
        let r = get(&gw.url("/short")).await.expect("get");
        if r.header("x-cache") != Some("HIT") {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the entry never went stale"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-cache"), Some("STALE"));
    assert!(r.text().starts_with("/short #"), "{}", r.text());
    failing.store(false, Ordering::Relaxed);

    // A body over the plugin's body_limit goes on whole, uncached.
    for _ in 0..2 {
        let r = get(&gw.url("/big")).await.expect("get");
        assert_eq!((r.status.as_u16(), r.text().len()), (200, 2 << 20));
        assert_eq!(r.header("x-cache"), Some("MISS"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspect_checks_opaque_tokens_with_the_authorization_server() {
    use http_body_util::BodyExt;
    let api = Upstream::echo("api").await;
    let auth = Upstream::serve("auth", |req| async move {
        let basic = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let form = String::from_utf8_lossy(&body).to_string();
        // client "gw", secret "s3cret"
        let answer = if basic.as_deref() != Some("Basic Z3c6czNjcmV0") {
            r#"{"error": "invalid_client"}"#
        } else if form.starts_with("token=opaque-good&") {
            r#"{"active": true, "sub": "ann", "scope": "orders:read", "exp": 4102444800}"#
        } else {
            r#"{"active": false}"#
        };
        http::Response::new(full(answer))
    })
    .await;
    let introspect = |url: &str| {
        format!(
            "{{ name = \"introspect\", config = {{ url = \"{url}\", client_id = \"gw\", client_secret = \"s3cret\" }} }}"
        )
    };
    let down = format!(
        "[upstreams.down]\ntargets = [\"127.0.0.1:{}\"]\n",
        free_port()
    );
    let gw = Gateway::start(
        &(upstream_block("api", &[&api], "")
            + &upstream_block("auth", &[&auth], "")
            + &down
            + &plugin_block("introspect", "introspect", "http = [\"auth\", \"down\"]")
            + &plugin_block("headers", "headers", "")
            + &format!(
                "[[routes]]\npath_prefix = \"/api\"\nupstream = \"api\"\nplugins = [{}, {{ name = \"headers\", config = {{ from_context = {{ x-consumer = \"consumer\" }} }} }}]\n",
                introspect("http://auth/oauth/introspect")
            )
            + &format!(
                "[[routes]]\npath_prefix = \"/down\"\nupstream = \"api\"\nplugins = [{}]\n",
                introspect("http://down/oauth/introspect")
            )),
    )
    .await;
    let bearer = |t: &str| format!("Bearer {t}");
    for _ in 0..2 {
        let r = get_with(
            &gw.url("/api/x"),
            &[("authorization", &bearer("opaque-good"))],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["headers"]["x-consumer"], "ann");
    }
    let asked = |u: &Upstream| u.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(asked(&auth), 1, "the active result was cached");

    let r = get_with(&gw.url("/api/x"), &[("authorization", &bearer("revoked"))]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.header("www-authenticate")
            .unwrap_or("")
            .starts_with("Bearer error=\"invalid_token\""),
        "{:?}",
        r.header("www-authenticate")
    );
    // A token not cached yet, and the server unreachable.
    let r = get_with(
        &gw.url("/down/x"),
        &[("authorization", &bearer("opaque-new"))],
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(asked(&api), 2, "refused requests never reach the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_cache_through_redis() {
    let redis = Redis::start().await;
    let origin = Upstream::echo("origin").await;
    let config = upstream_block("origin", &[&origin], "")
        + &format!("[store]\nbackend = \"redis\"\nurl = \"{}\"\n", redis.url())
        + &plugin_block("cache", "cache", "")
        + "[[routes]]\nupstream = \"origin\"\nplugins = [\"cache\"]\n";
    let (one, two) = (Gateway::start(&config).await, Gateway::start(&config).await);
    // Behind one load balancer: the same Host at both.
    let host = [("host", "shop.example.test")];
    let first = get_with(&one.url("/catalog?page=1"), &host).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let second = get_with(&two.url("/catalog?page=1"), &host).await;
    assert_eq!(
        second.header("x-cache"),
        Some("HIT"),
        "the other gateway's entry"
    );
    assert_eq!(second.text(), first.text());
    assert_eq!(
        origin.requests.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// Each seed plugin's bad config is refused by `wasmgate check`, naming the route, the plugin
/// and the key to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_plugins_bad_configs_are_refused_by_check() {
    let a = Upstream::echo("a").await;
    let cases = [
        (
            "route_by",
            r#"{ rules = [{ when = { header = "content-type", regex = "(" }, upstream = "a" }] }"#,
            "is not a regular expression",
        ),
        (
            "aggregate",
            r#"{ calls = { user = { url = "http://a/users/{param.id}" } }, shape = "user[" }"#,
            "`shape` is not a JMESPath expression",
        ),
        (
            "aggregate",
            r#"{ calls = { user = { url = "http://a/users/{id}" } } }"#,
            "calls.user: `{id}` is not one of {param.X}",
        ),
        (
            "tenant",
            r#"{ from = ["cookie"], tenants = { acme = {} } }"#,
            "`cookie` is not a tenant source",
        ),
        (
            "cache",
            r#"{ bypass = ["search"] }"#,
            "bypass `search` must be a path prefix starting with `/`",
        ),
        (
            "introspect",
            r#"{ url = "http://a/introspect", client_id = "gw" }"#,
            "missing field `client_secret`",
        ),
    ];
    for (file, config, says) in cases {
        let err = check_refuses(
            &(upstream_block("a", &[&a], "")
                + &plugin_block("p", file, "http = [\"a\"]")
                + &format!(
                    "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstream = \"a\"\nplugins = [{{ name = \"p\", config = {config} }}]\n"
                )),
        );
        assert!(
            err.contains("route `api` plugin `p`") && err.contains(says),
            "{file}: {err}"
        );
    }
}
