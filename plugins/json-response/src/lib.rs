//! Response-body phase: adds fields to a JSON object response (others pass unchanged) and marks
//! the response with a header.

use serde_json::{Map, Value};
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonResponse {
    set: Map<String, Value>,
}

#[plugin]
impl Plugin for JsonResponse {
    fn on_response_body(&self, _req: &Request, resp: &Response) -> Action {
        let body = resp.body().unwrap_or_default();
        let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&body) else {
            return Action::Continue;
        };
        for (k, v) in &self.set {
            obj.insert(k.clone(), v.clone());
        }
        resp.set_body(Value::Object(obj).to_string().as_bytes());
        resp.set_header("x-json-rewritten", "1").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse};

    #[test]
    fn rewrites_objects_only() {
        let h = TestHost::<JsonResponse>::new(r#"{"set": {"gateway": "wasmgate"}}"#).unwrap();
        let req = TestRequest::get("/");
        let resp = TestResponse::new(200).body(br#"{"x": 1}"#);
        h.response_body(&req, &resp);
        let v: Value = serde_json::from_slice(&resp.view().body().unwrap()).unwrap();
        assert_eq!(v["gateway"], "wasmgate");
        let text = TestResponse::new(200).body(b"plain");
        h.response_body(&req, &text);
        assert_eq!(text.view().body().unwrap(), b"plain");
    }
}
