//! OAuth 2.0 token introspection (RFC 7662), beside `jwt` for opaque bearer tokens: the token
//! is POSTed to the authorization server's introspection endpoint (an allowed upstream) with the
//! gateway's client credentials; an active token's `sub` (or `client_id`) becomes the consumer
//! and its `scope` the scopes, for acl and rate-limit. Active results are cached in the store
//! (under the token's SHA-256, never the token) until the token's `exp`, at most `cache_s`.
//! An inactive or missing token gets 401 with `WWW-Authenticate: Bearer error="invalid_token"`;
//! an unreachable server gets 503, or lets the request through unauthenticated with
//! `on_server_down = "allow"`.

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmgate_plugin_sdk::http::Outgoing;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `http://UPSTREAM/path` of the introspection endpoint; list the upstream in `http`.
    url: String,
    client_id: String,
    /// Better given as `${env:NAME}` or `${file:PATH}` in gateway.toml.
    client_secret: String,
    /// The longest an active result is reused (it is never kept past the token's `exp`).
    #[serde(default = "default_cache")]
    cache_s: u64,
    #[serde(default = "default_timeout")]
    timeout_ms: u32,
    #[serde(default)]
    on_server_down: OnDown,
}

#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum OnDown {
    /// 503.
    #[default]
    Deny,
    /// Through, with no identity (later plugins decide).
    Allow,
}

fn default_cache() -> u64 {
    300
}
fn default_timeout() -> u32 {
    2000
}

/// What the server said of an active token, as cached.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Active {
    sub: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    /// Seconds since the epoch.
    exp: Option<u64>,
}

pub struct Introspect {
    c: Config,
    /// `Basic base64(client_id:client_secret)`.
    credentials: String,
}

fn invalid(description: &str) -> Action {
    Answer::unauthorized(
        "Bearer",
        &[
            ("error", "invalid_token"),
            ("error_description", description),
        ],
        description,
    )
    .into()
}

