//! Sets, appends and removes headers on the request (before it goes upstream) and on the
//! response, and copies request-context values (e.g. the consumer an auth plugin found) into
//! request headers.

use std::collections::BTreeMap;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Edits {
    /// Header → value, replacing what was there.
    set: BTreeMap<String, String>,
    /// Header → value, added to what was there.
    append: BTreeMap<String, String>,
    remove: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AddHeader {
    request: Edits,
    response: Edits,
    /// Request header → context key whose value it gets (skipped when the key is unset).
    from_context: BTreeMap<String, String>,
}

fn apply(
    e: &Edits,
    set: impl Fn(&str, &str) -> Result<(), String>,
    append: impl Fn(&str, &str) -> Result<(), String>,
    remove: impl Fn(&str),
) -> Result<(), String> {
    e.remove.iter().for_each(|h| remove(h));
    e.set.iter().try_for_each(|(k, v)| set(k, v))?;
    e.append.iter().try_for_each(|(k, v)| append(k, v))
}

#[plugin]
impl Plugin for AddHeader {
    type Config = Self;

    fn new(config: Self) -> Result<Self, String> {
        let names = [&config.request, &config.response]
            .into_iter()
            .flat_map(|e| e.set.keys().chain(e.append.keys()).chain(&e.remove))
            .chain(config.from_context.keys());
        for name in names {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("`{name}` is not a header name"));
            }
        }
        Ok(config)
    }

    fn phases(&self, written: Phases) -> Phases {
        let empty = |e: &Edits| e.set.is_empty() && e.append.is_empty() && e.remove.is_empty();
        let mut p = written;
        if empty(&self.request) && self.from_context.is_empty() {
            p.remove(Phases::REQUEST_HEADERS);
        }
        if empty(&self.response) {
            p.remove(Phases::RESPONSE_HEADERS);
        }
        p
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        for (header, key) in &self.from_context {
            if let Some(v) = req.context_get(key)
                && let Err(e) = req.set_header(header, &v)
            {
                return Answer::problem(500, &e).into();
            }
        }
        apply(
            &self.request,
            |k, v| req.set_header(k, v),
            |k, v| req.append_header(k, v),
            |k| req.remove_header(k),
        )
        .into()
    }

    fn on_response_headers(&self, _req: &Request, resp: &Response) -> Action {
        apply(
            &self.response,
            |k, v| resp.set_header(k, v),
            |k, v| resp.append_header(k, v),
            |k| resp.remove_header(k),
        )
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::Phases;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse};

    #[test]
    fn edits_request_and_response_and_copies_context() {
        let host = TestHost::<AddHeader>::new(
            r#"{"request": {"set": {"x-a": "1"}, "append": {"x-chain": "b"}, "remove": ["x-secret"]},
                "response": {"set": {"x-served-by": "gw"}},
                "from_context": {"x-consumer": "consumer"}}"#,
        )
        .unwrap();
        assert_eq!(
            host.phases(),
            Phases::REQUEST_HEADERS | Phases::RESPONSE_HEADERS
        );
        let req = TestRequest::get("/")
            .header("x-chain", "a")
            .header("x-secret", "s")
            .context("consumer", "alice");
        assert_eq!(host.request_headers(&req), Action::Continue);
        let r = req.view();
        assert_eq!(r.header("x-a").as_deref(), Some("1"));
        assert_eq!(r.header_all("x-chain"), vec!["a", "b"]);
        assert_eq!(r.header("x-secret"), None);
        assert_eq!(r.header("x-consumer").as_deref(), Some("alice"));
        let resp = TestResponse::new(200);
        assert_eq!(host.response_headers(&req, &resp), Action::Continue);
        assert_eq!(resp.view().header("x-served-by").as_deref(), Some("gw"));
    }

    #[test]
    fn asks_only_for_the_phases_its_config_uses() {
        let host = TestHost::<AddHeader>::new(r#"{"request": {"set": {"x-a": "1"}}}"#).unwrap();
        assert_eq!(host.phases(), Phases::REQUEST_HEADERS);
        let host = TestHost::<AddHeader>::new(r#"{"response": {"remove": ["server"]}}"#).unwrap();
        assert_eq!(host.phases(), Phases::RESPONSE_HEADERS);
    }

    #[test]
    fn refuses_bad_names_and_unknown_keys() {
        assert!(TestHost::<AddHeader>::new(r#"{"request": {"set": {"bad name": "1"}}}"#).is_err());
        assert!(TestHost::<AddHeader>::new(r#"{"requests": {}}"#).is_err());
    }
}
