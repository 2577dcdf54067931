//! Backend-for-frontend: one request, several upstream calls at once, one JSON answer. Each call
//! is a GET of a URL templated from the request (`{param.id}`, `{query.page}`, `{header.x-user}`,
//! `{context.consumer}`), with its own timeout, and is required (its failure answers 502, or 504
//! when it timed out, naming the call) or optional (its field is null and `errors` says why).
//! The answers are merged into one object keyed by call name, then shaped by a JMESPath
//! expression (slices, counts, averages, renames). The route's upstream is never called.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use wasmgate_plugin_sdk::expr::{self, Expression};
use wasmgate_plugin_sdk::http::{Error as HttpError, Outgoing};
use wasmgate_plugin_sdk::prelude::*;
use wasmgate_plugin_sdk::template::Template;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name → call; the name is the call's field in the merged object.
    calls: BTreeMap<String, CallConfig>,
    /// A JMESPath expression over the merged object; the merged object itself when absent.
    shape: Option<String>,
    /// Request headers passed on to every call (e.g. `authorization`).
    #[serde(default)]
    forward_headers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallConfig {
    /// `http://UPSTREAM/path?query`, with `{param.X}`, `{query.X}`, `{header.X}`, `{context.X}`.
    url: String,
    #[serde(default = "default_timeout")]
    timeout_ms: u32,
    /// A failure leaves the field null (and an `errors` entry) instead of failing the answer.
    #[serde(default)]
    optional: bool,
}

fn default_timeout() -> u32 {
    2000
}

struct Call {
    name: String,
    url: Template,
    timeout_ms: u32,
    optional: bool,
}

pub struct Aggregate {
    calls: Vec<Call>,
    shape: Option<Expression<'static>>,
    forward_headers: Vec<String>,
}

/// What a value put into a URL is escaped from: everything but unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn template(call: &str, url: &str) -> Result<Template, String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "calls.{call}: `{url}` must be http://UPSTREAM/path"
        ));
    }
    Template::parse(url, &[]).map_err(|e| format!("calls.{call}: {e}"))
}

impl Call {
    /// The URL for `req`, or what the request lacks.
    fn url(&self, req: &Request) -> Result<String, String> {
        self.url.render(
            req,
            |_| None,
            |v, out| out.extend(utf8_percent_encode(v, COMPONENT)),
        )
    }
}

/// Why one call gave nothing usable.
fn failure(e: &HttpError) -> (u16, String) {
    match e {
        HttpError::Timeout => (504, "timed out".into()),
        other => (502, other.to_string()),
    }
}

