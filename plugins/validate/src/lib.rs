//! Request validation before the upstream sees a request (AWS API Gateway's request
//! validators): required headers and query parameters, each optionally matching a pattern, and
//! the JSON body against a JSON Schema (draft 2020-12 unless the schema's `$schema` names
//! another), compiled once at load. A request that breaks any rule gets 400
//! `application/problem+json` listing every violation (`location`, `name` or JSON `pointer`,
//! `message`), at most `max_violations`. Or an OpenAPI 3 document (`openapi.rs`): the
//! operation found by method and path, its parameters and body checked. Responses may be
//! checked too, logged and counted, never blocked.

mod openapi;

use std::collections::BTreeMap;

use regex_lite::Regex;
use serde_json::{Value, json};
use wasmgate_plugin_sdk::media::is_json;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Header name → rule.
    #[serde(default)]
    headers: BTreeMap<String, FieldConfig>,
    /// Query parameter → rule.
    #[serde(default)]
    query: BTreeMap<String, FieldConfig>,
    /// A JSON Schema the body must satisfy; the body must then be JSON.
    schema: Option<Value>,
    /// Violations listed in one answer; the rest are counted.
    #[serde(default = "default_max")]
    max_violations: usize,
    /// An OpenAPI 3.0 or 3.1 document, inline.
    openapi: Option<Value>,
    /// Or its file (JSON or YAML), in a folder the plugin's `dirs` grants.
    openapi_file: Option<String>,
    /// The prefix of request paths the document's paths leave out (default: the path of its
    /// first `servers` URL).
    base_path: Option<String>,
    /// A request no operation of the document matches: "reject" (404, or 405 with `Allow`) or
    /// "pass".
    #[serde(default)]
    unknown: Unknown,
    /// Check answers against the operation's `responses` (with `openapi`), or 2xx JSON answers
    /// against `response_schema`: log and count what breaks them, never block.
    #[serde(default)]
    validate_responses: bool,
    response_schema: Option<Value>,
}

#[derive(Deserialize, Default, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Unknown {
    #[default]
    Reject,
    Pass,
}

/// Context key holding the matched operation's index, for the later phases.
const OPERATION: &str = "validate.operation";

fn default_max() -> usize {
    20
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FieldConfig {
    /// Missing is a violation (default true).
    #[serde(default = "yes")]
    required: bool,
    /// A regular expression the whole value must match.
    pattern: Option<String>,
}

fn yes() -> bool {
    true
}

struct Field {
    name: String,
    required: bool,
    pattern: Option<(Regex, String)>,
}

pub struct Validate {
    headers: Vec<Field>,
    query: Vec<Field>,
    schema: Option<jsonschema::Validator>,
    max: usize,
    spec: Option<openapi::Spec>,
    unknown: Unknown,
    responses: bool,
    response_schema: Option<jsonschema::Validator>,
}

/// One broken rule, as the answer lists it.
#[derive(Debug, PartialEq)]
pub(crate) struct Violation {
    location: &'static str,
    /// The header or parameter name, or the body's JSON pointer.
    at: String,
    message: String,
}

impl Violation {
    fn json(&self) -> Value {
        let key = if self.location == "body" {
            "pointer"
        } else {
            "name"
        };
        json!({ "location": self.location, key: self.at, "message": self.message })
    }
}

fn fields(kind: &str, map: BTreeMap<String, FieldConfig>) -> Result<Vec<Field>, String> {
    map.into_iter()
        .map(|(name, c)| {
            let pattern = c
                .pattern
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$"))
                        .map(|r| (r, p.clone()))
                        .map_err(|e| {
                            format!("{kind}.{name}.pattern `{p}` is not a regular expression: {e}")
                        })
                })
                .transpose()?;
            Ok(Field {
                name: if kind == "headers" {
                    name.to_ascii_lowercase()
                } else {
                    name
                },
                required: c.required,
                pattern,
            })
        })
        .collect()
}

fn check(location: &'static str, f: &Field, value: Option<String>, out: &mut Vec<Violation>) {
    let message = match (value, &f.pattern) {
        (None, _) if f.required => format!("the {} is required", noun(location)),
        (Some(v), Some((re, p))) if !re.is_match(&v) => format!("`{v}` does not match `{p}`"),
        _ => return,
    };
    out.push(Violation {
        location,
        at: f.name.clone(),
        message,
    });
}

