//! The key reference at the end of `docs/CONFIG.md` and `docs/gateway.schema.json` are made
//! from the schema: these tests fail when either falls behind the config types, and
//! `UPDATE_DOCS=1 cargo test -p wasmgate --lib reference` writes them anew. Every key must have
//! a description (its doc comment) and a default or an example.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use super::reference::json_schema;

const START: &str = "<!-- reference: made from the schema by `UPDATE_DOCS=1 cargo test -p wasmgate --lib reference`; do not edit below -->";

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// One key of the reference.
struct Key {
    table: String,
    name: String,
    kind: String,
    default: Option<String>,
    example: Option<String>,
    description: String,
}

struct Walk<'a> {
    defs: &'a serde_json::Map<String, Value>,
    keys: Vec<Key>,
}

impl<'a> Walk<'a> {
    /// The schema a node stands for: `$ref` followed, `Option`'s null alternative dropped.
    fn resolve(&self, node: &'a Value) -> &'a Value {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/$defs/");
            return self.defs.get(name).map_or(node, |d| self.resolve(d));
        }
        if let Some(alts) = node.get("anyOf").and_then(Value::as_array) {
            let real: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
            if real.len() == 1 {
                return self.resolve(real[0]);
            }
        }
        node
    }

    /// A table of keys (a struct), as opposed to a value.
    fn is_table(&self, node: &Value) -> bool {
        let n = self.resolve(node);
        n.get("properties").is_some() && n.get("oneOf").is_none()
    }

    fn table(&mut self, path: &str, node: &'a Value) {
        let node = self.resolve(node);
        let Some(props) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, prop) in props {
            let target = self.resolve(prop);
            let items = target.get("items").map(|i| self.resolve(i));
            let map_of = target
                .get("additionalProperties")
                .filter(|a| a.is_object())
                .map(|a| self.resolve(a));
            let sub = if self.is_table(prop) {
                Some((format!("{}.{name}", inner(path)), target, false))
            } else if let Some(i) = items.filter(|i| self.is_table(i)) {
                Some((format!("{}.{name}", inner(path)), i, true))
            } else {
                map_of
                    .filter(|m| self.is_table(m))
                    .map(|m| (format!("{}.{name}.NAME", inner(path)), m, false))
            };
            let kind = match &sub {
                Some((p, _, true)) => {
                    format!("array of tables, `[[{}]]`", p.trim_start_matches('.'))
                }
                Some((p, _, false)) => format!("table, `[{}]`", p.trim_start_matches('.')),
                None => self.kind(prop),
            };
            let description = text(prop).or_else(|| text(target)).unwrap_or_default();
            // The key's own example, else its default, else its type's example.
            let example = first_example(prop)
                .or_else(|| {
                    prop.get("default")
                        .filter(|d| sub.is_none() && !d.is_null())
                })
                .or_else(|| first_example(target));
            self.keys.push(Key {
                table: path.to_string(),
                name: name.clone(),
                kind,
                // A table's default is its keys' defaults, listed with them.
                default: prop
                    .get("default")
                    .filter(|d| sub.is_none() && !d.is_null())
                    .map(toml_value),
                example: example.map(toml_value),
                description,
            });
            if let Some((p, t, array)) = sub {
                let p = p.trim_start_matches('.');
                let header = if array {
                    format!("[[{p}]]")
                } else {
                    format!("[{p}]")
                };
                self.table(&header, t);
            }
        }
    }

    /// The type of a value, in words.
    fn kind(&self, node: &Value) -> String {
        let n = self.resolve(node);
        match n.get("x-kind").and_then(Value::as_str) {
            Some("DurationText") => return "duration".into(),
            Some("ByteSize") => return "size".into(),
            _ => {}
        }
        if let Some(values) = enum_values(n) {
            return format!("one of {}", values.join(", "));
        }
        if let Some(alts) = n.get("oneOf").and_then(Value::as_array) {
            let words: Vec<String> = alts.iter().map(|a| self.kind(a)).collect();
            return words.join(" or ");
        }
        let t = match n.get("type") {
            Some(Value::Array(ts)) => ts
                .iter()
                .filter(|t| *t != "null")
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" or "),
            Some(Value::String(t)) => t.clone(),
            _ => "any".into(),
        };
        match t.as_str() {
            "array" => match n.get("items") {
                Some(i) => format!("array of {}", self.kind(i)),
                None => "array".into(),
            },
            "object" => match n.get("additionalProperties").filter(|a| a.is_object()) {
                Some(v) => format!("table of {}", self.kind(v)),
                None => "table".into(),
            },
            other => other.into(),
        }
    }
}

/// `[a.b]` → `a.b` (the path inside the header), for the next level.
fn inner(path: &str) -> String {
    path.trim_matches(|c| c == '[' || c == ']').to_string()
}

/// The values of a string enum (`enum`, or `oneOf` of `const`s).
fn enum_values(n: &Value) -> Option<Vec<String>> {
    if let Some(values) = n.get("enum").and_then(Value::as_array) {
        return Some(
            values
                .iter()
                .map(|v| format!("`{}`", toml_inline(v)))
                .collect(),
        );
    }
    let alts = n.get("oneOf").and_then(Value::as_array)?;
    let mut out = Vec::new();
    for a in alts {
        if let Some(c) = a.get("const") {
            out.push(format!("`{}`", toml_inline(c)));
        } else if let Some(values) = a.get("enum").and_then(Value::as_array) {
            out.extend(values.iter().map(|v| format!("`{}`", toml_inline(v))));
        } else if let Some(props) = a.get("properties").and_then(Value::as_object)
            && props.len() == 1
        {
            let (k, _) = props.iter().next()?;
            out.push(format!("`{{ {k} = \"...\" }}`"));
        } else {
            return None;
        }
    }
    Some(out)
}

