//! Replaces error responses with pages of its own: when the response's status is one of `when`,
//! the whole response (status, headers, body) is replaced, and the upstream's body (a stack
//! trace, an internal message) never reaches the client. `{status}` in the body is the status
//! the upstream sent.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorPages {
    /// Statuses to replace, e.g. `[500, 502, 503]`.
    when: Vec<u16>,
    /// The status to send instead; the original by default.
    #[serde(default)]
    status: Option<u16>,
    #[serde(default = "html")]
    content_type: String,
    body: String,
}

fn html() -> String {
    "text/html; charset=utf-8".into()
}

#[plugin]
impl Plugin for ErrorPages {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if let Some(s) = c
            .when
            .iter()
            .chain(&c.status)
            .find(|s| !(200..=599).contains(*s))
        {
            return Err(format!("{s} is not an HTTP status (200..=599)"));
        }
        if c.when.is_empty() {
            return Err("`when` lists no status to replace".into());
        }
        Ok(c)
    }

    fn on_response_headers(&self, _req: &Request, resp: &Response) -> Action {
        let status = resp.status();
        if !self.when.contains(&status) {
            return Action::Continue;
        }
        Answer::new(self.status.unwrap_or(status))
            .header("content-type", &self.content_type)
            .body(self.body.replace("{status}", &status.to_string()))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse};

    #[test]
    fn replaces_listed_statuses_only() {
        let h = TestHost::<ErrorPages>::new(
            r#"{"when": [500, 502], "status": 503, "body": "<p>sorry ({status})</p>"}"#,
        )
        .unwrap();
        let req = TestRequest::get("/");
        let Action::Respond(a) = h.response_headers(&req, &TestResponse::new(502)) else {
            panic!("a 502 is replaced");
        };
        assert_eq!(a.status, 503);
        assert_eq!(a.body, b"<p>sorry (502)</p>");
        assert_eq!(
            h.response_headers(&req, &TestResponse::new(404)),
            Action::Continue
        );
        assert!(TestHost::<ErrorPages>::new(r#"{"when": [99], "body": ""}"#).is_err());
        assert!(TestHost::<ErrorPages>::new(r#"{"when": [], "body": ""}"#).is_err());
    }
}
