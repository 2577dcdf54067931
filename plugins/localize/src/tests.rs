use serde_json::{Value, json};
use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest, TestResponse, status};

use super::*;

fn host(config: Value) -> TestHost<Localize> {
    testing::reset();
    TestHost::new(&config.to_string()).unwrap()
}

fn shop() -> TestHost<Localize> {
    host(json!({
        "locales": ["en", "de", "fr"],
        "upstreams": {"eu": ["de", "fr"]},
        "format": [
            {"path": "total", "as": "currency", "currency": "EUR"},
            {"path": "items[].price", "as": "currency", "currency_field": "currency"},
            {"path": "placed", "as": "date"},
            {"path": "views", "as": "number"},
        ],
        "messages": {
            "fr": {"429": {"title": "Trop de requêtes", "detail": "Vous avez fait trop de requêtes. ({detail})"},
                   "5xx": {"title": "Service indisponible"}},
            "de": {"404": {"title": "Nicht gefunden", "detail": "Diese Seite gibt es nicht."}},
        },
    }))
}

fn negotiated(h: &TestHost<Localize>, req: TestRequest) -> (String, TestRequest) {
    assert_eq!(status(&h.request_headers(&req)), 200);
    let l = req.view().context_get("locale").unwrap();
    (l, req)
}

#[test]
fn the_locale_comes_from_query_cookie_then_accept_language() {
    let h = shop();
    let (l, req) = negotiated(
        &h,
        TestRequest::get("/").header("accept-language", "de-CH, fr;q=0.8"),
    );
    assert_eq!(l, "de");
    assert_eq!(req.view().header("x-locale").as_deref(), Some("de"));
    assert_eq!(
        req.picked_upstream(),
        Some(("eu".into(), None)),
        "de is served in the EU"
    );
    let (l, _) = negotiated(
        &h,
        TestRequest::get("/?lang=fr").header("accept-language", "de"),
    );
    assert_eq!(l, "fr", "the query parameter wins");
    let (l, _) = negotiated(
        &h,
        TestRequest::get("/")
            .header("cookie", "a=1; lang=de")
            .header("accept-language", "fr"),
    );
    assert_eq!(l, "de", "then the cookie");
    let (l, req) = negotiated(
        &h,
        TestRequest::get("/?lang=xx").header("accept-language", "it, ja"),
    );
    assert_eq!(l, "en", "nothing supported: the default");
    assert_eq!(
        req.picked_upstream(),
        None,
        "en stays on the route's upstream"
    );
}

#[test]
fn amounts_and_dates_are_formatted_for_the_locale() {
    let h = shop();
    let body = json!({"total": 1234.5, "placed": "2024-03-01T10:05:00Z", "views": 1234567,
                      "items": [{"price": 9.9, "currency": "USD"}, {"price": "1000", "currency": "JPY"}, {"price": 3, "currency": "nope"}]});
    let out = |accept: &str| {
        let (_, req) = negotiated(&h, TestRequest::get("/").header("accept-language", accept));
        let resp = TestResponse::new(200)
            .header("content-type", "application/json")
            .body(body.to_string().as_bytes());
        h.response_headers(&req, &resp);
        assert!(!resp.body_skipped());
        h.response_body(&req, &resp);
        assert_eq!(
            resp.view().header("vary").as_deref(),
            Some("Accept-Language")
        );
        (
            resp.view().header("content-language"),
            serde_json::from_slice::<Value>(&resp.view().body().unwrap()).unwrap(),
        )
    };
    let (lang, de) = out("de-CH, fr;q=0.8");
    assert_eq!(lang.as_deref(), Some("de"));
    assert_eq!(de["total"], "1.234,50\u{a0}€");
    assert_eq!(de["placed"], "01.03.2024");
    assert_eq!(de["views"], "1.234.567");
    assert_eq!(de["items"][0]["price"], "9,90\u{a0}$");
    assert_eq!(
        de["items"][2]["price"], 3,
        "an unknown currency is left as it is"
    );
    let (_, en) = out("en-US");
    assert_eq!(en["total"], "€1,234.50");
    assert_eq!(en["placed"], "Mar 1, 2024");
    assert_eq!(en["items"][1]["price"], "¥1,000.00");
}

