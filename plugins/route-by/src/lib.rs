//! Content-based routing: rules in order, the first whose conditions all hold picks the upstream
//! (and optionally a target and a new path); a default, or the route's own upstream, otherwise.
//! A condition reads a request header, a query parameter, a path parameter, the caller's
//! identity (as auth plugins set it), or a field of a JSON body, and tests it for equality, a
//! prefix, a glob such as `image/*`, a regular expression, or mere presence. The body is read
//! only when a rule needs it, and only a JSON one (by its Content-Type): a malformed JSON body
//! gets 400, never a guess.

use regex_lite::Regex;
use serde_json::Value;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    rules: Vec<RuleConfig>,
    /// Where requests no rule matches go; the route's upstream when absent.
    default: Option<Destination>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    /// One condition or a list, all of which must hold.
    when: OneOrMany<ConditionConfig>,
    #[serde(flatten)]
    to: Destination,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Destination {
    upstream: String,
    /// One target (`host:port`) of the upstream, instead of its balancer's choice.
    target: Option<String>,
    /// A new path for the request.
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionConfig {
    header: Option<String>,
    query: Option<String>,
    param: Option<String>,
    /// `consumer`, `tier`, `groups`, `scopes`, `roles` or `tenant`: a list matches when one
    /// item does.
    identity: Option<String>,
    /// A field of a JSON body: `$.order.type`, `order.items[0].sku`.
    json: Option<String>,
    equals: Option<String>,
    prefix: Option<String>,
    glob: Option<String>,
    regex: Option<String>,
    /// `true`: the value is there; `false`: it is not.
    present: Option<bool>,
}

enum Source {
    Header(String),
    Query(String),
    Param(String),
    Identity(String),
    /// A JSON pointer (`/order/type`).
    Json(String),
}

enum Test {
    Equals(String),
    Prefix(String),
    Pattern(Regex),
    Present(bool),
}

struct Condition {
    source: Source,
    test: Test,
}

struct Rule {
    when: Vec<Condition>,
    to: Destination,
}

pub struct RouteBy {
    rules: Vec<Rule>,
    default: Option<Destination>,
    /// Some rule reads the body: rules run in the body phase, in order.
    reads_body: bool,
}

const IDENTITY_FIELDS: [&str; 6] = ["consumer", "tier", "groups", "scopes", "roles", "tenant"];

impl Condition {
    fn new(c: ConditionConfig, rule: usize) -> Result<Condition, String> {
        let at = |what: &str| format!("rules[{rule}]: {what}");
        let source = match (c.header, c.query, c.param, c.identity, c.json) {
            (Some(h), None, None, None, None) => Source::Header(h.to_ascii_lowercase()),
            (None, Some(q), None, None, None) => Source::Query(q),
            (None, None, Some(p), None, None) => Source::Param(p),
            (None, None, None, Some(i), None) => {
                if !IDENTITY_FIELDS.contains(&i.as_str()) {
                    return Err(at(&format!(
                        "identity `{i}` is not one of {}",
                        IDENTITY_FIELDS.join(", ")
                    )));
                }
                Source::Identity(i)
            }
            (None, None, None, None, Some(j)) => {
                Source::Json(json_pointer(&j).map_err(|e| at(&e))?)
            }
            _ => {
                return Err(at(
                    "a condition reads exactly one of `header`, `query`, `param`, `identity`, `json`",
                ));
            }
        };
        let test = match (c.equals, c.prefix, c.glob, c.regex, c.present) {
            (Some(v), None, None, None, None) => Test::Equals(v),
            (None, Some(v), None, None, None) => Test::Prefix(v),
            (None, None, Some(g), None, None) => Test::Pattern(glob(&g).map_err(|e| at(&e))?),
            (None, None, None, Some(r), None) => Test::Pattern(
                Regex::new(&r)
                    .map_err(|e| at(&format!("`{r}` is not a regular expression: {e}")))?,
            ),
            (None, None, None, None, Some(p)) => Test::Present(p),
            _ => {
                return Err(at(
                    "a condition tests exactly one of `equals`, `prefix`, `glob`, `regex`, `present`",
                ));
            }
        };
        Ok(Condition { source, test })
    }

    /// Whether `values` (none when the source is absent) pass the test; one passing is enough.
    fn holds(&self, values: &[String]) -> bool {
        match &self.test {
            Test::Present(p) => values.is_empty() != *p,
            Test::Equals(v) => values.iter().any(|x| x == v),
            Test::Prefix(v) => values.iter().any(|x| x.starts_with(v.as_str())),
            Test::Pattern(r) => values.iter().any(|x| r.is_match(x)),
        }
    }
}

/// `$.order.items[0].sku` (or without `$.`) as the JSON pointer `/order/items/0/sku`.
fn json_pointer(path: &str) -> Result<String, String> {
    let rest = path.strip_prefix('$').unwrap_or(path);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let mut pointer = String::new();
    for part in rest.split('.') {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        if name.is_empty() && indexes.is_empty() {
            return Err(format!(
                "`{path}` is not a JSON path such as `$.order.type`"
            ));
        }
        if !name.is_empty() {
            pointer.push('/');
            pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in indexes.split('[').filter(|_| !indexes.is_empty()) {
            let Some(i) = index
                .strip_suffix(']')
                .filter(|i| i.parse::<usize>().is_ok())
            else {
                return Err(format!("`{path}`: array indexes are written `[0]`"));
            };
            pointer.push('/');
            pointer.push_str(i);
        }
    }
    Ok(pointer)
}

/// A glob (`*` any run, `?` one character) as an anchored regular expression.
fn glob(g: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    for c in g.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex_lite::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("`{g}` is not a glob: {e}"))
}

/// A JSON body, parsed once for all the rules that read it.
enum Body {
    Unread,
    /// Not JSON by its Content-Type, or empty: `json` conditions see nothing.
    NotJson,
    Json(Value),
}

impl RouteBy {
    fn values(&self, source: &Source, req: &Request, body: &Body) -> Vec<String> {
        match source {
            Source::Header(h) => req.header_all(h),
            Source::Query(q) => req.query_param(q).into_iter().collect(),
            Source::Param(p) => req.path_param(p).into_iter().collect(),
            Source::Identity(field) => Identity::field_of(req, field).unwrap_or_default(),
            Source::Json(pointer) => match body {
                Body::Json(v) => match v.pointer(pointer) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(items)) => items.iter().map(scalar).collect(),
                    Some(other) => vec![scalar(other)],
                },
                _ => Vec::new(),
            },
        }
    }

    /// The destination of the first rule that holds, else the default.
    fn pick(&self, req: &Request, body: &Body) -> Option<&Destination> {
        self.rules
            .iter()
            .find(|r| {
                r.when
                    .iter()
                    .all(|c| c.holds(&self.values(&c.source, req, body)))
            })
            .map(|r| &r.to)
            .or(self.default.as_ref())
    }

    fn send(&self, req: &Request, body: &Body) -> Action {
        let Some(to) = self.pick(req, body) else {
            return Action::Continue;
        };
        if let Err(e) = req.set_upstream(&to.upstream, to.target.as_deref()) {
            return Answer::problem(500, &format!("route-by: {e}")).into();
        }
        if let Some(p) = &to.path
            && let Err(e) = req.set_path(p)
        {
            return Answer::problem(500, &format!("route-by: {e}")).into();
        }
        Action::Continue
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[plugin]
impl Plugin for RouteBy {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.rules.is_empty() && c.default.is_none() {
            return Err("give `rules` (or at least a `default`)".into());
        }
        let mut rules = Vec::with_capacity(c.rules.len());
        for (i, r) in c.rules.into_iter().enumerate() {
            let when = match r.when {
                OneOrMany::One(c) => vec![c],
                OneOrMany::Many(cs) => cs,
            };
            if when.is_empty() {
                return Err(format!("rules[{i}]: `when` has no condition"));
            }
            let when = when
                .into_iter()
                .map(|c| Condition::new(c, i))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule { when, to: r.to });
        }
        let reads_body = rules
            .iter()
            .any(|r| r.when.iter().any(|c| matches!(c.source, Source::Json(_))));
        Ok(RouteBy {
            rules,
            default: c.default,
            reads_body,
        })
    }

    /// Rules run in the body phase when one of them reads the body, else on the headers alone
    /// (and the route's bodies are never buffered for this plugin).
    fn phases(&self, written: Phases) -> Phases {
        if self.reads_body {
            written - Phases::REQUEST_HEADERS
        } else {
            written - Phases::REQUEST_BODY
        }
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        self.send(req, &Body::Unread)
    }

    fn on_request_body(&self, req: &Request) -> Action {
        let bytes = req.body().unwrap_or_default();
        let body = if bytes.is_empty()
            || !wasmgate_plugin_sdk::media::is_json(req.header("content-type").as_deref())
        {
            Body::NotJson
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => Body::Json(v),
                Err(e) => {
                    return Answer::problem(
                        400,
                        &format!("the request body is not valid JSON: {e}"),
                    )
                    .into();
                }
            }
        };
        self.send(req, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};

    const ORDERS: &str = r#"{
        "rules": [
            {"when": {"json": "$.order.type", "equals": "premium"}, "upstream": "premium"},
            {"when": {"header": "content-type", "glob": "image/*"}, "upstream": "images", "path": "/upload"},
            {"when": [{"query": "v", "equals": "2"}, {"identity": "tier", "present": true}], "upstream": "v2"}
        ],
        "default": {"upstream": "standard"}
    }"#;

    fn post(ct: &str, body: &str) -> TestRequest {
        TestRequest::new("POST", "/orders")
            .header("content-type", ct)
            .body(body.as_bytes())
    }

    #[test]
    fn json_field_picks_the_upstream_and_others_go_to_the_default() {
        let h = TestHost::<RouteBy>::new(ORDERS).unwrap();
        let premium = post("application/json", r#"{"order": {"type": "premium"}}"#);
        h.request_body(&premium);
        assert_eq!(premium.picked_upstream(), Some(("premium".into(), None)));
        let basic = post(
            "application/json; charset=utf-8",
            r#"{"order": {"type": "basic"}}"#,
        );
        h.request_body(&basic);
        assert_eq!(basic.picked_upstream(), Some(("standard".into(), None)));
    }

    #[test]
    fn glob_on_a_header_picks_and_rewrites() {
        let h = TestHost::<RouteBy>::new(ORDERS).unwrap();
        let image = post("image/png", "\u{89}PNG");
        h.request_body(&image);
        assert_eq!(image.picked_upstream(), Some(("images".into(), None)));
        assert_eq!(image.view().path(), "/upload");
    }

    #[test]
    fn malformed_json_is_refused_not_routed() {
        let h = TestHost::<RouteBy>::new(ORDERS).unwrap();
        let bad = post("application/json", r#"{"order": "#);
        let action = h.request_body(&bad);
        assert_eq!(wasmgate_plugin_sdk::testing::status(&action), 400);
        assert_eq!(bad.picked_upstream(), None);
    }

    #[test]
    fn all_conditions_of_a_rule_must_hold() {
        let h = TestHost::<RouteBy>::new(ORDERS).unwrap();
        let anonymous = TestRequest::get("/orders?v=2");
        h.request_body(&anonymous);
        assert_eq!(anonymous.picked_upstream(), Some(("standard".into(), None)));
        let known = TestRequest::get("/orders?v=2").context("tier", "gold");
        h.request_body(&known);
        assert_eq!(known.picked_upstream(), Some(("v2".into(), None)));
    }

    #[test]
    fn headers_only_rules_skip_the_body_phase() {
        let h = TestHost::<RouteBy>::new(
            r#"{"rules": [{"when": {"param": "region", "regex": "^eu-"}, "upstream": "eu"}]}"#,
        )
        .unwrap();
        assert!(!h.phases().contains(Phases::REQUEST_BODY));
        let eu = TestRequest::get("/x").route("r", &[("region", "eu-west")]);
        h.request_headers(&eu);
        assert_eq!(eu.picked_upstream(), Some(("eu".into(), None)));
        let us = TestRequest::get("/x").route("r", &[("region", "us-east")]);
        h.request_headers(&us);
        assert_eq!(
            us.picked_upstream(),
            None,
            "no default: the route's upstream"
        );
    }

    #[test]
    fn bad_configs_are_refused_with_the_rule_named() {
        for (config, says) in [
            (
                r#"{"rules": [{"when": {"header": "a", "query": "b", "equals": "c"}, "upstream": "u"}]}"#,
                "rules[0]: a condition reads exactly one",
            ),
            (
                r#"{"rules": [{"when": {"header": "a"}, "upstream": "u"}]}"#,
                "rules[0]: a condition tests exactly one",
            ),
            (
                r#"{"rules": [{"when": {"header": "a", "regex": "("}, "upstream": "u"}]}"#,
                "is not a regular expression",
            ),
            (
                r#"{"rules": [{"when": {"identity": "age", "present": true}, "upstream": "u"}]}"#,
                "identity `age`",
            ),
            (
                r#"{"rules": [{"when": {"json": "a[x]", "present": true}, "upstream": "u"}]}"#,
                "array indexes",
            ),
            (r#"{"rules": []}"#, "give `rules`"),
        ] {
            let err = TestHost::<RouteBy>::new(config).err().unwrap_or_default();
            assert!(err.contains(says), "{config}: {err}");
        }
    }

    #[test]
    fn json_paths_become_pointers() {
        assert_eq!(json_pointer("$.order.type").as_deref(), Ok("/order/type"));
        assert_eq!(json_pointer("items[0].sku").as_deref(), Ok("/items/0/sku"));
        assert_eq!(json_pointer("$.a[1][2]").as_deref(), Ok("/a/1/2"));
    }
}
