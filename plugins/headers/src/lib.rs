//! Request and response edits: set / append / remove / rename headers, rewrite the path with the
//! route pattern's `{param}` captures, add and remove query parameters, add the usual security
//! headers to responses, and strip internal headers (exact names or `prefix-*`) from responses.

use std::collections::BTreeMap;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Edits {
    set: BTreeMap<String, String>,
    append: BTreeMap<String, String>,
    remove: Vec<String>,
    /// Old name → new name (all values move).
    rename: BTreeMap<String, String>,
}

impl Edits {
    fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.append.is_empty()
            && self.remove.is_empty()
            && self.rename.is_empty()
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.set
            .keys()
            .chain(self.append.keys())
            .chain(&self.remove)
            .chain(self.rename.keys())
            .chain(self.rename.values())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Query {
    add: BTreeMap<String, String>,
    remove: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Headers {
    request: Edits,
    response: Edits,
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
trait HeaderOps {
    fn get_all(&self, name: &str) -> Vec<String>;
    fn set(&self, name: &str, value: &str) -> Result<(), String>;
    fn append(&self, name: &str, value: &str) -> Result<(), String>;
    fn remove(&self, name: &str);
}

macro_rules! header_ops {
    ($t:ty) => {
        impl HeaderOps for $t {
            fn get_all(&self, name: &str) -> Vec<String> {
                self.header_all(name)
            }
            fn set(&self, name: &str, value: &str) -> Result<(), String> {
                self.set_header(name, value)
            }
            fn append(&self, name: &str, value: &str) -> Result<(), String> {
                self.append_header(name, value)
            }
            fn remove(&self, name: &str) {
                self.remove_header(name)
            }
        }
    };
}
header_ops!(Request<'_>);
header_ops!(Response<'_>);

fn apply(e: &Edits, h: &impl HeaderOps) -> Result<(), String> {
    for (from, to) in &e.rename {
        let values = h.get_all(from);
        h.remove(from);
        for v in values {
            h.append(to, &v)?;
        }
    }
    e.remove.iter().for_each(|n| h.remove(n));
    e.set.iter().try_for_each(|(k, v)| h.set(k, v))?;
    e.append.iter().try_for_each(|(k, v)| h.append(k, v))
}

/// `template` with every `{name}` replaced by `capture(name)`.
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
        for n in c.request.names().chain(c.response.names()) {
            if n.is_empty()
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("`{n}` is not a header name"));
            }
        }
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
        let mut r = apply(&self.request, req);
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
        apply(&self.response, resp).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
