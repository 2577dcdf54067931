//! Request validation before the upstream sees a request (AWS API Gateway's request
//! validators): required headers and query parameters, each optionally matching a pattern, and
//! the JSON body against a JSON Schema (draft 2020-12 unless the schema's `$schema` names
//! another), compiled once at load. A request that breaks any rule gets 400
//! `application/problem+json` listing every violation (`location`, `name` or JSON `pointer`,
//! `message`), at most `max_violations`.

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
}

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
}

/// One broken rule, as the answer lists it.
#[derive(Debug, PartialEq)]
struct Violation {
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
        Ok(Validate {
            headers: fields("headers", c.headers)?,
            query: fields("query", c.query)?,
            schema,
            max: c.max_violations,
        })
    }

    /// The body phase only with a schema; then the head is checked there too, so one answer
    /// lists every violation.
    fn phases(&self, written: Phases) -> Phases {
        if self.schema.is_some() {
            written - Phases::REQUEST_HEADERS
        } else {
            written - Phases::REQUEST_BODY
        }
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let found = self.violations_of_head(req);
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
        if found.is_empty() {
            Action::Continue
        } else {
            self.refuse(found)
        }
    }
}

#[cfg(test)]
mod tests;