fn noun(location: &str) -> &'static str {
    if location == "header" {
        "header"
    } else {
        "query parameter"
    }
}

impl Validate {
    fn violations_of_head(&self, req: &Request) -> Vec<Violation> {
        let mut out = Vec::new();
        for f in &self.headers {
            check("header", f, req.header(&f.name), &mut out);
        }
        for f in &self.query {
            check("query", f, req.query_param(&f.name), &mut out);
        }
        out
    }

    fn violations_of_body(&self, schema: &jsonschema::Validator, req: &Request) -> Vec<Violation> {
        let body = req.body().unwrap_or_default();
        let whole = |message: String| {
            vec![Violation {
                location: "body",
                at: String::new(),
                message,
            }]
        };
        if body.is_empty() {
            return whole("a JSON body is required".into());
        }
        if !is_json(req.header("content-type").as_deref()) {
            return whole("the body must be JSON (Content-Type: application/json)".into());
        }
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return whole(format!("the body is not valid JSON: {e}")),
        };
        schema
            .iter_errors(&value)
            .take(self.max + 1)
            .map(|e| Violation {
                location: "body",
                at: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect()
    }

    /// The operation an earlier phase matched.
    fn operation(&self, req: &Request) -> Option<&openapi::Operation> {
        let i = req.context_get(OPERATION)?.parse().ok()?;
        self.spec.as_ref()?.op(i)
    }

    /// The schema this answer must satisfy, if any.
    fn response_validator(&self, req: &Request, status: u16) -> Option<&jsonschema::Validator> {
        if !self.responses {
            return None;
        }
        if self.spec.is_some() {
            return self.operation(req)?.response(status);
        }
        self.response_schema
            .as_ref()
            .filter(|_| (200..300).contains(&status))
    }

    fn refuse(&self, mut found: Vec<Violation>) -> Action {
        let more = found.len().saturating_sub(self.max);
        found.truncate(self.max);
        metrics::counter_add("refused", 1, &[]);
        let detail = match found.len() {
            1 => "the request breaks 1 rule".to_string(),
            n => format!(
                "the request breaks {n}{} rules",
                if more > 0 { "+" } else { "" }
            ),
        };
        let body = json!({
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": detail,
            "violations": found.iter().map(Violation::json).collect::<Vec<_>>(),
        });
        Answer::new(400)
            .header("content-type", "application/problem+json")
            .body(body.to_string())
            .into()
    }
}

#[plugin]
impl Plugin for Validate {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.max_violations == 0 {
            return Err("`max_violations` must be at least 1".into());
        }
        let schema = c
            .schema
            .map(|s| {
                let draft = if s.get("$schema").is_some() {
                    jsonschema::options()
                } else {
                    jsonschema::options().with_draft(jsonschema::Draft::Draft202012)
                };
                draft
                    .build(&s)
                    .map_err(|e| format!("`schema` is not a valid JSON Schema: {e}"))
            })
            .transpose()?;
        let doc = match (c.openapi, c.openapi_file) {
            (Some(_), Some(_)) => return Err("give `openapi` or `openapi_file`, not both".into()),
            (Some(doc), None) => Some(doc),
            (None, Some(file)) => Some(read_document(&file)?),
            (None, None) => None,
        };
        if doc.is_some() && schema.is_some() {
            return Err("give `schema` or an OpenAPI document, not both".into());
        }
        let spec = doc
            .map(|d| openapi::Spec::new(d, c.base_path).map_err(|e| format!("openapi: {e}")))
            .transpose()?;
        let response_schema = c
            .response_schema
            .map(|s| {
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&s)
                    .map_err(|e| format!("`response_schema` is not a valid JSON Schema: {e}"))
            })
            .transpose()?;
        if response_schema.is_some() && spec.is_some() {
            return Err("`response_schema` is for plain mode; with an OpenAPI document the operation's responses are used".into());
        }
        if c.validate_responses && spec.is_none() && response_schema.is_none() {
            return Err(
                "`validate_responses` needs an OpenAPI document or a `response_schema`".into(),
            );
        }
        Ok(Validate {
            headers: fields("headers", c.headers)?,
            query: fields("query", c.query)?,
            schema,
            max: c.max_violations,
            spec,
            unknown: c.unknown,
            responses: c.validate_responses,
            response_schema,
        })
    }

    /// The body phase only with a schema (then the head is checked there too, so one answer
    /// lists every violation); with an OpenAPI document the head phase finds the operation and
    /// the body phase runs for operations that take a body.
    fn phases(&self, written: Phases) -> Phases {
        let mut p = written;
        if self.spec.is_none() {
            p -= if self.schema.is_some() {
                Phases::REQUEST_HEADERS
            } else {
                Phases::REQUEST_BODY
            };
        }
        if !self.responses {
            p -= Phases::RESPONSE_HEADERS | Phases::RESPONSE_BODY;
        }
        p
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let mut found = self.violations_of_head(req);
        if let Some(spec) = &self.spec {
            let (method, path) = (req.method(), req.path());
            match spec.find(&method, &path) {
                openapi::Found::Op(i, op) => {
                    req.context_set(OPERATION, &i.to_string());
                    if op.has_body() {
                        // Checked with the body, so one answer lists everything.
                        return Action::Continue;
                    }
                    op.params(req, spec.base_path(), &mut found);
                }
                openapi::Found::Method(allowed) if self.unknown == Unknown::Reject => {
                    return Answer::problem(
                        405,
                        &format!("{method} is not an operation of {path}"),
                    )
                    .header("allow", &allowed.join(", "))
                    .into();
                }
                openapi::Found::None if self.unknown == Unknown::Reject => {
                    return Answer::problem(
                        404,
                        &format!("no operation of the API matches {method} {path}"),
                    )
                    .into();
                }
                _ => {}
            }
            req.skip_body();
        }
        if found.is_empty() {
            Action::Continue
        } else {
            self.refuse(found)
        }
    }

    fn on_request_body(&self, req: &Request) -> Action {
        let mut found = self.violations_of_head(req);
        if let Some(schema) = &self.schema {
            found.extend(self.violations_of_body(schema, req));
        }
        if let (Some(spec), Some(op)) = (&self.spec, self.operation(req)) {
            op.params(req, spec.base_path(), &mut found);
            op.body(req, self.max, &mut found);
        }
        if found.is_empty() {
            Action::Continue
        } else {
            self.refuse(found)
        }
    }

    fn on_response_headers(&self, req: &Request, resp: &Response) -> Action {
        let checked = self.response_validator(req, resp.status()).is_some()
            && is_json(resp.header("content-type").as_deref());
        if !checked {
            resp.skip_body();
        }
        Action::Continue
    }

    fn on_response_body(&self, req: &Request, resp: &Response) -> Action {
        let Some(schema) = self.response_validator(req, resp.status()) else {
            return Action::Continue;
        };
        let body = resp.body().unwrap_or_default();
        let what = match self.operation(req) {
            Some(op) => op.name(),
            None => format!("{} {}", req.method(), req.path()),
        };
        let broken: Vec<String> = match serde_json::from_slice::<Value>(&body) {
            Ok(v) => schema
                .iter_errors(&v)
                .take(5)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect(),
            Err(e) => vec![format!("not valid JSON: {e}")],
        };
        if !broken.is_empty() {
            log::warn(&format!(
                "the {} answer to {what} breaks its schema: {}",
                resp.status(),
                broken.join("; ")
            ));
            metrics::counter_add("response_invalid", 1, &[("operation", &what)]);
        }
        Action::Continue
    }
}

/// An OpenAPI document from a file the sandbox can read: JSON, or YAML by its extension.
fn read_document(file: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "openapi_file `{file}` cannot be read ({e}); grant its folder to the plugin with `dirs`"
        )
    })?;
    if file.ends_with(".yaml") || file.ends_with(".yml") {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("openapi_file `{file}` is not YAML: {e}"))
    } else {
        serde_json::from_str(&text).map_err(|e| format!("openapi_file `{file}` is not JSON: {e}"))
    }
}

#[cfg(test)]
mod tests;
