//! Field paths (`user.name`, `items[].id`: `[]` after a name means every element of that
//! array, a leading `[]` every element of a top-level array) and the edits made through them.

use heck::{ToKebabCase, ToLowerCamelCase, ToSnakeCase, ToUpperCamelCase};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Each,
}

/// A parsed path; its last step is always a field name.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    steps: Vec<Step>,
    last: String,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut steps = Vec::new();
        for seg in text.split('.') {
            let (name, each) = match seg.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (seg, false),
            };
            if name.contains(['[', ']']) {
                return Err(format!(
                    "`{text}`: only `[]` (every element) may follow a name, e.g. `items[].id`"
                ));
            }
            if name.is_empty() && !(each && steps.is_empty()) {
                return Err(format!("`{text}` has an empty field name"));
            }
            if !name.is_empty() {
                steps.push(Step::Key(name.to_string()));
            }
            if each {
                steps.push(Step::Each);
            }
        }
        match steps.pop() {
            Some(Step::Key(last)) => Ok(Path { steps, last }),
            _ => Err(format!("`{text}` must end with a field name")),
        }
    }

    /// Whether the path goes through every element of an array.
    pub fn has_each(&self) -> bool {
        self.steps.contains(&Step::Each)
    }

    /// Calls `f` with every object the path's last field belongs in; with `create`, missing
    /// objects on the way are made (and `f` is called on them).
    fn parents(
        &self,
        root: &mut Value,
        create: bool,
        f: &mut impl FnMut(&mut Map<String, Value>, &str),
    ) {
        visit(root, &self.steps, &self.last, create, f);
    }

    /// Renames the field (keeping its place among its siblings).
    pub fn rename(&self, root: &mut Value, to: &str) {
        self.parents(root, false, &mut |m, last| {
            if !m.contains_key(last) {
                return;
            }
            let old = std::mem::take(m);
            for (k, v) in old {
                if k == last {
                    m.insert(to.to_string(), v);
                } else if k != to {
                    m.insert(k, v);
                }
            }
        });
    }

    pub fn remove(&self, root: &mut Value) {
        self.parents(root, false, &mut |m, last| {
            m.shift_remove(last);
        });
    }

    /// Takes the field's value out (a path without `[]`).
    pub fn take(&self, root: &mut Value) -> Option<Value> {
        let mut out = None;
        self.parents(root, false, &mut |m, last| out = m.shift_remove(last));
        out
    }

    /// Sets the field in every parent, making missing objects on the way.
    pub fn set(&self, root: &mut Value, mut value: impl FnMut() -> Value) {
        self.parents(root, true, &mut |m, last| {
            m.insert(last.to_string(), value());
        });
    }
}

fn visit(
    v: &mut Value,
    steps: &[Step],
    last: &str,
    create: bool,
    f: &mut impl FnMut(&mut Map<String, Value>, &str),
) {
    match steps.split_first() {
        None => {
            if let Value::Object(m) = v {
                f(m, last);
            }
        }
        Some((Step::Key(k), rest)) => {
            let Value::Object(m) = v else { return };
            let child = if create {
                let c = m
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                Some(c)
            } else {
                m.get_mut(k)
            };
            if let Some(c) = child {
                visit(c, rest, last, create, f);
            }
        }
        Some((Step::Each, rest)) => {
            if let Value::Array(items) = v {
                for item in items {
                    visit(item, rest, last, create, f);
                }
            }
        }
    }
}

/// A key naming convention.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// `user_id`
    Snake,
    /// `userId`
    Camel,
    /// `user-id`
    Kebab,
    /// `UserId`
    Pascal,
}

impl Case {
    /// `key` in this case; an XML attribute's `@` or a text node's `#` stays in front.
    pub fn key(self, key: &str) -> String {
        let (mark, rest) = match key.as_bytes().first() {
            Some(b'@' | b'#') => key.split_at(1),
            _ => ("", key),
        };
        let converted = match self {
            Case::Snake => rest.to_snake_case(),
            Case::Camel => rest.to_lower_camel_case(),
            Case::Kebab => rest.to_kebab_case(),
            Case::Pascal => rest.to_upper_camel_case(),
        };
        format!("{mark}{converted}")
    }

    /// Every object key in `v`, at every depth.
    pub fn keys(self, v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| (self.key(&k), self.keys(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.keys(v)).collect()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn edits_by_path() {
        let mut v =
            json!({"user_id": 7, "name": "x", "items": [{"id": 1, "secret": 2}, {"id": 3}]});
        p("user_id").rename(&mut v, "user");
        p("items[].secret").remove(&mut v);
        p("items[].seen").set(&mut v, || json!(true));
        let moved = p("name").take(&mut v).unwrap();
        p("profile.name").set(&mut v, || moved.clone());
        assert_eq!(
            v.to_string(),
            r#"{"user":7,"items":[{"id":1,"seen":true},{"id":3,"seen":true}],"profile":{"name":"x"}}"#
        );
        let mut top = json!([{"a": 1}, {"a": 2}]);
        p("[].a").rename(&mut top, "b");
        assert_eq!(top, json!([{"b": 1}, {"b": 2}]));
        // Missing fields and non-objects are left alone.
        let mut s = json!({"a": 1});
        p("a.b").remove(&mut s);
        p("x.y").rename(&mut s, "z");
        assert_eq!(s, json!({"a": 1}));
    }

    #[test]
    fn bad_paths() {
        for bad in ["", "a..b", "a[0]", "a[]", "[]", "a.[]"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_cases_either_way() {
        let v = json!({"user_id": 1, "homeAddress": {"zip_code": "x", "@lang": "en"}, "list": [{"first_name": "a"}]});
        assert_eq!(
            Case::Camel.keys(v.clone()),
            json!({"userId": 1, "homeAddress": {"zipCode": "x", "@lang": "en"}, "list": [{"firstName": "a"}]})
        );
        assert_eq!(
            Case::Snake.keys(Case::Camel.keys(v)),
            json!({"user_id": 1, "home_address": {"zip_code": "x", "@lang": "en"}, "list": [{"first_name": "a"}]})
        );
        assert_eq!(Case::Kebab.key("userId"), "user-id");
        assert_eq!(Case::Pascal.key("user_id"), "UserId");
    }
}
