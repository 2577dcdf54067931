//! Body transforms for requests and responses, each side with its own rules, applied to the
//! content types listed (JSON by default): parse (JSON or XML) → key case → rename → move →
//! remove → JMESPath `shape` → add (literal or computed values) → write (JSON or XML). Bodies
//! of other types stream through untouched (`skip_body`). A request body that does not parse
//! is refused with 400; a response body that does not is passed through with a warning, or
//! answered with 502 when `on_error = "fail"`.

mod case;
mod xml;

use std::collections::BTreeMap;

use serde_json::Value;
use wasmgate_plugin_sdk::expr::{self, Expression};
use wasmgate_plugin_sdk::media;
use wasmgate_plugin_sdk::prelude::*;
use wasmgate_plugin_sdk::template::{self, Part, Template};

pub use case::Case;
use wasmgate_plugin_sdk::fields::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    request: Option<SideConfig>,
    response: Option<SideConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SideConfig {
    /// Content types transformed: `type/subtype`, or `+suffix` for every type with it.
    types: Option<Vec<String>>,
    #[serde(default)]
    from: Format,
    #[serde(default)]
    to: Format,
    /// Every key, at every depth, in this case.
    keys: Option<Case>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    #[serde(default, rename = "move")]
    moves: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
    /// A JMESPath expression the document is replaced by.
    shape: Option<String>,
    /// Path → value; strings may hold `{request_id}`, `{param.X}`, ... placeholders.
    #[serde(default)]
    add: BTreeMap<String, Value>,
    /// The element JSON is wrapped in when written as XML and not an object with one key.
    #[serde(default = "default_root")]
    xml_root: String,
    /// Deepest XML nesting read.
    #[serde(default = "default_depth")]
    max_depth: usize,
    /// Response side: what a body that cannot be transformed gets.
    #[serde(default)]
    on_error: OnError,
}

fn default_root() -> String {
    "root".into()
}

