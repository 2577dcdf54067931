//! Calls a URL through the `http-client` capability (only upstreams the plugin's `http` setting
//! lists are reachable) and passes what came back to the upstream as request headers, or answers
//! 502 itself when the call fails.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    /// `http://UPSTREAM/path`.
    url: String,
}

#[plugin]
impl Plugin for Fetch {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if !c.url.starts_with("http://") {
            return Err(format!("`{}` must be http://UPSTREAM/path", c.url));
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        match http::get(&self.url) {
            Ok(resp) => {
                let body = String::from_utf8_lossy(&resp.body).into_owned();
                let status = req.set_header("x-fetch-status", &resp.status.to_string());
                status
                    .and_then(|()| req.set_header("x-fetch-body", body.trim()))
                    .into()
            }
            Err(e) => Answer::problem(502, &format!("fetch failed: {e}")).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::http::Incoming;
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest};

    #[test]
    fn passes_the_answer_on_or_fails_with_502() {
        testing::reset();
        testing::mock_http("http://keys/", |_| {
            Ok(Incoming {
                status: 200,
                headers: vec![],
                body: b"k1".to_vec(),
            })
        });
        let h = TestHost::<Fetch>::new(r#"{"url": "http://keys/jwks"}"#).unwrap();
        let req = TestRequest::get("/");
        assert_eq!(h.request_headers(&req), Action::Continue);
        assert_eq!(req.view().header("x-fetch-body").as_deref(), Some("k1"));
        let h = TestHost::<Fetch>::new(r#"{"url": "http://other/"}"#).unwrap();
        assert!(
            matches!(h.request_headers(&TestRequest::get("/")), Action::Respond(a) if a.status == 502)
        );
    }
}
