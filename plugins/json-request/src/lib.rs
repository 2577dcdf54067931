//! Request-body phase: adds fields to a JSON object body before it goes upstream, and — since
//! the headers are not sent yet — reports in a request header how many fields the client sent.
//! A body that is not a JSON object gets 400.

use serde_json::{Map, Value};
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRequest {
    /// Fields set on the body object.
    set: Map<String, Value>,
    /// Request header that gets the number of fields the client sent.
    #[serde(default = "count_header")]
    count_header: String,
}

fn count_header() -> String {
    "x-json-fields".into()
}

#[plugin]
impl Plugin for JsonRequest {
    fn on_request_body(&self, req: &Request) -> Action {
        let body = req.body().unwrap_or_default();
        let mut obj = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) => o,
            _ => return Answer::problem(400, "the body must be a JSON object").into(),
        };
        let sent = obj.len();
        for (k, v) in &self.set {
            obj.insert(k.clone(), v.clone());
        }
        req.set_body(Value::Object(obj).to_string().as_bytes());
        req.set_header(&self.count_header, &sent.to_string()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};

    #[test]
    fn adds_fields_and_counts() {
        let h = TestHost::<JsonRequest>::new(r#"{"set": {"via": "gateway"}}"#).unwrap();
        let req = TestRequest::new("POST", "/").body(br#"{"a": 1, "b": 2}"#);
        assert_eq!(h.request_body(&req), Action::Continue);
        let body: Value = serde_json::from_slice(&req.view().body().unwrap()).unwrap();
        assert_eq!(body["via"], "gateway");
        assert_eq!(body["a"], 1);
        assert_eq!(req.view().header("x-json-fields").as_deref(), Some("2"));
        let bad = TestRequest::new("POST", "/").body(b"[1]");
        assert!(matches!(h.request_body(&bad), Action::Respond(a) if a.status == 400));
    }
}