fn default_depth() -> usize {
    64
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
enum Format {
    #[default]
    Json,
    Xml,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
enum OnError {
    /// Send the body unchanged and log a warning.
    #[default]
    Pass,
    /// Answer 502.
    Fail,
}

/// The computed values `add` may use, besides `{param.X}`, `{query.X}`, `{header.X}`,
/// `{context.X}`.
const VARS: &[&str] = &[
    "request_id",
    "trace_id",
    "client_ip",
    "received_at",
    "now",
    "duration_ms",
    "route",
    "consumer",
    "api_version",
];

/// Context key holding when the request arrived (wall ms), for `received_at` and `duration_ms`.
const RECEIVED: &str = "transform.received-ms";

enum Added {
    Literal(Value),
    Template(Template),
}

struct Side {
    types: Vec<String>,
    from: Format,
    to: Format,
    keys: Option<Case>,
    rename: Vec<(Path, String)>,
    moves: Vec<(Path, Path)>,
    remove: Vec<Path>,
    shape: Option<Expression<'static>>,
    add: Vec<(Path, Added)>,
    xml_root: String,
    max_depth: usize,
    on_error: OnError,
}

pub struct Transform {
    request: Option<Side>,
    response: Option<Side>,
    /// The response side adds `{received_at}` or `{duration_ms}`: the arrival time is noted.
    notes_arrival: bool,
}

impl Side {
    fn new(which: &str, c: SideConfig) -> Result<Side, String> {
        let at = |e: String| format!("{which}.{e}");
        let types = match c.types {
            Some(t) if t.is_empty() => {
                return Err(at("types: list at least one content type".into()));
            }
            Some(t) => t.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
            None if c.from == Format::Xml => {
                vec!["application/xml".into(), "text/xml".into(), "+xml".into()]
            }
            None => vec!["application/json".into(), "+json".into()],
        };
        let rename = c
            .rename
            .into_iter()
            .map(|(from, to)| {
                if to.is_empty() || to.contains(['.', '[']) {
                    return Err(at(format!("rename.\"{from}\": `{to}` must be a plain field name (use `move` to change its place)")));
                }
                Ok((Path::parse(&from).map_err(|e| at(format!("rename: {e}")))?, to))
            })
            .collect::<Result<_, String>>()?;
        let moves = c
            .moves
            .into_iter()
            .map(|(from, to)| {
                let (f, t) = (
                    Path::parse(&from).map_err(|e| at(format!("move: {e}")))?,
                    Path::parse(&to).map_err(|e| at(format!("move: {e}")))?,
                );
                if f.has_each() || t.has_each() {
                    return Err(at(format!("move.\"{from}\": moves take one field to one place; `[]` is for rename, remove and add")));
                }
                Ok((f, t))
            })
            .collect::<Result<_, String>>()?;
        let remove = c
            .remove
            .iter()
            .map(|p| Path::parse(p).map_err(|e| at(format!("remove: {e}"))))
            .collect::<Result<_, String>>()?;
        let shape = c
            .shape
            .map(|s| {
                expr::compile(&s)
                    .map_err(|e| at(format!("shape: `{s}` is not a JMESPath expression: {e}")))
            })
            .transpose()?;
        let add = c
            .add
            .into_iter()
            .map(|(path, v)| {
                let p = Path::parse(&path).map_err(|e| at(format!("add: {e}")))?;
                let added = match v {
                    Value::String(s) if s.contains('{') => Added::Template(
                        Template::parse(&s, VARS)
                            .map_err(|e| at(format!("add.\"{path}\": {e}")))?,
                    ),
                    other => Added::Literal(other),
                };
                Ok((p, added))
            })
            .collect::<Result<_, String>>()?;
        if c.max_depth == 0 {
            return Err(at("max_depth: must be at least 1".into()));
        }
        Ok(Side {
            types,
            from: c.from,
            to: c.to,
            keys: c.keys,
            rename,
            moves,
            remove,
            shape,
            add,
            xml_root: c.xml_root,
            max_depth: c.max_depth,
            on_error: c.on_error,
        })
    }

    fn wants(&self, content_type: Option<&str>) -> bool {
        let Some(ct) = content_type else { return false };
        let essence = media::essence(ct);
        self.types.iter().any(|t| {
            if t.starts_with('+') {
                essence.ends_with(t.as_str())
            } else {
                essence == *t
            }
        })
    }

    fn uses_time(&self) -> bool {
        self.add.iter().any(|(_, a)| match a {
            Added::Template(t) => t
                .parts()
                .iter()
                .any(|p| matches!(p, Part::Var(v) if v == "received_at" || v == "duration_ms")),
            Added::Literal(_) => false,
        })
    }

    /// The transformed body, or why it cannot be.
    fn apply(&self, body: &[u8], req: &Request) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("it is not UTF-8: {e}"))?;
        let mut doc = match self.from {
            Format::Json => {
                serde_json::from_str(text).map_err(|e| format!("it is not JSON: {e}"))?
            }
            Format::Xml => {
                xml::to_json(text, self.max_depth).map_err(|e| format!("it is not XML: {e}"))?
            }
        };
        if let Some(case) = self.keys {
            doc = case.keys(doc);
        }
        for (path, to) in &self.rename {
            path.rename(&mut doc, to);
        }
        for (from, to) in &self.moves {
            if let Some(v) = from.take(&mut doc) {
                let mut v = Some(v);
                to.set(&mut doc, || v.take().unwrap_or(Value::Null));
            }
        }
        for path in &self.remove {
            path.remove(&mut doc);
        }
        if let Some(shape) = &self.shape {
            doc = expr::search(shape, doc).map_err(|e| format!("shape: {e}"))?;
        }
        if !self.add.is_empty() {
            let now = clock::wall_ms();
            for (path, added) in &self.add {
                let v = match added {
                    Added::Literal(v) => v.clone(),
                    Added::Template(t) => computed(t, req, now),
                };
                path.set(&mut doc, || v.clone());
            }
        }
        match self.to {
            Format::Json => serde_json::to_vec(&doc).map_err(|e| e.to_string()),
            Format::Xml => xml::from_json(&doc, &self.xml_root).map(String::into_bytes),
        }
    }

    /// The Content-Type of what `apply` wrote, when it differs from what came.
    fn content_type(&self) -> Option<&'static str> {
        match (self.from, self.to) {
            (Format::Xml, Format::Json) => Some("application/json"),
            (Format::Json, Format::Xml) => Some("application/xml"),
            _ => None,
        }
    }
}