fn text(n: &Value) -> Option<String> {
    let d = n.get("description")?.as_str()?;
    Some(d.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn first_example(n: &Value) -> Option<&Value> {
    n.get("examples")?.as_array()?.first()
}

/// A value as it is written in TOML (inline), for the default and example columns.
fn toml_inline(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{} = {}", key(k), toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    if k.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn toml_value(v: &Value) -> String {
    let t = toml_inline(v);
    if t.is_empty() || t == "{  }" {
        "{}".into()
    } else {
        t
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn keys() -> Vec<Key> {
    let schema = json_schema();
    let empty = serde_json::Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut walk = Walk {
        defs,
        keys: Vec::new(),
    };
    walk.table("", &schema);
    walk.keys
}

/// The reference section, grouped by table.
fn reference() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{START}\n");
    let _ = writeln!(out, "## Every key\n");
    let _ = writeln!(
        out,
        "Made from the config types, so it lists every key `gateway.toml` takes. Tables can also\nbe written inline (`retry = {{ attempts = 3 }}`). `NAME` is a name you choose. A duration is\na number and a unit (`ms`, `s`, `m`, `h`): `\"250ms\"`, `\"1m 30s\"`; a size, a number and a\nunit (`B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`) or a number of bytes. The JSON Schema, for\neditors, is [gateway.schema.json](gateway.schema.json) (`wasmgate schema` prints it; with\nEven Better TOML, put `#:schema ./docs/gateway.schema.json` at the top of the file).\n"
    );
    let keys = keys();
    let mut tables: Vec<&str> = Vec::new();
    for k in &keys {
        if !tables.contains(&k.table.as_str()) {
            tables.push(&k.table);
        }
    }
    for table in tables {
        if table.is_empty() {
            let _ = writeln!(out, "### Top level\n");
        } else {
            let _ = writeln!(out, "### `{table}`\n");
        }
        let _ = writeln!(out, "| key | type | default | example | |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for k in keys.iter().filter(|k| k.table == table) {
            let default = k
                .default
                .as_deref()
                .map_or("—".into(), |d| format!("`{}`", cell(d)));
            let example = k
                .example
                .as_deref()
                .map_or("—".into(), |e| format!("`{} = {}`", k.name, cell(e)));
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                k.name,
                cell(&k.kind),
                default,
                example,
                cell(&k.description)
            );
        }
        let _ = writeln!(out);
    }
    out
}

fn update() -> bool {
    std::env::var_os("UPDATE_DOCS").is_some()
}

#[test]
fn every_key_has_a_description_and_a_default_or_an_example() {
    let keys = keys();
    assert!(keys.len() > 100, "the walk found {} keys", keys.len());
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| {
            k.description.is_empty()
                || (k.default.is_none()
                    && k.example.is_none()
                    && !k.kind.starts_with("table, ")
                    && !k.kind.starts_with("array of tables"))
        })
        .map(|k| {
            format!(
                "{} {} (description: {}, default: {:?}, example: {:?})",
                k.table,
                k.name,
                !k.description.is_empty(),
                k.default,
                k.example
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys without a doc comment, or without a default or a #[schemars(example = ...)]:\n{}",
        missing.join("\n")
    );
}

#[test]
fn config_md_lists_every_key_of_the_schema() {
    let path = docs().join("CONFIG.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let head = text
        .split(START)
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string();
    up_to_date(&path, &text, &format!("{head}\n\n{}", reference()));
}

/// Asserts that `path` (read as `text`) is `want`; with `UPDATE_DOCS`, writes it instead.
fn up_to_date(path: &std::path::Path, text: &str, want: &str) {
    if update() {
        std::fs::write(path, want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    assert!(
        text == want,
        "{} is not made from the schema: run UPDATE_DOCS=1 cargo test -p wasmgate --lib reference",
        path.display()
    );
}

#[test]
fn the_schema_file_is_the_schema() {
    let path = docs().join("gateway.schema.json");
    let want = serde_json::to_string_pretty(&json_schema()).unwrap_or_default() + "\n";
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    up_to_date(&path, &text, &want);
}

#[test]
fn the_example_config_passes_the_schema() {
    // What an editor checks with the schema: a config the gateway takes must not be flagged.
    let path = docs().join("../gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let config: toml::Table = toml::from_str(&text).unwrap_or_default();
    let config = serde_json::to_value(config).unwrap_or_default();
    assert!(
        config.get("routes").is_some(),
        "{} was read",
        path.display()
    );
    let schema = json_schema();
    let validator =
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("the schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&config)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "gateway.toml against the schema:\n{}",
        errors.join("\n")
    );
    // And it does check: a mistyped key is flagged.
    let mut wrong = config.clone();
    wrong["server"]["wokers"] = 2.into();
    assert!(!validator.is_valid(&wrong), "an unknown key passed");
}
