//! Answers the request itself, so the rest of the chain and the upstream are skipped: always, or
//! only when a request header is present.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deny {
    #[serde(default = "forbidden")]
    status: u16,
    #[serde(default = "denied")]
    message: String,
    /// Answer only when this request header is present.
    when_header: Option<String>,
    /// Extra response headers, e.g. `Retry-After`.
    #[serde(default)]
    headers: Vec<(String, String)>,
}

fn forbidden() -> u16 {
    403
}

fn denied() -> String {
    "denied by policy".into()
}

#[plugin]
impl Plugin for Deny {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if !(200..=599).contains(&c.status) {
            return Err(format!("status {} is not an HTTP status", c.status));
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        if let Some(h) = &self.when_header
            && req.header(h).is_none()
        {
            return Action::Continue;
        }
        log::info(&format!(
            "answered {} to {} {}",
            self.status,
            req.method(),
            req.path()
        ));
        let mut a = Answer::problem(self.status, &self.message);
        for (k, v) in &self.headers {
            a = a.header(k, v);
        }
        a.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};

    #[test]
    fn answers_only_when_the_header_is_there() {
        let h = TestHost::<Deny>::new(
            r#"{"status": 429, "when_header": "x-deny", "headers": [["retry-after", "7"]]}"#,
        )
        .unwrap();
        assert_eq!(h.request_headers(&TestRequest::get("/")), Action::Continue);
        match h.request_headers(&TestRequest::get("/").header("x-deny", "1")) {
            Action::Respond(a) => {
                assert_eq!(a.status, 429);
                assert!(a.headers.contains(&("retry-after".into(), "7".into())));
            }
            other => panic!("expected an answer, got {other:?}"),
        }
        assert!(TestHost::<Deny>::new(r#"{"status": 99}"#).is_err());
    }
}
