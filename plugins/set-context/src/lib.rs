//! Puts a value into the request context for later plugins and phases: a literal, or the value
//! of a request header (e.g. a stand-in for what an auth plugin would find).

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetContext {
    key: String,
    /// A fixed value...
    value: Option<String>,
    /// ...or the value of this request header (skipped when absent).
    from_header: Option<String>,
}

#[plugin]
impl Plugin for SetContext {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        match (&c.value, &c.from_header) {
            (Some(_), None) | (None, Some(_)) => Ok(c),
            _ => Err("set exactly one of `value` and `from_header`".into()),
        }
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let value = match (&self.value, &self.from_header) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(h)) => req.header(h),
            (None, None) => None,
        };
        if let Some(v) = value {
            req.context_set(&self.key, &v);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};

    #[test]
    fn sets_from_header_or_literal() {
        let h =
            TestHost::<SetContext>::new(r#"{"key": "consumer", "from_header": "x-user"}"#).unwrap();
        let req = TestRequest::get("/").header("x-user", "bob");
        h.request_headers(&req);
        assert_eq!(req.view().context_get("consumer").as_deref(), Some("bob"));
        assert!(TestHost::<SetContext>::new(r#"{"key": "k"}"#).is_err());
    }
}
