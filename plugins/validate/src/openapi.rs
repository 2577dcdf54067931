//! Requests (and optionally responses) checked against an OpenAPI 3.0 or 3.1 document: the
//! operation found by method and path template, its path, query, header and cookie parameters
//! (declared on the path or the operation, `$ref`s to `components` followed) and its request
//! body by media type; every schema compiled once, at load. OpenAPI 3.1 schemas are JSON
//! Schema 2020-12; 3.0 schemas are read as draft 4 with `nullable: true` allowing null.

use jsonschema::Validator;
use serde_json::{Map, Value, json};
use wasmgate_plugin_sdk::Request;
use wasmgate_plugin_sdk::media::{essence, is_json};

use super::Violation;

#[derive(Debug, Clone, Copy, PartialEq)]
enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    fn name(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

enum Seg {
    Lit(String),
    Param(String),
}

struct Param {
    name: String,
    at: In,
    required: bool,
    /// The schema's `type`, to read the text of a parameter as a number, boolean or list.
    kind: String,
    item_kind: String,
    schema: Option<Validator>,
}

struct Body {
    required: bool,
    /// (media range, its schema).
    media: Vec<(String, Option<Validator>)>,
}

pub struct Operation {
    method: String,
    template: String,
    segs: Vec<Seg>,
    params: Vec<Param>,
    body: Option<Body>,
    /// (status key: "200", "2XX" or "default"; the JSON schema of its answer).
    responses: Vec<(String, Validator)>,
}

pub struct Spec {
    ops: Vec<Operation>,
    base_path: String,
}

/// What the document says about a request.
pub enum Found<'a> {
    Op(usize, &'a Operation),
    /// The path is known, the method is not: the methods it has.
    Method(Vec<String>),
    None,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Spec {
    /// Reads the document; `Err` says what is wrong and where.
    pub fn new(doc: Value, base_path: Option<String>) -> Result<Spec, String> {
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or("the document has no `openapi` version (3.0.x or 3.1.x)")?
            .to_string();
        let v30 = version.starts_with("3.0");
        if !v30 && !version.starts_with("3.1") {
            return Err(format!(
                "OpenAPI `{version}` is not supported: give a 3.0 or 3.1 document"
            ));
        }
        let components = doc.get("components").cloned().unwrap_or(Value::Null);
        let compile = |schema: &Value, at: &str| compile(schema, &components, v30, at);
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("the document has no `paths`")?;
        let mut ops = Vec::new();
        for (template, item) in paths {
            if !template.starts_with('/') {
                return Err(format!("paths.{template}: a path starts with `/`"));
            }
            let item = resolve(item, &doc);
            let shared = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let at = format!("paths.{template}.{method}");
                let mut params: Vec<Param> = Vec::new();
                let own = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                // The operation's parameters replace the path's of the same name and place.
                for p in shared.iter().chain(own.iter()) {
                    let p = resolve(p, &doc);
                    let param = parameter(p, &at, &compile)?;
                    params.retain(|q| !(q.name == param.name && q.at == param.at));
                    params.push(param);
                }
                let body = match op.get("requestBody") {
                    None => None,
                    Some(b) => {
                        let b = resolve(b, &doc);
                        let mut media = Vec::new();
                        for (range, m) in b
                            .get("content")
                            .and_then(Value::as_object)
                            .into_iter()
                            .flatten()
                        {
                            let schema = m
                                .get("schema")
                                .map(|s| compile(s, &format!("{at}.requestBody.content.{range}")))
                                .transpose()?;
                            media.push((range.to_ascii_lowercase(), schema));
                        }
                        Some(Body {
                            required: b.get("required").and_then(Value::as_bool).unwrap_or(false),
                            media,
                        })
                    }
                };
                let mut responses = Vec::new();
                for (status, r) in op
                    .get("responses")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let r = resolve(r, &doc);
                    let json_schema = r
                        .get("content")
                        .and_then(Value::as_object)
                        .and_then(|c| c.iter().find(|(k, _)| is_json_range(k)))
                        .and_then(|(_, m)| m.get("schema"));
                    if let Some(s) = json_schema {
                        responses.push((
                            status.to_ascii_uppercase(),
                            compile(s, &format!("{at}.responses.{status}"))?,
                        ));
                    }
                }
                ops.push(Operation {
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    segs: segments(template),
                    params,
                    body,
                    responses,
                });
            }
        }
        // Concrete paths before templated ones (`/users/me` before `/users/{id}`).
        ops.sort_by_key(|o| {
            let params = o.segs.iter().filter(|s| matches!(s, Seg::Param(_))).count();
            (params, std::cmp::Reverse(o.segs.len()))
        });
        let base_path = base_path
            .or_else(|| {
                let url = doc.pointer("/servers/0/url")?.as_str()?;
                let path = url
                    .split_once("://")
                    .map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
                Some(path.to_string())
            })
            .unwrap_or_default();
        Ok(Spec {
            ops,
            base_path: base_path.trim_end_matches('/').to_string(),
        })
    }

    pub fn find(&self, method: &str, path: &str) -> Found<'_> {
        let Some(rest) = path.strip_prefix(self.base_path.as_str()) else {
            return Found::None;
        };
        let parts: Vec<&str> = rest.split('/').skip(1).collect();
        let mut allowed = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            if !matches_path(&op.segs, &parts) {
                continue;
            }
            if op.method == method {
                return Found::Op(i, op);
            }
            allowed.push(op.method.clone());
        }
        if allowed.is_empty() {
            Found::None
        } else {
            Found::Method(allowed)
        }
    }

    pub fn op(&self, i: usize) -> Option<&Operation> {
        self.ops.get(i)
    }

    pub fn base_path(&self) -> &str {
        &self.base_path
    }
}

