//! Content-based routing: sends the request to the upstream named for the value of a request
//! header (or of a path parameter), and optionally to one target of it.

use std::collections::BTreeMap;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    upstream: String,
    target: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickUpstream {
    /// Request header to read...
    header: Option<String>,
    /// ...or route path parameter.
    path_param: Option<String>,
    /// Value → where to send; values not listed keep the route's upstream.
    routes: BTreeMap<String, Choice>,
}

#[plugin]
impl Plugin for PickUpstream {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if c.header.is_some() == c.path_param.is_some() {
            return Err("set exactly one of `header` and `path_param`".into());
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let key = match (&self.header, &self.path_param) {
            (Some(h), _) => req.header(h),
            (None, Some(p)) => req.path_param(p),
            (None, None) => None,
        };
        match key.and_then(|k| self.routes.get(&k)) {
            Some(c) => req.set_upstream(&c.upstream, c.target.as_deref()).into(),
            None => Action::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};

    #[test]
    fn picks_by_header() {
        let h = TestHost::<PickUpstream>::new(
            r#"{"header": "x-tenant", "routes": {"blue": {"upstream": "blue"}}}"#,
        )
        .unwrap();
        let req = TestRequest::get("/").header("x-tenant", "blue");
        h.request_headers(&req);
        assert_eq!(req.picked_upstream(), Some(("blue".into(), None)));
        let other = TestRequest::get("/").header("x-tenant", "green");
        h.request_headers(&other);
        assert_eq!(other.picked_upstream(), None);
    }
}
