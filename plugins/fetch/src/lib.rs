//! Calls one or more URLs through the `http-client` capability, all at once (only upstreams the
//! plugin's `http` setting lists are reachable), and passes what came back to the upstream as
//! request headers: `x-fetch-status` / `x-fetch-body` for the first URL, `x-fetch-N-status` /
//! `x-fetch-N-body` for the N-th (from 1) when there are several. A failed call answers the
//! client itself: 504 when it timed out, 502 otherwise.

use wasmgate_plugin_sdk::http::{Error, Outgoing};
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    /// `http://UPSTREAM/path`.
    #[serde(default)]
    url: Option<String>,
    /// Several URLs, fetched in parallel.
    #[serde(default)]
    urls: Vec<String>,
    /// Per call.
    #[serde(default)]
    timeout_ms: Option<u32>,
}

#[plugin]
impl Plugin for Fetch {
    type Config = Self;

    fn new(mut c: Self) -> Result<Self, String> {
        if let Some(u) = c.url.take() {
            c.urls.insert(0, u);
        }
        if c.urls.is_empty() {
            return Err("set `url` (or `urls`) to http://UPSTREAM/path".into());
        }
        if let Some(bad) = c.urls.iter().find(|u| !u.starts_with("http://")) {
            return Err(format!("`{bad}` must be http://UPSTREAM/path"));
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let calls: Vec<Outgoing> = self
            .urls
            .iter()
            .map(|u| Outgoing {
                timeout_ms: self.timeout_ms,
                ..Outgoing::get(u)
            })
            .collect();
        let several = calls.len() > 1;
        for (i, result) in http::send_all(&calls).into_iter().enumerate() {
            let resp = match result {
                Ok(r) => r,
                Err(Error::Timeout) => {
                    return Answer::problem(504, &format!("fetch timed out: {}", self.urls[i]))
                        .into();
                }
                Err(e) => return Answer::problem(502, &format!("fetch failed: {e}")).into(),
            };
            let prefix = if several {
                format!("x-fetch-{}", i + 1)
            } else {
                "x-fetch".into()
            };
            let body = String::from_utf8_lossy(&resp.body).into_owned();
            let set = req
                .set_header(&format!("{prefix}-status"), &resp.status.to_string())
                .and_then(|()| req.set_header(&format!("{prefix}-body"), body.trim()));
            if let Err(e) = set {
                return Answer::problem(502, &e).into();
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::http::Incoming;
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest};

    fn answer(body: &str) -> Result<Incoming, Error> {
        Ok(Incoming {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn passes_the_answer_on_or_fails_with_502() {
        testing::reset();
        testing::mock_http("http://keys/", |_| answer("k1"));
        let h = TestHost::<Fetch>::new(r#"{"url": "http://keys/jwks"}"#).unwrap();
        let req = TestRequest::get("/");
        assert_eq!(h.request_headers(&req), Action::Continue);
        assert_eq!(req.view().header("x-fetch-body").as_deref(), Some("k1"));
        let h = TestHost::<Fetch>::new(r#"{"url": "http://other/"}"#).unwrap();
        assert_eq!(
            testing::status(&h.request_headers(&TestRequest::get("/"))),
            502
        );
    }

    #[test]
    fn several_urls_come_back_numbered_and_a_timeout_is_a_504() {
        testing::reset();
        testing::mock_http("http://a/", |_| answer("from a"));
        testing::mock_http("http://b/", |_| answer("from b"));
        testing::mock_http("http://slow/", |_| Err(Error::Timeout));
        let h = TestHost::<Fetch>::new(r#"{"urls": ["http://a/", "http://b/"]}"#).unwrap();
        let req = TestRequest::get("/");
        assert_eq!(h.request_headers(&req), Action::Continue);
        assert_eq!(
            req.view().header("x-fetch-2-body").as_deref(),
            Some("from b")
        );
        let h = TestHost::<Fetch>::new(r#"{"urls": ["http://a/", "http://slow/"]}"#).unwrap();
        assert_eq!(
            testing::status(&h.request_headers(&TestRequest::get("/"))),
            504
        );
        assert!(TestHost::<Fetch>::new(r#"{}"#).is_err());
    }
}