#[plugin]
impl Plugin for Aggregate {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.calls.is_empty() {
            return Err(
                "give `calls`, e.g. { user = { url = \"http://users/users/{param.id}\" } }".into(),
            );
        }
        let calls = c
            .calls
            .into_iter()
            .map(|(name, call)| {
                Ok(Call {
                    url: template(&name, &call.url)?,
                    name,
                    timeout_ms: call.timeout_ms,
                    optional: call.optional,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let shape = c
            .shape
            .map(|s| {
                expr::compile(&s).map_err(|e| format!("`shape` is not a JMESPath expression: {e}"))
            })
            .transpose()?;
        Ok(Aggregate {
            calls,
            shape,
            forward_headers: c
                .forward_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        })
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let mut outgoing = Vec::with_capacity(self.calls.len());
        for call in &self.calls {
            let url = match call.url(req) {
                Ok(u) => u,
                Err(e) => return Answer::problem(400, &e).into(),
            };
            let mut o = Outgoing::get(&url).timeout_ms(call.timeout_ms);
            o.headers.push(("accept".into(), "application/json".into()));
            for h in &self.forward_headers {
                if let Some(v) = req.header(h) {
                    o.headers.push((h.clone(), v));
                }
            }
            outgoing.push(o);
        }
        let mut merged = Map::new();
        let mut errors = Vec::new();
        for (call, result) in self.calls.iter().zip(http::send_all(&outgoing)) {
            let value = match result {
                Err(e) => Err(failure(&e)),
                Ok(r) if !(200..300).contains(&r.status) => {
                    Err((502, format!("answered {}", r.status)))
                }
                Ok(r) => serde_json::from_slice::<Value>(&r.body)
                    .map_err(|e| (502, format!("did not answer JSON: {e}"))),
            };
            match value {
                Ok(v) => {
                    merged.insert(call.name.clone(), v);
                }
                Err((status, why)) if !call.optional => {
                    return Answer::problem(status, &format!("call `{}` {why}", call.name)).into();
                }
                Err((_, why)) => {
                    log::warn(&format!("optional call `{}` {why}", call.name));
                    merged.insert(call.name.clone(), Value::Null);
                    errors.push(serde_json::json!({ "call": call.name, "error": why }));
                }
            }
        }
        let merged = Value::Object(merged);
        let mut out = match &self.shape {
            None => merged,
            Some(shape) => match expr::search(shape, merged) {
                Ok(v) => v,
                Err(e) => return Answer::problem(500, &format!("shape: {e}")).into(),
            },
        };
        if !errors.is_empty()
            && let Value::Object(o) = &mut out
        {
            o.insert("errors".into(), Value::Array(errors));
        }
        Answer::new(200)
            .header("content-type", "application/json")
            .body(out.to_string())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::http::Incoming;
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest};

    const PROFILE: &str = r#"{
        "calls": {
            "user": {"url": "http://users/users/{param.id}"},
            "orders": {"url": "http://orders/orders?user={param.id}", "optional": true},
            "reviews": {"url": "http://reviews/reviews?user={param.id}", "optional": true}
        },
        "shape": "{user: user.name, orders: orders[:2], reviewCount: length(reviews || `[]`), averageRating: avg(reviews[].rating || `[]`)}"
    }"#;

    fn json(body: &str) -> Result<Incoming, HttpError> {
        Ok(Incoming {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        })
    }

    /// The three backends, answering for user 7; mocks registered before take precedence.
    fn backends() {
        testing::mock_http("http://users/users/7", |_| json(r#"{"name": "Ada"}"#));
        testing::mock_http("http://orders/orders?user=7", |_| json("[1, 2, 3]"));
        testing::mock_http("http://reviews/reviews?user=7", |_| {
            json(r#"[{"rating": 4}, {"rating": 5}]"#)
        });
    }

    fn answer(action: &Action) -> Value {
        match action {
            Action::Respond(a) => serde_json::from_slice(&a.body).unwrap_or(Value::Null),
            Action::Continue => Value::Null,
        }
    }

    fn profile(id: &str) -> TestRequest {
        TestRequest::get("/profile").route("profile", &[("id", id)])
    }

    #[test]
    fn merges_and_shapes() {
        testing::reset();
        backends();
        let h = TestHost::<Aggregate>::new(PROFILE).unwrap();
        let a = h.request_headers(&profile("7"));
        assert_eq!(testing::status(&a), 200);
        assert_eq!(
            answer(&a),
            serde_json::json!({"user": "Ada", "orders": [1, 2], "reviewCount": 2, "averageRating": 4.5})
        );
    }

    #[test]
    fn an_optional_call_that_fails_is_null_with_an_error() {
        testing::reset();
        testing::mock_http("http://orders/", |_| Err(HttpError::Refused("down".into())));
        backends();
        let h = TestHost::<Aggregate>::new(PROFILE).unwrap();
        let a = h.request_headers(&profile("7"));
        assert_eq!(testing::status(&a), 200);
        let j = answer(&a);
        assert_eq!(j["orders"], Value::Null);
        assert_eq!(j["errors"][0]["call"], "orders");
    }

    #[test]
    fn a_required_call_that_fails_answers_502_naming_it() {
        testing::reset();
        testing::mock_http("http://users/", |_| {
            Ok(Incoming {
                status: 500,
                headers: vec![],
                body: vec![],
            })
        });
        backends();
        let h = TestHost::<Aggregate>::new(PROFILE).unwrap();
        let a = h.request_headers(&profile("7"));
        assert_eq!(testing::status(&a), 502);
        assert_eq!(answer(&a)["detail"], "call `user` answered 500");
    }

    #[test]
    fn values_are_escaped_into_urls_and_missing_ones_refused() {
        backends();
        testing::mock_http("http://users/users/a%2F..%2Fb", |_| {
            json(r#"{"name": "x"}"#)
        });
        let h = TestHost::<Aggregate>::new(PROFILE).unwrap();
        let a = h.request_headers(&profile("a/../b"));
        assert_eq!(testing::status(&a), 200, "{}", answer(&a));
        let a = h.request_headers(&TestRequest::get("/profile"));
        assert_eq!(testing::status(&a), 400);
        assert_eq!(
            answer(&a)["detail"],
            "the request has no path parameter `id`"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        for (config, says) in [
            (r#"{"calls": {}}"#, "give `calls`"),
            (
                r#"{"calls": {"a": {"url": "https://x/"}}}"#,
                "must be http://UPSTREAM/path",
            ),
            (
                r#"{"calls": {"a": {"url": "http://x/{nope}"}}}"#,
                "`{nope}` is not one of",
            ),
            (
                r#"{"calls": {"a": {"url": "http://x/"}}, "shape": "a[["}"#,
                "not a JMESPath expression",
            ),
        ] {
            let err = TestHost::<Aggregate>::new(config).err().unwrap_or_default();
            assert!(err.contains(says), "{config}: {err}");
        }
    }
}