impl Operation {
    /// `GET /users/{id}`.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    pub fn has_body(&self) -> bool {
        self.body.is_some()
    }

    /// The parameter violations of `req` (path, query, headers, cookies).
    pub fn params(&self, req: &Request, base_path: &str, out: &mut Vec<Violation>) {
        let path = req.path();
        let parts: Vec<&str> = path
            .strip_prefix(base_path)
            .unwrap_or(&path)
            .split('/')
            .skip(1)
            .collect();
        for p in &self.params {
            let raw: Vec<String> = match p.at {
                In::Path => self
                    .segs
                    .iter()
                    .zip(&parts)
                    .find_map(|(s, v)| match s {
                        Seg::Param(n) if *n == p.name => Some(percent_decode(v)),
                        _ => None,
                    })
                    .into_iter()
                    .collect(),
                In::Query => req.query_params(&p.name),
                In::Header => req.header(&p.name).into_iter().collect(),
                In::Cookie => req.cookie(&p.name).into_iter().collect(),
            };
            let violation = |message: String| Violation {
                location: p.at.name(),
                at: p.name.clone(),
                message,
            };
            if raw.is_empty() {
                if p.required {
                    out.push(violation(format!(
                        "the {} parameter is required",
                        p.at.name()
                    )));
                }
                continue;
            }
            let Some(schema) = &p.schema else { continue };
            let value = typed(&p.kind, &p.item_kind, &raw);
            if let Some(e) = schema.iter_errors(&value).next() {
                out.push(violation(e.to_string()));
            }
        }
    }

    /// The body violations of `req`: its media type must be one the operation takes, and its
    /// JSON must satisfy that media type's schema.
    pub fn body(&self, req: &Request, max: usize, out: &mut Vec<Violation>) {
        let Some(b) = &self.body else { return };
        let body = req.body().unwrap_or_default();
        let whole = |message: String| Violation {
            location: "body",
            at: String::new(),
            message,
        };
        if body.is_empty() {
            if b.required {
                out.push(whole("a body is required".into()));
            }
            return;
        }
        let essence = essence(&req.header("content-type").unwrap_or_default());
        let Some((_, schema)) = b
            .media
            .iter()
            .find(|(range, _)| media_matches(range, &essence))
        else {
            let takes: Vec<&str> = b.media.iter().map(|(r, _)| r.as_str()).collect();
            out.push(whole(format!(
                "the body's type `{essence}` is not one of {}",
                takes.join(", ")
            )));
            return;
        };
        let Some(schema) = schema else { return };
        if !is_json_range(&essence) {
            return;
        }
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return out.push(whole(format!("the body is not valid JSON: {e}"))),
        };
        out.extend(schema.iter_errors(&value).take(max + 1).map(|e| Violation {
            location: "body",
            at: e.instance_path().to_string(),
            message: e.to_string(),
        }));
    }

    /// The schema a JSON answer with `status` must satisfy, if the document gives one.
    pub fn response(&self, status: u16) -> Option<&Validator> {
        let (exact, class) = (status.to_string(), format!("{}XX", status / 100));
        [exact.as_str(), class.as_str(), "DEFAULT"]
            .into_iter()
            .find_map(|key| {
                self.responses
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
            })
    }
}

