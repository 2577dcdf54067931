//! Field paths into JSON documents, as plugins that edit bodies take them from their config:
//! `user.name`, `items[].id` (`[]` after a name means every element of that array, a leading
//! `[]` every element of a top-level array), and the edits made through them.

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
    /// Parses `text`; `Err` says what is wrong with it.
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

    /// Calls `f` with every object the path reaches that may hold its last field (whether it
    /// does or not), and that field's name: for edits that read the field's siblings.
    pub fn each_parent(&self, root: &mut Value, mut f: impl FnMut(&mut Map<String, Value>, &str)) {
        self.parents(root, false, &mut f);
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

    /// Renames the field (keeping its place among its siblings when serde_json's
    /// `preserve_order` feature is on).
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

    /// Removes the field wherever the path reaches it.
    pub fn remove(&self, root: &mut Value) {
        self.parents(root, false, &mut |m, last| {
            // `retain` keeps the other keys' order, whatever serde_json's features.
            m.retain(|k, _| k != last);
        });
    }

    /// Takes the field's value out (a path without `[]`).
    pub fn take(&self, root: &mut Value) -> Option<Value> {
        let mut out = None;
        self.parents(root, false, &mut |m, last| {
            out = m.get_mut(last).map(Value::take);
            if out.is_some() {
                m.retain(|k, _| k != last);
            }
        });
        out
    }

    /// Calls `f` on the field's value wherever the path reaches one.
    pub fn update(&self, root: &mut Value, mut f: impl FnMut(&mut Value)) {
        self.parents(root, false, &mut |m, last| {
            if let Some(v) = m.get_mut(last) {
                f(v);
            }
        });
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
            v,
            json!({"user": 7, "items": [{"id": 1, "seen": true}, {"id": 3, "seen": true}], "profile": {"name": "x"}})
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
}
