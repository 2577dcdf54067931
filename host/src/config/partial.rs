//! Reading past a type error: the entry that holds it (one route, one upstream, one plugin, or
//! a whole section such as `[server]`) is set aside and the rest is read again, so `check` and
//! a refused reload list every error at once. What others would then miss (an upstream a route
//! names) is not reported again as missing.

use std::borrow::Cow;
use std::ops::Range;

use toml::Spanned;

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
                // The routes after it keep the names they have in the file (`route-N` counts
                // them in file order), so errors about them name the right route.
                for (j, r) in items.iter_mut().enumerate().skip(i + 1) {
                    let span = r.span();
                    if let DeValue::Table(t) = r.get_mut()
                        && !t.iter().any(|(k, _)| k.get_ref() == "name")
                    {
                        let name = format!("route-{}", j + 1 + self.routes);
                        t.insert(
                            Spanned::new(span.clone(), Cow::Borrowed("name")),
                            Spanned::new(span, DeValue::String(Cow::Owned(name))),
                        );
                    }
                }
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

/// The dotted key whose value holds `at` (`upstreams.api.connect_timeout`), to name it in a
/// type error (serde's message names only the types).
pub fn key_at(doc: &DeTable<'_>, at: &Range<usize>) -> Option<String> {
    let (key, mut value) = holding(table_entries(doc), at)?;
    let mut path: Vec<&str> = key.into_iter().collect();
    loop {
        let inner = match value {
            DeValue::Table(t) => holding(table_entries(t), at),
            DeValue::Array(a) => holding(a.iter().map(|v| (None, v.span().start, v.get_ref())), at),
            _ => None,
        };
        let Some((key, v)) = inner else { break };
        path.extend(key);
        value = v;
    }
    Some(path.join("."))
}

/// A table's entries as `(key, where it starts, value)`.
fn table_entries<'a, 'i>(
    t: &'a DeTable<'i>,
) -> impl Iterator<Item = (Option<&'a str>, usize, &'a DeValue<'i>)> {
    t.iter().map(|(k, v)| {
        let start = v.span().start.min(k.span().start);
        (Some(k.get_ref().as_ref()), start, v.get_ref())
    })
}

/// The entry that holds `at`: the last one that starts before it (a table's span is its
/// header's, so its keys follow it).
fn holding<'a, 'i>(
    entries: impl Iterator<Item = (Option<&'a str>, usize, &'a DeValue<'i>)>,
    at: &Range<usize>,
) -> Option<(Option<&'a str>, &'a DeValue<'i>)> {
    entries
        .filter(|(_, start, _)| *start <= at.start)
        .max_by_key(|(_, start, _)| *start)
        .map(|(key, _, value)| (key, value))
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

    #[test]
    fn a_type_error_is_named_by_its_key() {
        let text = "[server]\nworkers = 2\n\n[upstreams.api]\ntargets = [\"a:1\"]\nconnect_timeout = 5\n\n[[routes]]\npath = \"/\"\n\n[[routes]]\npriority = \"high\"\n";
        let doc = DeTable::parse(text).expect("toml").into_inner();
        let at = |needle: &str| {
            let i = text.find(needle).expect("needle");
            i..i + needle.len()
        };
        assert_eq!(
            key_at(&doc, &at("5\n")).as_deref(),
            Some("upstreams.api.connect_timeout")
        );
        assert_eq!(
            key_at(&doc, &at("\"high\"")).as_deref(),
            Some("routes.priority")
        );
        assert_eq!(key_at(&doc, &at("2\n")).as_deref(), Some("server.workers"));
    }

    /// Unnamed routes after one set aside keep their file-order names.
    #[test]
    fn routes_after_one_set_aside_keep_their_names() {
        let later = "[[routes]]\npriority = \"high\"\n\n[[routes]]\npath = \"/b\"\n\n[[routes]]\nname = \"c\"\n";
        let mut doc = DeTable::parse(later).expect("toml").into_inner();
        let mut aside = SetAside::default();
        let i = later.find("\"high\"").expect("needle");
        assert!(aside.remove(&mut doc, &(i..i + 6)));
        let names: Vec<String> = doc
            .get("routes")
            .and_then(|r| r.get_ref().as_array())
            .map(|a| {
                a.iter()
                    .map(|r| {
                        r.get_ref()
                            .as_table()
                            .and_then(|t| t.get("name"))
                            .and_then(|n| n.get_ref().as_str())
                            .unwrap_or("-")
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, ["route-2", "c"], "the second route is still route-2");
    }
}
