//! Request and response edits: set / append / remove / rename headers, copy request-context
//! values (e.g. the consumer an auth plugin found) into request headers, rewrite the path with the
//! route pattern's `{param}` captures, add and remove query parameters, add the usual security
//! headers to responses, and strip internal headers (exact names or `prefix-*`) from responses.

use std::collections::BTreeMap;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Query {
    add: BTreeMap<String, String>,
    remove: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Headers {
    request: HeaderEdits,
    response: HeaderEdits,
    /// Request header → request-context key whose value it gets (removed when the key is
    /// unset, so a client cannot claim one): e.g. the consumer an auth plugin found.
    from_context: BTreeMap<String, String>,
    /// New path; `{name}` takes the route pattern's capture of that name.
    path: Option<String>,
    query: Query,
    /// Adds HSTS, nosniff, frame and referrer policies (values already set upstream win).
    security_headers: bool,
    /// Response headers removed before the client sees them: names or `prefix-*`.
    strip_response: Vec<String>,
}

const SECURITY: [(&str, &str); 4] = [
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// The shared shape of request and response header access.
pub fn fill(template: &str, capture: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("`{template}` has an unclosed `{{`"))?;
        let name = &rest[open + 1..open + close];
        out.push_str(&capture(name).ok_or_else(|| format!("the route has no `{{{name}}}`"))?);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Headers {
    fn edit_query(&self, req: &Request) -> Result<(), String> {
        if self.query.add.is_empty() && self.query.remove.is_empty() {
            return Ok(());
        }
        let current = req.query().unwrap_or_default();
        let mut pairs: Vec<String> = current
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let key = p.split('=').next().unwrap_or("");
                !self.query.remove.iter().any(|r| r == key) && !self.query.add.contains_key(key)
            })
            .map(str::to_string)
            .collect();
        pairs.extend(
            self.query
                .add
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v))),
        );
        let q = pairs.join("&");
        req.set_query((!q.is_empty()).then_some(q.as_str()))
    }
}

