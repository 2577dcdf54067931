//! The `localize` plugin through the real gateway: the locale negotiated from
//! `Accept-Language` picks the region's upstream and goes there in a header; amounts and dates
//! in the JSON answer come back formatted for it; error answers of a later plugin (a 429) and
//! of the gateway itself (a 502) come back translated.

use crate::harness::*;

/// A backend that answers an order with its name and the locale it was asked for.
async fn backend(name: &'static str) -> Upstream {
    Upstream::serve(name, move |req| async move {
        let locale = req
            .headers()
            .get("x-locale")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = serde_json::json!({"served_by": name, "locale": locale, "total": 1234.5,
            "placed": "2024-03-01T10:05:00Z"});
        answer("application/json", &[], body.to_string())
    })
    .await
}

const LOCALIZE: &str = r#"{ name = "localize", config = { locales = ["en", "de", "fr"], upstreams = { eu = ["de", "fr"] }, format = [{ path = "total", as = "currency", currency = "EUR" }, { path = "placed", as = "date" }], messages = { fr = { "429" = { title = "Trop de requêtes", detail = "Réessayez plus tard." }, "5xx" = { title = "Service indisponible" } } } } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locale_picks_region_formats_and_translates_errors() {
    let (us, eu) = (backend("us").await, backend("eu").await);
    let dead = free_port();
    // On the second route every locale stays on the route's (dead) upstream.
    let no_regions = LOCALIZE.replace(r#"upstreams = { eu = ["de", "fr"] }, "#, "");
    assert_ne!(no_regions, LOCALIZE);
    let gw = Gateway::start(
        &(upstream_block("us", &[&us], "")
            + &upstream_block("eu", &[&eu], "")
            + &format!("[upstreams.down]\ntargets = [\"127.0.0.1:{dead}\"]\n")
            + &plugin_block("localize", "localize", "")
            + &plugin_block("rate-limit", "rate-limit", "")
            + &format!(
                "[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"us\"\nplugins = [{LOCALIZE}, {{ name = \"rate-limit\", config = {{ limit = 2, by = {{ header = \"x-client\" }} }} }}]\n\n\
                 [[routes]]\nname = \"down\"\npath_prefix = \"/down\"\nupstream = \"down\"\nplugins = [{no_regions}]\n"
            )),
    )
    .await;

    // German (from de-CH): the EU upstream, asked in German, answers formatted for German.
    let r = get_with(
        &gw.url("/orders/1"),
        &[("accept-language", "de-CH, fr;q=0.8"), ("x-client", "a")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (j["served_by"].as_str(), j["locale"].as_str()),
        (Some("eu"), Some("de"))
    );
    assert_eq!(j["total"], "1.234,50\u{a0}€");
    assert_eq!(j["placed"], "01.03.2024");
    assert_eq!(r.header("content-language"), Some("de"));
    assert_eq!(r.header("vary"), Some("Accept-Language"));
    assert_eq!(
        r.header("content-length").map(str::to_string),
        Some(r.text().len().to_string())
    );

    // English: the route's own upstream, English formats.
    let r = get_with(
        &gw.url("/orders/1"),
        &[("accept-language", "en-GB;q=0.9, xx"), ("x-client", "b")],
    )
    .await;
    let j = r.json();
    assert_eq!(
        (j["served_by"].as_str(), j["locale"].as_str()),
        (Some("us"), Some("en"))
    );
    assert_eq!(j["total"], "€1,234.50");
    assert_eq!(j["placed"], "Mar 1, 2024");

    // A 429 from the rate limiter after it, in French.
    let fr = [("accept-language", "fr"), ("x-client", "c")];
    for _ in 0..2 {
        assert_eq!(get_with(&gw.url("/orders/1"), &fr).await.status, 200);
    }
    let r = get_with(&gw.url("/orders/1"), &fr).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["title"], "Trop de requêtes");
    assert_eq!(r.json()["detail"], "Réessayez plus tard.");
    assert!(
        r.header("retry-after").is_some(),
        "the limiter's headers stay"
    );

    // The gateway's own 502 or 503 (nothing listens upstream), in French; in English as it was.
    let r = get_with(&gw.url("/down"), &[("accept-language", "fr-CA")]).await;
    assert!(r.status.is_server_error(), "{}", r.text());
    assert_eq!(r.json()["title"], "Service indisponible");
    assert_eq!(r.header("content-language"), Some("fr"));
    let r = get_with(&gw.url("/down"), &[("accept-language", "en")]).await;
    let title = r.json()["title"].clone();
    assert!(
        title == "Bad Gateway" || title == "Service Unavailable",
        "{title}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_localize_configs_are_refused_by_check() {
    let up = Upstream::echo("up").await;
    for (config, says) in [
        (
            r#"{ locales = ["en", "??"] }"#,
            "`??` is not a BCP 47 locale",
        ),
        (
            r#"{ locales = ["en"], format = [{ path = "p", as = "currency", currency = "euro" }] }"#,
            "not an ISO 4217 code",
        ),
        (
            r#"{ locales = ["en"], messages = { en = { "200" = { title = "OK" } } } }"#,
            "give an error status",
        ),
    ] {
        let err = check_refuses(
            &(upstream_block("up", &[&up], "")
                + &plugin_block("localize", "localize", "")
                + &format!(
                    "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstream = \"up\"\nplugins = [{{ name = \"localize\", config = {config} }}]\n"
                )),
        );
        assert!(
            err.contains("route `api` plugin `localize`") && err.contains(says),
            "{config}: {err}"
        );
    }
}

/// Hostile answers and headers: what cannot be read passes unchanged, too much is refused, the
/// gateway unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_leaves_the_gateway_unharmed() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let served = deep.clone();
    let up = Upstream::serve("up", move |req| {
        let deep = served.clone();
        async move {
            let body: bytes::Bytes = match req.uri().path() {
                "/deep" => deep.into(),
                "/utf8" => bytes::Bytes::from_static(b"{\"total\": \"\xff\xfe\"}"),
                "/huge" => vec![b' '; 10 << 20].into(),
                _ => bytes::Bytes::from_static(br#"{"total": 5}"#),
            };
            answer("application/json", &[], body)
        }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("up", &[&up], "")
            + &plugin_block("localize", "localize", "body_limit = \"1MiB\"")
            + "[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\nplugins = [{ name = \"localize\", config = { locales = [\"en\", \"de\"], format = [{ path = \"total\", as = \"currency\", currency = \"EUR\" }] } }]\n"),
    )
    .await;
    let de = [("accept-language", "de")];
    let r = get_with(&gw.url("/deep"), &de).await;
    assert_eq!(
        (r.status, r.text().len()),
        (http::StatusCode::OK, deep.len())
    );
    let r = get_with(&gw.url("/utf8"), &de).await;
    assert_eq!(r.status, 200);
    let r = get_with(&gw.url("/huge"), &de).await;
    assert_eq!(r.status, 502, "{}", r.text());
    // A giant Accept-Language of nonsense: the default locale.
    let junk = "x-".repeat(2000) + &",;q=".repeat(1000);
    let r = get_with(&gw.url("/fine"), &[("accept-language", junk.as_str())]).await;
    assert_eq!(r.header("content-language"), Some("en"));
    let r = get_with(&gw.url("/fine"), &de).await;
    assert_eq!(r.json()["total"], "5,00\u{a0}€");
}