#[test]
fn error_answers_are_translated() {
    let h = shop();
    let (_, req) = negotiated(&h, TestRequest::get("/").header("accept-language", "fr-FR"));
    let problem = Answer::problem(429, "rate of 5 requests per 60 s reached");
    let resp = TestResponse::new(429)
        .header("content-type", "application/problem+json")
        .body(&problem.body);
    h.response_headers(&req, &resp);
    h.response_body(&req, &resp);
    let p: Value = serde_json::from_slice(&resp.view().body().unwrap()).unwrap();
    assert_eq!(p["title"], "Trop de requêtes");
    assert_eq!(
        p["detail"],
        "Vous avez fait trop de requêtes. (rate of 5 requests per 60 s reached)"
    );
    assert_eq!(p["status"], 429);
    assert_eq!(
        resp.view().header("content-language").as_deref(),
        Some("fr")
    );
    // A class entry covers every status in it.
    let resp = TestResponse::new(503)
        .header("content-type", "application/problem+json")
        .body(&Answer::problem(503, "x").body);
    h.response_headers(&req, &resp);
    h.response_body(&req, &resp);
    let p: Value = serde_json::from_slice(&resp.view().body().unwrap()).unwrap();
    assert_eq!(
        (p["title"].as_str(), p["detail"].as_str()),
        (Some("Service indisponible"), Some("x"))
    );
    // No catalog entry and no formatting for a non-JSON body: it streams.
    let (_, en) = negotiated(&h, TestRequest::get("/").header("accept-language", "en"));
    let resp = TestResponse::new(404).header("content-type", "text/html");
    h.response_headers(&en, &resp);
    assert!(resp.body_skipped());
}

#[test]
fn an_upstream_content_language_is_kept() {
    let h = host(json!({"locales": ["en", "de"], "from": [{"header": "x-lang"}]}));
    assert!(
        !h.phases().contains(Phases::RESPONSE_BODY),
        "nothing to format or translate"
    );
    let (l, req) = negotiated(&h, TestRequest::get("/").header("x-lang", "DE"));
    assert_eq!(l, "de");
    let resp = TestResponse::new(200).header("content-language", "de-AT");
    h.response_headers(&req, &resp);
    assert_eq!(
        resp.view().header("content-language").as_deref(),
        Some("de-AT")
    );
    assert_eq!(
        resp.view().header("vary"),
        None,
        "Accept-Language is not a source here"
    );
}

#[test]
fn bad_configs_are_refused() {
    for (config, says) in [
        (json!({"locales": []}), "give the supported `locales`"),
        (
            json!({"locales": ["en", "??"]}),
            "locales: `??` is not a BCP 47 locale",
        ),
        (
            json!({"locales": ["en"], "default": "de"}),
            "default: `de` is not one of `locales`",
        ),
        (
            json!({"locales": ["en"], "from": ["browser"]}),
            "from: `browser` is not a source",
        ),
        (
            json!({"locales": ["en"], "format": [{"path": "p", "as": "currency"}]}),
            "needs `currency`",
        ),
        (
            json!({"locales": ["en"], "format": [{"path": "p", "as": "currency", "currency": "euro"}]}),
            "not an ISO 4217 code",
        ),
        (
            json!({"locales": ["en"], "format": [{"path": "p", "as": "money"}]}),
            "unknown variant `money`",
        ),
        (
            json!({"locales": ["en"], "messages": {"fr": {}}}),
            "messages.fr: `fr` is not one of `locales`",
        ),
        (
            json!({"locales": ["en"], "messages": {"en": {"200": {"title": "OK"}}}}),
            "messages.en.\"200\"",
        ),
    ] {
        let err = TestHost::<Localize>::new(&config.to_string())
            .err()
            .unwrap_or_default();
        assert!(err.contains(says), "{config}: {err}");
    }
}
