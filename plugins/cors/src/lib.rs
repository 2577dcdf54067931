//! CORS. Preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) are answered
//! here — 204 with the allowed methods, headers and max-age, or 403 for an origin or method not
//! allowed — and never reach the upstream. Other requests from an allowed origin get
//! `Access-Control-Allow-Origin` (and credentials / exposed headers) on their response.
//! Origins are exact (`https://app.example.com`), a wildcard subdomain
//! (`https://*.example.com`), or `*`.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    origins: Vec<String>,
    #[serde(default = "simple_methods")]
    methods: Vec<String>,
    /// Request headers a preflight may ask for; empty allows whatever it asks.
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    credentials: bool,
    #[serde(default = "ten_minutes")]
    max_age: u32,
    #[serde(default)]
    expose_headers: Vec<String>,
}

fn simple_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}
fn ten_minutes() -> u32 {
    600
}

impl Cors {
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| {
            if o == "*" || o == origin {
                return true;
            }
            // `https://*.example.com`: same scheme, any subdomain of example.com.
            let Some((scheme, rest)) = o.split_once("://") else {
                return false;
            };
            let Some(domain) = rest.strip_prefix("*.") else {
                return false;
            };
            origin
                .strip_prefix(scheme)
                .and_then(|r| r.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(domain))
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
        })
    }

    /// What `Access-Control-Allow-Origin` says for an allowed origin.
    fn allow_origin<'a>(&self, origin: &'a str) -> &'a str {
        if self.origins.iter().any(|o| o == "*") && !self.credentials {
            "*"
        } else {
            origin
        }
    }

    fn preflight(&self, origin: &str, req: &Request) -> Action {
        let method = req
            .header("access-control-request-method")
            .unwrap_or_default();
        if !self.origin_allowed(origin) {
            return Answer::problem(403, &format!("origin {origin} is not allowed")).into();
        }
        if !self.methods.iter().any(|m| m.eq_ignore_ascii_case(&method)) {
            return Answer::problem(403, &format!("method {method} is not allowed")).into();
        }
        let asked = req
            .header("access-control-request-headers")
            .unwrap_or_default();
        let headers = if self.headers.is_empty() {
            asked
        } else {
            let refused = asked
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .find(|h| !self.headers.iter().any(|a| a.eq_ignore_ascii_case(h)));
            if let Some(h) = refused {
                return Answer::problem(403, &format!("header {h} is not allowed")).into();
            }
            self.headers.join(", ")
        };
        let mut a = Answer::new(204)
            .header("access-control-allow-origin", self.allow_origin(origin))
            .header("access-control-allow-methods", &self.methods.join(", "))
            .header("access-control-max-age", &self.max_age.to_string())
            .header("vary", "Origin");
        if !headers.is_empty() {
            a = a.header("access-control-allow-headers", &headers);
        }
        if self.credentials {
            a = a.header("access-control-allow-credentials", "true");
        }
        a.into()
    }
}

#[plugin]
impl Plugin for Cors {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if c.origins.is_empty() {
            return Err("`origins` is empty: list the origins allowed, or \"*\"".into());
        }
        if c.credentials && c.origins.iter().any(|o| o == "*") {
            return Err(
                "credentials cannot be allowed for any origin (\"*\"); list the origins".into(),
            );
        }
        for o in &c.origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(format!(
                    "origin `{o}` must be scheme://host[:port], *.domain or \"*\""
                ));
            }
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        match req.header("origin") {
            Some(origin)
                if req.method() == "OPTIONS"
                    && req.header("access-control-request-method").is_some() =>
            {
                self.preflight(&origin, req)
            }
            _ => Action::Continue,
        }
    }

    fn on_response_headers(&self, req: &Request, resp: &Response) -> Action {
        let Some(origin) = req.header("origin").filter(|o| self.origin_allowed(o)) else {
            return Action::Continue;
        };
        let mut r = resp
            .set_header("access-control-allow-origin", self.allow_origin(&origin))
            .and_then(|()| resp.append_header("vary", "Origin"));
        if self.credentials {
            r = r.and_then(|()| resp.set_header("access-control-allow-credentials", "true"));
        }
        if !self.expose_headers.is_empty() {
            r = r.and_then(|()| {
                resp.set_header(
                    "access-control-expose-headers",
                    &self.expose_headers.join(", "),
                )
            });
        }
        r.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse};

    fn host() -> TestHost<Cors> {
        TestHost::new(
            r#"{"origins": ["https://app.example.com", "https://*.example.org"], "methods": ["GET", "PUT"],
                "headers": ["content-type", "authorization"], "credentials": true, "max_age": 99,
                "expose_headers": ["x-request-id"]}"#,
        )
        .unwrap()
    }

    fn preflight(origin: &str, method: &str, headers: &str) -> TestRequest {
        TestRequest::new("OPTIONS", "/")
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
    }

    #[test]
    fn answers_preflights() {
        let h = host();
        match h.request_headers(&preflight("https://app.example.com", "PUT", "content-type")) {
            Action::Respond(a) => {
                assert_eq!(a.status, 204);
                let get = |k: &str| {
                    a.headers
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                };
                assert_eq!(
                    get("access-control-allow-origin"),
                    Some("https://app.example.com")
                );
                assert_eq!(get("access-control-allow-methods"), Some("GET, PUT"));
                assert_eq!(
                    get("access-control-allow-headers"),
                    Some("content-type, authorization")
                );
                assert_eq!(get("access-control-max-age"), Some("99"));
                assert_eq!(get("access-control-allow-credentials"), Some("true"));
            }
            other => panic!("{other:?}"),
        }
        for (origin, method, headers) in [
            ("https://evil.example.com", "GET", ""),
            ("https://app.example.com", "DELETE", ""),
            ("https://app.example.com", "GET", "x-secret"),
            ("https://example.org", "GET", ""),
        ] {
            assert!(
                matches!(h.request_headers(&preflight(origin, method, headers)), Action::Respond(a) if a.status == 403),
                "{origin} {method} {headers}"
            );
        }
        assert!(h.plugin().origin_allowed("https://a.b.example.org"));
    }

    #[test]
    fn decorates_responses_for_allowed_origins() {
        let h = host();
        let req = TestRequest::get("/").header("origin", "https://x.example.org");
        assert_eq!(h.request_headers(&req), Action::Continue);
        let resp = TestResponse::new(200);
        h.response_headers(&req, &resp);
        let v = resp.view();
        assert_eq!(
            v.header("access-control-allow-origin").as_deref(),
            Some("https://x.example.org")
        );
        assert_eq!(
            v.header("access-control-expose-headers").as_deref(),
            Some("x-request-id")
        );
        let other = TestRequest::get("/").header("origin", "https://evil.com");
        let resp = TestResponse::new(200);
        h.response_headers(&other, &resp);
        assert_eq!(resp.view().header("access-control-allow-origin"), None);
        assert!(TestHost::<Cors>::new(r#"{"origins": ["*"], "credentials": true}"#).is_err());
    }
}