/// `application/x-www-form-urlencoded` for one value.
fn form_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Introspect {
    /// The server's verdict: `Ok(Some)` active, `Ok(None)` not, `Err` when it cannot tell.
    fn ask(&self, token: &str) -> Result<Option<Active>, String> {
        let body = format!("token={}&token_type_hint=access_token", form_value(token));
        let mut req = Outgoing::post(
            &self.c.url,
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .timeout_ms(self.c.timeout_ms);
        req.headers
            .push(("authorization".into(), self.credentials.clone()));
        req.headers
            .push(("accept".into(), "application/json".into()));
        let resp = http::send(&req).map_err(|e| e.to_string())?;
        if resp.status != 200 {
            return Err(format!(
                "the introspection endpoint answered {}",
                resp.status
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("the introspection answer is not JSON: {e}"))?;
        if v["active"] != serde_json::Value::Bool(true) {
            return Ok(None);
        }
        let text = |k: &str| v[k].as_str().map(str::to_string);
        Ok(Some(Active {
            sub: text("sub"),
            client_id: text("client_id"),
            scope: text("scope"),
            exp: v["exp"].as_u64(),
        }))
    }
}

#[plugin]
impl Plugin for Introspect {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if !c.url.starts_with("http://") {
            return Err(format!("`url` {} must be http://UPSTREAM/path", c.url));
        }
        if c.client_id.is_empty() || c.client_secret.is_empty() {
            return Err(
                "give `client_id` and `client_secret` for the introspection endpoint".into(),
            );
        }
        let credentials = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.client_id, c.client_secret))
        );
        Ok(Introspect { c, credentials })
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let Some(token) = req
            .header("authorization")
            .and_then(|h| {
                let (scheme, t) = h.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| t.trim().to_string())
            })
            .filter(|t| !t.is_empty())
        else {
            return Answer::unauthorized(
                "Bearer",
                &[("realm", "wasmgate")],
                "a bearer token is required",
            )
            .into();
        };
        let now_s = clock::wall_ms() / 1000;
        let key = format!(
            "t:{}",
            wasmgate_plugin_sdk::hex::encode(&Sha256::digest(token.as_bytes()))
        );
        let cached = kv::get(&key)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Active>(&b).ok())
            .filter(|a| a.exp.is_none_or(|exp| exp > now_s));
        let active = match cached {
            Some(a) => a,
            None => match self.ask(&token) {
                Ok(Some(a)) => {
                    if a.exp.is_some_and(|exp| exp <= now_s) {
                        return invalid("the token has expired");
                    }
                    let ttl = a
                        .exp
                        .map_or(self.c.cache_s, |exp| (exp - now_s).min(self.c.cache_s));
                    if ttl > 0
                        && let Ok(bytes) = serde_json::to_vec(&a)
                    {
                        // A store outage only costs the next request a new introspection.
                        let _ = kv::set(&key, &bytes, Some(Duration::from_secs(ttl)));
                    }
                    a
                }
                Ok(None) => return invalid("the token is not active"),
                Err(e) => {
                    log::warn(&format!("token introspection failed: {e}"));
                    return match self.c.on_server_down {
                        OnDown::Deny => {
                            Answer::problem(503, "the authorization server cannot be reached")
                                .into()
                        }
                        OnDown::Allow => Action::Continue,
                    };
                }
            },
        };
        Identity {
            consumer: active.sub.clone().or(active.client_id.clone()),
            scopes: Identity::items(active.scope.as_deref(), &[' ']),
            ..Identity::default()
        }
        .set_on(req);
        if let Some(c) = &active.client_id {
            req.context_set("client_id", c);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::http::{Error as HttpError, Incoming};
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest};

    const CONFIG: &str = r#"{"url": "http://auth/introspect", "client_id": "gw",
        "client_secret": "s3cret", "cache_s": 60}"#;

    fn server(asked: std::rc::Rc<std::cell::Cell<u32>>) {
        testing::mock_http("http://auth/introspect", move |req| {
            asked.set(asked.get() + 1);
            let auth = req.headers.iter().find(|(k, _)| k == "authorization");
            assert_eq!(auth.map(|a| a.1.as_str()), Some("Basic Z3c6czNjcmV0"));
            let body = String::from_utf8_lossy(&req.body);
            let answer = if body.starts_with("token=good&") {
                r#"{"active": true, "sub": "ann", "scope": "orders:read profile", "client_id": "app", "exp": 1700}"#
            } else {
                r#"{"active": false}"#
            };
            Ok(Incoming {
                status: 200,
                headers: vec![],
                body: answer.as_bytes().to_vec(),
            })
        });
    }

    fn bearer(t: &str) -> TestRequest {
        TestRequest::get("/").header("authorization", &format!("Bearer {t}"))
    }

    #[test]
    fn an_active_token_sets_the_identity_and_is_cached_until_exp() {
        testing::reset();
        testing::set_clock_ms(1_000_000);
        let asked = std::rc::Rc::new(std::cell::Cell::new(0));
        server(asked.clone());
        let h = TestHost::<Introspect>::new(CONFIG).unwrap();
        let req = bearer("good");
        assert_eq!(testing::status(&h.request_headers(&req)), 200);
        let id = Identity::of(&req.view());
        assert_eq!(id.consumer.as_deref(), Some("ann"));
        assert_eq!(id.scopes, ["orders:read", "profile"]);
        assert_eq!(testing::status(&h.request_headers(&bearer("good"))), 200);
        assert_eq!(asked.get(), 1, "the second request used the cache");
        testing::set_clock_ms(1_700_000);
        assert_eq!(
            testing::status(&h.request_headers(&bearer("good"))),
            401,
            "expired"
        );
    }

    #[test]
    fn inactive_or_missing_tokens_get_401_with_a_challenge() {
        testing::reset();
        testing::set_clock_ms(1_000_000);
        server(std::rc::Rc::new(std::cell::Cell::new(0)));
        let h = TestHost::<Introspect>::new(CONFIG).unwrap();
        let Action::Respond(a) = h.request_headers(&bearer("revoked")) else {
            panic!("not refused")
        };
        assert_eq!(a.status, 401);
        let challenge = a.headers.iter().find(|(k, _)| k == "www-authenticate");
        assert!(
            challenge.is_some_and(|(_, v)| v.starts_with("Bearer error=\"invalid_token\"")),
            "{challenge:?}"
        );
        assert_eq!(
            testing::status(&h.request_headers(&TestRequest::get("/"))),
            401
        );
    }

    #[test]
    fn an_unreachable_server_follows_on_server_down() {
        testing::reset();
        testing::mock_http("http://auth/", |_| Err(HttpError::Refused("down".into())));
        let deny = TestHost::<Introspect>::new(CONFIG).unwrap();
        assert_eq!(testing::status(&deny.request_headers(&bearer("good"))), 503);
        let allow = TestHost::<Introspect>::new(&CONFIG.replace(
            "\"cache_s\": 60",
            "\"cache_s\": 60, \"on_server_down\": \"allow\"",
        ))
        .unwrap();
        let req = bearer("good");
        assert_eq!(testing::status(&allow.request_headers(&req)), 200);
        assert_eq!(Identity::of(&req.view()).consumer, None);
    }

    #[test]
    fn tokens_are_form_encoded() {
        assert_eq!(form_value("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }
}