/// A templated value for `req`: a number for `{duration_ms}` alone, null when the request
/// lacks a value, else the text.
fn computed(t: &Template, req: &Request, now: u64) -> Value {
    let received = || {
        req.context_get(RECEIVED)
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(now)
    };
    if let Some(Part::Var(v)) = t.only_placeholder()
        && v == "duration_ms"
    {
        return Value::from(now.saturating_sub(received()));
    }
    let var = |name: &str| -> Option<String> {
        match name {
            "request_id" => req
                .context_get("request-id")
                .or_else(|| req.header("x-request-id")),
            "trace_id" => req
                .context_get("traceparent")
                .or_else(|| req.header("traceparent"))
                .and_then(|tp| tp.split('-').nth(1).map(str::to_string)),
            "client_ip" => Some(req.client_ip()),
            "received_at" => Some(wasmgate_plugin_sdk::time::rfc3339(received())),
            "now" => Some(wasmgate_plugin_sdk::time::rfc3339(now)),
            "duration_ms" => Some(now.saturating_sub(received()).to_string()),
            "route" => Some(req.route_name()),
            "consumer" => req.context_get("consumer"),
            "api_version" => req
                .path_param("version")
                .or_else(|| req.header("api-version")),
            _ => None,
        }
    };
    match t.only_placeholder() {
        Some(p) => template::value(p, req, var).map_or(Value::Null, Value::String),
        None => t
            .render(req, var, |v, out| out.push_str(v))
            .map_or(Value::Null, Value::String),
    }
}

#[plugin]
impl Plugin for Transform {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.request.is_none() && c.response.is_none() {
            return Err(
                "give `request` or `response` rules, e.g. response = { keys = \"camel\" }".into(),
            );
        }
        let response = c.response.map(|s| Side::new("response", s)).transpose()?;
        Ok(Transform {
            request: c.request.map(|s| Side::new("request", s)).transpose()?,
            notes_arrival: response.as_ref().is_some_and(Side::uses_time),
            response,
        })
    }

    fn phases(&self, written: Phases) -> Phases {
        let mut p = written;
        if self.request.is_none() {
            p.remove(Phases::REQUEST_BODY);
            if !self.notes_arrival {
                p.remove(Phases::REQUEST_HEADERS);
            }
        }
        if self.response.is_none() {
            p.remove(Phases::RESPONSE_HEADERS | Phases::RESPONSE_BODY);
        }
        p
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        if self.notes_arrival {
            req.context_set(RECEIVED, &clock::wall_ms().to_string());
        }
        if !self
            .request
            .as_ref()
            .is_some_and(|s| s.wants(req.header("content-type").as_deref()))
        {
            req.skip_body();
        }
        Action::Continue
    }

    fn on_request_body(&self, req: &Request) -> Action {
        let Some(side) = &self.request else {
            return Action::Continue;
        };
        let body = req.body().unwrap_or_default();
        if body.is_empty() {
            return Action::Continue;
        }
        match side.apply(&body, req) {
            Ok(out) => {
                req.set_body(&out);
                match side.content_type() {
                    Some(ct) => req.set_header("content-type", ct).into(),
                    None => Action::Continue,
                }
            }
            Err(e) => {
                Answer::problem(400, &format!("the request body cannot be transformed: {e}")).into()
            }
        }
    }

    fn on_response_headers(&self, _req: &Request, resp: &Response) -> Action {
        if !self
            .response
            .as_ref()
            .is_some_and(|s| s.wants(resp.header("content-type").as_deref()))
        {
            resp.skip_body();
        }
        Action::Continue
    }

    fn on_response_body(&self, req: &Request, resp: &Response) -> Action {
        let Some(side) = &self.response else {
            return Action::Continue;
        };
        let body = resp.body().unwrap_or_default();
        if body.is_empty() {
            return Action::Continue;
        }
        match side.apply(&body, req) {
            Ok(out) => {
                resp.set_body(&out);
                // The upstream's validator names its own bytes, not these.
                resp.remove_header("etag");
                match side.content_type() {
                    Some(ct) => resp.set_header("content-type", ct).into(),
                    None => Action::Continue,
                }
            }
            Err(e) if side.on_error == OnError::Pass => {
                log::warn(&format!(
                    "the response body of {} {} passes unchanged: {e}",
                    req.method(),
                    req.path()
                ));
                Action::Continue
            }
            Err(e) => Answer::problem(
                502,
                &format!("the upstream's response body cannot be transformed: {e}"),
            )
            .into(),
        }
    }
}

#[cfg(test)]
mod tests;