/// Follows a `$ref` to `#/...` in `doc` (one level; the parts a parameter or body needs).
fn resolve<'a>(v: &'a Value, doc: &'a Value) -> &'a Value {
    match v
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => doc.pointer(pointer).unwrap_or(v),
        None => v,
    }
}

fn parameter(
    p: &Value,
    at: &str,
    compile: &impl Fn(&Value, &str) -> Result<Validator, String>,
) -> Result<Param, String> {
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}: a parameter has no `name`"))?;
    let place = match p.get("in").and_then(Value::as_str) {
        Some("path") => In::Path,
        Some("query") => In::Query,
        Some("header") => In::Header,
        Some("cookie") => In::Cookie,
        other => {
            return Err(format!(
                "{at}: parameter `{name}` has `in` = {other:?}; give path, query, header or cookie"
            ));
        }
    };
    let schema = p.get("schema");
    let kind = |s: Option<&Value>| {
        s.and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_string()
    };
    Ok(Param {
        name: if place == In::Header {
            name.to_ascii_lowercase()
        } else {
            name.to_string()
        },
        at: place,
        required: place == In::Path || p.get("required").and_then(Value::as_bool).unwrap_or(false),
        kind: kind(schema),
        item_kind: kind(schema.and_then(|s| s.get("items"))),
        schema: schema
            .map(|s| compile(s, &format!("{at}.parameters.{name}")))
            .transpose()?,
    })
}

/// A validator for `schema`, with the document's `components` beside it so `$ref`s to
/// `#/components/...` resolve.
fn compile(schema: &Value, components: &Value, v30: bool, at: &str) -> Result<Validator, String> {
    let mut root = Map::new();
    root.insert(
        "allOf".into(),
        json!([if v30 {
            nullable(schema.clone())
        } else {
            schema.clone()
        }]),
    );
    if !components.is_null() {
        let components = if v30 {
            nullable(components.clone())
        } else {
            components.clone()
        };
        root.insert("components".into(), components);
    }
    let draft = if v30 {
        jsonschema::Draft::Draft4
    } else {
        jsonschema::Draft::Draft202012
    };
    jsonschema::options()
        .with_draft(draft)
        .build(&Value::Object(root))
        .map_err(|e| format!("{at}: the schema is not valid: {e}"))
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: the type list gets `null`.
fn nullable(v: Value) -> Value {
    match v {
        Value::Object(mut m) => {
            if m.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = m.get("type").cloned()
            {
                m.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, nullable(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(nullable).collect()),
        other => other,
    }
}

fn segments(template: &str) -> Vec<Seg> {
    template
        .split('/')
        .skip(1)
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Seg::Param(name.to_string()),
                None => Seg::Lit(s.to_string()),
            },
        )
        .collect()
}

fn matches_path(segs: &[Seg], parts: &[&str]) -> bool {
    segs.len() == parts.len()
        && segs.iter().zip(parts).all(|(s, p)| match s {
            Seg::Lit(l) => l == p,
            Seg::Param(_) => !p.is_empty(),
        })
}

/// The parameter's text as the JSON its schema expects: numbers and booleans parsed (text that
/// does not parse stays text, so the schema reports it), lists from repeated or comma-separated
/// values.
fn typed(kind: &str, item_kind: &str, raw: &[String]) -> Value {
    let scalar = |kind: &str, s: &str| -> Value {
        match kind {
            "integer" => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(s)),
            "number" => s
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::from(s), Value::Number),
            "boolean" => match s {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::from(s),
            },
            _ => Value::from(s),
        }
    };
    if kind == "array" {
        let items: Vec<&str> = if raw.len() == 1 {
            raw[0].split(',').collect()
        } else {
            raw.iter().map(String::as_str).collect()
        };
        return Value::Array(items.into_iter().map(|s| scalar(item_kind, s)).collect());
    }
    scalar(kind, raw.first().map_or("", String::as_str))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether a content map key (a media range) names JSON.
fn is_json_range(range: &str) -> bool {
    is_json(Some(range)) || essence(range) == "*/*"
}

fn media_matches(range: &str, essence: &str) -> bool {
    let range = self::essence(range);
    range == essence
        || range == "*/*"
        || range
            .strip_suffix("/*")
            .is_some_and(|t| essence.split('/').next() == Some(t))
}
