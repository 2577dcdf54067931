//! API keys: read from a header (default `x-api-key`) or a query parameter, compared by SHA-256
//! hash with the configured keys (the config never holds a key itself), each mapped to a consumer
//! and a tier that later plugins (acl, rate-limit) read from the context. The key is removed
//! before the request goes upstream. 401 when it is missing or unknown.

use sha2::{Digest, Sha256};
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// Hex SHA-256 of the key: `printf %s "$KEY" | sha256sum`.
    sha256: String,
    consumer: String,
    #[serde(default = "free")]
    tier: String,
    /// Comma-separated groups, for the acl plugin.
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuth {
    #[serde(default = "x_api_key")]
    header: String,
    /// Also accept the key in this query parameter.
    query: Option<String>,
    keys: Vec<Key>,
    /// Request header that tells the upstream who called (none by default).
    consumer_header: Option<String>,
}

fn x_api_key() -> String {
    "x-api-key".into()
}
fn free() -> String {
    "free".into()
}

pub fn sha256_hex(s: &str) -> String {
    wasmgate_plugin_sdk::hex::encode(&Sha256::digest(s.as_bytes()))
}

fn unauthorized(detail: &str) -> Action {
    Answer::unauthorized("ApiKey", &[("realm", "wasmgate")], detail).into()
}

impl KeyAuth {
    fn presented(&self, req: &Request) -> Option<String> {
        if let Some(k) = req.header(&self.header).filter(|k| !k.is_empty()) {
            return Some(k);
        }
        self.query.as_ref().and_then(|q| req.query_param(q))
    }

    /// Removes the key from the header and the query before forwarding.
    fn strip(&self, req: &Request) -> Result<(), String> {
        req.remove_header(&self.header);
        let (Some(name), Some(query)) = (&self.query, req.query()) else {
            return Ok(());
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| pair.split('=').next() != Some(name.as_str()))
            .collect();
        let q = kept.join("&");
        req.set_query((!q.is_empty()).then_some(q.as_str()))
    }
}

#[plugin]
impl Plugin for KeyAuth {
    type Config = Self;

    fn new(mut c: Self) -> Result<Self, String> {
        if c.keys.is_empty() {
            return Err("`keys` is empty: no request could pass".into());
        }
        for k in &mut c.keys {
            k.sha256 = k.sha256.to_ascii_lowercase();
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "key of `{}`: `sha256` must be 64 hex digits (the SHA-256 of the key, not the key)",
                    k.consumer
                ));
            }
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let Some(key) = self.presented(req) else {
            return unauthorized("an API key is required");
        };
        let hash = sha256_hex(&key);
        let Some(k) = self.keys.iter().find(|k| k.sha256 == hash) else {
            return unauthorized("the API key is not valid");
        };
        Identity {
            tier: Some(k.tier.clone()),
            groups: k.groups.clone(),
            ..Identity::consumer(&k.consumer)
        }
        .set_on(req);
        let mut r = self.strip(req);
        if let Some(h) = &self.consumer_header {
            r = r.and_then(|()| req.set_header(h, &k.consumer));
        }
        r.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};

    fn host() -> TestHost<KeyAuth> {
        let cfg = format!(
            r#"{{"query": "api_key", "consumer_header": "x-consumer",
                "keys": [{{"sha256": "{}", "consumer": "alice", "tier": "premium", "groups": ["staff"]}}]}}"#,
            sha256_hex("secret-1")
        );
        TestHost::new(&cfg).unwrap()
    }

    #[test]
    fn accepts_a_known_key_from_header_or_query_and_strips_it() {
        let h = host();
        let req = TestRequest::get("/").header("x-api-key", "secret-1");
        assert_eq!(h.request_headers(&req), Action::Continue);
        let v = req.view();
        assert_eq!(v.header("x-api-key"), None);
        assert_eq!(v.header("x-consumer").as_deref(), Some("alice"));
        assert_eq!(v.context_get("tier").as_deref(), Some("premium"));
        assert_eq!(v.context_get("groups").as_deref(), Some("staff"));

        let req = TestRequest::get("/x?a=1&api_key=secret-1&b=2");
        assert_eq!(h.request_headers(&req), Action::Continue);
        assert_eq!(req.view().query().as_deref(), Some("a=1&b=2"));
    }

    #[test]
    fn refuses_missing_and_unknown_keys() {
        let h = host();
        for req in [
            TestRequest::get("/"),
            TestRequest::get("/").header("x-api-key", "nope"),
        ] {
            match h.request_headers(&req) {
                Action::Respond(a) => {
                    assert_eq!(a.status, 401);
                    assert!(a.headers.iter().any(|(k, _)| k == "www-authenticate"));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            TestHost::<KeyAuth>::new(r#"{"keys": [{"sha256": "secret-1", "consumer": "a"}]}"#)
                .is_err()
        );
    }
}
