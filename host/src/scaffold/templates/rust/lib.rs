//! {name}: answers 403 when `deny_header` is present; otherwise marks the request and the
//! response with `x-{name}`.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct {type} {
    #[serde(default = "x_deny")]
    deny_header: String,
}

fn x_deny() -> String {
    "x-deny".into()
}

#[plugin]
impl Plugin for {type} {
    fn on_request_headers(&self, req: &Request) -> Action {
        if req.header(&self.deny_header).is_some() {
            return Answer::problem(403, "denied").into();
        }
        req.set_header("x-{name}", "seen").into()
    }

    fn on_response_headers(&self, _req: &Request, resp: &Response) -> Action {
        resp.set_header("x-{name}", "seen").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse, status};

    #[test]
    fn denies_or_marks_both_ways() {
        let h = TestHost::<{type}>::new("{}").expect("config");
        let denied = TestRequest::get("/").header("x-deny", "1");
        assert_eq!(status(&h.request_headers(&denied)), 403);
        let req = TestRequest::get("/");
        assert_eq!(status(&h.request_headers(&req)), 200);
        assert_eq!(req.view().header("x-{name}").as_deref(), Some("seen"));
        let resp = TestResponse::new(200);
        h.response_headers(&req, &resp);
        assert_eq!(resp.view().header("x-{name}").as_deref(), Some("seen"));
        assert!(TestHost::<{type}>::new(r#"{"colour": "red"}"#).is_err());
    }
}