#[plugin]
impl Plugin for Headers {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        c.request.check()?;
        c.response.check()?;
        let from_context = HeaderEdits {
            remove: c.from_context.keys().cloned().collect(),
            ..HeaderEdits::default()
        };
        from_context.check()?;
        if let Some(p) = &c.path {
            if !p.starts_with('/') {
                return Err(format!("path `{p}` must start with `/`"));
            }
            fill(p, |_| Some(String::new()))?;
        }
        Ok(c)
    }

    fn phases(&self, written: Phases) -> Phases {
        let mut p = written;
        if self.request.is_empty()
            && self.from_context.is_empty()
            && self.path.is_none()
            && self.query.add.is_empty()
            && self.query.remove.is_empty()
        {
            p.remove(Phases::REQUEST_HEADERS);
        }
        if self.response.is_empty() && !self.security_headers && self.strip_response.is_empty() {
            p.remove(Phases::RESPONSE_HEADERS);
        }
        p
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        for (header, key) in &self.from_context {
            match req.context_get(key) {
                Some(v) => {
                    if let Err(e) = req.set_header(header, &v) {
                        return Answer::problem(500, &e).into();
                    }
                }
                None => req.remove_header(header),
            }
        }
        let mut r = self.request.apply(req);
        if let Some(template) = &self.path {
            r = r
                .and_then(|()| fill(template, |name| req.path_param(name).map(|v| encode(&v))))
                .and_then(|path| req.set_path(&path));
        }
        r.and_then(|()| self.edit_query(req)).into()
    }

    fn on_response_headers(&self, _req: &Request, resp: &Response) -> Action {
        let names = if self.strip_response.is_empty() {
            Vec::new()
        } else {
            resp.header_names()
        };
        for name in names {
            let internal = self
                .strip_response
                .iter()
                .any(|s| match s.strip_suffix('*') {
                    Some(prefix) => name.starts_with(&prefix.to_ascii_lowercase()),
                    None => name.eq_ignore_ascii_case(s),
                });
            if internal {
                resp.remove_header(&name);
            }
        }
        if self.security_headers {
            for (k, v) in SECURITY {
                if resp.header(k).is_none()
                    && let Err(e) = resp.set_header(k, v)
                {
                    return Answer::problem(500, &e).into();
                }
            }
        }
        self.response.apply(resp).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::Phases;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse};

    #[test]
    fn edits_requests() {
        let h = TestHost::<Headers>::new(
            r#"{"request": {"rename": {"x-old": "x-new"}, "set": {"x-a": "1"}, "remove": ["x-drop"]},
                "path": "/v2/users/{id}/profile", "query": {"add": {"v": "2"}, "remove": ["debug"]}}"#,
        )
        .unwrap();
        let req = TestRequest::get("/users/42?debug=1&page=3")
            .route("users", &[("id", "42")])
            .header("x-old", "a")
            .header("x-old", "b")
            .header("x-drop", "1");
        assert_eq!(h.request_headers(&req), Action::Continue);
        let v = req.view();
        assert_eq!(v.path(), "/v2/users/42/profile");
        assert_eq!(v.query().as_deref(), Some("page=3&v=2"));
        assert_eq!(v.header_all("x-new"), vec!["a", "b"]);
        assert_eq!(v.header("x-old"), None);
        assert_eq!(v.header("x-drop"), None);
        assert_eq!(v.header("x-a").as_deref(), Some("1"));
    }

    #[test]
    fn secures_and_strips_responses() {
        let h = TestHost::<Headers>::new(
            r#"{"security_headers": true, "strip_response": ["server", "x-internal-*"], "response": {"set": {"x-gw": "1"}}}"#,
        )
        .unwrap();
        assert_eq!(h.phases(), Phases::RESPONSE_HEADERS);
        let resp = TestResponse::new(200)
            .header("server", "apache")
            .header("x-internal-trace", "t")
            .header("x-frame-options", "SAMEORIGIN");
        h.response_headers(&TestRequest::get("/"), &resp);
        let v = resp.view();
        assert_eq!(v.header("server"), None);
        assert_eq!(v.header("x-internal-trace"), None);
        assert_eq!(
            v.header("x-frame-options").as_deref(),
            Some("SAMEORIGIN"),
            "upstream wins"
        );
        assert_eq!(
            v.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(v.header("x-gw").as_deref(), Some("1"));
    }

    #[test]
    fn refuses_bad_configs() {
        assert!(TestHost::<Headers>::new(r#"{"path": "v2/{id"}"#).is_err());
        assert!(TestHost::<Headers>::new(r#"{"request": {"set": {"bad name": "1"}}}"#).is_err());
    }

    #[test]
    fn edits_request_and_response_and_copies_context() {
        let host = TestHost::<Headers>::new(
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

        // Without the context key, a client's own header is not passed on as if vouched for.
        let forged = TestRequest::get("/").header("x-consumer", "admin");
        assert_eq!(host.request_headers(&forged), Action::Continue);
        assert_eq!(forged.view().header("x-consumer"), None);
    }

    #[test]
    fn asks_only_for_the_phases_its_config_uses() {
        let host = TestHost::<Headers>::new(r#"{"request": {"set": {"x-a": "1"}}}"#).unwrap();
        assert_eq!(host.phases(), Phases::REQUEST_HEADERS);
        let host = TestHost::<Headers>::new(r#"{"response": {"remove": ["server"]}}"#).unwrap();
        assert_eq!(host.phases(), Phases::RESPONSE_HEADERS);
    }

    #[test]
    fn refuses_bad_names_and_unknown_keys() {
        assert!(TestHost::<Headers>::new(r#"{"request": {"set": {"bad name": "1"}}}"#).is_err());
        assert!(TestHost::<Headers>::new(r#"{"requests": {}}"#).is_err());
    }
}
