//! Reading past a type error: the entry that holds it (one route, one upstream, one plugin, or
//! a whole section such as `[server]`) is set aside and the rest is read again, so `check` and
//! a refused reload list every error at once. What others would then miss (an upstream a route
//! names) is not reported again as missing.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// Enough for any real file; a file that is wrong everywhere stops here.
pub const MAX_ERRORS: usize = 50;

/// Tables whose entries are set aside one by one (each a named object others refer to).
const NAMED: &[&str] = &["upstreams", "plugins"];

#[derive(Default)]
pub struct SetAside {
    /// Upstreams and plugins set aside, by name.
    names: Vec<String>,
    routes: usize,
}

impl SetAside {
    /// Removes from `doc` the entry whose text holds `at`: the one whose header (or key) comes
    /// last before it (a table's span is its header's). False when none does: nothing more
    /// can be read past this error.
    pub fn remove<'i>(&mut self, doc: &mut DeTable<'i>, at: &Range<usize>) -> bool {
        let mut found: Option<(usize, Entry)> = None;
        let mut consider = |start: usize, entry: Entry| {
            if start <= at.start && found.as_ref().is_none_or(|(s, _)| start >= *s) {
                found = Some((start, entry));
            }
        };
        for (key, value) in doc.iter() {
            let top = key.get_ref().to_string();
            match value.get_ref() {
                DeValue::Array(items) if top == "routes" => {
                    for (i, r) in items.iter().enumerate() {
                        consider(r.span().start, Entry::Route(i));
                    }
                }
                DeValue::Table(entries) if NAMED.contains(&top.as_str()) => {
                    for (name, v) in entries.iter() {
                        let start = v.span().start.min(name.span().start);
                        consider(start, Entry::Named(top.clone(), name.get_ref().to_string()));
                    }
                }
                _ => consider(
                    key.span().start.min(value.span().start),
                    Entry::Section(top),
                ),
            }
        }
        let Some((_, entry)) = found else {
            return false;
        };
        match entry {
            Entry::Route(i) => {
                let routes = doc.iter_mut().find(|(k, _)| k.get_ref() == "routes");
                let Some(DeValue::Array(items)) = routes.map(|(_, v)| v.get_mut()) else {
                    return false;
                };
                *items = std::mem::replace(items, toml::de::DeArray::new())
                    .into_iter()
                    .enumerate()
                    .filter_map(|(j, r)| (j != i).then_some(r))
                    .collect();
                self.routes += 1;
            }
            Entry::Named(top, name) => {
                let table = doc.iter_mut().find(|(k, _)| k.get_ref() == &top);
                if let Some(DeValue::Table(entries)) = table.map(|(_, v)| v.get_mut()) {
                    *entries = without(std::mem::take(entries), &name);
                }
                self.names.push(name);
            }
            Entry::Section(top) => {
                *doc = without(std::mem::take(doc), &top);
            }
        }
        true
    }

    /// Whether a validation message only follows from what was set aside (a reference to a
    /// removed upstream or plugin, no routes left), or says nothing new about a file that
    /// already has errors (`mistyped`: that it has no routes yet).
    pub fn explains(&self, message: &str, mistyped: bool) -> bool {
        self.names
            .iter()
            .any(|n| message.contains(&format!("`{n}`")))
            || ((self.routes > 0 || mistyped) && message.contains("has no [[routes]]"))
    }
}

fn without<'i>(table: DeTable<'i>, key: &str) -> DeTable<'i> {
    table
        .into_iter()
        .filter(|(k, _)| k.get_ref() != key)
        .collect()
}

enum Entry {
    Route(usize),
    /// An upstream or a plugin: its table, its name.
    Named(String, String),
    /// A top-level key and all under it.
    Section(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry set aside for an error in it, wherever its header and the error are.
    #[test]
    fn the_entry_holding_the_error_is_set_aside() {
        let text = "[upstreams.api]\ntargets = [\"a:1\"]\nconnect_timeout = 5\n\n[[routes]]\npath_prefix = \"/a\"\n\n[upstreams.web]\ntargets = [\"b:1\"]\n\n[[routes]]\npriority = \"high\"\n\n[server]\nworkers = \"x\"\n";
        let mut doc = DeTable::parse(text).expect("toml").into_inner();
        let mut aside = SetAside::default();
        let at = |needle: &str| {
            let i = text.find(needle).expect("needle");
            i..i + needle.len()
        };
        assert!(aside.remove(&mut doc, &at("5\n")));
        assert_eq!(aside.names, ["api"]);
        assert!(aside.remove(&mut doc, &at("\"high\"")));
        assert_eq!(aside.routes, 1);
        let routes = doc
            .get("routes")
            .and_then(|r| r.get_ref().as_array().map(|a| a.len()));
        assert_eq!(routes, Some(1), "the first route stays");
        assert!(aside.remove(&mut doc, &at("\"x\"")));
        assert!(doc.get("server").is_none());
        assert!(doc.get("upstreams").is_some(), "`web` stays");
        assert!(aside.explains("route `r` uses upstream `api`, which is not defined", false));
        assert!(!aside.explains(
            "route `r` uses upstream `nope`, which is not defined",
            false
        ));
    }
}
